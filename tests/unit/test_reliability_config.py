"""Issue 14, the configuration: every field of config.json is type-checked and named when wrong (a string "false"
built a pre-LN model from post-LN weights), labels are checked at load time, and every config.json transformers
writes still loads. Plus a property-based fuzz of the config loader: any file gives a config or a ConfigError."""
from __future__ import annotations

import dataclasses
import json
import math
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import tiny_kwargs
from wavlm import WavLMConfig
from wavlm.config import ConfigError

# 60 examples keep the unit suite fast; WAVLM_FUZZ_EXAMPLES=2000 searches longer
FUZZ = settings(max_examples=int(os.environ.get("WAVLM_FUZZ_EXAMPLES", 60)), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def write_config(tmp_path, **changes):
    data = {**WavLMConfig(**tiny_kwargs()).to_dict(), **changes}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return path


# ---------------------------------------------------------------------------------------- item 6: field types
@pytest.mark.parametrize("field, value, words", [
    ("do_stable_layer_norm", "false", "do_stable_layer_norm must be true or false, got 'false' (str)"),
    ("conv_bias", 1, "conv_bias must be true or false, got 1 (int)"),
    ("apply_spec_augment", None, "apply_spec_augment must be true or false, got None (null)"),
    ("conv_dim", None, "conv_dim must be a list of integers, got None (null)"),
    ("conv_dim", ["512", "512", "512"], "conv_dim must be a list of integers, but it holds '512' (str)"),
    ("conv_stride", "5,4,16", "conv_stride must be a list of integers, got '5,4,16' (str)"),
    ("tdnn_dim", [8, True, 12], "tdnn_dim must be a list of integers, but it holds True (bool)"),
    ("hidden_size", "32", "hidden_size must be an integer, got '32' (str)"),
    ("hidden_size", 32.5, "hidden_size must be an integer, got 32.5 (float)"),
    ("num_hidden_layers", None, "num_hidden_layers must be an integer, got None (null)"),
    ("layer_norm_eps", "1e-5", "layer_norm_eps must be a number, got '1e-5' (str)"),
    ("layer_norm_eps", float("nan"), "layer_norm_eps must be a finite number, got nan"),
    ("hidden_dropout", float("inf"), "hidden_dropout must be a finite number, got inf"),
    ("hidden_act", 5, "hidden_act must be a string, got 5 (int)"),
    ("feat_extract_norm", ["group"], "feat_extract_norm must be a string"),
    ("pad_token_id", True, "pad_token_id must be an integer or null, got True (bool)"),
    ("eos_token_id", "2", "eos_token_id must be an integer or a list of integers or null"),
    ("architectures", [1], "architectures must be a list of strings"),
    ("dtype", "float33", "dtype 'float33' is not a floating-point torch dtype"),
    ("dtype", 16, "dtype must be a string or null, got 16 (int)"),
    ("problem_type", "classification", "problem_type 'classification' is not one of"),
    ("id2label", ["a", "b", "c"], "id2label must be a mapping"),
    ("tdnn_dim", [], "tdnn_dim, tdnn_kernel and tdnn_dilation must have one entry per TDNN layer"),
    ("chunk_size_feed_forward", -1, "chunk_size_feed_forward must be >= 0"),
])
def test_a_field_of_the_wrong_type_is_named_with_the_file(tmp_path, field, value, words):
    path = write_config(tmp_path, **{field: value})
    with pytest.raises(ConfigError) as info:
        WavLMConfig.from_pretrained(tmp_path)
    assert str(path) in str(info.value) and words in str(info.value)
    assert isinstance(info.value, ValueError)  # what transformers users catch


def test_string_false_no_longer_builds_a_pre_ln_model(tmp_path):
    write_config(tmp_path, do_stable_layer_norm="false")
    with pytest.raises(ConfigError, match="do_stable_layer_norm"):
        WavLMConfig.from_json_file(tmp_path / "config.json")


def _wrong_value(field: dataclasses.Field):
    """A JSON value of the wrong type for a field's annotation."""
    kind = field.type.replace(" | None", "")
    if kind.startswith("dict") or kind == "list[str]":
        return 5
    if kind == "str":
        return ["x"]
    return {"not": "this"}


# transformers_version in a file is dropped on reading (save_pretrained writes the version it follows)
@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(WavLMConfig) if f.name != "transformers_version"])
def test_every_field_refuses_a_value_of_the_wrong_type_naming_it(tmp_path, field):
    f = next(f for f in dataclasses.fields(WavLMConfig) if f.name == field)
    write_config(tmp_path, **{field: _wrong_value(f)})
    with pytest.raises(ConfigError, match=rf"\b{field}\b"):
        WavLMConfig.from_pretrained(tmp_path)
    with pytest.raises(ConfigError, match=rf"\b{field}\b"):  # keyword arguments too
        WavLMConfig(**{**tiny_kwargs(), field: _wrong_value(f)})


def test_overrides_and_copies_are_type_checked(tmp_path):
    write_config(tmp_path)
    with pytest.raises(ConfigError, match="hidden_size must be an integer"):
        WavLMConfig.from_pretrained(tmp_path, hidden_size="64")
    with pytest.raises(ConfigError, match="conv_bias"):
        WavLMConfig(**tiny_kwargs()).copy(conv_bias="yes")


def test_values_are_normalised_to_the_field_types():
    import numpy as np

    config = WavLMConfig(**tiny_kwargs(hidden_size=np.int64(32), layer_norm_eps=1, conv_dim=[16, 24, 20],
                                       do_stable_layer_norm=np.bool_(False), architectures="WavLMForCTC"))
    assert type(config.hidden_size) is int and config.layer_norm_eps == 1.0 and type(config.layer_norm_eps) is float
    assert config.conv_dim == (16, 24, 20) and config.do_stable_layer_norm is False
    assert config.architectures == ["WavLMForCTC"]  # one class name as a string, as transformers accepts
    assert WavLMConfig(output_hidden_states=None, return_dict=None).return_dict is True  # None: the default
    assert WavLMConfig(eos_token_id=[2, 3]).eos_token_id == [2, 3]


# --------------------------------------------------------------------- configs transformers writes still load
tf = pytest.importorskip("transformers")

# every argument of transformers' WavLMConfig set away from its default (checked against its signature below)
ALL_SET = dict(
    architectures=["WavLMForCTC"], output_hidden_states=True, return_dict=False, dtype="bfloat16",
    chunk_size_feed_forward=2, is_encoder_decoder=False, id2label={0: "yes", 1: "no", 2: "maybe"},
    label2id={"yes": 0, "no": 1, "maybe": 2}, problem_type="single_label_classification", vocab_size=40,
    hidden_size=48, num_hidden_layers=3, num_attention_heads=6, intermediate_size=50, hidden_act="relu",
    hidden_dropout=0.2, activation_dropout=0.3, attention_dropout=0.25, feat_proj_dropout=0.15, final_dropout=0.35,
    layerdrop=0.05, initializer_range=0.03, layer_norm_eps=1e-6, feat_extract_norm="layer",
    feat_extract_activation="relu", conv_dim=(16, 24), conv_stride=(5, 4), conv_kernel=(10, 3), conv_bias=True,
    num_conv_pos_embeddings=17, num_conv_pos_embedding_groups=3, num_buckets=64, max_bucket_distance=100,
    do_stable_layer_norm=True, apply_spec_augment=False, mask_time_prob=0.1, mask_time_length=4,
    mask_time_min_masks=1, mask_feature_prob=0.2, mask_feature_length=3, num_codevectors_per_group=100,
    num_codevector_groups=3, contrastive_logits_temperature=0.2, num_negatives=50, codevector_dim=128,
    proj_codevector_dim=64, diversity_loss_weight=0.2, ctc_loss_reduction="sum", ctc_zero_infinity=True,
    use_weighted_layer_sum=True, classifier_proj_size=12, tdnn_dim=(8, 9), tdnn_kernel=(3, 1), tdnn_dilation=(2, 1),
    xvector_output_dim=7, num_ctc_classes=30, pad_token_id=3, bos_token_id=4, eos_token_id=5, add_adapter=True,
    adapter_kernel_size=5, adapter_stride=3, num_adapter_layers=2, output_hidden_size=24,
)


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value).replace("torch.", "") if type(value).__module__ == "torch" else value


def _assert_same(ours: WavLMConfig, theirs) -> None:
    for name in ALL_SET:
        assert _plain(getattr(ours, name)) == _plain(getattr(theirs, name)), name


def test_all_set_covers_every_transformers_argument():
    import inspect

    names = set(inspect.signature(tf.WavLMConfig.__init__).parameters) - {"self", "transformers_version", "kwargs"}
    assert names == set(ALL_SET), names ^ set(ALL_SET)
    defaults = WavLMConfig().to_dict()
    assert [n for n in ALL_SET if _plain(ALL_SET[n]) == _plain(defaults[n]) and n != "is_encoder_decoder"] == []


@pytest.mark.parametrize("changes", [
    {}, {"pad_token_id": None, "bos_token_id": None, "eos_token_id": None, "output_hidden_size": None,
         "problem_type": None, "architectures": None, "dtype": None, "id2label": None, "label2id": None},
    {"eos_token_id": [5, 6], "architectures": "WavLMForCTC", "output_hidden_states": None, "return_dict": None},
    {"mask_time_prob": 0, "layerdrop": 1, "id2label": {0: 1, 1: 2}},  # ints where floats go, numbers as labels
])
def test_transformers_config_with_every_field_set_round_trips(tmp_path, changes):
    theirs = tf.WavLMConfig(**{**ALL_SET, **changes})
    theirs.save_pretrained(tmp_path / "theirs")
    ours = WavLMConfig.from_pretrained(tmp_path / "theirs")
    expected = {**ALL_SET, **{k: v for k, v in changes.items() if v is not None}}
    for name, value in expected.items():
        if name in ("architectures", "id2label", "label2id", "output_hidden_states", "return_dict"):
            continue
        assert _plain(getattr(ours, name)) == _plain(getattr(theirs, name)), name
    ours.save_pretrained(tmp_path / "ours")
    again = tf.WavLMConfig.from_pretrained(tmp_path / "ours")
    assert WavLMConfig.from_pretrained(tmp_path / "ours") == ours
    for name in ALL_SET:
        if name not in ("architectures", "output_hidden_states", "return_dict", "label2id", "id2label"):
            assert _plain(getattr(again, name)) == _plain(getattr(theirs, name)), name
    assert again.num_labels == ours.num_labels


def test_transformers_default_config_round_trips(tmp_path):
    tf.WavLMConfig().save_pretrained(tmp_path / "theirs")
    ours = WavLMConfig.from_pretrained(tmp_path / "theirs")
    assert ours == WavLMConfig()
    ours.save_pretrained(tmp_path / "ours")
    again = tf.WavLMConfig.from_pretrained(tmp_path / "ours").to_dict()
    wavlm_only = {"mask_feature_min_masks": 0, "mask_padding_in_group_norm": False, "xvector_exact_pooling": False}
    assert {k: again.pop(k) for k in wavlm_only} == wavlm_only
    assert again == tf.WavLMConfig().to_dict()


def test_unknown_keys_stay_and_names_of_methods_are_refused(tmp_path):
    write_config(tmp_path, future_field={"a": [1, 2]}, self=3)
    config = WavLMConfig.from_pretrained(tmp_path)
    assert config.future_field == {"a": [1, 2]} and config.to_dict()["self"] == 3
    write_config(tmp_path, receptive_field=999, head_dim=1)  # derived values: recomputed, not stored
    config = WavLMConfig.from_pretrained(tmp_path)
    assert config.receptive_field == 400 and "head_dim" not in config.to_dict()
    for name in ("to_dict", "validate", "_extra"):
        write_config(tmp_path, **{name: 1})
        with pytest.raises(ConfigError, match=rf"config key '{name}' is the name of a WavLMConfig attribute"):
            WavLMConfig.from_pretrained(tmp_path)


# ---------------------------------------------------------------------------------- item 14: id2label/label2id
@pytest.mark.parametrize("changes, words", [
    ({"id2label": {"0": "a", "2": "b"}, "label2id": None},
     r"id2label must have the keys 0..1 .*num_labels=2\), got keys \[0, 2\]; missing \[1\]"),
    ({"id2label": {"zero": "a", "1": "b"}}, "id2label keys must be class ids 0, 1, ..., got the key 'zero'"),
    ({"id2label": {"0": "a", "1": None}}, r"id2label\[1\] must be a label name"),
    ({"id2label": {"0": "a", "1": "b"}, "label2id": {"a": 0, "b": 5}},
     r"label2id maps to id\(s\) \[5\], but the ids are 0..1"),
    ({"id2label": {"0": "a", "1": "b"}, "label2id": {"a": 0, "b": "one"}}, r"label2id\['b'\] must be a class id"),
    ({"id2label": {"0": "a", "1": "b"}, "label2id": {"a": 1, "b": 1}}, r"label2id gives id\(s\) \[1\] to more"),
])
def test_inconsistent_labels_are_refused_at_load_time(tmp_path, changes, words):
    path = write_config(tmp_path, **changes)
    with pytest.raises(ConfigError, match=words) as info:
        WavLMConfig.from_pretrained(tmp_path)
    assert str(path) in str(info.value)


def test_a_gap_in_id2label_set_later_is_caught_by_the_model():
    import wavlm

    config = WavLMConfig(**tiny_kwargs())
    config.id2label = {0: "a", 2: "b", 3: "c"}
    with pytest.raises(ConfigError, match="missing"):
        wavlm.WavLMForSequenceClassification(config)


@pytest.mark.parametrize("bad", [True, "3", 3.0])
def test_num_labels_must_be_an_integer(bad):
    with pytest.raises(ConfigError, match="num_labels must be a positive integer"):
        WavLMConfig(num_labels=bad)


# ------------------------------------------------------------------------------------------------------- fuzz
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)
FIELDS = [f.name for f in dataclasses.fields(WavLMConfig)] + ["num_labels", "model_type", "torch_dtype",
                                                               "_name_or_path", "num_feat_extract_layers"]


def _valid_or_config_error(load) -> None:
    try:
        config = load()
    except ConfigError:
        return
    assert WavLMConfig.from_dict(config.to_dict()) == config  # what loads also round-trips
    assert math.prod(config.conv_stride) == config.frame_stride


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), JSON, max_size=6))
def test_fuzz_config_json_values(tmp_path, changes):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**WavLMConfig(**tiny_kwargs()).to_dict(), **changes}))
    _valid_or_config_error(lambda: WavLMConfig.from_json_file(path))


@FUZZ
@given(data=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
def test_fuzz_config_json_bytes(tmp_path, data):
    path = tmp_path / "config.json"
    path.write_bytes(data)
    _valid_or_config_error(lambda: WavLMConfig.from_pretrained(tmp_path))
