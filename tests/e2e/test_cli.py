"""End-to-end tests of the `wavlm` command: each subcommand runs in a subprocess on generated speech (espeak-ng,
flite) and the pyannote.audio sample, with tiny random checkpoints saved by transformers; outputs are parsed back
and checked against transformers run on each file alone."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_support import (corrupt_files, hf_greedy_transcripts, make_models, make_speech, pyannote_sample,  # noqa: E402
                         run_cli)

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> dict[str, Path]:
    return make_speech(tmp_path_factory.mktemp("speech"))


@pytest.fixture(scope="module")
def audio_dir(speech) -> Path:
    return speech["alpha"].parent


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    return make_models(tmp_path_factory.mktemp("models"))


def ok(proc) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-3000:]}"


def hf_hidden_states(model_dir: Path, path: Path):
    import torch
    from wavlm import load_audio

    fe = transformers.Wav2Vec2FeatureExtractor.from_pretrained(model_dir)
    model = transformers.WavLMModel.from_pretrained(model_dir).eval()
    wav, sr = load_audio(path)
    with torch.no_grad():
        out = model(**fe(wav, sampling_rate=sr, return_tensors="pt"), output_hidden_states=True)
    return [h[0].numpy() for h in out.hidden_states]


# ------------------------------------------------------------------------------------------------ the command

def test_help_is_fast_and_lazy():
    code = ("import sys, wavlm.cli as c\n"
            "try:\n    c.main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "print('torch' in sys.modules)")
    proc = run_cli(sys.executable, "-c", code, module=False)
    ok(proc)
    assert proc.stdout.strip().endswith("False")  # argparse runs before torch is imported
    for sub in ("embed", "transcribe", "classify", "verify", "diarize", "convert", "export", "info"):
        assert sub in proc.stdout
    script = Path(sys.executable).parent / "wavlm"
    if script.exists():  # the console script declared in pyproject.toml
        ok(run_cli(str(script), "embed", "--help", module=False))


def test_usage_errors(models, speech):
    assert run_cli().returncode == 2
    assert run_cli("embed", "--bogus").returncode == 2
    proc = run_cli("embed", "--model", str(models["base"]), "/no/such/file.wav")
    assert proc.returncode == 2 and "input not found" in proc.stderr
    proc = run_cli("embed", "--model", str(models["base"]), str(speech["alpha"]), "--layers", "7")
    assert proc.returncode == 2 and "layers 0..2" in proc.stderr


@pytest.mark.parametrize("command,needed", [("transcribe", "WavLMForCTC"),
                                            ("classify", "WavLMForSequenceClassification"),
                                            ("verify", "WavLMForXVector")])
def test_model_without_the_head_names_the_class(models, speech, command, needed):
    args = [str(speech["alpha"])] + ([str(speech["bravo"])] if command == "verify" else [])
    proc = run_cli(command, "--model", str(models["base"]), *args)
    assert proc.returncode == 2
    assert f"needs a {needed} model" in proc.stderr and "holds a WavLMModel" in proc.stderr


# ------------------------------------------------------------------------------------------------ embed

def test_embed_formats_and_values(models, speech, audio_dir, tmp_path):
    from wavlm.frames import num_frames
    from wavlm.audio import load_audio

    base = str(models["base"])
    # per frame, two layers, one .npy per input (ids from the folder, sub-folders kept)
    ok(run_cli("embed", "-m", base, str(audio_dir), "--layers", "0,2", "--pool", "none", "-o", str(tmp_path / "npy"),
               "--batch-size", "3", "-q"))
    for uid, path in speech.items():
        arr = np.load(tmp_path / "npy" / f"{uid}.npy")
        frames = int(num_frames(len(load_audio(path)[0])))
        assert arr.shape == (2, frames, 32) and arr.dtype == np.float32
        ref = hf_hidden_states(models["base"], path)
        np.testing.assert_allclose(arr[0], ref[0], atol=1e-4)   # padded batch == transformers on the file alone
        np.testing.assert_allclose(arr[1], ref[2], atol=1e-4)
    # pooled, every layer, one .npz; the weighted sum of layers is the same linear combination
    ok(run_cli("embed", "-m", base, str(audio_dir), "--layers", "all", "-o", str(tmp_path / "all.npz"), "-q"))
    weights = [0.2, 0.3, 0.5]
    ok(run_cli("embed", "-m", base, str(audio_dir), "--layers", "weighted", "--weights", ",".join(map(str, weights)),
               "-o", str(tmp_path / "w.npz"), "-q"))
    with np.load(tmp_path / "all.npz") as all_layers, np.load(tmp_path / "w.npz") as weighted:
        assert sorted(all_layers.files) == sorted(speech)
        for uid in speech:
            assert all_layers[uid].shape == (3, 32)
            np.testing.assert_allclose(weighted[uid], np.tensordot(weights, all_layers[uid], 1), atol=1e-5)
    # safetensors per input ('last' = last_hidden_state; JSONL on stdout: test_manifest_input)
    ok(run_cli("embed", "-m", base, str(speech["alpha"]), "-o", str(tmp_path / "st"), "--format", "safetensors"))
    from safetensors.numpy import load_file

    last = load_file(tmp_path / "st" / "alpha.safetensors")["embedding"]
    np.testing.assert_allclose(last, hf_hidden_states(models["base"], speech["alpha"])[-1].mean(0), atol=1e-4)


def test_manifest_input(models, speech, tmp_path):
    manifest = tmp_path / "list.jsonl"
    manifest.write_text(json.dumps({"audio": str(speech["bravo"]), "id": "utt-1"}) + "\n"
                        + json.dumps({"audio": str(speech["delta"])}) + "\n")
    proc = run_cli("embed", "-m", str(models["base"]), str(manifest), "-q")
    ok(proc)
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["id"] for r in records] == ["utt-1", "delta"] and all(r["shape"] == [32] for r in records)


# ------------------------------------------------------------------------------------------------ transcribe

def test_transcribe_equals_greedy_decode(models, speech, audio_dir, tmp_path):
    from wavlm.tasks.srt import parse_srt

    ctc = str(models["ctc"])
    out = tmp_path / "all.txt"
    ok(run_cli("transcribe", "-m", ctc, str(audio_dir), "-o", str(out), "--batch-size", "4"))
    got = dict(line.split("\t", 1) for line in out.read_text().splitlines())
    assert got == hf_greedy_transcripts(models["ctc"], speech)
    # JSON per input with word timestamps, and SRT that parses back to the same words
    ok(run_cli("transcribe", "-m", ctc, str(audio_dir), "-o", str(tmp_path / "json"), "--format", "json", "-q"))
    ok(run_cli("transcribe", "-m", ctc, str(audio_dir), "-o", str(tmp_path / "srt"), "--format", "srt", "-q"))
    for uid in speech:
        record = json.loads((tmp_path / "json" / f"{uid}.json").read_text())
        assert record["text"] == got[uid]
        words = record["words"]
        assert " ".join(w["word"] for w in words) == " ".join(got[uid].split())
        assert all(0 <= w["start"] < w["end"] for w in words)
        assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:]))
        captions = parse_srt((tmp_path / "srt" / f"{uid}.srt").read_text())
        assert " ".join(c.text for c in captions).split() == [w["word"] for w in words]
        assert captions[0].start == pytest.approx(words[0]["start"], abs=1e-3)
        assert captions[-1].end == pytest.approx(words[-1]["end"], abs=1e-3)


def test_transcribe_beam_search_with_arpa_lm(models, speech, tmp_path):
    import torch
    from wavlm import AutoProcessor, WavLMForCTC, load_audio
    from wavlm.tasks.ctc_decode import beam_search, ids_to_text

    ctc = str(models["ctc"])
    arpa = tmp_path / "lm.arpa"
    arpa.write_text("\\data\\\nngram 1=3\nngram 2=2\n\n\\1-grams:\n-1.0\t<s>\t-0.3\n-0.5\t</s>\n-0.3\tHELLO\t-0.2\n\n"
                    "\\2-grams:\n-0.1\t<s> HELLO\n-0.1\tHELLO </s>\n\n\\end\\\n")  # a bigram model: kenlm needs one
    for extra in ([], ["--lm", str(arpa), "--alpha", "0.8"]):
        proc = run_cli("transcribe", "-m", ctc, str(speech["alpha"]), "--decoder", "beam", "--beam-width", "4",
                       "--format", "jsonl", *extra, "-q")
        ok(proc)
        record = json.loads(proc.stdout)
        assert record["id"] == "alpha" and [w["word"] for w in record["words"]] == record["text"].split()
        if not extra:  # the CLI's beam search is tasks.ctc_decode.beam_search on the model's log-probs
            processor, model = AutoProcessor.from_pretrained(ctc), WavLMForCTC.from_pretrained(ctc)
            wav, sr = load_audio(speech["alpha"])
            with torch.no_grad():
                lp = model(**processor(audio=wav, sampling_rate=sr, return_tensors="pt")).logits[0].log_softmax(-1)
            tok = processor.tokenizer
            tokens = [tok.convert_ids_to_tokens(i) for i in range(lp.shape[-1])]
            best = beam_search(lp.numpy(), 4, blank=tok.pad_token_id, word_delimiter_id=tok.word_delimiter_token_id,
                               tokens=tokens)[0]
            assert record["text"] == ids_to_text(best.ids, tokens, tok.word_delimiter_token_id)


# ------------------------------------------------------------------------------------------------ classify

def test_classify_top_k_matches_transformers(models, speech, audio_dir, tmp_path):
    import torch
    from wavlm import load_audio

    proc = run_cli("classify", "-m", str(models["cls"]), str(audio_dir), "--top-k", "2", "--format", "jsonl", "-q")
    ok(proc)
    records = {r["id"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert sorted(records) == sorted(speech)
    fe = transformers.Wav2Vec2FeatureExtractor.from_pretrained(models["cls"])
    model = transformers.WavLMForSequenceClassification.from_pretrained(models["cls"]).eval()
    for uid, path in speech.items():
        labels = records[uid]["labels"]
        assert len(labels) == 2 and labels[0]["score"] >= labels[1]["score"]
        wav, sr = load_audio(path)
        with torch.no_grad():
            probs = model(**fe(wav, sampling_rate=sr, return_tensors="pt")).logits.softmax(-1)[0]
        best = int(probs.argmax())
        assert labels[0]["label"] == model.config.id2label[best]
        assert labels[0]["score"] == pytest.approx(float(probs[best]), abs=1e-5)
    # text output: id, then label:probability columns
    proc = run_cli("classify", "-m", str(models["cls"]), str(speech["alpha"]), "-q")
    ok(proc)
    uid, first, *_ = proc.stdout.strip().split("\t")
    assert uid == "alpha" and first.split(":")[0] in ("neutral", "happy", "sad")


# ------------------------------------------------------------------------------------------------ verify

def test_verify_pair_and_trial_list(models, speech, audio_dir, tmp_path):
    import torch
    from wavlm import load_audio

    xv = str(models["xvector"])
    proc = run_cli("verify", "-m", xv, str(speech["alpha"]), str(speech["bravo"]), "--threshold", "2", "-q")
    ok(proc)
    enroll, test, score, decision = proc.stdout.strip().split("\t")
    assert decision == "different"  # a cosine never reaches 2
    fe = transformers.Wav2Vec2FeatureExtractor.from_pretrained(models["xvector"])
    model = transformers.WavLMForXVector.from_pretrained(models["xvector"]).eval()
    emb = []
    for name in ("alpha", "bravo"):
        wav, sr = load_audio(speech[name])
        with torch.no_grad():
            emb.append(model(**fe(wav, sampling_rate=sr, return_tensors="pt")).embeddings[0])
    assert float(score) == pytest.approx(float(torch.cosine_similarity(emb[0], emb[1], dim=0)), abs=1e-4)

    trials = tmp_path / "trials.txt"
    trials.write_text("alpha alpha 1\nalpha bravo 0\nbravo bravo target\nbravo sub/charlie.wav nontarget\n"
                      "delta delta 1\nsub/charlie delta 0\n")
    out = tmp_path / "scores.tsv"
    proc = run_cli("verify", "-m", xv, "--trials", str(trials), str(audio_dir), "-o", str(out), "-q")
    ok(proc)
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert len(rows) == 6
    assert float(rows[0][2]) == pytest.approx(1.0, abs=1e-5)  # a recording against itself
    assert "EER" in proc.stdout and "minDCF" in proc.stdout


# ------------------------------------------------------------------------------------------------ diarize

@pytest.mark.slow
def test_diarize_pyannote_sample(models, tmp_path):
    from wavlm.tasks.rttm import diarization_error_rate, read_rttm

    sample = pyannote_sample()
    reference = read_rttm(sample.with_suffix(".rttm"))
    import soundfile

    duration = soundfile.info(str(sample)).duration
    # frame classification: per-speaker activity -> RTTM
    out = tmp_path / "frames.rttm"
    ok(run_cli("diarize", "-m", str(models["frames"]), str(sample), "-o", str(out), "--median-width", "5",
               "--min-duration-on", "0.1", "-q"))
    turns = read_rttm(out)
    assert turns and {t.uri for t in turns} == {"sample"} and {t.speaker for t in turns} <= {"spkA", "spkB"}
    assert all(0 <= t.start < t.end <= duration + 0.05 and t.duration >= 0.1 - 1e-6 for t in turns)
    # sliding-window embeddings of the base model clustered into two speakers
    out = tmp_path / "clusters"
    ok(run_cli("diarize", "-m", str(models["base"]), str(sample), "-o", str(out), "--num-speakers", "2",
               "--cluster", "agglomerative", "-q"))
    turns = read_rttm(out / "sample.rttm")
    assert {t.speaker for t in turns} == {"spk00", "spk01"}
    assert all(a.end <= b.start + 1e-6 for a, b in zip(turns, turns[1:]))  # one speaker at a time
    reference = [(t.start, t.end, t.speaker) for t in reference]
    der = diarization_error_rate(reference, [(t.start, t.end, t.speaker) for t in turns])
    assert der["total"] > 0 and 0.0 <= der["der"] <= 2.0  # random weights: only that it is scorable


def test_diarize_clustering_and_plot(models, speech, tmp_path):
    from wavlm.tasks.rttm import read_rttm

    proc = run_cli("diarize", "-m", str(models["xvector"]), str(speech["alpha"]), str(speech["bravo"]),
                   "--cluster", "spectral", "--window", "0.8", "--step", "0.4", "-q")
    ok(proc)
    (tmp_path / "out.rttm").write_text(proc.stdout)
    turns = read_rttm(tmp_path / "out.rttm")
    assert {t.uri for t in turns} == {"alpha", "bravo"}
    pytest.importorskip("matplotlib")
    plot = tmp_path / "plot.png"
    ok(run_cli("diarize", "-m", str(models["frames"]), str(speech["alpha"]), "--plot", str(plot), "-q"))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------------ robustness

def test_bad_inputs_are_skipped_with_exit_1(models, speech, audio_dir, tmp_path):
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(audio_dir, folder)
    bad = corrupt_files(folder)
    out = tmp_path / "out"
    proc = run_cli("classify", "-m", str(models["cls"]), str(folder), "-o", str(out))
    assert proc.returncode == 1, proc.stderr
    for uid in bad:
        assert any(uid in line and "skipped" in line for line in proc.stderr.splitlines()), proc.stderr
        assert not list(out.glob(f"{uid}.*"))
    assert "the file is empty" in proc.stderr and "too short" in proc.stderr
    for uid in speech:
        record = json.loads((out / f"{uid}.json").read_text())  # complete files only (atomic writes)
        assert record["id"] == uid and len(record["labels"]) == 3
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files left
    # the same with one output file for the run: every good input is in it
    proc = run_cli("transcribe", "-m", str(models["ctc"]), str(folder), "-o", str(tmp_path / "t.jsonl"), "-q")
    assert proc.returncode == 1
    assert sorted(r["id"] for r in map(json.loads, (tmp_path / "t.jsonl").read_text().splitlines())) == sorted(speech)


def test_resume_skips_finished_inputs(models, speech, audio_dir, tmp_path):
    out = tmp_path / "out"
    ctc = str(models["ctc"])
    ok(run_cli("transcribe", "-m", ctc, str(audio_dir), "-o", str(out), "--format", "json", "-q"))
    files = {uid: out / f"{uid}.json" for uid in speech}
    # outputs that exist are not recomputed: mark them, drop one, resume
    for path in files.values():
        path.write_text('{"marker": true}\n')
    files["bravo"].unlink()
    proc = run_cli("transcribe", "-m", ctc, str(audio_dir), "-o", str(out), "--format", "json", "--resume", "-q")
    ok(proc)
    assert f"{len(speech) - 1} of {len(speech)} inputs already have outputs" in proc.stderr
    for uid, path in files.items():
        assert ("marker" in json.loads(path.read_text())) == (uid != "bravo")
    # one JSONL for the run: finished ids are kept as they are
    run_file = tmp_path / "run.jsonl"
    ok(run_cli("transcribe", "-m", ctc, str(speech["alpha"]), "-o", str(run_file), "-q"))
    first = run_file.read_text()
    proc = run_cli("transcribe", "-m", ctc, str(audio_dir), "-o", str(run_file), "--resume", "-q")
    ok(proc)
    assert "1 of 4 inputs already in" in proc.stderr
    lines = run_file.read_text().splitlines()
    assert lines[0] == first.strip() and len(lines) == len(speech)


# ------------------------------------------------------------------------------------------------ checkpoints

def test_convert_and_info(models, tmp_path):
    import torch
    import wavlm

    pt = tmp_path / "WavLM-tiny.pt"
    ok(run_cli("convert", str(models["base"]), str(pt)))
    payload = torch.load(pt, weights_only=False)
    assert set(payload) == {"cfg", "model"} and "encoder.layers.0.self_attn.relative_attention_bias.weight" in \
        payload["model"]
    back = tmp_path / "back"
    ok(run_cli("convert", str(pt), str(back)))
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {p.name for p in back.iterdir()}
    original = transformers.WavLMModel.from_pretrained(models["base"]).state_dict()
    restored = transformers.WavLMModel.from_pretrained(back).state_dict()  # transformers reads the result
    assert original.keys() == restored.keys()
    for key in original:
        torch.testing.assert_close(restored[key], original[key], rtol=0, atol=1e-6)
    proc = run_cli("info", "-m", str(models["ctc"]), "--json")
    ok(proc)
    info = json.loads(proc.stdout)
    assert info["class"] == "WavLMForCTC" and info["frame_rate_hz"] == 50 and info["receptive_field_samples"] == 400
    assert info["parameters"] == wavlm.WavLMForCTC.from_pretrained(models["ctc"]).num_parameters()
    proc = run_cli("info", "-m", str(pt))
    ok(proc)
    assert "original microsoft checkpoint" in proc.stdout


# ------------------------------------------------------------------------------------------------ torchrun

@pytest.mark.slow
def test_torchrun_two_processes_match_one(models, speech, audio_dir, tmp_path):
    env = {"OMP_NUM_THREADS": "1"}
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", str(29500 + os.getpid() % 500),
                "-m", "wavlm"]
    for args, name in ((["transcribe", "-m", str(models["ctc"]), str(audio_dir), "--format", "jsonl"], "t.jsonl"),
                       (["embed", "-m", str(models["base"]), str(audio_dir), "--pool", "none"], "emb")):
        one, two = tmp_path / f"one-{name}", tmp_path / f"two-{name}"
        ok(run_cli(*args, "-o", str(one), "-q", env=env))
        ok(run_cli(sys.executable, *launcher, *args, "-o", str(two), "-q", env=env, module=False))
        if one.is_dir():
            names = sorted(p.relative_to(one) for p in one.rglob("*.npy"))
            assert names == sorted(p.relative_to(two) for p in two.rglob("*.npy")) and len(names) == len(speech)
            for rel in names:
                np.testing.assert_allclose(np.load(two / rel), np.load(one / rel), atol=1e-5)
        else:
            assert two.read_text() == one.read_text()
        assert not [p for p in tmp_path.iterdir() if ".part" in p.name]  # parts merged and removed


@pytest.mark.slow
def test_export_onnx(models, tmp_path):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    out = tmp_path / "ctc.onnx"
    proc = run_cli("export", "--onnx", "-m", str(models["ctc"]), "-o", str(out), "--check")
    ok(proc)
    assert out.is_file() and "WavLMForCTC" in proc.stdout
    diff = float(proc.stdout.rsplit("max |difference|", 1)[1])
    assert diff < 1e-4


# ------------------------------------------------------------------------------------------------ synth

def test_synth_subcommand_makes_a_corpus_the_other_commands_read(models, tmp_path):
    """`wavlm synth` is the same command as `python -m wavlm.synth` (byte-identical corpora), and its manifests
    are inputs of the model commands."""
    import soundfile

    proc = run_cli("synth", "commands", "-o", str(tmp_path / "cli"), "-n", "6", "--seed", "3", "--words", "YES,NO")
    ok(proc)
    ok(run_cli(sys.executable, "-m", "wavlm.synth", "commands", "-o", str(tmp_path / "module"), "-n", "6", "--seed",
               "3", "--words", "YES,NO", "-q", module=False))
    made = sorted(p.relative_to(tmp_path / "cli") for p in (tmp_path / "cli").rglob("*") if p.is_file())
    assert Path("manifest.jsonl") in made and len([p for p in made if p.suffix == ".wav"]) == 6
    for rel in made:
        assert (tmp_path / "cli" / rel).read_bytes() == (tmp_path / "module" / rel).read_bytes(), rel
    records = [json.loads(line) for line in (tmp_path / "cli" / "manifest.jsonl").read_text().splitlines()]
    assert {r["label"] for r in records} == {"YES", "NO"}
    assert all(soundfile.info(str(tmp_path / "cli" / r["audio"])).samplerate == 16000 for r in records)
    proc = run_cli("classify", "-m", str(models["cls"]), str(tmp_path / "cli" / "manifest.jsonl"), "-q")
    ok(proc)
    assert sorted(line.split("\t")[0] for line in proc.stdout.splitlines()) == sorted(r["id"] for r in records)
    assert run_cli("synth", "real", "nosuchsource").returncode == 2
    assert "synth" in run_cli("--help").stdout
