"""Issue 14, the command line: what a careless or hostile user can do to `wavlm` on tiny models saved by wavlm, in
process. Each case either works (nothing lost, nothing silently wrong) or stops with a usage error (exit 2) that
names the problem, before the model runs where it can; never a traceback. Plus a property-based fuzz of the
manifest reader."""
from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wavlm
from conftest import make_vocab, tiny_kwargs
from wavlm import cli

FUZZ = settings(max_examples=int(os.environ.get("WAVLM_FUZZ_EXAMPLES", 60)), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
CLASSES = ("WavLMModel", "WavLMForCTC", "WavLMForXVector", "WavLMForSequenceClassification",
           "WavLMForAudioFrameClassification")


def _save(root: Path, name: str, seed: int = 0, do_normalize: bool = True) -> Path:
    torch.manual_seed(seed)
    extra = dict(vocab_size=len(make_vocab())) if name == "WavLMForCTC" else {}
    if name == "WavLMForAudioFrameClassification":
        extra = dict(num_labels=2)
    model = getattr(wavlm, name)(wavlm.WavLMConfig(**tiny_kwargs("base", **extra)))
    path = root / name
    model.save_pretrained(path)
    wavlm.WavLMFeatureExtractor(do_normalize=do_normalize, return_attention_mask=True).save_pretrained(path)
    if name == "WavLMForCTC":
        (root / "vocab.json").write_text(json.dumps(make_vocab()))
        wavlm.WavLMCTCTokenizer(root / "vocab.json").save_pretrained(path)
    return path


def _wav(path: Path, seconds: float = 0.6, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    soundfile.write(path, 0.1 * rng.standard_normal(int(seconds * 16000)).astype(np.float32), 16000)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {name: _save(root, name) for name in CLASSES}


@pytest.fixture
def wavs(tmp_path) -> list[Path]:
    return [_wav(tmp_path / "audio" / f"utt{i}.wav", s, i) for i, s in enumerate((0.6, 1.1, 0.8))]


def main(*args, capsys=None) -> tuple[int, str]:
    """`wavlm ARGS` in process: (exit code, stderr)."""
    code = cli.main([str(a) for a in args])
    return code, (capsys.readouterr().err if capsys is not None else "")


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ item 2: convert
@pytest.mark.parametrize("spelling", ["same", "dot-dot", "symlink", "relative"])
def test_convert_onto_its_source_is_refused_and_touches_nothing(models, tmp_path, capsys, monkeypatch, spelling):
    """`wavlm convert ck ck` exited 0 and destroyed the checkpoint (head gone, WavLMModel, do_normalize flipped)."""
    ck = tmp_path / "ck"
    shutil.copytree(models["WavLMForCTC"], ck)
    before = tree(ck)
    dst = {"same": ck, "dot-dot": tmp_path / "ck" / ".." / "ck", "symlink": tmp_path / "link",
           "relative": Path("ck")}[spelling]
    if spelling == "symlink":
        dst.symlink_to(ck)
    monkeypatch.chdir(tmp_path)
    code, err = main("convert", ck, dst, capsys=capsys)
    assert code == 2 and "is the source" in err and "Traceback" not in err
    assert tree(ck) == before and sorted(os.listdir(tmp_path)) == sorted(["ck"] + (["link"] if spelling ==
                                                                                  "symlink" else []))


def test_convert_dir_to_dir_keeps_the_head_the_extractor_and_the_tokenizer(tmp_path, capsys):
    src = _save(tmp_path, "WavLMForCTC", do_normalize=False)
    assert main("convert", src, tmp_path / "out", "--dtype", "bfloat16")[0] == 0
    out = tmp_path / "out"
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["WavLMForCTC"] and config["dtype"] == "bfloat16"
    assert json.loads((out / "preprocessor_config.json").read_text())["do_normalize"] is False
    assert (out / "vocab.json").read_text() == (src / "vocab.json").read_text()
    model = wavlm.WavLMForCTC.from_pretrained(out)
    ref = wavlm.WavLMForCTC.from_pretrained(src)
    torch.testing.assert_close(model.lm_head.weight.float(), ref.lm_head.weight.bfloat16().float())
    capsys.readouterr()
    # and to the original layout: the extractor's do_normalize is the cfg's normalize
    assert main("convert", src, tmp_path / "ck.pt")[0] == 0
    assert torch.load(tmp_path / "ck.pt", weights_only=True)["cfg"]["normalize"] is False


def test_convert_writes_nothing_half_way(models, tmp_path, capsys, monkeypatch):
    """A failure while the destination is written leaves it as it was (absent, or its old files), with no
    temporary folder beside it."""
    from wavlm.features import WavLMFeatureExtractor

    def fail(self, directory, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(WavLMFeatureExtractor, "save_pretrained", fail)
    code, err = main("convert", models["WavLMForCTC"], tmp_path / "new", capsys=capsys)
    assert code == 2 and "No space left on device" in err and os.listdir(tmp_path) == []
    old = tmp_path / "old"
    shutil.copytree(models["WavLMModel"], old)
    before = tree(old)
    assert main("convert", models["WavLMForCTC"], old)[0] == 2
    assert tree(old) == before and os.listdir(tmp_path) == ["old"]
    monkeypatch.setattr(torch, "save", lambda obj, f: f.write(b"half") and fail(None, None))
    assert main("convert", models["WavLMModel"], tmp_path / "ck.pt")[0] == 2
    assert os.listdir(tmp_path) == ["old"]


# ------------------------------------------------------------------------------------------ item 15: bad checkpoints
class _Evil:
    def __reduce__(self):
        return (os.system, ("echo PWNED",))


def _bad_checkpoints(root: Path, good: Path) -> dict[str, Path]:
    import pickle

    root.mkdir(parents=True, exist_ok=True)
    files = {"empty": b"", "random": bytes(range(256)) * 3}
    out = {}
    for name, data in files.items():
        (root / f"{name}.pt").write_bytes(data)
        out[name] = root / f"{name}.pt"
    torch.save({"a": torch.zeros(2)}, root / "foreign.pt")
    torch.save({"cfg": {"relative_position_embedding": False}, "model": {}}, root / "badcfg.pt")
    torch.save({"cfg": [1], "model": {}}, root / "cfglist.pt")
    torch.save({1: 2, "x": 3}, root / "intkeys.pt")
    (root / "evil.pt").write_bytes(pickle.dumps(_Evil()))
    for name in ("foreign", "badcfg", "cfglist", "intkeys", "evil"):
        out[name] = root / f"{name}.pt"
    truncated = root / "truncated"
    shutil.copytree(good, truncated)
    (truncated / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes()[:500])
    out["truncated"] = truncated
    return out


def test_info_and_convert_report_bad_checkpoints_as_embed_does(models, wavs, tmp_path, capsys):
    """`wavlm info -m X.pt` showed tracebacks for checkpoints that `embed` reports cleanly."""
    for name, path in _bad_checkpoints(tmp_path / "bad", models["WavLMModel"]).items():
        code, embed_err = main("embed", "-m", path, wavs[0], "-q", capsys=capsys)
        assert code == 2, name
        reason = embed_err.split(": ", 3)[-1].strip().splitlines()[0][-60:]  # the loader's reason, as embed says
        # info reads no weights of a directory
        commands = [("convert", path, tmp_path / "out")] + \
            ([("convert", path, tmp_path / "out.pt")] if path.is_dir() else [("info", "-m", path)])
        for command in commands:
            code, err = main(*command, capsys=capsys)
            assert code == 2 and err.startswith(f"wavlm {command[0]}: error: "), (name, command, err)
            assert "PWNED" not in err and not (tmp_path / "out").exists() and not (tmp_path / "out.pt").exists()
            assert reason in err, (name, command, reason, err)


# ------------------------------------------------------------------------------------------ items 3, 13: --resume
def test_resume_keeps_records_of_inputs_not_given_and_refuses_other_options(models, wavs, tmp_path, capsys):
    run = tmp_path / "run.jsonl"
    assert main("embed", "-m", models["WavLMModel"], wavs[0], wavs[1], "-o", run, "-q")[0] == 0
    assert main("embed", "-m", models["WavLMModel"], wavs[2], "-o", run, "-q", "--resume")[0] == 0
    assert [json.loads(line)["id"] for line in run.read_text().splitlines()] == ["utt0", "utt1", "utt2"]
    capsys.readouterr()
    before = run.read_bytes()
    for extra, named in ((["--layers", "1"], "--layers"), (["--pool", "none"], "--pool"),
                         (["--dtype", "bfloat16"], "--dtype"), (["-m", models["WavLMForCTC"]], "--model")):
        args = ["embed", "-m", models["WavLMModel"], wavs[2], "-o", run, "-q", "--resume", *extra]
        code, err = main(*args, capsys=capsys)
        assert code == 2 and "other options" in err and named in err, (extra, err)
        assert run.read_bytes() == before


@pytest.mark.parametrize("command,name,content,reason", [
    ("embed", "run.jsonl", "{bad\n", "invalid JSON"),
    ("embed", "run.jsonl", '{"x": 1}\n', 'no "id"'),
    ("embed", "run.npz", "not an npz", "not an .npz archive"),
    ("classify", "run.txt", "utt0\thappy:x\n", "is not label:score"),
    ("transcribe", "run.txt", "utt0 no tab\n", "separated by one tab"),
])
def test_resume_on_a_corrupt_or_foreign_run_file_says_what_is_wrong(models, wavs, tmp_path, capsys, command, name,
                                                                    content, reason):
    model = {"embed": "WavLMModel", "classify": "WavLMForSequenceClassification", "transcribe": "WavLMForCTC"}
    run = tmp_path / name
    run.write_text(content)
    code, err = main(command, "-m", models[model[command]], wavs[0], "-o", run, "--resume", "-q", capsys=capsys)
    assert code == 2 and str(run) in err and reason in err and run.read_text() == content


def test_txt_run_files_refuse_ids_with_a_tab_before_the_model_runs(models, wavs, tmp_path, capsys, monkeypatch):
    import wavlm.cli.loader as loader

    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio": str(wavs[0]), "id": "a\tb"}) + "\n")
    monkeypatch.setattr(loader, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    code, err = main("classify", "-m", models["WavLMForSequenceClassification"], manifest, "-o", tmp_path / "r.txt",
                     capsys=capsys)
    assert code == 2 and "tab" in err


# ------------------------------------------------------------------------------------------ item 10: output names
def test_ids_that_are_no_paths_get_safe_unique_names_inside_the_folder(models, tmp_path, capsys):
    wav = _wav(tmp_path / "wav" / "utt1.wav")
    _wav(tmp_path / "wav" / "back\\slash.wav")
    lists = tmp_path / "lists"
    lists.mkdir()
    rows = [{"audio": "../wav/utt1.wav"}, {"audio": "../wav/utt1.wav", "id": "/abs/id"},
            {"audio": str(wav), "id": "dir/"}, {"audio": str(wav), "id": "../../x"},
            {"audio": "../wav/back\\slash.wav"}, {"audio": str(wav), "id": "wav/utt1"}]
    (lists / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert main("embed", "-m", models["WavLMModel"], lists / "train.jsonl", "-o", out, "-q") == (0, "")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.npy"))
    assert files == ["abs/id.npy", "dir.npy", "wav/back_slash.npy", "wav/utt1.npy", "wav/utt1_2.npy", "x.npy"]
    assert all(out in p.resolve().parents for p in out.rglob("*"))


# ------------------------------------------------------------------------------------------ item 11: outputs
@pytest.mark.parametrize("case", ["read-only", "file/sub", "verify-dir"])
def test_unwritable_outputs_are_refused_before_the_model_runs(models, wavs, tmp_path, capsys, monkeypatch, case):
    import wavlm.cli.loader as loader

    monkeypatch.setattr(loader, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    if case == "read-only":
        from wavlm.cli.io import _probe

        try:
            _probe(Path("/sys"))
            pytest.skip("/sys is writable here: no read-only folder to try")
        except OSError:
            pass
        targets = [Path("/sys/wavlm-out"), Path("/sys/wavlm-run.jsonl")]
        command = "embed"
    elif case == "file/sub":
        targets, command = [wavs[0] / "sub", wavs[0] / "sub" / "run.jsonl"], "embed"
    else:
        targets, command = [tmp_path], "verify"
    model = models["WavLMForXVector" if command == "verify" else "WavLMModel"]
    for target in targets:
        code, err = main(command, "-m", model, wavs[0], wavs[1], "-o", target, "-q", capsys=capsys)
        assert code == 2 and str(target) in err, err


def test_a_late_write_failure_keeps_what_was_computed(models, wavs, tmp_path, capsys, monkeypatch):
    from wavlm.cli import io

    real = io.atomic_write
    run = tmp_path / "run.jsonl"

    def full(path, data, *a, **k):
        if Path(path) == run or Path(path).parent.name == "out":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data, *a, **k)

    monkeypatch.setattr(io, "atomic_write", full)
    code, err = main("embed", "-m", models["WavLMModel"], *wavs, "-o", run, "-q", capsys=capsys)
    partial = tmp_path / "run.partial.jsonl"
    assert code == 1 and "No space left on device" in err and str(partial) in err and not run.exists()
    assert [json.loads(line)["id"] for line in partial.read_text().splitlines()] == ["utt0", "utt1", "utt2"]
    code, err = main("embed", "-m", models["WavLMModel"], *wavs, "-o", tmp_path / "out", "-q", capsys=capsys)
    assert code == 1 and "No space left on device" in err and "stopped after" in err


def test_stdout_that_cannot_be_written_keeps_the_results(models, wavs, tmp_path, capsys, monkeypatch):
    class Full:
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

        def fileno(self):
            raise ValueError("no file")

    monkeypatch.setattr(sys, "stdout", Full())
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    code = cli.main(["embed", "-m", str(models["WavLMModel"]), str(wavs[0]), "-q"])
    err = capsys.readouterr().err
    kept = list(tmp_path.glob("wavlm-*.partial.jsonl"))
    assert code == 1 and "stdout" in err and len(kept) == 1 and str(kept[0]) in err


# ------------------------------------------------------------------------------------------ items 12, 16: options
# what only the loaded model can tell: its layers, its receptive field, its class
NEED_THE_MODEL = ("--layer 99", "shorter than this model's minimum", "--layer chooses", "--weights")


@pytest.mark.parametrize("args,message", [
    (["transcribe", "@ctc", "@all", "-o", "@tmp/all.srt"], "SRT holds the captions of one recording"),
    (["diarize", "@base", "@0", "@1", "--plot", "@tmp/p.png"], "one .png"),
    (["diarize", "@frames", "@0", "--onset", "0.3", "--offset", "0.6"], "must not exceed --onset"),
    (["diarize", "@base", "@0", "--window", "0"], "--window must be > 0"),
    (["diarize", "@base", "@0", "--step", "0"], "--step must be > 0"),
    (["diarize", "@base", "@0", "--window", "inf"], "--window must be a finite number"),
    (["diarize", "@base", "@0", "--layer", "99"], "--layer 99: this model has layers 0..2"),
    (["diarize", "@base", "@0", "--window", "0.01", "--step", "0.01"], "shorter than this model's minimum"),
    (["diarize", "@base", "@0", "--max-batch-seconds", "nan"], "--max-batch-seconds must be a finite number"),
    (["embed", "@base", "@0", "--max-batch-seconds", "inf"], "--max-batch-seconds must be a finite number"),
    (["diarize", "@frames", "@0", "--layer", "1"], "--layer chooses the hidden layer of a base model"),
    # more of the same: float options that took 'nan' and 'inf' (NaN embeddings, every decision 'different', exit 0)
    (["embed", "@base", "@0", "--layers", "weighted", "--weights", "1,nan,0"], "--weights must be finite numbers"),
    (["transcribe", "@ctc", "@0", "--decoder", "beam", "--alpha", "nan"], "--alpha must be a finite number"),
    (["transcribe", "@ctc", "@0", "--beta", "inf"], "--beta must be a finite number"),
    (["verify", "@xvector", "@0", "@1", "--threshold", "nan"], "--threshold must be a finite number"),
    (["verify", "@xvector", "@0", "@1", "--p-target", "0"], "--p-target must be in (0, 1)"),
])
def test_options_that_would_fail_after_the_run_are_usage_errors(models, wavs, tmp_path, capsys, monkeypatch, args,
                                                                  message):
    import wavlm.cli.loader as loader

    if not any(m in message for m in NEED_THE_MODEL):  # the others are found before the model loads
        monkeypatch.setattr(loader, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    names = {"@ctc": ["-m", models["WavLMForCTC"]], "@base": ["-m", models["WavLMModel"]],
             "@frames": ["-m", models["WavLMForAudioFrameClassification"]],
             "@xvector": ["-m", models["WavLMForXVector"]], "@all": wavs, "@0": [wavs[0]], "@1": [wavs[1]]}
    argv = [str(x) for a in args for x in names.get(a, [a.replace("@tmp", str(tmp_path))])]
    code, err = main(*argv, "-q", capsys=capsys)
    assert code == 2 and message in err, err
    assert not list(tmp_path.glob("*.srt")) and not list(tmp_path.glob("*.png"))


# ------------------------------------------------------------------------------------------ item 18: launcher
@pytest.mark.parametrize("env,message", [
    ({"RANK": "abc"}, "RANK must be an integer"),
    ({"RANK": "3", "WORLD_SIZE": "2"}, "inconsistent RANK=3, WORLD_SIZE=2"),
    ({"WAVLM_MERGE_TIMEOUT": "abc"}, "WAVLM_MERGE_TIMEOUT must be a positive number of seconds"),
    ({"WAVLM_PEER_TIMEOUT": "-1"}, "WAVLM_PEER_TIMEOUT must be a positive number of seconds"),
    ({"WAVLM_RUN_ID": "../../elsewhere"}, "WAVLM_RUN_ID must be a name without '/'"),  # part files stay beside -o
])
def test_bad_launcher_variables_are_usage_errors(models, wavs, capsys, monkeypatch, env, message):
    import wavlm.cli.loader as loader

    monkeypatch.setattr(loader, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code, err = main("embed", "-m", models["WavLMModel"], wavs[0], "-q", capsys=capsys)
    assert code == 2 and message in err


def test_a_rank_without_its_peer_stops_after_the_peer_timeout(models, wavs, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("WAVLM_PEER_TIMEOUT", "1")
    code, err = main("embed", "-m", models["WavLMModel"], wavs[0], "-o", tmp_path / "r.jsonl", "-q", capsys=capsys)
    assert code == 2 and "rank(s) 1 never started" in err and "WAVLM_PEER_TIMEOUT" in err
    kept = list(tmp_path.glob(".r.jsonl.*part00000-of-00002.jsonl"))
    assert len(kept) == 1 and str(kept[0].name) in err
    from wavlm.cli import dist

    assert dist.PEER_TIMEOUT_S == 300


# ------------------------------------------------------------------------------------------ item 9: export opset
def test_export_never_claims_an_opset_it_did_not_write(models, tmp_path, capsys, monkeypatch):
    pytest.importorskip("onnxscript")
    from wavlm import export

    class Program:  # what torch's exporter returns when it cannot convert down: still opset 18
        class model:
            opset_imports = {"": 18}

        def save(self, path):
            Path(path).write_bytes(b"onnx")

    monkeypatch.setattr(torch.onnx, "export", lambda *a, opset_version=None, **k: Program())
    out = tmp_path / "m.onnx"
    code, err = main("export", "-m", models["WavLMModel"], "-o", out, "--opset", "13", capsys=capsys)
    assert code == 2 and "could not produce opset 13" in err and not out.exists()
    with pytest.raises(export.OpsetError):
        export.export_onnx(wavlm.WavLMModel(wavlm.WavLMConfig(**tiny_kwargs())), out, opset=13)


# ------------------------------------------------------------------------------------------ item 1: --dtype float16
def test_float16_runs_give_the_float32_features_at_30_seconds(models, tmp_path, capsys):
    """The CLI turns on mask_padding_in_group_norm, whose statistics were summed over time in float16: NaN or
    features unrelated to float32's, with exit 0."""
    wav = _wav(tmp_path / "long.wav", seconds=30.0)
    runs = {}
    for dtype in ("float32", "float16"):
        runs[dtype] = tmp_path / f"{dtype}.npz"
        args = ["embed", "-m", models["WavLMModel"], wav, "--dtype", dtype, "--pool", "none"]
        assert main(*args, "-o", runs[dtype], "-q", capsys=capsys)[0] == 0
    with np.load(runs["float32"]) as full, np.load(runs["float16"]) as half:
        reference, low = torch.from_numpy(full["long"]), torch.from_numpy(half["long"])
    assert reference.shape == low.shape == (1499, 32) and torch.isfinite(low).all()
    assert torch.nn.functional.cosine_similarity(reference, low, dim=-1).min() > 0.99


# ------------------------------------------------------------------------------------------ item 2: convert refuses
def test_convert_refuses_destinations_of_the_wrong_kind_before_reading(models, wavs, tmp_path, capsys):
    pt = tmp_path / "ck.pt"
    assert main("convert", models["WavLMModel"], pt)[0] == 0
    folder = tmp_path / "folder"
    folder.mkdir()
    before = wavs[0].read_bytes(), pt.read_bytes()
    for args, words in (([models["WavLMModel"], wavs[0]], "exists and is not a folder"),
                        ([models["WavLMModel"], folder, "--to", "original"], "is a folder; the original layout"),
                        ([pt, tmp_path / "again.pt"], "is already an original checkpoint")):
        code, err = main("convert", *args, capsys=capsys)
        assert code == 2 and words in err, (args, err)
    assert (wavs[0].read_bytes(), pt.read_bytes()) == before and os.listdir(folder) == []
    assert not (tmp_path / "again.pt").exists()


# ------------------------------------------------------------------------------------------ item 3: every run format
def _run_ids(path: Path) -> list[str]:
    if path.suffix == ".npz":
        with np.load(path) as data:
            return list(data.files)
    return [line.split("\t")[0] for line in path.read_text().splitlines()]


@pytest.mark.parametrize("command,model,name", [("embed", "WavLMModel", "run.npz"),
                                                ("classify", "WavLMForSequenceClassification", "run.txt"),
                                                ("transcribe", "WavLMForCTC", "run.txt")])
def test_resume_keeps_the_records_of_other_inputs_in_every_run_format(models, wavs, tmp_path, capsys, command, model,
                                                                      name):
    run = tmp_path / name
    assert main(command, "-m", models[model], wavs[0], wavs[1], "-o", run, "-q")[0] == 0
    if run.suffix == ".npz":
        with np.load(run) as data:
            first = {k: data[k] for k in data.files}
    else:
        first = run.read_text()
    assert main(command, "-m", models[model], wavs[2], "-o", run, "-q", "--resume")[0] == 0
    assert _run_ids(run) == ["utt0", "utt1", "utt2"]
    if run.suffix == ".npz":  # the kept records are the ones written before, not recomputed nor relabelled
        with np.load(run) as data:
            assert all(np.array_equal(data[k], v) for k, v in first.items())
    else:
        assert run.read_text().startswith(first)


# ------------------------------------------------------------------------------------------ item 4: loud audio
def test_loud_unnormalised_audio_is_skipped_not_a_nan_embedding(tmp_path, capsys):
    """A model without normalisation and a float WAV near float32's limit gave a NaN embedding with exit 0."""
    model = _save(tmp_path, "WavLMModel", do_normalize=False)
    loud = tmp_path / "loud.wav"
    samples = np.random.default_rng(0).uniform(-1, 1, 9600) * 3e38
    soundfile.write(loud, samples.astype(np.float32), 16000, subtype="FLOAT")
    run = tmp_path / "run.jsonl"
    code, err = main("embed", "-m", model, loud, _wav(tmp_path / "quiet.wav"), "-o", run, "-q", capsys=capsys)
    assert code == 1 and f"skipped {loud}" in err and "far outside [-1, 1]" in err
    records = [json.loads(line) for line in run.read_text().splitlines()]
    assert [r["id"] for r in records] == ["quiet"] and np.isfinite(records[0]["embedding"]).all()


# ------------------------------------------------------------------------------------------ item 5: vocabulary
def test_transcribe_refuses_a_vocabulary_smaller_than_the_model(models, wavs, tmp_path, capsys):
    """A vocab.json without tokens for some of the model's outputs transcribed '<unk></s>...' with exit 0."""
    ck = tmp_path / "ck"
    shutil.copytree(models["WavLMForCTC"], ck)
    (ck / "vocab.json").write_text(json.dumps({k: v for k, v in make_vocab().items() if v < 20}))
    code, err = main("transcribe", "-m", ck, wavs[0], "-o", tmp_path / "t.txt", "-q", capsys=capsys)
    assert code == 2 and "has no token for 12 of the model's 32 output ids" in err and "Traceback" not in err
    assert not (tmp_path / "t.txt").exists()


# ------------------------------------------------------------------------------------------ items 14, 17, 19: files
def _with_file(models, tmp_path, name: str, file: str, content: str | bytes) -> Path:
    ck = tmp_path / "ck"
    shutil.copytree(models[name], ck)
    (ck / file).write_bytes(content if isinstance(content, bytes) else content.encode())
    return ck


def _with_config(models, tmp_path, name: str, **changes) -> Path:
    config = json.loads((models[name] / "config.json").read_text())
    return _with_file(models, tmp_path, name, "config.json", json.dumps({**config, **changes}))


def test_a_gap_in_id2label_is_a_usage_error_of_classify_and_info(models, wavs, tmp_path, capsys):
    """id2label with a gap passed config validation, then `classify` and `info` raised KeyError."""
    ck = _with_config(models, tmp_path, "WavLMForSequenceClassification", id2label={"0": "a", "1": "b", "3": "c"},
                      label2id=None)
    for command in (["classify", "-m", ck, wavs[0], "-q"], ["info", "-m", ck]):
        code, err = main(*command, capsys=capsys)
        assert code == 2 and "id2label must have the keys 0..2" in err and "missing [2]" in err, (command, err)
        assert str(ck / "config.json") in err


@pytest.mark.parametrize("name,file,content,words", [
    ("WavLMModel", "preprocessor_config.json", "{not json", "is not valid JSON"),
    ("WavLMModel", "preprocessor_config.json", '{"feature_size": 2}', "feature_size must be 1"),
    ("WavLMForCTC", "vocab.json", '["a", "b"]', r"must hold a JSON object ({...}), found list"),
])
def test_broken_side_files_are_usage_errors_naming_the_file(models, wavs, tmp_path, capsys, name, file, content,
                                                            words):
    ck = _with_file(models, tmp_path, name, file, content)
    command = "transcribe" if name == "WavLMForCTC" else "embed"
    code, err = main(command, "-m", ck, wavs[0], "-q", capsys=capsys)
    assert code == 2 and str(ck / file) in err and words in err, err


@pytest.mark.parametrize("architecture", ["WavLMConfig", "WavLMPreTrainedModel", "load_audio"])
def test_an_architecture_that_is_no_model_class_is_read_as_the_backbone(models, tmp_path, capsys, architecture):
    """`info` built whatever wavlm attribute config.json named (WavLMConfig(config), load_audio(config)) and
    showed a traceback, or a WavLMPreTrainedModel with 0 parameters."""
    ck = _with_config(models, tmp_path, "WavLMModel", architectures=[architecture])
    code = cli.main(["info", "-m", str(ck), "--json"])
    shown = json.loads(capsys.readouterr().out)
    assert code == 0 and shown["class"] == "WavLMModel"
    assert shown["parameters"] == wavlm.WavLMModel.from_pretrained(models["WavLMModel"]).num_parameters()
    assert main("convert", ck, tmp_path / "out", capsys=capsys)[0] == 0
    assert json.loads((tmp_path / "out" / "config.json").read_text())["architectures"] == ["WavLMModel"]


def test_a_manifest_that_is_not_utf8_is_named_with_its_line(models, wavs, tmp_path, capsys):
    manifest = tmp_path / "list.jsonl"
    manifest.write_bytes(json.dumps({"audio": str(wavs[0])}).encode() + b"\n" + b'{"audio": "caf\xe9.wav"}\n')
    code, err = main("embed", "-m", models["WavLMModel"], manifest, "-q", capsys=capsys)
    assert code == 2 and f"{manifest}:2: not UTF-8 text" in err


# ------------------------------------------------------------------------------------------ manifest fuzz
from wavlm.tasks.manifest import read_manifest, collect_inputs  # noqa: E402

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                               max_size=3), max_leaves=8)
ENTRY = st.fixed_dictionaries({}, optional={"audio": st.text(max_size=12) | JSON, "id": st.text(max_size=8) | JSON,
                                            "meta": JSON})


@FUZZ
@given(data=st.binary(max_size=300) | st.lists(ENTRY | JSON, max_size=5).map(
    lambda rows: "\n".join(json.dumps(r) for r in rows).encode()))
def test_fuzz_manifest_reader(tmp_path, data):
    """Any bytes or JSON lines give inputs or a ValueError naming the manifest (UnicodeDecodeError is one), never
    another exception; collect_inputs as well (its ids stay unique)."""
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(data)
    try:
        inputs = read_manifest(path)
    except ValueError as e:
        assert "fuzz.jsonl" in str(e)
        return
    assert all(isinstance(i.id, str) and i.id for i in inputs)
    ids = [i.id for i in collect_inputs([path])]
    assert len(set(ids)) == len(ids)
