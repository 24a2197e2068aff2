"""load_audio on files written in the test: every soundfile format, int PCM, speech from espeak-ng, and errors."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile as sf

from wavlm import AudioLoadError, load_audio
from conftest import skip_without

TONE_HZ = 440.0


def _tone(rate: int, seconds: float = 1.0, channels: int = 2) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    left = 0.5 * np.sin(2 * np.pi * TONE_HZ * t)
    return np.stack([left, 0.5 * left][:channels], axis=1).astype(np.float32)


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


FORMATS = [("wav", "WAV", "PCM_16", 44100), ("flac", "FLAC", "PCM_16", 44100), ("ogg", "OGG", "VORBIS", 44100),
           ("opus", "OGG", "OPUS", 48000), ("mp3", "MP3", "MPEG_LAYER_III", 44100)]


@pytest.mark.parametrize("ext,fmt,subtype,rate", FORMATS, ids=[f[0] for f in FORMATS])
def test_formats_decode_mix_and_resample(tmp_path, ext, fmt, subtype, rate):
    path = tmp_path / f"tone.{ext}"
    sf.write(path, _tone(rate), rate, format=fmt, subtype=subtype)
    wav, sr = load_audio(path)
    assert sr == 16000 and wav.dtype == np.float32 and wav.ndim == 1
    assert abs(len(wav) - 16000) <= 0.02 * 16000  # lossy codecs add a little padding
    assert abs(_peak_hz(wav, sr) - TONE_HZ) <= 0.01 * TONE_HZ
    assert 0.3 < np.abs(wav).max() < 0.45  # mean of the 0.5 and 0.25 channels
    native, native_sr = load_audio(path, sampling_rate=None)
    assert native_sr == rate and abs(len(native) - rate) <= 0.02 * rate
    right, _ = load_audio(path.read_bytes(), channel=1)
    assert 0.2 < np.abs(right).max() < 0.3


def test_int16_8k_is_scaled_and_upsampled(tmp_path):
    rate = 8000
    pcm = (_tone(rate, 2.0, channels=1)[:, 0] * 32767).astype(np.int16)
    sf.write(tmp_path / "x.wav", pcm, rate, subtype="PCM_16")
    wav, sr = load_audio(tmp_path / "x.wav")
    assert sr == 16000 and len(wav) == 32000 and abs(np.abs(wav).max() - 0.5) < 0.01
    assert abs(_peak_hz(wav, sr) - TONE_HZ) <= 0.01 * TONE_HZ
    with open(tmp_path / "x.wav", "rb") as f:
        assert len(load_audio(f, sampling_rate=None)[0]) == 16000


@skip_without("espeak-ng")
def test_espeak_utterance(tmp_path):
    path = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "hello world, this is a test"], check=True, capture_output=True)
    native_sr = sf.info(path).samplerate
    wav, sr = load_audio(path)
    assert sr == 16000 and wav.dtype == np.float32
    assert len(wav) == pytest.approx(sf.info(path).frames * 16000 / native_sr, abs=2)
    assert 1.0 < len(wav) / sr < 5.0 and np.abs(wav).max() > 0.05


def test_errors_name_file_and_reason(tmp_path):
    assert issubclass(AudioLoadError, ValueError) and issubclass(AudioLoadError, OSError)
    (tmp_path / "zero.wav").write_bytes(b"")
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1), np.float32), 16000)
    (tmp_path / "text.wav").write_text("this is not audio\n" * 50)
    full = tmp_path / "full.wav"
    sf.write(full, _tone(16000), 16000)
    (tmp_path / "cut.wav").write_bytes(full.read_bytes()[:20000])
    sf.write(tmp_path / "full.flac", _tone(16000), 16000)
    (tmp_path / "cut.flac").write_bytes((tmp_path / "full.flac").read_bytes()[:9000])
    sf.write(tmp_path / "full.opus", _tone(48000), 48000, format="OGG", subtype="OPUS")
    opus = (tmp_path / "full.opus").read_bytes()
    (tmp_path / "cut.opus").write_bytes(opus[: len(opus) // 2])  # libsndfile decodes this without complaint
    sf.write(tmp_path / "full.mp3", _tone(44100), 44100, format="MP3", subtype="MPEG_LAYER_III")
    mp3 = (tmp_path / "full.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(mp3[: len(mp3) // 2])
    cases = {"cut.mp3": "truncated", "zero.wav": "empty", "empty.wav": "no audio samples", "text.wav": "not a readable audio file",
             "cut.wav": "truncated", "cut.flac": "truncated|not a readable", "cut.opus": "truncated",
             "missing.wav": "no such file"}
    for name, reason in cases.items():
        with pytest.raises(AudioLoadError, match=rf"{name}: .*({reason})"):
            load_audio(tmp_path / name)
    with pytest.raises(ValueError, match="channel 3.*2 channel"):
        load_audio(full, channel=3)


def test_m4a_without_pyav_gives_install_hint(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "av", None)
    (tmp_path / "voice.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A " + bytes(100))
    with pytest.raises(AudioLoadError, match=r"voice.m4a: .*pip install wavlm\[audio\]"):
        load_audio(tmp_path / "voice.m4a")


def test_nan_samples_are_returned(tmp_path):
    sf.write(tmp_path / "nan.wav", np.array([0.0, np.nan, 0.5], np.float32), 16000, subtype="FLOAT")
    wav, _ = load_audio(tmp_path / "nan.wav")
    assert np.isnan(wav).any()  # the loader passes data through; the feature extractor rejects it
