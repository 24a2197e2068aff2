"""Model-independent building blocks of the `wavlm` command-line tasks: scoring, RTTM, clustering, decoding, I/O."""
