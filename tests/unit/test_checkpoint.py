"""Checkpoint files: transformers directories in every format (safetensors, .bin, shards, both weight-norm
spellings, a fused pos-conv weight), strict key/shape checking, head <-> base loading, corrupt and unsafe files,
original microsoft/unilm checkpoints, dtype/device/config overrides, and Hub errors without network."""
from __future__ import annotations

import json
import os
import re
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import wavlm
from wavlm import CheckpointError, WavLMConfig
from wavlm.checkpoint.original import config_from_original, state_dict_from_original, state_dict_to_original

tf = pytest.importorskip("transformers")

from conftest import tiny_kwargs
from model_support import make_informative

# transformers' attention (F.multi_head_attention_forward) warns on every padded forward
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask:UserWarning")

MODELS = ["WavLMModel", "WavLMForCTC", "WavLMForSequenceClassification", "WavLMForAudioFrameClassification",
          "WavLMForXVector"]
HEADS = MODELS[1:]
ATOL = 1e-5
G = "encoder.pos_conv_embed.conv.parametrizations.weight.original0"
V = "encoder.pos_conv_embed.conv.parametrizations.weight.original1"


# --------------------------------------------------------------------------------------------------- helpers
def _tf_model(name: str, variant: str = "base", seed: int = 0, **overrides):
    """A random transformers model whose every parameter is informative: norms moved off 1/0 and heads scaled up
    (at init, x-vector logits are ~1e-8, so an absolute tolerance alone would prove nothing)."""
    torch.manual_seed(seed)
    model = getattr(tf, name)(tf.WavLMConfig(**tiny_kwargs(variant, **overrides))).eval()
    return make_informative(model, seed)


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two utterances, the second padded with zeros after 2700 of 4000 samples (8 frames, the fewest
    the tiny x-vector TDNN takes)."""
    wav = torch.randn(2, 4000, generator=torch.Generator().manual_seed(seed))
    mask = torch.ones(2, 4000, dtype=torch.long)
    mask[1, 2700:] = 0
    wav[1, 2700:] = 0.0
    return wav, mask


def _outputs(model, wav, mask) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = model(wav, attention_mask=mask, return_dict=True)
    return {k: out[k] for k in out.keys() if torch.is_tensor(out[k])}


def _assert_same_outputs(ours, theirs, seed: int = 0) -> None:
    wav, mask = _batch(seed)
    a, b = _outputs(ours, wav, mask), _outputs(theirs, wav, mask)
    assert set(a) == set(b) and a
    for key in b:
        assert a[key].shape == b[key].shape, key
        assert b[key].abs().max() > 1e-2, f"{key} too small to compare meaningfully"
        torch.testing.assert_close(a[key], b[key], atol=ATOL, rtol=0, msg=lambda m: f"{key}: {m}")


def _assert_same_state(ours: torch.nn.Module, reference: dict[str, torch.Tensor], atol: float = 0.0) -> None:
    state = ours.state_dict()
    assert set(state) == set(reference)
    for key, value in reference.items():
        torch.testing.assert_close(state[key], value, atol=atol, rtol=0, msg=lambda m: f"{key}: {m}")


def _load(cls_name: str, path, **kwargs):
    """Our from_pretrained, returning (model, list of warning messages)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = getattr(wavlm, cls_name).from_pretrained(path, **kwargs)
    return model, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def _weight_warnings(messages: list[str]) -> list[str]:
    return [m for m in messages if "weights" in m]


def _write_config(model, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(directory)


# ---------------------------------------------------------------------------- both directions, every class
@pytest.mark.parametrize("variant", ["base", "large"])
@pytest.mark.parametrize("name", MODELS)
def test_transformers_to_wavlm_to_transformers(tmp_path, name, variant):
    theirs = _tf_model(name, variant)
    theirs.save_pretrained(tmp_path / "tf")
    ours, messages = _load(name, tmp_path / "tf")
    assert not _weight_warnings(messages), messages
    assert not ours.training
    _assert_same_state(ours, theirs.state_dict())
    _assert_same_outputs(ours, theirs)

    ours.save_pretrained(tmp_path / "ours")
    assert (tmp_path / "ours" / "model.safetensors").is_file()
    back, info = getattr(tf, name).from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert not info["error_msgs"], info
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["architectures"] == [name]
    _assert_same_outputs(ours, back.eval(), seed=1)
    _assert_same_outputs(back, theirs, seed=1)


@pytest.mark.parametrize("name, overrides", [
    ("WavLMModel", {"add_adapter": True, "output_hidden_size": 24}),
    ("WavLMForCTC", {"add_adapter": True, "num_adapter_layers": 2}),
    ("WavLMModel", {"conv_bias": True, "mask_time_prob": 0.0}),
    ("WavLMForCTC", {"use_weighted_layer_sum": True}),
    ("WavLMForSequenceClassification", {"use_weighted_layer_sum": True}),
    ("WavLMForAudioFrameClassification", {"use_weighted_layer_sum": True}),
    ("WavLMForXVector", {"use_weighted_layer_sum": True}),
])
def test_optional_parameters_round_trip(tmp_path, name, overrides):
    """Keys that exist only for some configs: adapter, conv biases, no masked_spec_embed, layer_weights."""
    theirs = _tf_model(name, "large", seed=2, **overrides)
    theirs.save_pretrained(tmp_path / "tf")
    ours, messages = _load(name, tmp_path / "tf")
    assert not _weight_warnings(messages), messages
    _assert_same_state(ours, theirs.state_dict())
    _assert_same_outputs(ours, theirs)
    ours.save_pretrained(tmp_path / "ours")
    back, info = getattr(tf, name).from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    _assert_same_outputs(back.eval(), theirs)


# ------------------------------------------------------------------------------------------------ file formats
@pytest.fixture(scope="module")
def reference():
    """A random transformers CTC model (head keys under `wavlm.`) and its canonical state dict."""
    model = _tf_model("WavLMForCTC", "base", seed=3)
    return model, {k: v.detach().clone() for k, v in model.state_dict().items()}


def _rename(state: dict, old: str, new: str) -> dict:
    return {k.replace(old, new): v for k, v in state.items()}


def _fuse_weight_norm(state: dict) -> dict:
    """pos-conv (g, v) -> the plain weight w = g * v / ||v|| (norm over dims 0, 1, as torch's weight_norm dim=2)."""
    out = {}
    for key, value in state.items():
        if key.endswith(G):
            continue
        if key.endswith(V):
            g = state[key[: -len(V)] + G]
            out[key[: -len(V)] + "encoder.pos_conv_embed.conv.weight"] = g * value / value.norm(dim=(0, 1),
                                                                                             keepdim=True)
            continue
        out[key] = value
    return out


def _write_index(directory: Path, shards: list[dict], ext: str, name: str, index: str) -> None:
    weight_map = {}
    for i, shard in enumerate(shards):
        filename = f"{name}-{i + 1:05d}-of-{len(shards):05d}.{ext}"
        if ext == "safetensors":
            save_file({k: v.contiguous() for k, v in shard.items()}, str(directory / filename),
                      metadata={"format": "pt"})
        else:
            torch.save(shard, directory / filename)
        weight_map.update({k: filename for k in shard})
    (directory / index).write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))


def _split(state: dict, parts: int) -> list[dict]:
    keys = sorted(state)
    return [{k: state[k] for k in keys[i::parts]} for i in range(parts)]


FORMATS = ["bin_torch_save", "bin_save_pretrained", "tf_shards_20KB", "safetensors_index_by_hand",
           "bin_index_by_hand", "weight_g_v_safetensors", "weight_g_v_bin", "fused_weight"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_file_formats_load_identically(tmp_path, reference, fmt):
    model, state = reference
    directory = tmp_path / fmt
    _write_config(model, directory)
    if fmt == "bin_torch_save":
        torch.save(state, directory / "pytorch_model.bin")
    elif fmt == "bin_save_pretrained":
        ours, _ = _load("WavLMForCTC", _save_tf(model, tmp_path / "src"))
        ours.save_pretrained(directory, safe_serialization=False)
        assert not (directory / "model.safetensors").exists()
        assert set(torch.load(directory / "pytorch_model.bin", weights_only=True)) == set(state)
        # transformers reads that .bin too
        back, info = tf.WavLMForCTC.from_pretrained(directory, output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
        _assert_same_outputs(back.eval(), model)
    elif fmt == "tf_shards_20KB":
        model.save_pretrained(directory, max_shard_size="20KB")
        assert len(list(directory.glob("model-*.safetensors"))) > 1
        assert (directory / "model.safetensors.index.json").is_file()
    elif fmt == "safetensors_index_by_hand":
        _write_index(directory, _split(state, 3), "safetensors", "model", "model.safetensors.index.json")
    elif fmt == "bin_index_by_hand":
        _write_index(directory, _split(state, 3), "bin", "pytorch_model", "pytorch_model.bin.index.json")
    elif fmt == "weight_g_v_safetensors":
        legacy = _rename(_rename(state, "parametrizations.weight.original0", "weight_g"),
                         "parametrizations.weight.original1", "weight_v")
        assert "wavlm.encoder.pos_conv_embed.conv.weight_g" in legacy
        save_file(legacy, str(directory / "model.safetensors"))
    elif fmt == "weight_g_v_bin":
        legacy = _rename(_rename(state, "parametrizations.weight.original0", "weight_g"),
                         "parametrizations.weight.original1", "weight_v")
        torch.save(legacy, directory / "pytorch_model.bin")
    elif fmt == "fused_weight":
        fused = _fuse_weight_norm(state)
        assert "wavlm.encoder.pos_conv_embed.conv.weight" in fused and "wavlm." + G not in fused
        save_file(fused, str(directory / "model.safetensors"))

    ours, messages = _load("WavLMForCTC", directory)
    assert not _weight_warnings(messages), messages
    if fmt == "fused_weight":  # (g, v) is recomputed from w: same weight, different parametrisation
        wn = ours.wavlm.encoder.pos_conv_embed.conv
        torch.testing.assert_close(wn.weight, model.wavlm.encoder.pos_conv_embed.conv.weight, atol=1e-6, rtol=1e-5)
        assert {k for k in ours.state_dict()} == set(state)
    else:
        _assert_same_state(ours, state)
    _assert_same_outputs(ours, model)


def _save_tf(model, directory: Path) -> Path:
    model.save_pretrained(directory)
    return directory


@pytest.mark.parametrize("spelling", ["weight_g_v", "fused"])
def test_weight_norm_spellings_without_prefix(tmp_path, spelling):
    """The same spellings in a base-model checkpoint (keys without `wavlm.`)."""
    model = _tf_model("WavLMModel", "large", seed=4)
    state = model.state_dict()
    if spelling == "weight_g_v":
        state = _rename(_rename(state, "parametrizations.weight.original0", "weight_g"),
                        "parametrizations.weight.original1", "weight_v")
    else:
        state = _fuse_weight_norm(state)
    _write_config(model, tmp_path)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    ours, _ = _load("WavLMModel", tmp_path)
    _assert_same_outputs(ours, model)
    # re-saved in the parametrization spelling, which transformers loads without complaint
    ours.save_pretrained(tmp_path / "again")
    assert G in load_file(str(tmp_path / "again" / "model.safetensors"))


# --------------------------------------------------------------------------------------------- unsafe pickles
class _Payload:
    """Unpickling this calls open(marker, "w"): a file appears if the pickle's code runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickled_object_is_refused_without_running(tmp_path):
    marker = tmp_path / "marker"
    model = _tf_model("WavLMModel")
    _write_config(model, tmp_path / "evil")
    state = dict(model.state_dict())
    state["encoder.layer_norm.weight"] = _Payload(marker)
    torch.save(state, tmp_path / "evil" / "pytorch_model.bin")
    with pytest.raises(CheckpointError) as info:
        wavlm.WavLMModel.from_pretrained(tmp_path / "evil")
    assert "weights_only" in str(info.value) and str(tmp_path / "evil" / "pytorch_model.bin") in str(info.value)
    assert not marker.exists()
    # an original-format .pt with the same payload is refused too
    torch.save({"cfg": {}, "model": {"x": _Payload(marker)}}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError):
        wavlm.WavLMModel.from_pretrained(tmp_path / "evil.pt")
    assert not marker.exists()
    # the payload is live: an unsafe load would have run it
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


# -------------------------------------------------------------------------------------------- head <-> base
@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    model = _tf_model("WavLMModel", "base", seed=5)
    directory = tmp_path_factory.mktemp("base")
    model.save_pretrained(directory)
    return directory, {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", HEADS)
def test_base_checkpoint_into_head(base_dir, name):
    directory, base_state = base_dir
    model, messages = _load(name, directory)
    head_keys = sorted(k for k in model.state_dict() if not k.startswith("wavlm."))
    assert head_keys
    weight_messages = _weight_warnings(messages)
    assert len(weight_messages) == 1, messages
    assert "newly initialised" in weight_messages[0]
    assert all(k in weight_messages[0] for k in head_keys)
    assert not any("wavlm." in m for m in weight_messages)
    state = model.state_dict()
    for key, value in base_state.items():
        assert torch.equal(state["wavlm." + key], value), key
    # the new head is initialised as transformers does it, not left as empty memory
    for key in head_keys:
        value = state[key]
        assert value.device.type == "cpu" and torch.isfinite(value).all(), key
        if key.endswith(".bias"):
            assert torch.equal(value, torch.zeros_like(value)), key
        elif key.endswith(".weight") and key != "objective.weight":
            assert 0 < value.std() and value.abs().max() < 0.02 * 8, key  # normal(0, initializer_range)
    wav, mask = _batch()
    assert all(torch.isfinite(v).all() for v in _outputs(model, wav, mask).values())


@pytest.mark.parametrize("name", HEADS)
def test_head_checkpoint_into_base(tmp_path, name):
    head = _tf_model(name, "base", seed=6)
    head.save_pretrained(tmp_path)
    model, messages = _load("WavLMModel", tmp_path)
    head_keys = sorted(k for k in head.state_dict() if not k.startswith("wavlm."))
    weight_messages = _weight_warnings(messages)
    assert len(weight_messages) == 1, messages
    assert "does not use" in weight_messages[0] and all(k in weight_messages[0] for k in head_keys)
    _assert_same_outputs(model, head.wavlm)


def test_head_checkpoint_into_another_head(tmp_path):
    ctc = _tf_model("WavLMForCTC", "large", seed=7)
    ctc.save_pretrained(tmp_path)
    model, messages = _load("WavLMForSequenceClassification", tmp_path)
    text = " ".join(messages)
    assert "lm_head.weight" in text and "classifier.weight" in text and "projector.weight" in text
    _assert_same_outputs(model.wavlm, ctc.wavlm)


@pytest.mark.parametrize("name", ["WavLMModel", "WavLMForCTC"])
def test_masked_spec_embed_absent_from_checkpoint(tmp_path, name):
    """A checkpoint saved with SpecAugment off has no masked_spec_embed; turning it on for fine-tuning must give
    the embedding a real initial value (uniform [0, 1) as transformers), not uninitialised memory."""
    theirs = _tf_model("WavLMModel", "base", seed=10, mask_time_prob=0.0)
    theirs.save_pretrained(tmp_path)
    assert "masked_spec_embed" not in load_file(str(tmp_path / "model.safetensors"))
    model, messages = _load(name, tmp_path, mask_time_prob=0.05)
    embed = model._backbone().masked_spec_embed
    assert embed.shape == (32,) and torch.isfinite(embed).all()
    assert embed.min() >= 0 and embed.max() < 1 and embed.std() > 0
    assert any("masked_spec_embed" in m for m in _weight_warnings(messages))
    _assert_same_outputs(model._backbone(), theirs)


# --------------------------------------------------------------------------------------------- strict errors
def _error(name: str, path, **kwargs) -> str:
    with pytest.raises(CheckpointError) as info:
        getattr(wavlm, name).from_pretrained(path, **kwargs)
    return str(info.value)


def test_missing_unexpected_and_mismatched_keys_in_one_error(tmp_path, base_dir):
    directory, state = base_dir
    broken = dict(state)
    del broken["encoder.layers.1.attention.q_proj.weight"]
    broken["encoder.layers.1.attention.bogus"] = torch.zeros(3)
    broken["encoder.layer_norm.bias"] = torch.zeros(31)
    (tmp_path / "config.json").write_bytes((directory / "config.json").read_bytes())
    save_file(broken, str(tmp_path / "model.safetensors"))
    message = _error("WavLMModel", tmp_path)
    assert "missing" in message and "encoder.layers.1.attention.q_proj.weight" in message
    assert "unexpected" in message and "encoder.layers.1.attention.bogus" in message
    assert "encoder.layer_norm.bias" in message and "(31,)" in message and "(32,)" in message
    assert str(tmp_path / "model.safetensors") in message
    # the same checkpoint under a head model: the backbone problems are still fatal
    message = _error("WavLMForCTC", tmp_path)
    assert "wavlm.encoder.layers.1.attention.q_proj.weight" in message and "bogus" in message


@pytest.mark.parametrize("problem", ["delete", "add"])
def test_single_key_problem(tmp_path, base_dir, problem):
    directory, state = base_dir
    broken = dict(state)
    key = "encoder.layers.0.feed_forward.output_dense.bias"
    if problem == "delete":
        del broken[key]
    else:
        key = "encoder.layers.0.feed_forward.extra_dense.weight"
        broken[key] = torch.ones(2, 2)
    (tmp_path / "config.json").write_bytes((directory / "config.json").read_bytes())
    torch.save(broken, tmp_path / "pytorch_model.bin")
    message = _error("WavLMModel", tmp_path)
    assert key in message and ("missing" if problem == "delete" else "unexpected") in message


def test_shape_mismatch_from_config_override(base_dir):
    directory, _ = base_dir
    message = _error("WavLMModel", directory, intermediate_size=64)
    assert message.count("has (37,") + message.count("has (37, 32)") + message.count("has (32, 37)") >= 6
    for key in ("encoder.layers.0.feed_forward.intermediate_dense.weight",
                "encoder.layers.1.feed_forward.output_dense.weight"):
        assert key in message
    assert "(64, 32)" in message and "(32, 64)" in message


def test_ignore_mismatched_sizes_reinitialises_the_head(tmp_path):
    theirs = _tf_model("WavLMForSequenceClassification", "base", seed=8)
    theirs.save_pretrained(tmp_path)
    message = _error("WavLMForSequenceClassification", tmp_path, num_labels=5)
    assert "classifier.weight" in message and "(3, 7)" in message and "(5, 7)" in message
    model, messages = _load("WavLMForSequenceClassification", tmp_path, num_labels=5, ignore_mismatched_sizes=True)
    assert model.config.num_labels == 5 and len(model.config.id2label) == 5
    assert model.classifier.weight.shape == (5, 7)
    assert torch.equal(model.classifier.bias, torch.zeros(5))
    assert torch.isfinite(model.classifier.weight).all() and model.classifier.weight.abs().max() < 0.2
    weight_messages = _weight_warnings(messages)
    assert len(weight_messages) == 1 and "classifier.weight" in weight_messages[0]
    assert "projector" not in weight_messages[0]
    assert torch.equal(model.projector.weight, theirs.projector.weight)
    _assert_same_outputs(model.wavlm, theirs.wavlm)
    # the same in transformers: same shapes, same loaded weights
    back = tf.WavLMForSequenceClassification.from_pretrained(tmp_path, num_labels=5, ignore_mismatched_sizes=True)
    assert back.classifier.weight.shape == model.classifier.weight.shape


# ------------------------------------------------------------------------------------------ unreadable files
@pytest.mark.parametrize("damage", ["truncated", "random"])
def test_corrupt_safetensors(tmp_path, base_dir, damage):
    directory, _ = base_dir
    (tmp_path / "config.json").write_bytes((directory / "config.json").read_bytes())
    data = (directory / "model.safetensors").read_bytes()
    bad = data[: len(data) // 2] if damage == "truncated" else os.urandom(len(data))
    (tmp_path / "model.safetensors").write_bytes(bad)
    message = _error("WavLMModel", tmp_path)
    assert str(tmp_path / "model.safetensors") in message


def test_corrupt_bin(tmp_path, base_dir):
    directory, state = base_dir
    (tmp_path / "config.json").write_bytes((directory / "config.json").read_bytes())
    torch.save(state, tmp_path / "pytorch_model.bin")
    data = (tmp_path / "pytorch_model.bin").read_bytes()
    (tmp_path / "pytorch_model.bin").write_bytes(data[: len(data) // 3])
    assert str(tmp_path / "pytorch_model.bin") in _error("WavLMModel", tmp_path)


def test_missing_config_json(tmp_path, base_dir):
    directory, _ = base_dir
    (tmp_path / "model.safetensors").write_bytes((directory / "model.safetensors").read_bytes())
    with pytest.raises((CheckpointError, FileNotFoundError)) as info:
        wavlm.WavLMModel.from_pretrained(tmp_path)
    assert str(tmp_path) in str(info.value) and "config.json" in str(info.value)


def test_directory_without_weights(tmp_path, base_dir):
    directory, _ = base_dir
    (tmp_path / "config.json").write_bytes((directory / "config.json").read_bytes())
    (tmp_path / "README.md").write_text("no weights here")
    with pytest.raises((CheckpointError, FileNotFoundError)) as info:
        wavlm.WavLMModel.from_pretrained(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_shard_index_naming_a_missing_shard(tmp_path, base_dir):
    directory, state = base_dir
    (tmp_path / "config.json").write_bytes((directory / "config.json").read_bytes())
    _write_index(tmp_path, _split(state, 2), "safetensors", "model", "model.safetensors.index.json")
    missing = sorted(tmp_path.glob("model-*.safetensors"))[1]
    missing.unlink()
    message = _error("WavLMModel", tmp_path)
    assert missing.name in message


def test_missing_local_path(tmp_path):
    with pytest.raises(OSError) as info:
        wavlm.WavLMModel.from_pretrained(tmp_path / "does" / "not" / "exist")
    assert "exist" in str(info.value)


# ------------------------------------------------------------------------------ original microsoft checkpoints
# The mapping of anchors section 2.3 (4.37 convert_wavlm_original_pytorch_checkpoint_to_pytorch.py), written
# out here independently of wavlm/checkpoint/keys.py: transformers key pattern -> unilm key.
HF_TO_UNILM = [
    (r"masked_spec_embed", r"mask_emb"),
    (r"feature_extractor\.conv_layers\.(\d+)\.conv\.(weight|bias)", r"feature_extractor.conv_layers.\1.0.\2"),
    (r"feature_projection\.layer_norm\.(weight|bias)", r"layer_norm.\1"),
    (r"feature_projection\.projection\.(weight|bias)", r"post_extract_proj.\1"),
    (r"encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original0", r"encoder.pos_conv.0.weight_g"),
    (r"encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original1", r"encoder.pos_conv.0.weight_v"),
    (r"encoder\.pos_conv_embed\.conv\.bias", r"encoder.pos_conv.0.bias"),
    (r"encoder\.layer_norm\.(weight|bias)", r"encoder.layer_norm.\1"),
    (r"encoder\.layers\.(\d+)\.attention\.(q|k|v|out)_proj\.(weight|bias)",
     r"encoder.layers.\1.self_attn.\2_proj.\3"),
    (r"encoder\.layers\.(\d+)\.attention\.gru_rel_pos_linear\.(weight|bias)",
     r"encoder.layers.\1.self_attn.grep_linear.\2"),
    (r"encoder\.layers\.(\d+)\.attention\.gru_rel_pos_const", r"encoder.layers.\1.self_attn.grep_a"),
    (r"encoder\.layers\.0\.attention\.rel_attn_embed\.weight",
     r"encoder.layers.0.self_attn.relative_attention_bias.weight"),
    (r"encoder\.layers\.(\d+)\.layer_norm\.(weight|bias)", r"encoder.layers.\1.self_attn_layer_norm.\2"),
    (r"encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.(weight|bias)", r"encoder.layers.\1.fc1.\2"),
    (r"encoder\.layers\.(\d+)\.feed_forward\.output_dense\.(weight|bias)", r"encoder.layers.\1.fc2.\2"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"encoder.layers.\1.final_layer_norm.\2"),
]
# conv-stack norms: Fp32GroupNorm at index 2 of layer 0 ("default"), Sequential(TransposeLast, Fp32LayerNorm,
# TransposeLast) at index 2 of every layer ("layer_norm")
HF_TO_UNILM_NORM = {
    "default": [(r"feature_extractor\.conv_layers\.0\.layer_norm\.(weight|bias)",
                 r"feature_extractor.conv_layers.0.2.\1")],
    "layer_norm": [(r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(weight|bias)",
                    r"feature_extractor.conv_layers.\1.2.1.\2")],
}
TINY_CONV_LAYERS = "[(16,10,5)] + [(24,3,4)] + [(20,20,16)]"


def _to_unilm(state: dict, mode: str) -> dict:
    out = {}
    for key, value in state.items():
        for pattern, template in HF_TO_UNILM_NORM[mode] + HF_TO_UNILM:
            if re.fullmatch(pattern, key):
                out[re.sub(f"^{pattern}$", template, key)] = value
                break
        else:
            raise AssertionError(f"no unilm name for {key}")
    return out


def _unilm_cfg(config, mode: str) -> dict:
    """An original `cfg` for a tiny transformers config, with the unilm-only fields real checkpoints carry."""
    return {
        "extractor_mode": mode, "encoder_layers": config.num_hidden_layers,
        "encoder_embed_dim": config.hidden_size, "encoder_ffn_embed_dim": config.intermediate_size,
        "encoder_attention_heads": config.num_attention_heads, "activation_fn": "gelu",
        "layer_norm_first": config.do_stable_layer_norm, "conv_feature_layers": TINY_CONV_LAYERS,
        "conv_bias": config.conv_bias, "feature_grad_mult": 0.1, "normalize": config.do_stable_layer_norm,
        "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0, "encoder_layerdrop": 0.0,
        "dropout_input": 0.0, "dropout_features": 0.0, "mask_length": 10, "mask_prob": 0.05,
        "mask_selection": "static", "mask_other": 0, "no_mask_overlap": False, "mask_min_space": 1,
        "mask_channel_length": 10, "mask_channel_prob": 0.0, "mask_channel_selection": "static",
        "mask_channel_other": 0, "no_mask_channel_overlap": False, "mask_channel_min_space": 1,
        "conv_pos": config.num_conv_pos_embeddings, "conv_pos_groups": config.num_conv_pos_embedding_groups,
        "relative_position_embedding": True, "num_buckets": config.num_buckets,
        "max_distance": config.max_bucket_distance, "gru_rel_pos": True,
    }


@pytest.fixture(params=["default", "layer_norm"])
def original(request, tmp_path):
    """(transformers model, path of the equivalent original .pt, its cfg, its state dict, mode)."""
    mode = request.param
    variant = "base" if mode == "default" else "large"
    theirs = _tf_model("WavLMModel", variant, seed=9, conv_bias=(mode == "layer_norm"))
    cfg = _unilm_cfg(theirs.config, mode)
    state = _to_unilm(theirs.state_dict(), mode)
    path = tmp_path / f"WavLM-{mode}.pt"
    torch.save({"cfg": cfg, "model": state}, path)
    return theirs, path, cfg, state, mode


def test_original_checkpoint_round_trip(original, tmp_path):
    theirs, path, cfg, state, mode = original
    # the layout really is the original one
    assert "encoder.layers.0.self_attn.relative_attention_bias.weight" in state and "mask_emb" in state
    assert ("feature_extractor.conv_layers.2.2.1.weight" in state) == (mode == "layer_norm")
    assert ("feature_extractor.conv_layers.0.2.weight" in state) == (mode == "default")
    ours, messages = _load("WavLMModel", path)
    assert not _weight_warnings(messages), messages
    _assert_same_state(ours, theirs.state_dict())
    _assert_same_outputs(ours, theirs)
    for field in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                  "feat_extract_norm", "do_stable_layer_norm", "conv_bias", "num_conv_pos_embeddings",
                  "num_conv_pos_embedding_groups", "num_buckets", "max_bucket_distance"):
        assert getattr(ours.config, field) == getattr(theirs.config, field), field
    assert tuple(ours.config.conv_dim) == (16, 24, 20)
    # saved as a transformers directory, it loads in transformers
    ours.save_pretrained(tmp_path / "converted")
    back, info = tf.WavLMModel.from_pretrained(tmp_path / "converted", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    _assert_same_outputs(back.eval(), theirs)


def test_original_checkpoint_into_head_and_fairseq_prefix(original, tmp_path):
    theirs, path, cfg, state, mode = original
    wrapped = tmp_path / "finetuned.pt"
    torch.save({"cfg": cfg, "model": {"w2v_encoder.w2v_model." + k: v for k, v in state.items()}}, wrapped)
    ours, _ = _load("WavLMModel", wrapped)
    _assert_same_outputs(ours, theirs)
    ctc, messages = _load("WavLMForCTC", path, vocab_size=9)
    assert ctc.lm_head.weight.shape == (9, 32)
    assert any("lm_head.weight" in m for m in _weight_warnings(messages))
    _assert_same_outputs(ctc.wavlm, theirs)
    # an explicit config plus keyword overrides, as for transformers directories
    config = config_from_original(cfg)
    classifier, _ = _load("WavLMForSequenceClassification", path, config=config, num_labels=4)
    assert classifier.config.num_labels == 4 and classifier.classifier.weight.shape[0] == 4
    assert config.num_labels == 2  # the caller's config is untouched
    _assert_same_outputs(classifier.wavlm, theirs)


def test_state_dict_to_original_inverts_from_original(original):
    theirs, _, cfg, state, mode = original
    config = config_from_original(cfg)
    hf_state = state_dict_from_original(state, config)
    assert set(hf_state) == set(theirs.state_dict())
    back = state_dict_to_original(hf_state, config)
    assert set(back) == set(state)
    assert all(back[k] is state[k] for k in state)
    # and the other way round, from transformers keys (with or without the `wavlm.` prefix)
    again = state_dict_from_original(state_dict_to_original(theirs.state_dict(), config), config)
    assert set(again) == set(theirs.state_dict())
    prefixed = state_dict_to_original({"wavlm." + k: v for k, v in theirs.state_dict().items()}, config)
    assert set(prefixed) == set(state)
    with pytest.raises(CheckpointError, match="lm_head.weight"):
        state_dict_to_original({"lm_head.weight": torch.zeros(1)}, config)


def test_original_checkpoint_with_unknown_key(original, tmp_path):
    _, _, cfg, state, _ = original
    bad = tmp_path / "bad.pt"
    torch.save({"cfg": cfg, "model": {**state, "encoder.layers.0.self_attn.mystery": torch.zeros(1)}}, bad)
    with pytest.raises(CheckpointError, match=r"encoder\.layers\.0\.self_attn\.mystery"):
        wavlm.WavLMModel.from_pretrained(bad)
    # a known name missing from the file is an error too
    missing = dict(state)
    del missing["encoder.layers.1.fc2.weight"]
    torch.save({"cfg": cfg, "model": missing}, bad)
    with pytest.raises(CheckpointError, match=r"encoder\.layers\.1\.feed_forward\.output_dense\.weight"):
        wavlm.WavLMModel.from_pretrained(bad)


def test_single_file_that_is_not_an_original_checkpoint(tmp_path):
    torch.save({"encoder.layer_norm.weight": torch.ones(3)}, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="cfg"):
        wavlm.WavLMModel.from_pretrained(tmp_path / "weights.pt")


BASE_CFG = {  # WavLM-Base as printed by its checkpoint (anchors 2.3)
    "extractor_mode": "default", "encoder_layers": 12, "encoder_embed_dim": 768, "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12, "activation_fn": "gelu", "layer_norm_first": False,
    "conv_feature_layers": "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2", "conv_bias": False,
    "feature_grad_mult": 0.1, "normalize": False, "dropout": 0.1, "attention_dropout": 0.1,
    "activation_dropout": 0.0, "encoder_layerdrop": 0.05, "dropout_input": 0.1, "dropout_features": 0.1,
    "mask_length": 10, "mask_prob": 0.8, "conv_pos": 128, "conv_pos_groups": 16,
    "relative_position_embedding": True, "num_buckets": 320, "max_distance": 800, "gru_rel_pos": True,
}


def test_config_from_original_base_and_large():
    base = config_from_original(BASE_CFG)
    assert base.feat_extract_norm == "group" and base.do_stable_layer_norm is False
    assert (base.num_hidden_layers, base.hidden_size, base.intermediate_size, base.num_attention_heads) == (
        12, 768, 3072, 12)
    assert tuple(base.conv_dim) == (512,) * 7
    assert tuple(base.conv_kernel) == (10, 3, 3, 3, 3, 2, 2)
    assert tuple(base.conv_stride) == (5, 2, 2, 2, 2, 2, 2)
    assert (base.receptive_field, base.frame_stride) == (400, 320)
    assert (base.num_conv_pos_embeddings, base.num_conv_pos_embedding_groups) == (128, 16)
    assert (base.num_buckets, base.max_bucket_distance) == (320, 800)
    assert (base.hidden_dropout, base.attention_dropout, base.activation_dropout) == (0.1, 0.1, 0.0)
    assert (base.layerdrop, base.feat_proj_dropout, base.mask_time_prob, base.mask_time_length) == (
        0.05, 0.1, 0.8, 10)
    assert base.hidden_act == "gelu" and base.conv_bias is False
    large = config_from_original({**BASE_CFG, "extractor_mode": "layer_norm", "encoder_layers": 24,
                                  "encoder_embed_dim": 1024, "encoder_ffn_embed_dim": 4096,
                                  "encoder_attention_heads": 16, "layer_norm_first": True, "normalize": True})
    assert large.feat_extract_norm == "layer" and large.do_stable_layer_norm is True
    assert (large.num_hidden_layers, large.hidden_size, large.intermediate_size, large.num_attention_heads) == (
        24, 1024, 4096, 16)
    tiny = config_from_original({**BASE_CFG, "conv_feature_layers": TINY_CONV_LAYERS})
    assert (tuple(tiny.conv_dim), tuple(tiny.conv_kernel), tuple(tiny.conv_stride)) == (
        (16, 24, 20), (10, 3, 20), (5, 4, 16))


@pytest.mark.parametrize("cfg, match", [
    ({"conv_feature_layers": "__import__('os').system('true')"}, "conv_feature_layers"),
    ({"conv_feature_layers": "[(512, 10)]"}, "conv_feature_layers"),
    ({"extractor_mode": "batch_norm"}, "extractor_mode"),
    ({"gru_rel_pos": False}, "gru_rel_pos"),
])
def test_config_from_original_refuses_bad_cfg(cfg, match):
    with pytest.raises(CheckpointError, match=match):
        config_from_original({**BASE_CFG, **cfg})


# ------------------------------------------------------------------------------------- dtype, device, overrides
@pytest.mark.parametrize("dtype", [torch.bfloat16, "bfloat16", "torch.bfloat16", torch.float16])
def test_torch_dtype(base_dir, dtype):
    directory, _ = base_dir
    model, _ = _load("WavLMModel", directory, torch_dtype=dtype)
    expected = dtype if isinstance(dtype, torch.dtype) else torch.bfloat16
    assert {p.dtype for p in model.parameters()} == {expected}
    assert model.dtype == expected
    assert model.config.dtype == str(expected).replace("torch.", "")
    same, _ = _load("WavLMModel", directory, dtype=dtype)  # the transformers 5 spelling
    assert same.dtype == expected


def test_torch_dtype_auto_and_default(tmp_path, base_dir):
    directory, state = base_dir
    assert _load("WavLMModel", directory, torch_dtype="auto")[0].dtype == torch.float32
    assert _load("WavLMModel", directory)[0].dtype == torch.float32
    half, _ = _load("WavLMModel", directory, torch_dtype=torch.bfloat16)
    half.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] == "bfloat16"
    assert {v.dtype for v in load_file(str(tmp_path / "model.safetensors")).values()} == {torch.bfloat16}
    auto, _ = _load("WavLMModel", tmp_path, torch_dtype="auto")
    assert {p.dtype for p in auto.parameters()} == {torch.bfloat16}
    assert tf.WavLMModel.from_pretrained(tmp_path, dtype="auto").dtype == torch.bfloat16
    assert _load("WavLMModel", tmp_path, torch_dtype=torch.float32)[0].dtype == torch.float32
    with pytest.raises(ValueError, match="dtype"):
        wavlm.WavLMModel.from_pretrained(directory, torch_dtype="float33")


def test_torch_dtype_auto_prefers_the_config_dtype(tmp_path, base_dir):
    """transformers 5.23 resolves "auto" from config.json's dtype first and the weights' dtype second."""
    directory, _ = base_dir
    half, _ = _load("WavLMModel", directory, torch_dtype=torch.bfloat16)
    half.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**data, "dtype": "float16"}))
    expected = tf.WavLMModel.from_pretrained(tmp_path, dtype="auto").dtype
    assert expected == torch.float16
    assert _load("WavLMModel", tmp_path, torch_dtype="auto")[0].dtype == expected
    del data["dtype"]  # no dtype in the config: the weights decide
    (tmp_path / "config.json").write_text(json.dumps(data))
    assert tf.WavLMModel.from_pretrained(tmp_path, dtype="auto").dtype == torch.bfloat16
    assert _load("WavLMModel", tmp_path, torch_dtype="auto")[0].dtype == torch.bfloat16


def test_device_cpu(base_dir):
    directory, _ = base_dir
    model, _ = _load("WavLMModel", directory, device="cpu")
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert {b.device.type for b in model.buffers()} <= {"cpu"}
    model, _ = _load("WavLMForCTC", directory, device=torch.device("cpu"))
    assert {p.device.type for p in model.parameters()} == {"cpu"}  # new head weights too
    assert model.device.type == "cpu"


def test_config_override(base_dir):
    directory, state = base_dir
    config = WavLMConfig(**tiny_kwargs("base", hidden_dropout=0.25, mask_time_prob=0.5))
    before = config.to_dict()
    model, _ = _load("WavLMModel", directory, config=config)
    assert model.config.hidden_dropout == 0.25 and model.config.mask_time_prob == 0.5
    assert torch.equal(model.encoder.layers[0].attention.q_proj.weight,
                       state["encoder.layers.0.attention.q_proj.weight"])
    assert config.to_dict() == before, "from_pretrained must not modify the caller's config (transformers copies it)"
    with pytest.raises(CheckpointError, match="intermediate_dense"):
        wavlm.WavLMModel.from_pretrained(directory, config=WavLMConfig(**tiny_kwargs("base", intermediate_size=40)))


def test_num_labels_override(base_dir):
    directory, _ = base_dir
    for name in ("WavLMForSequenceClassification", "WavLMForAudioFrameClassification", "WavLMForXVector"):
        model, _ = _load(name, directory, num_labels=5)
        assert model.config.num_labels == 5
        assert model.config.id2label == {i: f"LABEL_{i}" for i in range(5)}
        wav, mask = _batch()
        assert _outputs(model, wav, mask)["logits"].shape[-1] == (5 if name != "WavLMForXVector" else 6)
    xvector, _ = _load("WavLMForXVector", directory, num_labels=5)
    assert xvector.objective.weight.shape == (6, 5)


# -------------------------------------------------------------------------------------------------------- Hub
REPO = "wavlm-tests/no-such-repo"


def _hub_error(**kwargs) -> tuple[str, float]:
    start = time.monotonic()
    with pytest.raises(OSError) as info:
        wavlm.WavLMModel.from_pretrained(REPO, **kwargs)
    return str(info.value), time.monotonic() - start


def test_hub_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message, seconds = _hub_error(cache_dir=tmp_path)
    assert seconds < 30  # hang guard only
    assert REPO in message
    with pytest.raises(OSError, match=REPO):
        WavLMConfig.from_pretrained(REPO, cache_dir=tmp_path)


def test_hub_without_offline_flag_and_no_network(monkeypatch, tmp_path):
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub.constants, "HF_HUB_OFFLINE", False)  # read once at import time by huggingface_hub
    message, seconds = _hub_error(cache_dir=tmp_path)
    assert seconds < 30  # hang guard only
    assert REPO in message


def test_hub_without_huggingface_hub(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    message, _ = _hub_error()
    assert REPO in message and "huggingface_hub" in message and "install" in message


# ------------------------------------------------------------------------------ loading and saving options
def test_subfolder_must_stay_inside(tmp_path, base_dir):
    directory, _ = base_dir
    for bad in ("../elsewhere", "/abs/path", "a/../../b"):
        with pytest.raises(ValueError, match="subfolder"):
            wavlm.WavLMModel.from_pretrained(directory, subfolder=bad)


def test_hub_offline_error_names_the_subfolder(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError) as info:
        wavlm.WavLMModel.from_pretrained(REPO, subfolder="sub", cache_dir=tmp_path)
    assert REPO in str(info.value) and "'sub'" in str(info.value)


def test_missing_files_are_file_not_found_errors(tmp_path, base_dir):
    directory, _ = base_dir
    (tmp_path / "config.json").write_bytes((directory / "config.json").read_bytes())
    with pytest.raises(FileNotFoundError) as info:  # as transformers' OSError, and still a CheckpointError
        wavlm.WavLMModel.from_pretrained(tmp_path)
    assert isinstance(info.value, CheckpointError) and "model.safetensors" in str(info.value)
    with pytest.raises(FileNotFoundError, match="use_safetensors=True"):
        torch.save({}, tmp_path / "pytorch_model.bin")
        wavlm.WavLMModel.from_pretrained(tmp_path, use_safetensors=True)


@pytest.mark.parametrize("size, expected", [("30KB", 30_000), ("1.5MB", 1_500_000), (" 2gb ", 2 * 10**9), (123, 123)])
def test_max_shard_size(size, expected):
    from wavlm.checkpoint.hf import parse_size

    assert parse_size(size) == expected


@pytest.mark.parametrize("size", ["30", "30KiB", "-1MB", 0, "big", True])
def test_bad_max_shard_size(tmp_path, size):
    model = wavlm.WavLMModel(WavLMConfig(**tiny_kwargs()))
    with pytest.raises(ValueError, match="max_shard_size"):
        model.save_pretrained(tmp_path, max_shard_size=size)


def test_save_replaces_weights_of_another_format(tmp_path):
    model = wavlm.WavLMModel(WavLMConfig(**tiny_kwargs()))
    model.save_pretrained(tmp_path, safe_serialization=False, max_shard_size="20KB")
    assert (tmp_path / "pytorch_model.bin.index.json").is_file()
    (tmp_path / "model.ema.safetensors").write_bytes(b"another variant: kept")
    (tmp_path / "notes.txt").write_text("kept")
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.ema.safetensors",
                                                          "model.safetensors", "notes.txt"]


def test_partially_missing_head_module_keeps_what_was_loaded(tmp_path):
    """A checkpoint with lm_head.weight but no lm_head.bias: the bias is initialised, the weight is kept."""
    theirs = _tf_model("WavLMForCTC", seed=11)
    theirs.save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    del state["lm_head.bias"]
    save_file(state, str(tmp_path / "model.safetensors"))
    model, info = wavlm.WavLMForCTC.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == {"lm_head.bias"}
    assert torch.equal(model.lm_head.weight, theirs.lm_head.weight)
    assert torch.equal(model.lm_head.bias, torch.zeros(11))


def test_strict_false_with_unexpected_backbone_keys_only(tmp_path, base_dir):
    directory, state = base_dir
    (tmp_path / "config.json").write_bytes((directory / "config.json").read_bytes())
    save_file({**state, "encoder.extra.weight": torch.ones(2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="encoder.extra.weight"):
        wavlm.WavLMModel.from_pretrained(tmp_path)
    model, info = wavlm.WavLMModel.from_pretrained(tmp_path, strict=False, output_loading_info=True)
    assert info == {"missing_keys": set(), "unexpected_keys": {"encoder.extra.weight"}, "mismatched_keys": set(),
                    "error_msgs": []}
    _assert_same_state(model, state)


def test_model_constructor_keywords_pass_through(base_dir):
    directory, _ = base_dir
    with pytest.raises(ValueError, match="target_lang"):  # WavLMForCTC's own argument reaches its constructor
        wavlm.WavLMForCTC.from_pretrained(directory, target_lang="eng")


def test_legacy_checkpointing_key_survives_the_strict_false_rebuild(tmp_path, base_dir):
    directory, state = base_dir
    data = json.loads((directory / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**data, "gradient_checkpointing": True}))
    partial = {k: v for k, v in state.items() if k != "encoder.layers.0.feed_forward.output_dense.bias"}
    save_file(partial, str(tmp_path / "model.safetensors"))
    model, info = wavlm.WavLMModel.from_pretrained(tmp_path, strict=False, output_loading_info=True)
    assert info["missing_keys"] == {"encoder.layers.0.feed_forward.output_dense.bias"}
    assert model.is_activation_checkpointing and not hasattr(model.config, "gradient_checkpointing")
    assert torch.equal(model.encoder.layers[0].feed_forward.output_dense.bias, torch.zeros(32))
