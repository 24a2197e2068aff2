"""Signal steps of the synthetic corpora: trimming to speech, peak level, coloured noise at an SNR, sox reverb.

Sample positions are kept on a grid of GRID samples (1 ms at 16 kHz), so that RTTM times written with three
decimals are the exact sample positions.
"""
from __future__ import annotations

import numpy as np

from .voices import SAMPLE_RATE, sox_process

GRID = SAMPLE_RATE // 1000
NOISE_COLOURS = ("white", "pink", "brown")


def on_grid(seconds: float) -> int:
    """Seconds -> a number of samples, rounded to the GRID."""
    return int(round(seconds * SAMPLE_RATE / GRID)) * GRID


def speech_bounds(wav: np.ndarray, threshold_db: float = -40.0, frame: int = 160) -> tuple[int, int]:
    """(start, end) samples of the speech in `wav`: from the first to the last 10 ms frame whose RMS is within
    `threshold_db` of the loudest frame; both on the GRID. (0, 0) for silence."""
    if frame % GRID:
        raise ValueError(f"frame must be a multiple of {GRID} samples, got {frame}")
    n = wav.size // frame
    if n == 0:
        return 0, 0
    rms = np.sqrt(np.mean(np.square(wav[: n * frame].reshape(n, frame), dtype=np.float64), axis=1))
    if rms.max() <= 0:
        return 0, 0
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (threshold_db / 20))
    start, end = loud[0] * frame, (loud[-1] + 1) * frame  # frame is a multiple of the GRID
    return int(start), int(end)


def trim(wav: np.ndarray, threshold_db: float = -40.0) -> np.ndarray:
    """The speech part of `wav` (see speech_bounds); its length is a multiple of the GRID."""
    start, end = speech_bounds(wav, threshold_db)
    if end <= start:
        raise ValueError("the synthesized audio holds no speech above the trimming threshold")
    return wav[start:end]


def set_peak(wav: np.ndarray, peak_db: float) -> np.ndarray:
    """`wav` scaled so that its largest magnitude is `peak_db` dB full scale."""
    peak = float(np.max(np.abs(wav)))
    return (wav * (10 ** (peak_db / 20) / peak)).astype(np.float32) if peak > 0 else wav


def coloured_noise(n: int, colour: str, seed: int) -> np.ndarray:
    """`n` samples of unit-RMS white, pink (1/f power) or brown (1/f^2) noise from a seeded, frozen RandomState."""
    if colour not in NOISE_COLOURS:
        raise ValueError(f"noise colour must be one of {NOISE_COLOURS}, got {colour!r}")
    white = np.random.RandomState(seed).standard_normal(n)
    if colour != "white" and n > 1:
        spectrum = np.fft.rfft(white)
        f = np.arange(spectrum.size, dtype=np.float64)
        f[0] = f[1]
        spectrum /= f ** (0.5 if colour == "pink" else 1.0)
        white = np.fft.irfft(spectrum, n)
    rms = float(np.sqrt(np.mean(white**2)))
    return (white / rms).astype(np.float32) if rms > 0 else white.astype(np.float32)


def add_noise(wav: np.ndarray, speech: np.ndarray, colour: str, snr_db: float, seed: int) -> np.ndarray:
    """`wav` plus noise at `snr_db` dB below the mean power of the samples where `speech` (bool mask) is True."""
    power = float(np.mean(np.square(wav[speech], dtype=np.float64))) if speech.any() else 0.0
    if power <= 0:
        return wav
    noise = coloured_noise(wav.size, colour, seed) * np.float32(np.sqrt(power / 10 ** (snr_db / 10)))
    return (wav + noise).astype(np.float32)


def reverberate(wav: np.ndarray, reverberance: float, damping: float, room_scale: float) -> np.ndarray:
    """sox `reverb` (a Freeverb room, dry and wet mixed; percentages 0-100), cut to the input length."""
    return sox_process(wav, SAMPLE_RATE, ["reverb", f"{reverberance:.1f}", f"{damping:.1f}", f"{room_scale:.1f}"])


def limit(wav: np.ndarray, peak: float = 0.99) -> np.ndarray:
    """`wav` scaled down when it would clip in 16-bit PCM."""
    top = float(np.max(np.abs(wav))) if wav.size else 0.0
    return (wav * (peak / top)).astype(np.float32) if top > peak else wav
