"""WavLMConfig: the transformers 5.23 signature and defaults, json I/O in both directions, unknown keys, labels,
validation errors that name the field, derived values."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from wavlm import WavLMConfig

tf = pytest.importorskip("transformers")

from conftest import tiny_kwargs

LABELS = {0: "neutral", 1: "happy", 2: "sad", 3: "angry", 4: "surprised"}


def _plain(value):
    """Tuples and lists compare by value; dict keys as json writes them."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _custom_kwargs(variant: str = "large") -> dict:
    """A config far from the defaults: tiny dims, 5 named labels, weighted layer sum, adapter, odd dropouts."""
    kwargs = tiny_kwargs(variant, use_weighted_layer_sum=True, add_adapter=True, output_hidden_size=24,
                         num_adapter_layers=2, adapter_kernel_size=5, adapter_stride=3, ctc_loss_reduction="sum",
                         ctc_zero_infinity=True, mask_time_prob=0.3, mask_feature_prob=0.1, layer_norm_eps=1e-6,
                         hidden_act="relu", pad_token_id=4, problem_type="single_label_classification")
    kwargs.pop("num_labels")
    kwargs["id2label"] = dict(LABELS)
    kwargs["label2id"] = {v: k for k, v in LABELS.items()}
    return kwargs


def _signature_defaults(cls) -> dict:
    params = inspect.signature(cls.__init__).parameters
    return {name: p.default for name, p in params.items()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and name != "self"}


def _assert_same_fields(ours: WavLMConfig, theirs) -> None:
    """Every argument of transformers' signature has the same value on both objects."""
    for name in _signature_defaults(tf.WavLMConfig):
        if name in ("transformers_version", "dtype", "label2id"):
            continue
        assert _plain(getattr(ours, name)) == _plain(getattr(theirs, name)), name
    assert ours.num_labels == theirs.num_labels
    assert ours.num_feat_extract_layers == theirs.num_feat_extract_layers
    assert str(ours.dtype).replace("torch.", "") == str(theirs.dtype).replace("torch.", "")
    # transformers leaves label2id None when only id2label is given; ours derives it; both must agree when set
    expected = theirs.label2id if theirs.label2id is not None else {v: k for k, v in theirs.id2label.items()}
    assert ours.label2id == expected


# ------------------------------------------------------------------------------------------ signature / defaults
def test_every_transformers_argument_exists_with_the_same_default():
    theirs = _signature_defaults(tf.WavLMConfig)
    ours = _signature_defaults(WavLMConfig)
    assert len(theirs) > 60  # the comparison below really covers the WavLM fields
    missing = sorted(set(theirs) - set(ours))
    assert not missing, f"arguments missing from wavlm.WavLMConfig: {missing}"
    different = {name: (theirs[name], ours[name]) for name in theirs if _plain(theirs[name]) != _plain(ours[name])}
    assert not different, f"defaults that differ (transformers, ours): {different}"


def test_default_instance_matches_transformers_default_instance():
    _assert_same_fields(WavLMConfig(), tf.WavLMConfig())


def test_spot_check_defaults():
    config = WavLMConfig()
    assert config.layer_norm_eps == 1e-5
    assert tuple(config.conv_kernel) == (10, 3, 3, 3, 3, 2, 2)
    assert tuple(config.conv_stride) == (5, 2, 2, 2, 2, 2, 2)
    assert tuple(config.conv_dim) == (512,) * 7
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 12, 12)
    assert config.output_hidden_size == 768  # None -> hidden_size, as transformers
    assert config.model_type == "wavlm"
    assert config.num_labels == 2


def test_derived_values_for_defaults():
    config = WavLMConfig()
    assert config.receptive_field == 400
    assert config.frame_stride == 320
    assert config.num_feat_extract_layers == 7
    # the tiny test config is built to keep the real models' framing
    tiny = WavLMConfig(**tiny_kwargs("base"))
    assert (tiny.receptive_field, tiny.frame_stride) == (400, 320)
    other = WavLMConfig(conv_dim=(8, 8), conv_kernel=(4, 3), conv_stride=(2, 3))
    assert (other.receptive_field, other.frame_stride) == (4 + 2 * 2, 6)


# ----------------------------------------------------------------------------------------------------- json I/O
def test_to_dict_is_json_ready_and_complete():
    config = WavLMConfig(**_custom_kwargs())
    data = config.to_dict()
    json.dumps(data)  # json-serialisable as is
    assert data["model_type"] == "wavlm"
    assert data["num_feat_extract_layers"] == 3
    assert data["conv_kernel"] == [10, 3, 20]
    assert data["id2label"] == {str(k): v for k, v in LABELS.items()}
    assert set(_signature_defaults(tf.WavLMConfig)) - {"transformers_version"} <= set(data)


def test_json_file_round_trip(tmp_path):
    config = WavLMConfig(**_custom_kwargs())
    config.to_json_file(tmp_path / "c.json")
    loaded = WavLMConfig.from_json_file(tmp_path / "c.json")
    assert loaded == config
    assert loaded.to_dict() == config.to_dict()
    assert loaded.id2label == LABELS and loaded.num_labels == 5


def test_save_pretrained_from_pretrained_round_trip(tmp_path):
    config = WavLMConfig(**_custom_kwargs())
    target = config.save_pretrained(tmp_path / "model")
    assert Path(target) == tmp_path / "model" / "config.json"
    assert json.loads(Path(target).read_text())["model_type"] == "wavlm"
    loaded = WavLMConfig.from_pretrained(tmp_path / "model")
    assert loaded == config
    assert WavLMConfig.from_pretrained(target) == config  # the json file itself
    # keyword arguments override fields
    assert WavLMConfig.from_pretrained(tmp_path / "model", hidden_size=64).hidden_size == 64
    assert WavLMConfig.from_pretrained(tmp_path / "model", num_labels=7).num_labels == 7


@pytest.mark.parametrize("variant", ["base", "large"])
def test_transformers_config_json_loads_here(tmp_path, variant):
    theirs = tf.WavLMConfig(**_custom_kwargs(variant))
    theirs.save_pretrained(tmp_path)
    ours = WavLMConfig.from_pretrained(tmp_path)
    _assert_same_fields(ours, theirs)
    assert ours.id2label == LABELS


@pytest.mark.parametrize("variant", ["base", "large"])
def test_our_config_json_loads_in_transformers(tmp_path, variant):
    ours = WavLMConfig(**_custom_kwargs(variant))
    ours.save_pretrained(tmp_path)
    theirs = tf.WavLMConfig.from_pretrained(tmp_path)
    _assert_same_fields(ours, theirs)
    assert theirs.id2label == LABELS
    assert theirs.model_type == "wavlm"


def test_defaults_cross_load_both_ways(tmp_path):
    WavLMConfig().save_pretrained(tmp_path / "ours")
    tf.WavLMConfig().save_pretrained(tmp_path / "theirs")
    _assert_same_fields(WavLMConfig(), tf.WavLMConfig.from_pretrained(tmp_path / "ours"))
    _assert_same_fields(WavLMConfig.from_pretrained(tmp_path / "theirs"), tf.WavLMConfig())


# -------------------------------------------------------------------------------------------------- unknown keys
HUB_LEGACY = {"mask_time_selection": "static", "feat_quantizer_dropout": 0.0, "mask_channel_prob": 0.0,
              "freeze_feat_extract_train": True, "gradient_checkpointing": False, "my_custom_key": {"a": [1, 2]}}


def test_unknown_keys_are_kept_and_written_back(tmp_path):
    config = WavLMConfig(**HUB_LEGACY)
    for key, value in HUB_LEGACY.items():
        assert getattr(config, key) == value
        assert config.to_dict()[key] == value
    config.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    assert {k: written[k] for k in HUB_LEGACY} == HUB_LEGACY
    assert WavLMConfig.from_pretrained(tmp_path).to_dict() == config.to_dict()
    # an unknown attribute set after construction is written too
    config.new_field = 3
    assert config.to_dict()["new_field"] == 3


def test_unknown_keys_survive_transformers_to_wavlm_to_transformers(tmp_path):
    # a hub-style config.json (legacy keys, 4.x `torch_dtype` spelling) as transformers writes and reads it
    data = {**tf.WavLMConfig(**tiny_kwargs("large")).to_dict(), **HUB_LEGACY}
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "config.json").write_text(json.dumps(data))
    ours = WavLMConfig.from_pretrained(tmp_path / "hub")
    assert {k: getattr(ours, k) for k in HUB_LEGACY} == HUB_LEGACY
    ours.save_pretrained(tmp_path / "ours")
    theirs = tf.WavLMConfig.from_pretrained(tmp_path / "ours")
    assert {k: getattr(theirs, k) for k in HUB_LEGACY} == HUB_LEGACY
    theirs.save_pretrained(tmp_path / "theirs")
    again = WavLMConfig.from_pretrained(tmp_path / "theirs")
    assert {k: getattr(again, k) for k in HUB_LEGACY} == HUB_LEGACY
    _assert_same_fields(again, theirs)


def test_wavlm_only_options_load_in_transformers(tmp_path):
    WavLMConfig(mask_padding_in_group_norm=True, xvector_exact_pooling=True).save_pretrained(tmp_path)
    theirs = tf.WavLMConfig.from_pretrained(tmp_path)
    assert theirs.mask_padding_in_group_norm is True and theirs.xvector_exact_pooling is True


# -------------------------------------------------------------------------------------------------------- labels
@pytest.mark.parametrize("kwargs", [
    {}, {"num_labels": 5}, {"id2label": {"0": "a", "1": "b", "2": "c"}},
    {"id2label": {0: "x", 1: "y"}, "label2id": {"x": 0, "y": 1}},
    {"num_labels": 3, "id2label": {0: "a", 1: "b"}},  # conflicting: num_labels wins, as in transformers
])
def test_labels_match_transformers(kwargs):
    ours, theirs = WavLMConfig(**kwargs), tf.WavLMConfig(**kwargs)
    assert ours.num_labels == theirs.num_labels
    assert ours.id2label == theirs.id2label
    assert all(isinstance(k, int) for k in ours.id2label)
    assert ours.label2id == {v: k for k, v in ours.id2label.items()}


def test_setting_num_labels_resets_the_maps():
    config = WavLMConfig(id2label={0: "a", 1: "b"})
    config.num_labels = 4
    assert config.id2label == {i: f"LABEL_{i}" for i in range(4)}
    assert config.label2id == {f"LABEL_{i}": i for i in range(4)}
    assert config.to_dict()["id2label"] == {str(i): f"LABEL_{i}" for i in range(4)}


def test_id2label_json_keys_become_integers(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "wavlm", "id2label": {"0": "no", "1": "yes"},
                                                      "label2id": {"no": "0", "yes": "1"}}))
    config = WavLMConfig.from_pretrained(tmp_path)
    assert config.id2label == {0: "no", 1: "yes"}
    assert config.label2id == {"no": 0, "yes": 1}


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_bad_num_labels(bad):
    with pytest.raises(ValueError, match="num_labels"):
        WavLMConfig(num_labels=bad)


# ------------------------------------------------------------------------------------------------ dtype alias
def test_torch_dtype_alias(tmp_path):
    import torch

    assert WavLMConfig(torch_dtype="bfloat16").dtype == "bfloat16"
    assert WavLMConfig(torch_dtype=torch.float16).dtype == "float16"
    assert WavLMConfig(dtype=torch.bfloat16).torch_dtype == "bfloat16"
    config = WavLMConfig()
    config.torch_dtype = "float16"
    assert config.dtype == "float16" and "torch_dtype" not in config.to_dict()
    assert config.to_dict()["dtype"] == "float16"
    # a 4.x config.json spells it torch_dtype; transformers 5.23 reads it as dtype, and so do we
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "wavlm", "torch_dtype": "bfloat16"}))
    assert WavLMConfig.from_pretrained(tmp_path).dtype == "bfloat16"
    assert str(tf.WavLMConfig.from_pretrained(tmp_path).dtype) == "torch.bfloat16"
    WavLMConfig(dtype="float16").save_pretrained(tmp_path / "ours")
    assert str(tf.WavLMConfig.from_pretrained(tmp_path / "ours").dtype) == "torch.float16"


# ---------------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("kwargs, field", [
    ({"conv_dim": (8, 8, 8), "conv_kernel": (3, 3), "conv_stride": (2, 2, 2)}, "conv_kernel"),
    ({"conv_dim": (8, 8), "conv_kernel": (3, 3), "conv_stride": (2, 2, 2)}, "conv_stride"),
    ({"conv_dim": (8,), "conv_kernel": (3, 3), "conv_stride": (2, 2)}, "conv_dim"),
    ({"tdnn_dim": (8, 8), "tdnn_kernel": (3, 3, 1), "tdnn_dilation": (1, 2, 1)}, "tdnn_dim"),
    ({"tdnn_dim": (8, 8, 8), "tdnn_kernel": (3, 3, 1), "tdnn_dilation": (1, 2)}, "tdnn_dilation"),
    ({"hidden_size": 30, "num_attention_heads": 4, "num_conv_pos_embedding_groups": 2}, "num_attention_heads"),
    ({"hidden_dropout": -0.1}, "hidden_dropout"),
    ({"attention_dropout": 1.5}, "attention_dropout"),
    ({"activation_dropout": -1}, "activation_dropout"),
    ({"feat_proj_dropout": 2.0}, "feat_proj_dropout"),
    ({"final_dropout": -0.5}, "final_dropout"),
    ({"layerdrop": 1.01}, "layerdrop"),
    ({"mask_time_prob": 1.2}, "mask_time_prob"),
    ({"mask_feature_prob": -0.2}, "mask_feature_prob"),
    ({"feat_extract_norm": "batch"}, "feat_extract_norm"),
    ({"hidden_act": "not_an_activation"}, "hidden_act"),
    ({"feat_extract_activation": "softplusplus"}, "feat_extract_activation"),
    ({"ctc_loss_reduction": "average"}, "ctc_loss_reduction"),
    ({"hidden_size": 0}, "hidden_size"),
    ({"num_hidden_layers": -1}, "num_hidden_layers"),
])
def test_invalid_values_raise_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        WavLMConfig(**kwargs)


def test_hidden_not_divisible_by_heads_names_both():
    with pytest.raises(ValueError) as info:
        WavLMConfig(hidden_size=30, num_attention_heads=4, num_conv_pos_embedding_groups=2)
    assert "hidden_size" in str(info.value) and "num_attention_heads" in str(info.value)


def test_probability_bounds_are_inclusive():
    config = WavLMConfig(hidden_dropout=0.0, attention_dropout=1.0, mask_time_prob=0.0, layerdrop=1.0)
    assert config.attention_dropout == 1.0


def test_override_in_from_pretrained_is_validated(tmp_path):
    WavLMConfig().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="hidden_dropout"):
        WavLMConfig.from_pretrained(tmp_path, hidden_dropout=3.0)


@pytest.mark.parametrize("model_type", ["wav2vec2", "hubert"])
def test_other_model_type_is_refused(tmp_path, model_type):
    data = {**WavLMConfig().to_dict(), "model_type": model_type}
    with pytest.raises(ValueError, match="model_type"):
        WavLMConfig.from_dict(data)
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="model_type"):
        WavLMConfig.from_json_file(tmp_path / "config.json")
    with pytest.raises(ValueError, match="model_type"):
        WavLMConfig.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="model_type"):
        WavLMConfig(model_type=model_type)


def test_invalid_json_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"hidden_size": 32,')
    with pytest.raises(ValueError, match="not valid JSON") as info:
        WavLMConfig.from_json_file(path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="not valid JSON"):
        WavLMConfig.from_pretrained(tmp_path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        WavLMConfig.from_json_file(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        WavLMConfig.from_json_file(tmp_path / "nope.json")
    assert str(tmp_path / "nope.json") in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError) as info:
        WavLMConfig.from_pretrained(tmp_path / "empty")
    assert "config.json" in str(info.value) and str(tmp_path / "empty") in str(info.value)


def test_copy_and_equality():
    config = WavLMConfig(**_custom_kwargs())
    changed = config.copy(hidden_dropout=0.5)
    assert changed.hidden_dropout == 0.5 and config.hidden_dropout == 0.0
    assert changed != config
    assert changed.copy(hidden_dropout=0.0) == config


# ------------------------------------------------------------------------------- from_pretrained keywords
def test_from_pretrained_keywords(tmp_path):
    WavLMConfig(**tiny_kwargs()).save_pretrained(tmp_path)
    with pytest.raises(TypeError, match=r"hiden_size -> hidden_size"):
        WavLMConfig.from_pretrained(tmp_path, hiden_size=64)
    config, unused = WavLMConfig.from_pretrained(tmp_path, return_unused_kwargs=True, hiden_size=64, layerdrop=0.5,
                                                 revision="main", trust_remote_code=True)
    assert unused == {"hiden_size": 64} and config.layerdrop == 0.5 and not hasattr(config, "hiden_size")
    assert "hiden_size" not in config.to_dict() and "revision" not in config.to_dict()
    assert WavLMConfig.from_pretrained(tmp_path, dtype="auto").dtype is None  # "auto" is not a dtype value
    assert WavLMConfig.from_pretrained(tmp_path, torch_dtype="bfloat16").dtype == "bfloat16"
    with pytest.raises(TypeError, match="foo"):
        WavLMConfig.from_dict({}, foo=1)
    assert WavLMConfig.from_dict({}, foo=1, return_unused_kwargs=True)[1] == {"foo": 1}


def test_name_or_path_is_not_written(tmp_path):
    config = WavLMConfig(name_or_path="somewhere")
    assert config.name_or_path == "somewhere"
    config.name_or_path = tmp_path
    assert config.name_or_path == str(tmp_path)
    assert "name_or_path" not in config.to_dict() and "_name_or_path" not in config.to_dict()
    assert config.copy().to_dict() == config.to_dict()


def test_deleting_keys():
    config = WavLMConfig(gradient_checkpointing=True)
    assert config.to_dict()["gradient_checkpointing"] is True
    del config.gradient_checkpointing
    assert "gradient_checkpointing" not in config.to_dict() and not hasattr(config, "gradient_checkpointing")
    with pytest.raises(AttributeError, match="hidden_size"):
        del config.hidden_size
