"""The models wavlm ships: tiny WavLMs trained here by recipes/tiny/recipe.py, on synthetic voices only.

Each is a transformers-format folder inside the package (config.json, model.safetensors, the feature extractor's and,
for CTC, the tokenizer's files), found by name wherever a model source is taken: `WavLMForCTC.from_pretrained(
"tiny-synth-ctc")`, `wavlm transcribe --model tiny-synth-ctc`. A local folder of the same name wins. results.json
holds what the recipe measured. They know only espeak-ng and flite voices: on real speech they are poor.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ZOO_DIR = Path(__file__).resolve().parent
# name -> (head, what it does)
MODELS: dict[str, tuple[str, str]] = {
    "tiny-synth-ctc": ("WavLMForCTC", "speech recognition (CTC, letters) of read English sentences and digits"),
    "tiny-synth-xvector": ("WavLMForXVector", "speaker embeddings for verification"),
    "tiny-synth-frames": ("WavLMForAudioFrameClassification", "speaker activity of up to 3 speakers (diarization)"),
    "tiny-synth-commands": ("WavLMForSequenceClassification",
                            "ten command words: YES NO UP DOWN LEFT RIGHT ON OFF STOP GO"),
}
NOTICE = ("{name} is a tiny model (a 0.3 M-parameter encoder) trained by wavlm's recipes/tiny only on "
          "synthetic voices (espeak-ng, flite): it knows no real speech, and its outputs on real recordings are poor")


def shipped_path(name: str | os.PathLike) -> Path | None:
    """The folder of the shipped model `name`, or None when `name` is not one (or its files are missing)."""
    name = os.fspath(name)
    if name not in MODELS:
        return None
    folder = ZOO_DIR / name
    return folder if (folder / "config.json").is_file() else None


def notice(name: str | os.PathLike) -> str | None:
    """The plain warning that goes with every output of a shipped model; None for other sources."""
    return NOTICE.format(name=os.fspath(name)) if shipped_path(name) is not None else None


def results() -> dict[str, Any]:
    """What recipes/tiny/recipe.py measured for the shipped models (results.json): {} when absent."""
    path = ZOO_DIR / "results.json"
    return json.loads(path.read_text()) if path.is_file() else {}
