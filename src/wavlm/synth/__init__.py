"""Synthetic corpora made here (espeak-ng, flite, sox) and real recordings fetched for evaluation, as JSONL
manifests: `make_corpus("asr" | "speakers" | "conversations" | "commands", out_dir, ...)`, `fetch_real(name)`.

Names are resolved lazily: importing the package (or its command-line arguments) loads neither numpy nor soundfile.
"""
from __future__ import annotations

from wavlm._lazy import lazy_getattr

_EXPORTS: dict[str, str] = {
    "make_corpus": "corpora", "make_trials": "corpora", "Corpus": "corpora", "KINDS": "corpora",
    "KIND_OPTIONS": "corpora", "DEFAULT_SIZES": "corpora",
    "VOICES": "voices", "HELD_OUT_VOICES": "voices", "Voice": "voices", "Prosody": "voices",
    "voices_for": "voices", "synthesize": "voices", "SynthError": "voices",
    "normalize_text": "text", "sentence": "text", "digit_string": "text", "COMMAND_WORDS": "text",
    "read_manifest": "manifest", "write_manifest": "manifest", "manifest_to_cuts": "manifest",
    "write_cuts": "manifest",
    "fetch_real": "real", "REAL_SOURCES": "real", "FetchError": "real", "default_cache": "real",
    "add_synth_arguments": "command", "run_synth": "command",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
