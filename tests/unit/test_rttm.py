"""RTTM round trip and diarization error rate against hand-computed cases (and pyannote.metrics when present)."""
import itertools

import numpy as np
import pytest

from wavlm.tasks.rttm import (Turn, diarization_error_rate, format_rttm, linear_assignment, merge_turns,
                              optimal_mapping, parse_rttm, read_rttm, write_rttm)


def test_rttm_round_trip(tmp_path):
    turns = [Turn(0.0, 1.25, "spk00", "rec1"), Turn(1.5, 3.0004, "spk01", "rec1"), Turn(0.1, 0.2, "A", "rec2", "2")]
    path = tmp_path / "out.rttm"
    write_rttm(turns, path)
    lines = path.read_text().splitlines()
    assert lines[0] == "SPEAKER rec1 1 0.000 1.250 <NA> <NA> spk00 <NA> <NA>"
    assert lines[1] == "SPEAKER rec1 1 1.500 1.500 <NA> <NA> spk01 <NA> <NA>"
    back = read_rttm(path)
    assert [(t.uri, t.channel, t.speaker) for t in back] == [(t.uri, t.channel, t.speaker) for t in turns]
    for a, b in zip(back, turns):
        assert a.start == pytest.approx(b.start, abs=5e-4) and a.end == pytest.approx(b.end, abs=1e-3)
    assert format_rttm(back) == path.read_text()  # stable after one rounding


def test_parse_rttm_skips_other_lines_and_reports_errors():
    text = (";; comment\nSPKR-INFO rec 1 <NA> <NA> <NA> unknown A <NA> <NA>\n\n"
            "SPEAKER rec 1 2.5 1 <NA> <NA> A <NA> <NA>\n")
    assert parse_rttm(text) == [Turn(2.5, 3.5, "A", "rec")]
    with pytest.raises(ValueError, match=r"x.rttm:2: cannot read start/duration"):
        parse_rttm("SPEAKER rec 1 0 1 <NA> <NA> A <NA> <NA>\nSPEAKER rec 1 zero 1 <NA> <NA> A <NA> <NA>\n", "x.rttm")
    with pytest.raises(ValueError, match=r":1: a SPEAKER line needs at least 8 fields"):
        parse_rttm("SPEAKER rec 1 0 1\n")
    with pytest.raises(ValueError, match=r":1: invalid start"):
        parse_rttm("SPEAKER rec 1 0 -1 <NA> <NA> A <NA> <NA>\n")
    with pytest.raises(ValueError, match="whitespace"):
        format_rttm([Turn(0, 1, "speaker one")])


@pytest.mark.parametrize("seed", range(4))
def test_linear_assignment_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    r, c = (int(v) for v in rng.integers(1, 6, size=2))
    cost = rng.normal(size=(r, c))
    pairs = linear_assignment(cost)
    assert len(pairs) == min(r, c) and len({p[0] for p in pairs}) == len({p[1] for p in pairs}) == min(r, c)
    if r <= c:
        best = min(sum(cost[i, p[i]] for i in range(r)) for p in itertools.permutations(range(c), r))
    else:
        best = min(sum(cost[p[j], j] for j in range(c)) for p in itertools.permutations(range(r), c))
    assert sum(cost[i, j] for i, j in pairs) == pytest.approx(best)


REF = [(0, 10, "A"), (10, 20, "B")]


def test_der_missed_false_alarm_confusion():
    # hypothesis stops at 15: 5 s of B missed
    assert diarization_error_rate(REF, [(0, 10, "x"), (10, 15, "y")]) == pytest.approx(
        {"missed": 5, "false_alarm": 0, "confusion": 0, "total": 20, "der": 0.25})
    # an extra 2 s after the reference ends
    assert diarization_error_rate(REF, [(0, 10, "x"), (10, 20, "y"), (20, 22, "y")]) == pytest.approx(
        {"missed": 0, "false_alarm": 2, "confusion": 0, "total": 20, "der": 0.1})
    # boundary 2 s late: x -> A, y -> B, 10..12 is B labelled x = confusion
    assert diarization_error_rate(REF, [(0, 12, "x"), (12, 20, "y")]) == pytest.approx(
        {"missed": 0, "false_alarm": 0, "confusion": 2, "total": 20, "der": 0.1})
    assert optimal_mapping(REF, [(0, 12, "x"), (12, 20, "y")]) == {"x": "A", "y": "B"}
    # one hypothesis speaker for two reference speakers: x -> A (10 s), all of B confused
    assert diarization_error_rate(REF, [(0, 20, "x")])["confusion"] == pytest.approx(10)


def test_der_overlap_and_skip_overlap():
    ref = [(0, 10, "A"), (6, 15, "B")]
    hyp = [(0, 15, "x")]
    # x overlaps A 10 s and B 9 s -> x = A. total 10 + 9 = 19; 6..10: two speakers, one found -> 4 s missed;
    # 10..15: B labelled x -> 5 s confusion.
    assert diarization_error_rate(ref, hyp) == pytest.approx(
        {"missed": 4, "false_alarm": 0, "confusion": 5, "total": 19, "der": 9 / 19})
    # without 6..10: total 6 + 5 = 11
    assert diarization_error_rate(ref, hyp, skip_overlap=True) == pytest.approx(
        {"missed": 0, "false_alarm": 0, "confusion": 5, "total": 11, "der": 5 / 11})
    # hypothesis overlap where the reference has one speaker -> false alarm
    assert diarization_error_rate([(0, 10, "A")], [(0, 10, "x"), (2, 5, "y")])["false_alarm"] == pytest.approx(3)


def test_der_collar():
    ref, hyp = [(0, 10, "A")], [(0.2, 9.9, "x")]
    assert diarization_error_rate(ref, hyp)["missed"] == pytest.approx(0.3)
    # +-0.25 s around 0 and 10 unscored: 0.25..9.75 is all correct
    assert diarization_error_rate(ref, hyp, collar=0.25) == pytest.approx(
        {"missed": 0, "false_alarm": 0, "confusion": 0, "total": 9.5, "der": 0})
    # +-0.1: 0.1..0.2 missed of 0.1..9.9 scored
    assert diarization_error_rate(ref, hyp, collar=0.1) == pytest.approx(
        {"missed": 0.1, "false_alarm": 0, "confusion": 0, "total": 9.8, "der": 0.1 / 9.8})
    # the collar removes false alarms near reference boundaries too, but not far from them
    r = diarization_error_rate(ref, [(0, 10, "x"), (10, 10.2, "y"), (12, 13, "y")], collar=0.25)
    assert r["false_alarm"] == pytest.approx(1.0)


def test_der_per_recording_mapping_uem_and_empty():
    ref = [Turn(0, 10, "A", "r1"), Turn(0, 10, "A", "r2")]
    hyp = [Turn(0, 10, "x", "r1"), Turn(0, 10, "y", "r2")]  # different names per file: still perfect
    assert diarization_error_rate(ref, hyp)["der"] == 0.0
    r = diarization_error_rate(REF, [(0, 20, "x")], uem=[(0, 5), (15, 20)])
    assert r == pytest.approx({"missed": 0, "false_alarm": 0, "confusion": 5, "total": 10, "der": 0.5})
    assert diarization_error_rate([], [])["der"] == 0.0
    assert diarization_error_rate([], [(0, 1, "x")])["der"] == float("inf")


def test_merge_turns():
    turns = [Turn(0, 1, "A"), Turn(1.05, 2, "A"), Turn(0.5, 3, "B"), Turn(3, 4, "A")]
    assert merge_turns(turns, gap=0.1) == [Turn(0, 2, "A"), Turn(0.5, 3, "B"), Turn(3, 4, "A")]


def _random_turns(rng, speakers, length=30.0):
    out = []
    for spk in speakers:
        t = float(rng.uniform(0, 3))
        while t < length:
            d = float(rng.uniform(0.3, 4))
            out.append((round(t, 2), round(min(t + d, length), 2), spk))
            t += d + float(rng.uniform(0.1, 3))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_der_matches_pyannote(seed):
    metrics = pytest.importorskip("pyannote.metrics.diarization")
    from pyannote.core import Annotation, Segment, Timeline

    rng = np.random.default_rng(seed)
    ref = _random_turns(rng, ["A", "B", "C"][: 2 + seed % 2])
    hyp = _random_turns(rng, ["x", "y", "z", "w"][: 2 + seed % 3])

    def ann(turns):
        a = Annotation(uri="f")
        for k, (s, e, spk) in enumerate(turns):
            a[Segment(s, e), k] = spk
        return a

    for collar, skip in [(0.0, False), (0.25, False), (0.0, True), (0.5, True)]:
        ours = diarization_error_rate(ref, hyp, collar=collar, skip_overlap=skip)
        # pyannote's collar is the full width around a boundary, md-eval's (ours) one side
        theirs = metrics.DiarizationErrorRate(collar=2 * collar, skip_overlap=skip)(
            ann(ref), ann(hyp), uem=Timeline([Segment(0, 40)]), detailed=True)
        assert ours["total"] == pytest.approx(theirs["total"], abs=1e-6)
        assert ours["missed"] == pytest.approx(theirs["missed detection"], abs=1e-6)
        assert ours["false_alarm"] == pytest.approx(theirs["false alarm"], abs=1e-6)
        assert ours["confusion"] == pytest.approx(theirs["confusion"], abs=1e-6)
        assert ours["der"] == pytest.approx(theirs["diarization error rate"], abs=1e-9)
