"""Shared set-up of the end-to-end CLI tests: speech generated with espeak-ng / flite, tiny random checkpoints saved
by transformers (the oracle), the pyannote.audio sample fetched at test time, and a subprocess runner."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from conftest import make_vocab, require_tool, tiny_kwargs  # noqa: E402

SENTENCES = {
    "alpha": "hello world, this is a test of the speech model",
    "bravo": "the quick brown fox jumps over the lazy dog",
    "charlie": "one two three four five",
}
HEADS = {
    "base": "WavLMModel", "ctc": "WavLMForCTC", "cls": "WavLMForSequenceClassification",
    "frames": "WavLMForAudioFrameClassification", "xvector": "WavLMForXVector",
}


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 300,
            module: bool = True) -> subprocess.CompletedProcess:
    """`python -m wavlm ARGS` in a subprocess (stdout, stderr captured as text)."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    cmd = [sys.executable, "-m", "wavlm", *args] if module else list(args)
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout)


def make_speech(folder: Path) -> dict[str, Path]:
    """Three espeak-ng utterances (22.05 kHz, in a sub-folder for one) and one flite utterance (8 kHz)."""
    require_tool("espeak-ng", "speech for the CLI tests")
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for i, (name, text) in enumerate(SENTENCES.items()):
        path = folder / ("sub" if i == 2 else "") / f"{name}.wav"
        path.parent.mkdir(exist_ok=True)
        subprocess.run(["espeak-ng", "-s", "170", "-w", str(path), text], check=True, capture_output=True)
        files[name if i < 2 else f"sub/{name}"] = path
    if shutil.which("flite"):
        path = folder / "delta.wav"
        subprocess.run(["flite", "-t", "good morning everyone", "-o", str(path)], check=True, capture_output=True)
        files["delta"] = path
    return files


def make_models(root: Path) -> dict[str, Path]:
    """Tiny random checkpoints of each class, saved by transformers with a feature extractor (and a tokenizer
    for CTC)."""
    import torch
    import transformers as tf

    vocab = make_vocab()
    out = {}
    for seed, (kind, cls_name) in enumerate(HEADS.items()):
        torch.manual_seed(seed)
        extra = dict(vocab_size=len(vocab), pad_token_id=0) if kind == "ctc" else {}
        if kind == "frames":
            extra = dict(num_labels=2, id2label={0: "spkA", 1: "spkB"}, label2id={"spkA": 0, "spkB": 1})
        if kind == "cls":
            labels = ["neutral", "happy", "sad"]
            extra = dict(num_labels=3, id2label=dict(enumerate(labels)), label2id={v: k for k, v in enumerate(labels)})
        config = tf.WavLMConfig(**tiny_kwargs("base", **extra))
        model = getattr(tf, cls_name)(config).eval()
        path = root / kind
        model.save_pretrained(path)
        tf.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(path)
        if kind == "ctc":
            (root / "vocab.json").write_text(json.dumps(vocab))
            tf.Wav2Vec2CTCTokenizer(str(root / "vocab.json")).save_pretrained(path)
        out[kind] = path
    return out


def cache_dir() -> Path:
    return Path(os.environ.get("WAVLM_TEST_CACHE", Path.home() / ".cache" / "wavlm-tests"))


def pyannote_sample() -> Path:
    """sample.wav (+ sample.rttm, sample.stm beside it) of pyannote.audio 4.0.7, from wavlm.synth.fetch_real
    (the wheel is downloaded once and cached); skips the test when it cannot be fetched."""
    from wavlm.synth import FetchError, fetch_real

    try:
        manifest = fetch_real("pyannote", cache=cache_dir() / "real")
    except FetchError as e:
        pytest.skip(f"could not fetch the pyannote.audio sample: {e}")
    return manifest.parent / "sample.wav"


def hf_greedy_transcripts(model_dir: Path, files: dict[str, Path]) -> dict[str, str]:
    """Each file alone through transformers' WavLMForCTC and Wav2Vec2Processor: the greedy transcript."""
    import torch
    import transformers as tf
    from wavlm import load_audio

    processor = tf.Wav2Vec2Processor.from_pretrained(model_dir)
    model = tf.WavLMForCTC.from_pretrained(model_dir).eval()
    out = {}
    for uid, path in files.items():
        wav, sr = load_audio(path)
        inputs = processor(wav, sampling_rate=sr, return_tensors="pt")
        with torch.no_grad():
            logits = model(**inputs).logits
        out[uid] = processor.decode(logits.argmax(-1)[0])
    return out


def corrupt_files(folder: Path) -> dict[str, str]:
    """A corrupt wav (bad header), an empty file and a too-short one; id -> kind."""
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" + bytes(range(200)))
    (folder / "empty.flac").write_bytes(b"")
    soundfile.write(folder / "short.wav", np.zeros(100, dtype=np.float32), 16000)
    return {"corrupt": "corrupt", "empty": "empty", "short": "too short"}
