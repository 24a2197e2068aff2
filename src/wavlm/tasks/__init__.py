"""Model-free algorithms and formats: CTC decoding, clustering, RTTM and diarization error rate, verification
scoring, segmentation, SRT captions, and the inputs (files, folders, JSONL manifests). Nothing here imports the
command line (wavlm.cli) or a model; the command line, the trainers and the corpus generators build on it."""
