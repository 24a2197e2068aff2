"""Real recordings for evaluation only, fetched at run time from package registries and cached (never committed):

- "pyannote": the 30 s two-speaker telephone call in the pyannote.audio 4.0.7 wheel (RTTM, 10 turns, one overlap);
  "pyannote-segments": its 13 STM transcript segments cut out as utterances (for ASR).
- "pocketsphinx": Debian's pocketsphinx-testdata: 5 LibriVox read sentences, 5 card-game phrases and
  "go forward ten meters", with transcripts.
- "alsa": the spoken channel names of alsa-utils ("Front Center", ...), text and label.

Each becomes a folder of 16 kHz mono WAV files and a `manifest.jsonl` in the format of the synthetic corpora
(split "test"; transcripts normalised to uppercase A-Z, apostrophe and space). pyannote.audio is never installed:
only its wheel is downloaded and three files are read from it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

from .manifest import MANIFEST_NAME, read_manifest, resolve, write_manifest
from .text import normalize_text
from .voices import SAMPLE_RATE, SynthError

REAL_SOURCES = ("pyannote", "pyannote-segments", "pocketsphinx", "alsa")
PYANNOTE_WHEEL = "pyannote.audio==4.0.7"
_PS_DATA = "usr/share/pocketsphinx/test/data"
_ALSA_SOUNDS = "usr/share/sounds/alsa"
# Transcripts of pocketsphinx-testdata files that have none beside them (the ones its own decoder tests expect).
_PS_EXTRA = {"goforward": ("goforward.raw", "go forward ten meters")}


class FetchError(SynthError):
    """A source of real recordings cannot be fetched (no network, no pip, no apt-get/dpkg, or unexpected content)."""


def default_cache() -> Path:
    """$WAVLM_REAL_CACHE, else ~/.cache/wavlm/real."""
    return Path(os.environ.get("WAVLM_REAL_CACHE") or Path.home() / ".cache" / "wavlm" / "real")


def fetch_real(name: str, cache: str | os.PathLike | None = None, refresh: bool = False) -> Path:
    """The manifest of real recordings `name` (one of REAL_SOURCES), fetched on first use into `cache`
    (default_cache()) and reused afterwards; refresh=True fetches again. Returns the manifest path.

    Raises FetchError naming the source and what failed (e.g. pip or apt-get cannot reach the network).
    """
    if name not in REAL_SOURCES:
        raise ValueError(f"unknown real recordings {name!r}; choose one of {REAL_SOURCES}")
    root = (Path(cache).expanduser() if cache is not None else default_cache()).resolve()
    folder = root / name
    manifest = folder / MANIFEST_NAME
    if not refresh and _complete(manifest):
        return manifest
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=root) as tmp:
        staging = Path(tmp) / name
        staging.mkdir()
        write_manifest(_BUILDERS[name](staging, root), staging / MANIFEST_NAME)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)  # readers see the old folder or the whole new one
    return manifest


def _complete(manifest: Path) -> bool:
    try:
        read_manifest(manifest, check_audio=True)
    except (OSError, ValueError):
        return False
    return True


# ------------------------------------------------------------------------------------------------ fetching


def _run(cmd: list[str], what: str, cwd: Path, timeout: float = 300) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise FetchError(f"cannot fetch {what}: {cmd[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise FetchError(f"cannot fetch {what}: `{' '.join(cmd)}` took more than {timeout:.0f} s "
                         "(no network?)") from None
    if proc.returncode != 0:
        err = " ".join((proc.stderr or proc.stdout).split())[-400:]
        raise FetchError(f"cannot fetch {what}: `{' '.join(cmd)}` failed (exit {proc.returncode}; no network?): "
                         f"{err}")


def _wheel_files(root: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """Files of pyannote/audio/sample/ in the pyannote.audio wheel, downloaded once into root/downloads/."""
    downloads = root / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    wheels = sorted(downloads.glob("pyannote_audio-4.0.7-*.whl"))
    if not wheels:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--timeout", "30", "--retries", "1",
              PYANNOTE_WHEEL, "-d", str(downloads)], f"the {PYANNOTE_WHEEL} wheel (PyPI)", downloads)
        wheels = sorted(downloads.glob("pyannote_audio-4.0.7-*.whl"))
    if not wheels:
        raise FetchError(f"pip download of {PYANNOTE_WHEEL} gave no pyannote_audio-4.0.7 wheel in {downloads}")
    out = {}
    with zipfile.ZipFile(wheels[0]) as z:
        for name in names:
            member = f"pyannote/audio/sample/{name}"
            if member not in z.namelist():
                raise FetchError(f"{wheels[0].name} has no {member}")
            out[name] = z.read(member)
    return out


def _debian_tree(package: str, wanted: str, root: Path) -> Path:
    """The folder `wanted` (e.g. usr/share/sounds/alsa) of a Debian package: the installed one when present,
    else the package's files from `apt-get download` + `dpkg -x` into root/downloads/<package>/."""
    installed = Path("/") / wanted
    if installed.is_dir() and any(installed.iterdir()):
        return installed
    tree = root / "downloads" / package
    if not (tree / wanted).is_dir():
        work = root / "downloads"
        work.mkdir(parents=True, exist_ok=True)
        for deb in work.glob(f"{package}_*.deb"):
            deb.unlink()
        _run(["apt-get", "download", "-o", "Acquire::http::Timeout=30", "-o", "Acquire::Retries=1", package],
             f"Debian's {package} (apt-get download; needs apt sources and network)", work)
        debs = sorted(work.glob(f"{package}_*.deb"))
        if not debs:
            raise FetchError(f"apt-get download {package} gave no .deb in {work}")
        _run(["dpkg", "-x", str(debs[0]), str(tree)], f"Debian's {package} (dpkg -x)", work)
    if not (tree / wanted).is_dir():
        raise FetchError(f"Debian's {package} has no {wanted}/")
    return tree / wanted


def _write_16k(src: Path | bytes, dest: Path, raw: bool = False) -> float:
    """Decode (a 16 kHz 16-bit raw file when raw), mix to mono, resample to 16 kHz, write PCM_16; the duration."""
    import numpy as np
    import soundfile

    from wavlm.audio import load_audio

    if raw:
        wav = np.frombuffer(Path(src).read_bytes(), dtype="<i2").astype(np.float32) / 32768.0
    else:
        wav, _ = load_audio(src, sampling_rate=SAMPLE_RATE)
    dest.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(dest, wav, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return wav.size / SAMPLE_RATE


# ------------------------------------------------------------------------------------------------ the sources


def _stm(text: str) -> list[tuple[str, float, float, str]]:
    """(speaker, start, end, words) of each STM line `<file> <channel> <speaker> <start> <end> <words...>`."""
    rows = []
    for line in text.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) >= 5 and not line.startswith(";;"):
            rows.append((fields[2], float(fields[3]), float(fields[4]), fields[5] if len(fields) > 5 else ""))
    return rows


def _pyannote(folder: Path, root: Path) -> list[dict[str, Any]]:
    from wavlm.tasks.rttm import parse_rttm

    files = _wheel_files(root, ("sample.wav", "sample.rttm", "sample.stm"))
    (folder / "sample.rttm").write_bytes(files["sample.rttm"])
    (folder / "sample.stm").write_bytes(files["sample.stm"])
    duration = _write_16k(files["sample.wav"], folder / "sample.wav")
    turns = parse_rttm(files["sample.rttm"].decode(), "sample.rttm")
    stm = _stm(files["sample.stm"].decode())
    return [{"audio": "sample.wav", "id": "sample", "duration": duration, "rttm": "sample.rttm",
             "text": normalize_text(" ".join(words for *_, words in stm)),
             "speakers": sorted({t.speaker for t in turns}), "split": "test", "source": PYANNOTE_WHEEL}]


def _pyannote_segments(folder: Path, root: Path) -> list[dict[str, Any]]:
    import numpy as np
    import soundfile

    whole = read_manifest(fetch_real("pyannote", root))[0]
    wav, rate = soundfile.read(resolve(root / "pyannote" / MANIFEST_NAME, whole["audio"]), dtype="float32")
    stm = _stm((root / "pyannote" / "sample.stm").read_text(encoding="utf-8"))
    records = []
    for k, (speaker, start, end, words) in enumerate(stm):
        piece = np.ascontiguousarray(wav[int(round(start * rate)):int(round(end * rate))])
        audio = Path("audio") / f"sample-{k:02d}.wav"
        (folder / audio).parent.mkdir(exist_ok=True)
        soundfile.write(folder / audio, piece, rate, subtype="PCM_16", format="WAV")
        records.append({"audio": audio.as_posix(), "id": f"sample-{k:02d}", "duration": piece.size / rate,
                        "text": normalize_text(words), "speaker": speaker, "start": start, "end": end,
                        "split": "test", "source": PYANNOTE_WHEEL})
    return records


def _sphinx_transcripts(path: Path) -> dict[str, str]:
    """`<s> words </s> (utterance-id)` lines -> id: words."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\s*(.*?)\s*\(([^()]+)\)\s*$", line)
        if m:
            out[m.group(2)] = re.sub(r"</?s>", " ", m.group(1))
    return out


def _pocketsphinx(folder: Path, root: Path) -> list[dict[str, Any]]:
    data = _debian_tree("pocketsphinx-testdata", _PS_DATA, root)
    records = []
    for subset, transcripts in (("librivox", data / "librivox" / "transcription"),
                                ("cards", data / "cards" / "cards.transcription")):
        if not transcripts.is_file():
            raise FetchError(f"pocketsphinx-testdata has no {transcripts.relative_to(data.parent)}")
        for uid, words in _sphinx_transcripts(transcripts).items():
            src = data / subset / f"{uid}.wav"
            short = f"{subset}-{uid.rsplit('-', 1)[-1]}"
            audio = Path("audio") / f"{short}.wav"
            records.append({"audio": audio.as_posix(), "id": short, "duration": _write_16k(src, folder / audio),
                            "text": normalize_text(words), "split": "test",
                            "source": f"pocketsphinx-testdata/{subset}"})
    for uid, (name, words) in _PS_EXTRA.items():
        audio = Path("audio") / f"{uid}.wav"
        duration = _write_16k(data / name, folder / audio, raw=True)
        records.append({"audio": audio.as_posix(), "id": uid, "duration": duration, "text": normalize_text(words),
                        "split": "test", "source": "pocketsphinx-testdata"})
    return records


def _alsa(folder: Path, root: Path) -> list[dict[str, Any]]:
    sounds = _debian_tree("alsa-utils", _ALSA_SOUNDS, root)
    records = []
    for src in sorted(sounds.glob("*.wav")):
        if src.stem.lower() == "noise":  # pink noise, no speech
            continue
        phrase = normalize_text(src.stem.replace("_", " "))
        audio = Path("audio") / src.name
        records.append({"audio": audio.as_posix(), "id": src.stem, "duration": _write_16k(src, folder / audio),
                        "text": phrase, "label": phrase, "split": "test", "source": "alsa-utils"})
    if not records:
        raise FetchError(f"no spoken phrases (*.wav) in {sounds}")
    return records


_BUILDERS: dict[str, Callable[[Path, Path], list[dict[str, Any]]]] = {
    "pyannote": _pyannote, "pyannote-segments": _pyannote_segments, "pocketsphinx": _pocketsphinx, "alsa": _alsa,
}
