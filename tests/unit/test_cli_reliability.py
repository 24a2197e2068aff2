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
