"""The command line's layers, in process on tiny models saved by wavlm: one Hub resolution, one config.json read
and one header read per input; a missing head found from the loading information; the executor running a task it
has never seen; the model-free tasks/ importing nothing of the command line; one home for each shared rule
(input normalisation, conv arithmetic, activations, the x-vector minimum length, Hub keywords)."""
from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import wavlm
from conftest import make_vocab, tiny_kwargs
from wavlm import cli
from wavlm.cli import executor

SRC = Path(wavlm.__file__).parent


def _save(root: Path, name: str, seed: int = 0, **overrides) -> Path:
    torch.manual_seed(seed)
    extra = dict(vocab_size=len(make_vocab())) if name == "WavLMForCTC" else {}
    model = getattr(wavlm, name)(wavlm.WavLMConfig(**tiny_kwargs("base", **{**extra, **overrides})))
    path = root / name
    model.save_pretrained(path)
    wavlm.WavLMFeatureExtractor(return_attention_mask=True).save_pretrained(path)
    if name == "WavLMForCTC":
        (root / "vocab.json").write_text(json.dumps(make_vocab()))
        wavlm.WavLMCTCTokenizer(root / "vocab.json").save_pretrained(path)
    return path


def _wavs(folder: Path, seconds=(0.6, 1.1, 0.8)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, s in enumerate(seconds):
        paths.append(folder / f"utt{i}.wav")
        soundfile.write(paths[-1], 0.1 * rng.standard_normal(int(s * 16000)).astype(np.float32), 16000)
    return paths


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {name: _save(root, name) for name in ("WavLMModel", "WavLMForCTC", "WavLMForXVector")}


@pytest.fixture
def wavs(tmp_path) -> list[Path]:
    return _wavs(tmp_path / "audio")


# ------------------------------------------------------------------------------------------------ one of each
def test_transcribe_resolves_the_hub_once_reads_config_once_and_each_header_once(models, wavs, tmp_path,
                                                                                 monkeypatch):
    """`wavlm transcribe --model org/tiny-ctc` on a mocked Hub repo: one snapshot holding config, weights,
    feature extractor and tokenizer; config.json parsed once; soundfile.info once per input."""
    hub = pytest.importorskip("huggingface_hub")
    repo = models["WavLMForCTC"]
    downloads = []

    def snapshot_download(repo_id, allow_patterns=None, **kwargs):
        import fnmatch

        downloads.append((repo_id, list(allow_patterns)))
        target = tmp_path / "hub-cache" / repo_id.replace("/", "--")
        target.mkdir(parents=True, exist_ok=True)
        for f in repo.iterdir():
            if any(fnmatch.fnmatch(f.name, p) for p in allow_patterns):
                shutil.copy(f, target / f.name)
        return str(target)

    monkeypatch.setattr(hub, "snapshot_download", snapshot_download)
    configs = Counter()
    from_json_file = wavlm.WavLMConfig.from_json_file.__func__

    def counted_config(cls, path):
        configs[Path(path).name] += 1
        return from_json_file(cls, path)

    monkeypatch.setattr(wavlm.WavLMConfig, "from_json_file", classmethod(counted_config))
    headers = Counter()
    info = soundfile.info

    def counted_info(path, *args, **kwargs):
        headers[Path(path).name] += 1
        return info(path, *args, **kwargs)

    monkeypatch.setattr(soundfile, "info", counted_info)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out.txt"
    assert cli.main(["transcribe", "-m", "org/tiny-ctc", *map(str, wavs), "-o", str(out), "-q"]) == 0
    assert len(downloads) == 1, downloads
    patterns = downloads[0][1]
    for needed in ("config.json", "*.safetensors", "preprocessor_config.json", "vocab.json", "tokenizer_config.json"):
        assert needed in patterns
    assert configs == {"config.json": 1}
    assert headers == {p.name: 1 for p in wavs}
    assert sorted(line.split("\t")[0] for line in out.read_text().splitlines()) == ["utt0", "utt1", "utt2"]


def test_diarize_plot_reuses_the_header(models, wavs, tmp_path, monkeypatch):
    """The summary step (diarize --plot) takes each recording's duration from the header the run read."""
    pytest.importorskip("matplotlib")
    headers = Counter()
    info = soundfile.info
    monkeypatch.setattr(soundfile, "info", lambda path, *a, **k: headers.update([Path(path).name]) or info(path))
    plots = tmp_path / "plots"
    code = cli.main(["diarize", "-m", str(models["WavLMModel"]), *map(str, wavs[:2]), "--num-speakers", "2",
                     "--plot", str(plots), "-o", str(tmp_path / "rttm"), "-q"])
    assert code == 0
    assert sorted(p.name for p in plots.iterdir()) == ["utt0.png", "utt1.png"]
    assert headers == {"utt0.wav": 1, "utt1.wav": 1}


# ------------------------------------------------------------------------------------------------ the loader
def test_missing_head_is_found_from_loading_info(models, wavs, tmp_path, capsys):
    """A backbone whose config names no architecture: the head keys come back as new keys, and the command
    refuses; a CTC checkpoint that lacks only the optional masked_spec_embed still transcribes (a check on
    warning text refused it: the loader warned that a weight was newly initialised)."""
    bare = tmp_path / "bare"
    shutil.copytree(models["WavLMModel"], bare)
    config = json.loads((bare / "config.json").read_text())
    del config["architectures"]
    (bare / "config.json").write_text(json.dumps(config))
    assert cli.main(["transcribe", "-m", str(bare), str(wavs[0]), "-q"]) == 2
    err = capsys.readouterr().err
    assert "needs a WavLMForCTC model" in err and "no WavLMForCTC head weights (it is a pre-trained backbone)" in err

    from safetensors.torch import load_file, save_file

    partial = tmp_path / "partial"
    shutil.copytree(models["WavLMForCTC"], partial)
    state = load_file(partial / "model.safetensors")
    assert "wavlm.masked_spec_embed" in state
    del state["wavlm.masked_spec_embed"]
    save_file(state, partial / "model.safetensors", metadata={"format": "pt"})
    assert cli.main(["transcribe", "-m", str(partial), str(wavs[0]), "-q"]) == 0
    assert capsys.readouterr().out.startswith("utt0\t")


def test_load_returns_model_extractor_tokenizer_and_loading_info(models):
    from wavlm.cli.loader import load
    from wavlm.cli.options import RunOptions

    rt = load(RunOptions(model=str(models["WavLMForCTC"]), device="cpu"), "transcribe",
              lambda arch: arch, tokenizer=True)
    assert type(rt.model).__name__ == "WavLMForCTC" and rt.tokenizer.pad_token_id == 0
    assert rt.extractor.return_attention_mask and rt.info.new_keys == [] and rt.info.unexpected_keys == []
    assert rt.model.config.mask_padding_in_group_norm and rt.model.config.xvector_exact_pooling
    base = load(RunOptions(model=str(models["WavLMForCTC"]), device="cpu"), "embed")
    assert type(base.model).__name__ == "WavLMModel" and sorted(base.info.unexpected_keys) == \
        ["lm_head.bias", "lm_head.weight"] and base.tokenizer is None


# ------------------------------------------------------------------------------------------------ the executor
class FrameCount(executor.Task):
    """A command the executor has never seen: frames per input, as JSON."""
    name = "frames"
    item_formats = ("json",)

    def run_batch(self, wavs):
        values, mask = self.rt.inputs(wavs)
        return [{"frames": n, "batch": len(wavs)} for n in self.rt.frame_lengths(mask)]

    def write_item(self, file, item, result, fmt):
        file.write(json.dumps(result).encode())


def test_executor_runs_any_task_with_batching_resume_and_outputs(models, wavs, tmp_path):
    import argparse

    from wavlm.frames import num_frames

    out = tmp_path / "frames"
    args = argparse.Namespace(model=str(models["WavLMModel"]), device="cpu", dtype="float32", batch_size=2,
                              max_batch_seconds=None, output=str(out), format=None, resume=False, quiet=True,
                              compile=False, int8=False, inputs=[str(wavs[0].parent)])
    assert executor.run(FrameCount(), args) == 0
    got = {p.stem: json.loads(p.read_text()) for p in out.iterdir()}
    lengths = {p.stem: soundfile.info(str(p)).frames for p in wavs}
    assert {k: v["frames"] for k, v in got.items()} == {k: num_frames(n) for k, n in lengths.items()}
    assert sorted(v["batch"] for v in got.values()) == [1, 2, 2]  # longest two together, batch size 2
    (out / "utt1.json").unlink()
    (out / "utt0.json").write_text("kept")
    args.resume = True
    assert executor.run(FrameCount(), args) == 0
    assert (out / "utt0.json").read_text() == "kept" and json.loads((out / "utt1.json").read_text())["batch"] == 1


def test_every_command_module_declares_its_interface():
    import argparse
    import dataclasses
    import importlib

    for name in cli.COMMANDS:
        module = importlib.import_module(f"wavlm.cli.{name}")
        assert isinstance(module.HELP, str) and isinstance(module.RUNS_MODEL, bool) and callable(module.run)
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        tasks = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, executor.Task)
                 and v.__module__ == module.__name__]
        assert bool(tasks) == module.RUNS_MODEL, name
        options = [v for v in vars(module).values() if dataclasses.is_dataclass(v) and v.__module__ == module.__name__]
        assert bool(options) == module.RUNS_MODEL, name


def test_synth_is_a_subcommand(tmp_path, capsys):
    assert cli.main(["synth", "asr", "-q"]) == 2
    assert "-o/--output DIR is required" in capsys.readouterr().err
    assert cli.main(["synth", "real", "nosuchsource", "-q"]) == 2
    assert "unknown real recordings" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ layers
def test_tasks_import_nothing_of_the_command_line_or_the_model():
    for path in sorted((SRC / "tasks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not name.startswith(("wavlm.cli", "wavlm.model", "wavlm.heads", "wavlm.checkpoint", "torch")), \
                    f"{path.name} imports {name}"
    modules = ", ".join(f"wavlm.tasks.{p.stem}" for p in sorted((SRC / "tasks").glob("*.py")) if p.stem != "__init__")
    code = f"import sys, {modules}; print(sorted(m for m in sys.modules if m.startswith('wavlm.cli') or m == 'torch'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------ one rule each
@pytest.mark.parametrize("norm, pre_ln, expected", [("group", False, False), ("layer", True, True),
                                                    ("layer", False, True), ("group", True, False)])
def test_one_input_normalisation_rule(tmp_path, norm, pre_ln, expected):
    """unilm's WavLMConfig: extractor_mode layer_norm is "meant to use with normalize=True"; the encoder's pre-LN
    flag says nothing about the input (checkpoint/original.py used it, the command line did not). Conversion both
    ways and the command line's default feature extractor now give the same answer, and an original cfg's own
    `normalize` wins."""
    from wavlm.checkpoint.convert import convert_checkpoint
    from wavlm.checkpoint.original import normalizes_input, original_to_config_cfg
    from wavlm.cli.loader import Source, load_feature_extractor

    config = wavlm.WavLMConfig(**tiny_kwargs("base", feat_extract_norm=norm, do_stable_layer_norm=pre_ln))
    assert normalizes_input(config) is expected
    assert original_to_config_cfg(config)["normalize"] is expected
    assert load_feature_extractor(Source("x", file=tmp_path / "x.pt"), config).do_normalize is expected
    wavlm.WavLMModel(config).save_pretrained(tmp_path / "hf")
    convert_checkpoint(tmp_path / "hf", tmp_path / "model.pt")
    assert torch.load(tmp_path / "model.pt", weights_only=True)["cfg"]["normalize"] is expected
    convert_checkpoint(tmp_path / "model.pt", tmp_path / "back")
    saved = json.loads((tmp_path / "back" / "preprocessor_config.json").read_text())
    assert saved["do_normalize"] is expected
    config.normalize = not expected  # an original checkpoint's own setting, kept by config_from_original
    assert normalizes_input(config) is (not expected)


def test_conv_arithmetic_has_one_home_and_matches_transformers():
    tf = pytest.importorskip("transformers")
    from wavlm.frames import conv_output_lengths, num_frames, receptive_field

    theirs = tf.WavLMModel(tf.WavLMConfig(**tiny_kwargs("base")))
    config = wavlm.WavLMConfig(**tiny_kwargs("base"))
    lengths = torch.arange(0, 2000, 7)
    expected = theirs._get_feat_extract_output_lengths(lengths)
    got = conv_output_lengths(lengths, config.conv_kernel, config.conv_stride)
    assert torch.equal(got, expected)  # unclamped, negatives included, as transformers
    assert [conv_output_lengths(int(n), config.conv_kernel, config.conv_stride) for n in lengths] == expected.tolist()
    assert torch.equal(wavlm.WavLMModel(config)._get_feat_extract_output_lengths(lengths), expected)
    assert num_frames(lengths, config.conv_kernel, config.conv_stride).tolist() == expected.clamp(min=0).tolist()
    for kernels, strides in [((10, 3, 20), (5, 4, 16)), ((4, 3), (2, 3)), ((7,), (1,))]:
        field = receptive_field(kernels, strides)
        assert conv_output_lengths(field, kernels, strides) == 1 and conv_output_lengths(field - 1, kernels,
                                                                                         strides) <= 0
        other = wavlm.WavLMConfig(conv_dim=[8] * len(kernels), conv_kernel=kernels, conv_stride=strides)
        assert (other.receptive_field, other.frame_stride) == (field, int(np.prod(strides)))


def test_activation_table_builds_what_transformers_builds():
    tf = pytest.importorskip("transformers")
    from transformers.activations import ACT2FN

    from wavlm.config import ACTIVATIONS
    from wavlm.model import activation

    x = torch.linspace(-6, 6, 101)
    for name in ACTIVATIONS:
        wavlm.WavLMConfig(hidden_act=name)  # every name validates
        if name in ACT2FN:  # transformers 5.23 has no "selu"
            torch.testing.assert_close(activation(name)(x), ACT2FN[name](x), rtol=0, atol=1e-6, msg=name)
    with pytest.raises(ValueError, match="hidden_act 'nope' is not supported"):
        wavlm.WavLMConfig(hidden_act="nope")
    assert tf  # transformers is the oracle


def test_xvector_minimum_length_is_one_rule_for_the_head_and_the_command_line(models):
    from wavlm.cli.verify import VerifyTask
    from wavlm.heads import xvector_min_samples

    model = wavlm.WavLMForXVector.from_pretrained(models["WavLMForXVector"])
    shortest = xvector_min_samples(model.config)
    with torch.no_grad():
        assert model(torch.randn(1, shortest)).embeddings.shape == (1, model.config.xvector_output_dim)
        with pytest.raises(ValueError, match=f"{shortest} samples"):
            model(torch.randn(1, shortest - model.config.frame_stride))
    task = VerifyTask()
    task.bind(type("Runtime", (), {"config": model.config})())
    assert task.min_samples() == shortest


def test_hub_keywords_have_one_home():
    from wavlm.hub import HUB_OPTIONS, IGNORED_FLAGS, hub_options

    kwargs = {"revision": "main", "trust_remote_code": True, "num_labels": 3, "_commit_hash": "abc"}
    assert hub_options(kwargs, drop=IGNORED_FLAGS) == {"revision": "main"} and kwargs == {"num_labels": 3}
    from wavlm.checkpoint import _LOADER_NAMES

    assert set(HUB_OPTIONS) <= set(_LOADER_NAMES)
