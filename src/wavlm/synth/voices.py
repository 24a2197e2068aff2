"""The voices of the synthetic corpora (espeak-ng variants and accents, flite's voices), their fixed train /
valid / test split, and one call that speaks a text with a voice at a pitch and rate, as 16 kHz mono float32.

Measured facts behind the choices are in shared/reference/ecosystem.md §7: both engines are byte-deterministic,
espeak-ng runs at about 50 utterances/s per core, flite voices and male/female mixing separate speakers best.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Iterable

import numpy as np

SAMPLE_RATE = 16000
ENGINES = ("espeak", "flite")
SPLITS = ("train", "valid", "test")
_TOOLS = {"espeak": "espeak-ng", "flite": "flite"}
_INSTALL = "apt-get install espeak-ng flite sox"


class SynthError(RuntimeError):
    """A tool the corpora need is missing or failed (espeak-ng, flite, sox, pip, apt-get), or a source of real
    recordings cannot be fetched. The message names the tool or source and how to get it."""


@dataclass(frozen=True)
class Voice:
    """A base voice: `id` is "engine:name" (as written in manifests), `name` what the engine is given."""
    engine: str
    name: str
    gender: str
    split: str

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"


@dataclass(frozen=True)
class Prosody:
    """How a voice speaks. pitch in [-1, 1] (0 = the voice's own): espeak-ng `-p 50 + 25 * pitch`, flite a shift
    of `3 * pitch` semitones; rate: speed factor (1 = the voice's own; espeak-ng `-s 175 * rate` words per minute,
    flite `duration_stretch 1 / rate`); shift: semitones by which sox `pitch` moves the whole spectrum, formants
    included (a longer or shorter vocal tract: what makes two speakers of one base voice sound different)."""
    pitch: float = 0.0
    rate: float = 1.0
    shift: float = 0.0


def _voices(engine: str, split: str, gender: str, names: str) -> list[Voice]:
    return [Voice(engine, name, gender, split) for name in names.split()]


# The split of every base voice is fixed here, so that evaluation is always on voices no training set contains.
# "valid" voices are for model selection, "test" voices (HELD_OUT_VOICES) for the reported numbers; both are kept
# out of every train split of every kind. Each split mixes genders; test holds one flite voice and espeak-ng
# variants of every family (male, female, klatt, another accent).
VOICES: tuple[Voice, ...] = tuple(
    _voices("espeak", "train", "M", "en-us+m1 en-us+m2 en-us+m3 en-us+m4 en-us+m5 en-us+m6 en-us+klatt en-gb "
                                    "en-gb-scotland en-gb-x-rp en-029")
    + _voices("espeak", "train", "F", "en-us+f1 en-us+f2 en-us+f4 en-us+klatt2 en-gb+f2 en-us-nyc+f5")
    + _voices("flite", "train", "M", "kal kal16 awb")
    + _voices("flite", "train", "F", "slt")
    + _voices("espeak", "valid", "M", "en-us+m8 en-gb-x-gbcwmd")
    + _voices("espeak", "valid", "F", "en-gb+f5 en-us+klatt6")
    + _voices("espeak", "test", "M", "en-us+m7 en-029+m2 en-us+klatt4")
    + _voices("espeak", "test", "F", "en-us+f3 en-gb-scotland+f4")
    + _voices("flite", "test", "M", "rms")
)
VOICE_BY_ID = {v.id: v for v in VOICES}
HELD_OUT_VOICES: tuple[str, ...] = tuple(v.id for v in VOICES if v.split == "test")


def voices_for(split: str, engines: Iterable[str] = ENGINES) -> list[Voice]:
    """The base voices of one split ("train", "valid" or "test") that use one of `engines`, in table order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    engines = check_engines(engines)
    return [v for v in VOICES if v.split == split and v.engine in engines]


def check_engines(engines: Iterable[str]) -> tuple[str, ...]:
    engines = tuple(dict.fromkeys(engines))
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        raise ValueError(f"engines must be a non-empty subset of {ENGINES}, got {list(engines)}")
    return engines


def require_tool(tool: str, why: str) -> str:
    """The path of an executable on PATH; SynthError naming it and the install command when it is missing."""
    path = shutil.which(tool, path=os.environ.get("PATH", os.defpath))
    if path is None:
        raise SynthError(f"{tool} is not installed or not on PATH ({why}); install it with `{_INSTALL}`")
    return path


def require_engines(engines: Iterable[str]) -> None:
    for engine in check_engines(engines):
        require_tool(_TOOLS[engine], f"needed for the {engine} voices; or leave the engine out with "
                                     f"engines=/--engines")


def tool_versions(engines: Iterable[str], sox: bool) -> dict[str, str]:
    """First line of each tool's version output, written into corpus.json so a corpus says what made it."""
    commands = {"espeak": ["espeak-ng", "--version"], "flite": ["flite", "--version"]}
    out = {}
    for engine in engines:
        proc = subprocess.run(commands[engine], capture_output=True, text=True)
        out[_TOOLS[engine]] = (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 else "?"
    if sox:
        proc = subprocess.run(["sox", "--version"], capture_output=True, text=True)
        out["sox"] = proc.stdout.strip().split()[-1] if proc.returncode == 0 else "?"
    return out


def _run(cmd: list[str], stdin: bytes | None = None) -> bytes:
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
    except FileNotFoundError:
        raise SynthError(f"{cmd[0]} is not installed or not on PATH; install it with `{_INSTALL}`") from None
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode(errors="replace").strip()[-400:]
        raise SynthError(f"{cmd[0]} failed (exit {proc.returncode}) on {' '.join(cmd[1:4])} ...: {err or 'no output'}")
    return proc.stdout


def sox_process(wav: np.ndarray, rate: int, effects: list[str]) -> np.ndarray:
    """Run float32 mono samples through sox effects (raw float32 in and out, no dither), same length out."""
    raw = ["-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-r", str(rate)]
    out = _run(["sox", "-V1", "-D", *raw, "-", *raw, "-", *effects], np.asarray(wav, "<f4").tobytes())
    y = np.frombuffer(out, dtype="<f4").astype(np.float32)
    if y.size >= wav.size:
        return y[: wav.size].copy()
    return np.concatenate([y, np.zeros(wav.size - y.size, np.float32)])


def _decode_wav(data: bytes, what: str) -> tuple[np.ndarray, int]:
    import soundfile

    try:
        wav, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises its own error types
        raise SynthError(f"{what} wrote audio that cannot be decoded: {e}") from None
    return wav.mean(axis=1) if wav.shape[1] > 1 else wav[:, 0], int(rate)


def synthesize(voice: Voice, text: str, prosody: Prosody = Prosody()) -> np.ndarray:
    """Speak `text` (plain words, as a reader would say them) with `voice`: float32, 16 kHz, mono, untrimmed
    (espeak-ng leaves about 0.06 s of silence before and 0.3 s after). Raises SynthError when the engine fails."""
    import soxr

    if voice.engine == "espeak":
        cmd = ["espeak-ng", "-v", voice.name, "-p", str(int(round(50 + 25 * prosody.pitch))),
               "-s", str(int(round(175 * prosody.rate))), "--stdout", text]
        wav, rate = _decode_wav(_run(cmd), "espeak-ng")
        shift = prosody.shift
    elif voice.engine == "flite":
        cmd = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1.0 / prosody.rate:.4f}",
               "-t", text, "-o", "/dev/stdout"]
        wav, rate = _decode_wav(_run(cmd), "flite")
        shift = 3 * prosody.pitch + prosody.shift  # flite's f0 settings do not move every voice (rms); sox does
    else:
        raise ValueError(f"unknown engine {voice.engine!r}; expected one of {ENGINES}")
    if abs(shift) > 1e-3:
        wav = sox_process(wav, rate, ["pitch", f"{100 * shift:.1f}"])
    if rate != SAMPLE_RATE:
        wav = soxr.resample(wav, rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(wav, dtype=np.float32)
