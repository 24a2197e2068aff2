"""wavlm.synth: deterministic synthetic corpora (espeak-ng, flite, sox) and their manifests, RTTM and trial lists.

Corpora here are a few utterances each (a second or two to make); the real recordings are in tests/e2e.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import LETTERS, require_tool, skip_without  # noqa: E402

from wavlm.synth import command, corpora, effects, text  # noqa: E402
from wavlm.synth.manifest import read_manifest, write_manifest  # noqa: E402
from wavlm.synth.voices import HELD_OUT_VOICES, VOICE_BY_ID, VOICES, SynthError, voices_for  # noqa: E402

TOOLS = ("espeak-ng", "flite", "sox")
needs_tools = skip_without(*TOOLS)
CHARS = set(LETTERS) | {" "}


def _read(path: Path):
    import soundfile

    wav, rate = soundfile.read(path, dtype="int16", always_2d=True)
    return wav, rate


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One small corpus of each kind (cached for the module)."""
    for tool in TOOLS:
        require_tool(tool)
    root = tmp_path_factory.mktemp("synth")
    return {
        "asr": corpora.make_corpus("asr", root / "asr", 12, seed=3),
        "speakers": corpora.make_corpus("speakers", root / "speakers", 18, seed=4, num_speakers=6),
        "conversations": corpora.make_corpus("conversations", root / "conv", 4, seed=5, turns=(4, 6),
                                             overlap_prob=0.5),
        "commands": corpora.make_corpus("commands", root / "cmd", 14, seed=6, words=("yes", "no", "stop")),
    }


# ------------------------------------------------------------------------------------------------ voices, text


def test_voice_table_splits_are_disjoint_and_held_out_is_test():
    ids = [v.id for v in VOICES]
    assert len(ids) == len(set(ids))
    train = {v.id for v in voices_for("train")}
    assert train and not train & {v.id for v in voices_for("valid")} and not train & set(HELD_OUT_VOICES)
    assert set(HELD_OUT_VOICES) == {v.id for v in voices_for("test")}
    assert {VOICE_BY_ID[v].engine for v in HELD_OUT_VOICES} == {"espeak", "flite"}
    assert {VOICE_BY_ID[v].gender for v in HELD_OUT_VOICES} == {"M", "F"}
    with pytest.raises(ValueError, match="split must be one of"):
        voices_for("dev")
    with pytest.raises(ValueError, match="engines must be"):
        voices_for("train", engines=("festival",))


def test_sentences_and_digits_use_the_ctc_characters_and_are_seeded():
    rng = np.random.RandomState(0)
    lines = [text.sentence(rng) for _ in range(300)] + [text.digit_string(rng, 1, 4) for _ in range(50)]
    assert all(set(s) <= CHARS and s == " ".join(s.split()) for s in lines)
    assert set("".join(lines)) == CHARS  # every character of the CTC vocabulary occurs
    assert len(set(lines)) > 200  # varied
    assert all(set(s.split()) <= text.vocabulary() for s in lines)
    again = np.random.RandomState(0)
    assert [text.sentence(again) for _ in range(300)] == lines[:300]
    digits = [len(text.digit_string(rng, 2, 3).split()) for _ in range(100)]
    assert set(digits) == {2, 3}
    with pytest.raises(ValueError, match="min_digits"):
        text.digit_string(rng, 3, 2)


@pytest.mark.parametrize("raw, expected", [
    ("Hello?", "HELLO"),
    ("Okay, then I thought you know, I heard a beep.", "OKAY THEN I THOUGHT YOU KNOW I HEARD A BEEP"),
    ("I didn\u2019t know   'you' were there", "I DIDN'T KNOW YOU WERE THERE"),
    ("cold-hearted caf\u00e9", "COLD HEARTED CAFE"),
    ("<s> ten of clubs </s>", "S TEN OF CLUBS S"),
    ("room 101 at 7", "ROOM ONE HUNDRED ONE AT SEVEN"),
    ("agent 007", "AGENT ZERO ZERO SEVEN"),
    ("1999", "ONE THOUSAND NINE HUNDRED NINETY NINE"),
    ("", ""),
])
def test_normalize_text(raw, expected):
    assert text.normalize_text(raw) == expected
    assert set(text.normalize_text(raw)) <= CHARS


def test_number_words():
    assert text.number_words(0) == "ZERO"
    assert text.number_words(40) == "FORTY"
    assert text.number_words(1_000_015) == "ONE MILLION FIFTEEN"
    with pytest.raises(ValueError, match="10\\*\\*9"):
        text.number_words(-1)


# ------------------------------------------------------------------------------------------------ signal steps


def test_speech_bounds_find_the_tone_on_the_grid():
    wav = np.zeros(16000, np.float32)
    wav[3205:9000] = 0.5 * np.sin(np.arange(5795) * 0.3)
    start, end = effects.speech_bounds(wav)
    assert start % effects.GRID == 0 and end % effects.GRID == 0
    assert 3200 - 160 < start <= 3205 and 9000 <= end < 9000 + 160
    assert effects.speech_bounds(np.zeros(1000, np.float32)) == (0, 0)
    with pytest.raises(ValueError, match="no speech"):
        effects.trim(np.zeros(1000, np.float32))


def test_noise_colours_are_seeded_unit_rms_and_coloured():
    for colour in effects.NOISE_COLOURS:
        a, b = effects.coloured_noise(8000, colour, 1), effects.coloured_noise(8000, colour, 1)
        assert np.array_equal(a, b) and not np.array_equal(a, effects.coloured_noise(8000, colour, 2))
        assert np.sqrt(np.mean(a.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-4)
    spectra = {c: np.abs(np.fft.rfft(effects.coloured_noise(16000, c, 0))) for c in effects.NOISE_COLOURS}
    tilt = {c: m[10:20].mean() / m[1000:2000].mean() for c, m in spectra.items()}  # 15 Hz vs 1.5 kHz
    assert 0.5 < tilt["white"] < 2 and 5 < tilt["pink"] < 20 and 50 < tilt["brown"] < 200
    with pytest.raises(ValueError, match="noise colour"):
        effects.coloured_noise(10, "blue", 0)


def test_place_pauses_overlaps_and_no_self_overlap():
    voice = VOICES[0]
    seg = lambda spk: corpora.Segment(voice, corpora.Prosody(), "X", spk, -3.0)  # noqa: E731
    item = corpora.Item("x", "train", [seg("a"), seg("b"), seg("a"), seg("b")], [0.5, -0.25, -0.4], 0.1, 0.1,
                        None, None)
    lengths = [16000, 8000, 32000, 48000]
    starts = corpora._place(item, lengths)
    assert starts[0] == 1600                                   # lead
    assert starts[1] == 1600 + 16000 + 8000                    # pause of 0.5 s after the first turn
    assert starts[2] == starts[1] + 8000 - 2000                # overlaps b by 25 % of the shorter (8000)
    # 40 % of min(32000, 48000) = 12800 samples, but at most MAX_OVERLAP_S
    assert starts[3] == starts[2] + 32000 - 12800
    item.gaps[2] = -0.9
    assert corpora._place(item, lengths)[3] == starts[2] + 32000 - 16000  # capped at 1 s


# ------------------------------------------------------------------------------------------------ corpora


@needs_tools
def test_manifests_point_to_16k_mono_files_with_their_durations(made):
    import soundfile

    for kind, corpus in made.items():
        records = read_manifest(corpus.manifest, check_audio=True)
        assert records == corpus.records and len(records) == corpus.info["num_utterances"]
        by_split = sum((read_manifest(corpus.root / f"{s}.jsonl") for s in ("train", "valid", "test")), [])
        assert sorted(r["id"] for r in by_split) == sorted(r["id"] for r in records)
        for r in records:
            info = soundfile.info(str(corpus.root / r["audio"]))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), r["audio"]
            assert info.frames / 16000 == r["duration"] and info.frames % effects.GRID == 0
            assert r["split"] in ("train", "valid", "test") and r["audio"] == f"audio/{r['split']}/{r['id']}.wav"
            if "text" in r:
                assert r["text"] and set(r["text"]) <= CHARS
        assert {r["split"] for r in records} == {"train", "valid", "test"}
        info = json.loads((corpus.root / "corpus.json").read_text())
        assert info["kind"] == kind and info["held_out_voices"] == list(HELD_OUT_VOICES)
        assert sum(s["entries"] for s in info["splits"].values()) == len(records)


@needs_tools
def test_held_out_voices_never_in_train(made):
    for kind, corpus in made.items():
        voices = {s: {v for r in corpus.split(s) for v in r.get("speakers", [r.get("voice")])}
                  for s in ("train", "valid", "test")}
        assert voices["train"] and voices["test"], kind
        assert not voices["train"] & voices["valid"] and not voices["train"] & voices["test"], kind
        assert voices["test"] <= set(HELD_OUT_VOICES), kind
        assert all(VOICE_BY_ID[v].split == "train" for v in voices["train"]), kind


@needs_tools
def test_asr_and_commands_records(made):
    asr = made["asr"].records
    assert Counter(r["split"] for r in asr) == {"train": 10, "valid": 1, "test": 1}
    assert all(r["voice"] in VOICE_BY_ID and -1 <= r["synth"]["pitch"] <= 1 for r in asr)
    cmd = made["commands"]
    assert cmd.info["labels"] == ["YES", "NO", "STOP"]
    train = Counter(r["label"] for r in cmd.split("train"))
    assert max(train.values()) - min(train.values()) <= 1  # balanced classes
    assert all(r["label"] == r["text"] for r in cmd.records)


@needs_tools
def test_speakers_keep_their_voice_and_trials_are_balanced_on_held_out_speakers(made):
    corpus = made["speakers"]
    by_speaker = {}
    for r in corpus.records:
        by_speaker.setdefault(r["speaker"], []).append(r)
    assert len(by_speaker) == 6 and all(len(v) == 3 for v in by_speaker.values())
    for utts in by_speaker.values():
        assert len({(u["voice"], u["split"], *(u["synth"][k] for k in ("pitch", "rate", "shift"))) for u in utts}) == 1
        assert len({u["text"] for u in utts}) == len(utts)  # different texts per utterance
    identities = {(u[0]["voice"], u[0]["synth"]["pitch"], u[0]["synth"]["rate"], u[0]["synth"]["shift"])
                  for u in by_speaker.values()}
    assert len(identities) == 6
    for split in ("valid", "test"):
        audio_speaker = {r["audio"]: r["speaker"] for r in corpus.split(split)}
        lines = (corpus.root / f"trials_{split}.txt").read_text().splitlines()
        trials = [line.split() for line in lines]
        assert all(len(t) == 3 and t[2] in "01" for t in trials)
        assert all(t[0] in audio_speaker and t[1] in audio_speaker and t[0] != t[1] for t in trials)
        labels = Counter(t[2] for t in trials)
        assert labels["1"] == labels["0"] == 2 * 3  # all same-speaker pairs of 2 speakers x 3, as many others
        assert all((audio_speaker[a] == audio_speaker[b]) == (label == "1") for a, b, label in trials)
        assert len({frozenset(t[:2]) for t in trials}) == len(trials)
        assert corpus.info["trials"][split] == {"file": f"trials_{split}.txt", "target": 6, "nontarget": 6}
    from wavlm.tasks.scoring import read_trials

    assert len(read_trials(corpus.root / "trials_test.txt")) == 12  # the format `wavlm verify --trials` reads


@needs_tools
def test_conversation_rttm_matches_the_samples_and_labels_overlap(made):
    from wavlm.tasks.rttm import read_rttm

    corpus = made["conversations"]
    total_overlap = 0.0
    for r in corpus.records:
        wav, rate = _read(corpus.root / r["audio"])
        wav = wav[:, 0].astype(np.float64)
        turns = read_rttm(corpus.root / r["rttm"])
        assert len(turns) == r["num_turns"] >= 4 and {t.uri for t in turns} == {r["id"]}
        assert sorted({t.speaker for t in turns}) == r["speakers"] and 2 <= len(r["speakers"]) <= 3
        active = np.zeros((len(r["speakers"]), wav.size), dtype=bool)
        for t in turns:
            s, e = round(t.start * rate), round(t.end * rate)
            assert abs(s - t.start * rate) < 1e-6 and abs(e - t.end * rate) < 1e-6  # exact sample positions
            assert 0 < s < e < wav.size
            row = active[r["speakers"].index(t.speaker)]
            assert not row[s:e].any()  # a voice never overlaps itself
            row[s:e] = True
        speech = active.any(axis=0)
        assert not wav[~speech].any()  # everything outside the turns is digital silence: turns cover the speech
        peak = np.abs(wav).max()
        for t in turns:  # trimmed: every turn starts and ends with speech (checked where it is alone)
            s, e = round(t.start * rate), round(t.end * rate)
            for lo in (s, e - 160):
                if active[:, lo:lo + 160].sum(axis=0).max() == 1:
                    assert np.sqrt(np.mean(wav[lo:lo + 160] ** 2)) > 1e-3 * peak
        overlap = int((active.sum(axis=0) > 1).sum()) / rate
        assert r["overlap"] == overlap
        total_overlap += overlap
    assert total_overlap > 0  # overlap_prob=0.5 over 4 conversations: overlapped turns exist and are labelled


@needs_tools
def test_same_seed_same_bytes_whatever_the_workers(made, tmp_path):
    first = made["speakers"]
    again = corpora.make_corpus("speakers", tmp_path / "again", 18, seed=4, num_speakers=6, workers=1)
    assert _files(first.root) == _files(again.root)
    conv = made["conversations"]
    conv2 = corpora.make_corpus("conversations", tmp_path / "conv", 4, seed=5, turns=(4, 6), overlap_prob=0.5,
                                workers=2)
    assert _files(conv.root) == _files(conv2.root)
    other = corpora.make_corpus("speakers", tmp_path / "other", 18, seed=5, num_speakers=6)
    a, b = _files(first.root), _files(other.root)
    assert a.keys() == b.keys() and a["manifest.jsonl"] != b["manifest.jsonl"]
    assert sum(a[k] != b[k] for k in a if k.endswith(".wav")) > len(first.records) // 2


@needs_tools
def test_noise_and_reverb_change_the_audio_and_nothing_else(tmp_path):
    import soundfile

    clean = corpora.make_corpus("asr", tmp_path / "clean", 3, seed=9)
    noisy = corpora.make_corpus("asr", tmp_path / "noisy", 3, seed=9, noise_prob=1.0, snr_db=(15, 20))
    wet = corpora.make_corpus("asr", tmp_path / "wet", 3, seed=9, reverb_prob=1.0)
    for c, n, w in zip(clean.records, noisy.records, wet.records):
        assert {k: v for k, v in c.items() if k != "synth"} == {k: v for k, v in n.items() if k != "synth"}
        assert c["duration"] == w["duration"] and c["text"] == w["text"]
        assert "noise" in n["synth"] and "reverb" in w["synth"] and "noise" not in c["synth"]
        x = soundfile.read(clean.root / c["audio"], dtype="float64")[0]
        y = soundfile.read(noisy.root / n["audio"], dtype="float64")[0]
        z = soundfile.read(wet.root / w["audio"], dtype="float64")[0]
        nz = np.flatnonzero(x)
        speech = x[nz[0]:nz[-1] + 1]
        snr = 10 * np.log10(np.mean(speech**2) / np.mean((y - x) ** 2))
        assert snr == pytest.approx(n["synth"]["noise"]["snr_db"], abs=0.5)
        assert not np.array_equal(x, z)
        assert np.abs(z[nz[-1] + 1:]).sum() > 0 and not x[nz[-1] + 1:].any()  # a reverb tail in the silence


@needs_tools
def test_engines_option_and_missing_tools(tmp_path, monkeypatch):
    only = corpora.make_corpus("commands", tmp_path / "espeak", 6, engines=("espeak",))
    assert {VOICE_BY_ID[r["voice"]].engine for r in only.records} == {"espeak"}
    assert "flite" not in only.info["tools"] and "sox" not in only.info["tools"]
    espeak = shutil.which("espeak-ng")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(SynthError, match="espeak-ng is not installed.*apt-get install"):
        corpora.make_corpus("asr", tmp_path / "none", 3)
    assert not (tmp_path / "none").exists()  # nothing written before the check
    os.symlink(espeak, empty / "espeak-ng")
    with pytest.raises(SynthError, match="flite is not installed"):
        corpora.make_corpus("asr", tmp_path / "none", 3)
    with pytest.raises(SynthError, match="sox is not installed"):
        corpora.make_corpus("asr", tmp_path / "none", 3, engines=("espeak",), reverb_prob=0.5)


def test_bad_options_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="kind must be one of"):
        corpora.make_corpus("music", tmp_path / "x")
    with pytest.raises(TypeError, match="unknown option.*num_speakers"):
        corpora.make_corpus("asr", tmp_path / "x", num_speakers=3)
    with pytest.raises(ValueError, match="at least 3"):
        corpora.make_corpus("asr", tmp_path / "x", 2)
    with pytest.raises(ValueError, match="at least 2 utterances each"):
        corpora.make_corpus("speakers", tmp_path / "x", 10, num_speakers=6)
    with pytest.raises(ValueError, match="num_speakers must be at least 6"):
        corpora.make_corpus("speakers", tmp_path / "x", 10, num_speakers=5)
    with pytest.raises(ValueError, match="seed must be an integer"):
        corpora.make_corpus("asr", tmp_path / "x", seed=-1)
    with pytest.raises(ValueError, match="noise_prob"):
        corpora.make_corpus("asr", tmp_path / "x", noise_prob=1.5)
    with pytest.raises(ValueError, match="at least 2 speakers"):
        corpora.make_corpus("conversations", tmp_path / "x", speakers_per_conversation=1)
    with pytest.raises(ValueError, match="valid split has 0 voice"):
        corpora.make_corpus("asr", tmp_path / "x", engines=("flite",))
    with pytest.raises(ValueError, match="distinct"):
        corpora.make_corpus("commands", tmp_path / "x", words=("yes", "YES"))
    assert not (tmp_path / "x").exists()


@needs_tools
def test_refuses_a_non_empty_folder_unless_overwrite(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        corpora.make_corpus("commands", tmp_path / "c", 4)
    corpora.make_corpus("commands", tmp_path / "c", 4, overwrite=True)
    corpora.make_corpus("commands", tmp_path / "c", 3, overwrite=True)
    assert (tmp_path / "c" / "notes.txt").read_text() == "mine"  # only a corpus's own files are replaced
    assert len(list((tmp_path / "c" / "audio").rglob("*.wav"))) == 3


# ------------------------------------------------------------------------------------------------ manifests


def test_read_manifest_rejects_bad_lines(tmp_path):
    path = tmp_path / "m.jsonl"
    write_manifest([{"audio": "a.wav", "text": "HI"}, {"audio": "b/c.flac", "id": "x"}], path)
    assert [r["id"] for r in read_manifest(path)] == ["a", "x"]
    with pytest.raises(FileNotFoundError, match="audio file 'a.wav' of entry 1 does not exist"):
        read_manifest(path, check_audio=True)
    for bad, message in [('{"audio": "a.wav"}\n{"text": 1}\n', 'm.jsonl:2: missing .*"audio"'),
                         ('{"audio": "a.wav"}\nnot json\n', "m.jsonl:2: invalid JSON"),
                         ('{"audio": "a.wav"}\n\n{"audio": "b.wav", "id": "a"}\n',
                          "entries 1 and 2 have the same id 'a'")]:
        path.write_text(bad)
        with pytest.raises(ValueError, match=message):
            read_manifest(path)


@needs_tools
def test_lhotse_cuts_of_a_conversation_corpus(made, tmp_path):
    pytest.importorskip("lhotse")
    from lhotse import CutSet

    from wavlm.synth.manifest import write_cuts
    from wavlm.tasks.rttm import read_rttm

    corpus = made["conversations"]
    cuts = CutSet.from_file(write_cuts(corpus.manifest, tmp_path / "cuts.jsonl.gz"))
    by_id = {c.recording.id: c for c in cuts}
    assert sorted(by_id) == sorted(r["id"] for r in corpus.records)
    for r in corpus.records:
        cut = by_id[r["id"]]
        assert cut.duration == pytest.approx(r["duration"]) and cut.sampling_rate == 16000
        turns = sorted(read_rttm(corpus.root / r["rttm"]))
        assert [(s.start, s.speaker) for s in sorted(cut.supervisions, key=lambda s: s.id)] == \
            [(t.start, t.speaker) for t in turns]
    asr = CutSet.from_file(write_cuts(made["asr"].manifest, tmp_path / "asr.jsonl.gz"))
    assert sorted(c.supervisions[0].text for c in asr) == sorted(r["text"] for r in made["asr"].records)
    # a cut is named by its record's id, wherever the record sits: targets or outputs made from one manifest match
    # the same utterances in another (lhotse's from_manifests names them "{id}-{position}")
    assert all(c.id == c.recording.id for c in list(cuts) + list(asr))
    later = tmp_path / "later.jsonl"
    later.write_text("".join(json.dumps({**r, "audio": str(made["asr"].root / r["audio"])}) + "\n"
                             for r in made["asr"].records[3:]))
    assert [c.id for c in CutSet.from_file(write_cuts(later, tmp_path / "later.jsonl.gz"))] == \
        [r["id"] for r in made["asr"].records[3:]]


def test_real_sources_fail_clearly_without_apt(tmp_path, monkeypatch):
    import wavlm.synth.real as real

    with pytest.raises(ValueError, match="unknown real recordings 'librispeech'"):
        real.fetch_real("librispeech", cache=tmp_path)
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no apt-get, no dpkg
    monkeypatch.setattr(real, "_ALSA_SOUNDS", "nonexistent/sounds/alsa")  # not installed either
    with pytest.raises(real.FetchError, match="cannot fetch Debian's alsa-utils.*apt-get is not installed"):
        real.fetch_real("alsa", cache=tmp_path / "cache")
    assert not (tmp_path / "cache" / "alsa").exists()
    assert real.default_cache() == Path.home() / ".cache" / "wavlm" / "real" or "WAVLM_REAL_CACHE" in os.environ
    monkeypatch.setenv("WAVLM_REAL_CACHE", str(tmp_path / "elsewhere"))
    assert real.default_cache() == tmp_path / "elsewhere"


# ------------------------------------------------------------------------------------------------ command line


def test_command_lists_match_the_library():
    from wavlm.synth.real import REAL_SOURCES

    assert command._KINDS == corpora.KINDS and command._REAL == REAL_SOURCES


@needs_tools
def test_command_line(tmp_path, capsys):
    from wavlm.synth.__main__ import main

    out = tmp_path / "cmd"
    assert main(["commands", "-o", str(out), "-n", "5", "--seed", "2", "--words", "left,right", "-q"]) == 0
    records = read_manifest(out / "manifest.jsonl", check_audio=True)
    assert len(records) == 5 and {r["label"] for r in records} == {"LEFT", "RIGHT"}
    assert main(["commands", "-o", str(out), "-n", "5"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["asr", "-o", str(tmp_path / "a"), "--turns", "2,3"]) == 2
    assert "--turns applies to `wavlm synth conversations` only" in capsys.readouterr().err
    assert main(["asr"]) == 2 and "-o/--output" in capsys.readouterr().err
    assert main(["real", "nowhere"]) == 2 and "unknown real recordings" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["conversations", "-o", str(tmp_path / "c"), "--turns", "a,b"])
