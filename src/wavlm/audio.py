"""Audio file loading: decode (soundfile; PyAV for m4a/aac when installed), mix to mono, resample with soxr.

The only module that opens audio files. Every failure is an `AudioLoadError` naming the file and the reason.
"""
from __future__ import annotations

import io
import os
import struct
from typing import Any, BinaryIO

import numpy as np

# Containers soundfile (libsndfile) cannot read; PyAV can.
_AV_ONLY = {".m4a", ".aac", ".mp4", ".m4b", ".webm", ".wma", ".mkv", ".3gp"}


class AudioLoadError(ValueError, OSError):
    """An audio file is missing, empty, truncated or cannot be decoded (a ValueError and an OSError)."""


def load_audio(
    source: str | os.PathLike | bytes | BinaryIO,
    sampling_rate: int | None = 16000,
    channel: int | None = None,
) -> tuple[np.ndarray, int]:
    """Read an audio file as a mono float32 waveform, resampled to `sampling_rate`.

    Args:
        source: a path, the file's bytes, or a binary file object. wav, flac, ogg (vorbis/opus) and mp3 are
            decoded by soundfile; m4a/aac and other containers need PyAV (`pip install wavlm[audio]`).
        sampling_rate: target rate in Hz (soxr, "HQ"); None keeps the file's rate.
        channel: keep this channel (0-based); None averages all channels.

    Returns:
        (waveform, rate): waveform of shape (samples,), float32 in [-1, 1] (integer PCM is scaled), and its
        rate in Hz. NaN samples are passed through; the feature extractor rejects them.

    Raises:
        AudioLoadError: missing, empty (no samples), truncated or undecodable input.
        ValueError: `channel` out of range, or a non-positive `sampling_rate`.
    """
    if sampling_rate is not None and (isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, float))
                                      or not 0 < sampling_rate < float("inf")):
        raise ValueError(f"sampling_rate must be a positive number of Hz or None, got {sampling_rate!r}")
    name, data = _read_source(source)
    if not data:
        raise AudioLoadError(f"{name}: the file is empty (0 bytes)")
    try:
        wav, rate = _decode_soundfile(data, name)
    except AudioLoadError as sf_error:
        wav, rate = _decode_av_fallback(data, name, sf_error)
    if wav.shape[0] == 0:
        raise AudioLoadError(f"{name}: the file holds no audio samples")
    if channel is None:
        mono = _mix_down(wav) if wav.shape[1] > 1 else wav[:, 0]
    elif -wav.shape[1] <= channel < wav.shape[1]:
        mono = wav[:, channel]
    else:
        raise ValueError(f"{name}: channel {channel} requested, but the file has {wav.shape[1]} channel(s)")
    mono = _to_float32(mono, name, "")
    if sampling_rate is not None and rate != sampling_rate:
        mono = _resample(mono, rate, int(sampling_rate), name)
        rate = int(sampling_rate)
    return mono, int(rate)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _mix_down(wav: np.ndarray) -> np.ndarray:
    """The channel average; in float64 where the float32 sum overflows (samples near float32's limit)."""
    with np.errstate(over="ignore", invalid="ignore"):
        mono = wav.mean(axis=1)
    if not np.isfinite(mono).all() and np.isfinite(wav).all():
        mono = wav.mean(axis=1, dtype=np.float64)
    return mono


def _to_float32(samples: np.ndarray, name: str, after: str) -> np.ndarray:
    """float32 samples; AudioLoadError when finite samples do not fit (NaN and inf in the file pass through)."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(samples, dtype=np.float32)
    if samples.dtype != np.float32 and np.isinf(out).any():
        overflow = np.isinf(out) & np.isfinite(samples)
        if overflow.any():
            peak = float(np.abs(samples[overflow]).max())
            raise AudioLoadError(f"{name}: samples{after} reach |x| = {peak:.3g}, beyond the range of float32 "
                                 f"({_FLOAT32_MAX:.3g}) that wavlm computes in; audio samples should lie in [-1, 1]")
    return out


def _resample(mono: np.ndarray, rate: int, target: int, name: str) -> np.ndarray:
    """soxr "HQ" resampling. soxr computes in float32, so samples near float32's limit overflow inside its filter:
    those are resampled scaled to [-1, 1] and scaled back (resampling is linear), and refused if the result does
    not fit float32."""
    import soxr

    out = soxr.resample(mono, rate, target, quality="HQ").astype(np.float32, copy=False)
    finite = np.isfinite(mono)
    if np.isfinite(out).all() or not finite.all():
        return out
    peak = float(np.abs(mono).max())
    scaled = soxr.resample((mono / np.float32(peak)).astype(np.float32), rate, target, quality="HQ")
    return _to_float32(scaled.astype(np.float64) * peak, name, " after resampling")


def _read_source(source: Any) -> tuple[str, bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>", bytes(source)
    if hasattr(source, "read"):
        name = getattr(source, "name", "<file object>")
        return str(name), source.read()
    path = os.fspath(source)
    try:
        with open(path, "rb") as f:
            return path, f.read()
    except FileNotFoundError:
        raise AudioLoadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise AudioLoadError(f"{path}: is a directory, not an audio file") from None
    except OSError as e:
        raise AudioLoadError(f"{path}: cannot be read ({e.strerror or e})") from e


def _decode_soundfile(data: bytes, name: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            declared, rate = f.frames, f.samplerate
            # float64 files are read as float64, so that samples beyond float32's range are reported, not inf
            wav = f.read(dtype="float64" if f.subtype == "DOUBLE" else "float32", always_2d=True)
            container = f.format
    except Exception as e:  # libsndfile reports every decode failure as a RuntimeError subclass
        raise AudioLoadError(f"{name}: not a readable audio file ({_short(e)})") from e
    # libsndfile returns a cut-off wav / opus / mp3 without complaint: check the container's own records.
    if len(wav) < declared or _wav_truncated(data) or (container == "OGG" and _ogg_truncated(data)):
        raise AudioLoadError(f"{name}: the file is truncated (it ends before its declared length)")
    return wav, rate


def _decode_av_fallback(data: bytes, name: str, sf_error: AudioLoadError) -> tuple[np.ndarray, int]:
    try:
        import av  # noqa: F401
    except ImportError:
        ext = os.path.splitext(name)[1].lower()
        if ext in _AV_ONLY:
            raise AudioLoadError(f"{name}: {ext} files need PyAV: pip install wavlm[audio]") from sf_error
        raise sf_error from None
    try:
        return _decode_av(data)
    except Exception as e:
        raise AudioLoadError(f"{name}: not a readable audio file ({_short(sf_error.__cause__)}; "
                             f"PyAV: {_short(e)})") from e


def _decode_av(data: bytes) -> tuple[np.ndarray, int]:
    import av

    with av.open(io.BytesIO(data)) as container:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate
        channels = stream.codec_context.channels or 1
        # Ask for packed float32 so every frame is (1, samples * channels) whatever the codec's sample format.
        resampler = av.AudioResampler(format="flt", layout=stream.layout.name if stream.layout else None, rate=rate)
        chunks = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):  # flush
            chunks.append(out.to_ndarray().reshape(-1))
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return samples.astype(np.float32, copy=False).reshape(-1, channels), int(rate)


def _wav_truncated(data: bytes) -> bool:
    """True when a RIFF/WAVE file's data chunk declares more bytes than the file holds."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return False
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if chunk == b"data":
            # Streaming writers leave the size 0 or 0xFFFFFFFF ("unknown"); those cannot be checked.
            return 0 < size < 0xFFFFFFFF and pos + 8 + size > len(data)
        pos += 8 + size + (size & 1)
    return False


def _ogg_truncated(data: bytes) -> bool:
    """True when the last Ogg page is cut off or is not flagged end-of-stream."""
    last = data.rfind(b"OggS")
    if last < 0 or last + 27 > len(data):
        return True
    header_type, n_segments = data[last + 5], data[last + 26]
    if last + 27 + n_segments > len(data):
        return True
    body = sum(data[last + 27:last + 27 + n_segments])
    return not (header_type & 0x04) or last + 27 + n_segments + body > len(data)


def _short(e: BaseException | None) -> str:
    text = str(e).strip().splitlines()[-1] if e is not None and str(e).strip() else type(e).__name__
    # libsndfile repeats the (BytesIO) file name: keep only the reason.
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text
