"""Issue 14, the files beside a model and the audio: very loud audio normalises correctly or is refused by name,
broken preprocessor_config.json / vocab.json / tokenizer_config.json files give a ConfigError naming the file and
the problem, a vocab.json that does not cover the model's outputs is caught, and property-based fuzz tests of the
vocabulary and the audio loader: any input gives a result or one of our named errors."""
from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_vocab, tiny_kwargs
from wavlm import AudioLoadError, WavLMConfig, WavLMCTCTokenizer, WavLMFeatureExtractor, WavLMProcessor, load_audio
from wavlm.auto import AutoFeatureExtractor, AutoProcessor, AutoTokenizer
from wavlm.config import ConfigError
from wavlm.tokenizer import VocabularyMismatchError, check_vocab_matches

# 60 examples keep the unit suite fast; WAVLM_FUZZ_EXAMPLES=2000 searches longer
FUZZ = settings(max_examples=int(os.environ.get("WAVLM_FUZZ_EXAMPLES", 60)), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
RNG = np.random.default_rng(0)
SPEECH = (RNG.standard_normal(16000) * 0.1).astype(np.float32)


# --------------------------------------------------------------------------------- item 4: very loud audio
@pytest.mark.parametrize("peak", [5e18, 2e19, 1e30, 1e37])
def test_very_loud_audio_normalises_like_quiet_audio(peak):
    """The float32 variance overflowed (samples of std 0.1 * 5e18, 16000 of them) and normalised to all zeros."""
    extractor = WavLMFeatureExtractor(return_attention_mask=True)
    expected = extractor(SPEECH, sampling_rate=16000).input_values[0]
    loud = (SPEECH.astype(np.float64) * peak).astype(np.float32)
    out = extractor(loud, sampling_rate=16000).input_values[0]
    assert out.dtype == np.float32 and np.abs(out - expected).max() < 1e-4  # float64 is the more exact of the two
    padded = extractor([loud, loud[:8000]], sampling_rate=16000, padding=True)
    quiet = extractor(SPEECH[:8000], sampling_rate=16000).input_values[0]
    assert np.abs(padded.input_values[1][:8000] - quiet).max() < 1e-4


def test_samples_beyond_float32_are_refused_by_name():
    with pytest.raises(ValueError, match=r"utterance 1 has samples up to \|x\| = 1e\+39, beyond the range of float32"):
        WavLMFeatureExtractor()([SPEECH, np.full(1000, 1e39)], sampling_rate=16000)
    with pytest.raises(ValueError, match="utterance 0 contains NaN or infinite samples"):
        WavLMFeatureExtractor()(np.full(1000, np.inf), sampling_rate=16000)


def _wav_bytes(samples: np.ndarray, rate: int, subtype: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def test_float64_wav_beyond_float32_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "loud.wav"
    path.write_bytes(_wav_bytes(np.stack([SPEECH.astype(np.float64) * 1e40, SPEECH], axis=1), 16000, "DOUBLE"))
    with pytest.raises(AudioLoadError, match=rf"{path}: samples reach \|x\| = .*e\+3\d, beyond the range of float32"):
        load_audio(path, channel=0)


def test_loud_float_wavs_load_mix_and_resample_exactly(tmp_path):
    """3e38 float32 samples: the channel mean and soxr's float32 filter overflowed to inf/NaN."""
    quiet = np.stack([SPEECH[:8000], -SPEECH[:8000]], axis=1) * 0.5
    wav, _ = load_audio(_wav_bytes(quiet, 8000, "FLOAT"))
    scale = 3e38 / float(np.abs(quiet).max())
    loud_samples = (quiet.astype(np.float64) * scale).astype(np.float32)
    loud, _ = load_audio(_wav_bytes(np.stack([loud_samples[:, 0], loud_samples[:, 0]], axis=1), 16000, "FLOAT"))
    assert np.isfinite(loud).all() and np.abs(loud).max() == pytest.approx(3e38, rel=1e-6)
    resampled, rate = load_audio(_wav_bytes(loud_samples * np.float32(0.5), 8000, "FLOAT"), channel=0)
    reference, _ = load_audio(_wav_bytes(quiet * 0.5, 8000, "FLOAT"), channel=0)
    assert rate == 16000 and np.isfinite(resampled).all()
    np.testing.assert_allclose(resampled.astype(np.float64) / scale, reference, atol=1e-6)
    assert np.isfinite(wav).all()


def test_resampling_that_leaves_float32_is_refused():
    samples = np.full(8000, 3.3e38, np.float32)
    samples[::2] *= -1  # the highest frequency at the limit: the filter's overshoot passes 3.4e38
    with pytest.raises(AudioLoadError, match=r"<bytes>: samples after resampling reach"):
        load_audio(_wav_bytes(samples, 8000, "FLOAT"))


# ------------------------------------------------------------------------ item 17: preprocessor_config.json
@pytest.mark.parametrize("content, words", [
    ("{not json", "is not valid JSON"),
    (b"\xff\xfe{}", "is not UTF-8 text"),
    ("[1, 2]", r"must hold a JSON object \(\{...\}\), found list"),
    ('{"feature_size": 2}', "feature_size must be 1"),
    ('{"do_normalize": "false"}', "do_normalize must be true or false, got 'false'"),
    ('{"return_attention_mask": 1}', "return_attention_mask must be true or false"),
    ('{"sampling_rate": "16k"}', "sampling_rate must be a positive integer, got '16k'"),
    ('{"sampling_rate": 0}', "sampling_rate must be a positive integer, got 0"),
    ('{"padding_value": NaN}', "padding_value must be a finite number"),
    ('{"padding_side": "top"}', "padding_side must be 'right' or 'left'"),
])
def test_broken_preprocessor_config_is_named(tmp_path, content, words):
    path = tmp_path / "preprocessor_config.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    for load in (WavLMFeatureExtractor.from_pretrained, AutoFeatureExtractor.from_pretrained):
        with pytest.raises(ConfigError, match=words) as info:
            load(tmp_path)
        assert str(path) in str(info.value)
    with pytest.raises(ConfigError, match=words):
        WavLMFeatureExtractor.from_json_file(path)


def test_processor_config_with_a_bad_entry_is_named(tmp_path):
    (tmp_path / "processor_config.json").write_text('{"feature_extractor": [1]}')
    with pytest.raises(ConfigError, match="processor_config.json: its feature_extractor entry must be a JSON object"):
        WavLMFeatureExtractor.from_pretrained(tmp_path)


def test_settings_keep_their_types_and_null_means_the_default(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(
        '{"sampling_rate": 16000.0, "return_attention_mask": null, "do_normalize": null, "padding_value": 0}')
    extractor = WavLMFeatureExtractor.from_pretrained(tmp_path)
    assert extractor.sampling_rate == 16000 and type(extractor.sampling_rate) is int
    assert extractor.return_attention_mask is False and extractor.do_normalize is True
    with pytest.raises(ConfigError, match="do_normalize"):
        WavLMFeatureExtractor(do_normalize="no")


# ------------------------------------------------------------------------------------ item 17: vocab.json
@pytest.mark.parametrize("content, words", [
    ('["a", "b"]', r"must hold a JSON object \(\{...\}\), found list"),
    ("{'a': 1}", "is not valid JSON"),
    ("{}", "holds no tokens"),
    ('{"a": 0, "b": "1"}', r"gives the token 'b' the id '1' \(str\); ids must be integers"),
    ('{"a": 0, "b": 1.0}', "gives the token 'b' the id 1.0"),
    ('{"a": 0, "b": true}', "gives the token 'b' the id True"),
    ('{"a": 0, "b": -2}', "the negative id -2"),
    ('{"a": 0, "b": 0}', "gives the id 0 to both 'a' and 'b'"),
    ('{"a": 0, "en": {"b": 1}}', r"mixes a flat vocabulary \('a': id\) and languages"),
    ('{"en": {"a": 0}, "fr": {}}', "language 'fr', holds no tokens"),
])
def test_broken_vocab_json_is_named(tmp_path, content, words):
    path = tmp_path / "vocab.json"
    path.write_text(content)
    for load in (WavLMCTCTokenizer.from_pretrained, AutoTokenizer.from_pretrained):
        with pytest.raises(ConfigError, match=words) as info:
            load(tmp_path)
        assert str(path) in str(info.value)
    with pytest.raises(ConfigError, match=words):
        WavLMCTCTokenizer(vocab_file=path)


@pytest.mark.parametrize("config, words", [
    ('{"do_lower_case": "false"}', "do_lower_case must be true or false"),
    ('{"model_max_length": "big"}', "model_max_length must be a non-negative number"),
    ('{"pad_token": 5}', "pad_token must be a token"),
    ('{"added_tokens_decoder": [1]}', "added_tokens_decoder must map ids to tokens"),
    ('{"added_tokens_decoder": {"x": {"content": "<x>"}}}', "keys must be token ids"),
    ('{"added_tokens_decoder": {"40": {"special": true}}}', "with a string 'content'"),
    ('{"extra_special_tokens": "<x>"}', "extra_special_tokens must be a list of tokens"),
    ('{"padding_side": "top"}', "padding_side must be 'right' or 'left'"),
    ("[]", "must hold a JSON object"),
])
def test_broken_tokenizer_config_is_named(tmp_path, vocab_file, config, words):
    (tmp_path / "tokenizer_config.json").write_text(config)
    with pytest.raises(ConfigError, match=words) as info:
        WavLMCTCTokenizer.from_pretrained(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_broken_added_tokens_json_is_named(tmp_path, vocab_file):
    (tmp_path / "added_tokens.json").write_text('{"<x>": "40"}')
    with pytest.raises(ConfigError, match=r"added_tokens.json gives the token '<x>' the id '40'"):
        WavLMCTCTokenizer.from_pretrained(tmp_path)


def test_infinite_model_max_length_means_no_limit(tmp_path, vocab_file):
    (tmp_path / "tokenizer_config.json").write_text('{"model_max_length": Infinity}')
    tokenizer = WavLMCTCTokenizer.from_pretrained(tmp_path)
    assert tokenizer.model_max_length == WavLMCTCTokenizer(vocab_file=vocab_file).model_max_length
    assert tokenizer("ABC", truncation=True).input_ids == tokenizer.convert_tokens_to_ids(list("ABC"))


# ------------------------------------------------------------------------- item 5: vocabulary fits the model
def _ctc_dir(tmp_path, vocab: dict[str, int], **config):
    import wavlm

    model = wavlm.WavLMForCTC(WavLMConfig(**tiny_kwargs(**{"vocab_size": 32, **config})))
    model.save_pretrained(tmp_path)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    WavLMFeatureExtractor().save_pretrained(tmp_path)
    return model.config


def test_check_vocab_matches_names_the_ids_the_tokenizer_lacks(tmp_path):
    vocab = make_vocab()  # 32 tokens, ids 0..31
    config = WavLMConfig(vocab_size=32)
    check_vocab_matches(config, WavLMCTCTokenizer(vocab=vocab))
    small = {k: v for k, v in vocab.items() if v < 20}
    with pytest.raises(VocabularyMismatchError, match=r"no token for 12 of the model's 32 output ids \(20, 21"):
        check_vocab_matches(config, WavLMCTCTokenizer(vocab=small))
    with pytest.raises(VocabularyMismatchError, match=r"pad token '<pad>' has id 0, but the model's CTC blank"):
        check_vocab_matches(WavLMConfig(vocab_size=32, pad_token_id=4), WavLMCTCTokenizer(vocab=vocab))
    assert issubclass(VocabularyMismatchError, ValueError)


def test_processor_of_a_ctc_directory_checks_its_vocabulary(tmp_path):
    vocab = make_vocab()
    _ctc_dir(tmp_path / "good", vocab)
    assert WavLMProcessor.from_pretrained(tmp_path / "good").tokenizer.vocab_size == 32
    _ctc_dir(tmp_path / "small", {k: v for k, v in vocab.items() if v < 20})
    for load in (WavLMProcessor.from_pretrained, AutoProcessor.from_pretrained):
        with pytest.raises(VocabularyMismatchError, match=r"tokenizer in .*small has no token for 12"):
            load(tmp_path / "small")


def test_processor_without_a_ctc_model_is_not_checked(tmp_path):
    small = {k: v for k, v in make_vocab().items() if v < 20}
    (tmp_path / "vocab.json").write_text(json.dumps(small))
    WavLMFeatureExtractor().save_pretrained(tmp_path)
    assert WavLMProcessor.from_pretrained(tmp_path).tokenizer.vocab_size == 20  # no config.json
    WavLMConfig(vocab_size=32, architectures=["WavLMModel"]).save_pretrained(tmp_path)
    assert WavLMProcessor.from_pretrained(tmp_path).tokenizer.vocab_size == 20  # a backbone: vocab_size unused


# ------------------------------------------------------------------------------------------------------ fuzz
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**40) | st.floats(allow_nan=True) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=5),
    max_leaves=15)
TOKENS = st.dictionaries(st.text(max_size=3), st.integers(-2, 40) | JSON, min_size=0, max_size=8)


@FUZZ
@given(vocab=TOKENS | st.dictionaries(st.text(max_size=3), TOKENS, max_size=3) | JSON,
       text=st.text(max_size=12), ids=st.lists(st.integers(0, 45), max_size=10))
def test_fuzz_vocab_json(tmp_path, vocab, text, ids):
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    try:
        tokenizer = WavLMCTCTokenizer.from_pretrained(tmp_path, target_lang=next(iter(vocab), None)
                                                      if isinstance(vocab, dict) and vocab and all(
                                                          isinstance(v, dict) for v in vocab.values()) else None)
    except ConfigError:
        return
    encoded = tokenizer(text).input_ids  # a tokenizer that loads also encodes and decodes
    assert all(isinstance(i, int) for i in encoded)
    assert isinstance(tokenizer.decode(ids), str) and isinstance(tokenizer.decode(encoded), str)


@FUZZ
@given(config=st.dictionaries(st.sampled_from(["do_lower_case", "model_max_length", "pad_token", "unk_token",
                                               "word_delimiter_token", "added_tokens_decoder", "padding_side",
                                               "extra_special_tokens", "bos_token", "target_lang"])
                              | st.text(max_size=6), JSON, max_size=4))
def test_fuzz_tokenizer_config_json(tmp_path, vocab_file, config):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    try:
        tokenizer = WavLMCTCTokenizer.from_pretrained(tmp_path)
    except ConfigError:
        return
    assert isinstance(tokenizer.decode(tokenizer("HELLO WORLD").input_ids), str)


def _seed_files() -> list[bytes]:
    """Small valid files of several kinds to mutate: their headers parse, their payloads may not."""
    tone = (np.sin(np.arange(1600) / 5.0) * 0.5).astype(np.float32)
    files = [_wav_bytes(tone, 8000, subtype) for subtype in ("PCM_16", "FLOAT", "DOUBLE", "PCM_U8")]
    files.append(_wav_bytes(np.stack([tone, tone], axis=1), 16000, "PCM_24"))
    buffer = io.BytesIO()
    sf.write(buffer, tone, 16000, format="FLAC", subtype="PCM_16")
    files.append(buffer.getvalue())
    return files


SEEDS = _seed_files()


@st.composite
def audio_bytes(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    action = draw(st.sampled_from(["cut", "append", "flip", "header", "garbage"]))
    if action == "cut":
        del data[draw(st.integers(0, len(data))):]
    elif action == "append":
        data += draw(st.binary(min_size=1, max_size=64))
    elif action == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif action == "header":  # a valid header, garbage after it
        keep = draw(st.integers(0, 64))
        data = data[:keep] + bytearray(draw(st.binary(min_size=0, max_size=256)))
    else:
        data = bytearray(draw(st.binary(max_size=128)))
    return bytes(data)


@FUZZ
@given(data=audio_bytes(), rate=st.sampled_from([16000, None]))
def test_fuzz_audio_loader(data, rate):
    try:
        wav, sampling_rate = load_audio(data, sampling_rate=rate)
    except AudioLoadError:
        return
    assert wav.dtype == np.float32 and wav.ndim == 1 and len(wav) > 0 and sampling_rate > 0


@FUZZ
@given(data=audio_bytes())
def test_fuzz_audio_files_by_path(tmp_path, data):
    path = tmp_path / "clip.wav"
    path.write_bytes(data)
    try:
        load_audio(path)
    except AudioLoadError as e:
        assert str(path) in str(e)


def test_fuzz_seeds_load():
    for data in SEEDS:  # the unmutated seeds are valid files, so the fuzz starts from the decoders' paths
        wav, _ = load_audio(data)
        assert np.isfinite(wav).all()


# ------------------------------------------------------------------------- more of the same: front-end values
def test_decoding_logits_or_a_batch_with_decode_is_named():
    import torch

    tokenizer = WavLMCTCTokenizer(vocab=make_vocab())
    logits = torch.randn(2, 10, 32)
    with pytest.raises(TypeError, match=r"got shape \(2, 10, 32\); for logits decode logits.argmax\(-1\)"):
        tokenizer.batch_decode(logits)
    with pytest.raises(TypeError, match=r"token ids must be integers, got a float32 array of shape \(10, 32\)"):
        tokenizer.decode(logits[0])
    with pytest.raises(TypeError, match="token ids must be integers"):
        tokenizer.batch_decode(logits[..., 0])
    with pytest.raises(TypeError, match="use batch_decode for a batch"):
        tokenizer.decode(logits.argmax(-1))
    with pytest.raises(TypeError, match=r"token ids must be integers, got 5.5"):
        tokenizer.decode([5, 5.5])
    assert tokenizer.batch_decode(logits.argmax(-1)) == [tokenizer.decode(r) for r in logits.argmax(-1)]
    assert tokenizer.decode([7.0, 23]) == tokenizer.decode([7, 23])  # integral floats are ids, as before


@pytest.mark.parametrize("kwargs, words", [
    ({"padding": "max_length", "max_length": -5}, "max_length must be a non-negative integer or None, got -5"),
    ({"truncation": True, "max_length": -5}, "max_length must be a non-negative integer"),
    ({"padding": True, "pad_to_multiple_of": 0}, "pad_to_multiple_of must be a positive integer or None, got 0"),
    ({"padding": True, "max_length": 2.5}, "max_length must be"),
])
def test_lengths_that_would_cut_or_divide_by_zero_are_refused(kwargs, words):
    """A negative max_length with truncation cut samples off the end without a word."""
    with pytest.raises(ValueError, match=words):
        WavLMFeatureExtractor()([SPEECH[:1000], SPEECH[:10]], sampling_rate=16000, **kwargs)
    with pytest.raises(ValueError, match=words):
        WavLMCTCTokenizer(vocab=make_vocab())(["ABC", "A"], **kwargs)


@pytest.mark.parametrize("rate", ["abc", 16000.5, 0, float("nan")])
def test_sampling_rates_that_are_no_rate_or_off_by_a_fraction_are_refused(rate):
    """16000.5 passed as 16000 (int() truncated it); 'abc' gave "invalid literal for int()"."""
    with pytest.raises(ValueError, match="sampling_rate"):
        WavLMFeatureExtractor()(SPEECH, sampling_rate=rate)
    assert WavLMFeatureExtractor()(SPEECH, sampling_rate=16000.0).input_values[0].shape == (16000,)


@pytest.mark.parametrize("rate", ["16k", True, float("inf")])
def test_load_audio_rate_must_be_a_number(rate):
    with pytest.raises(ValueError, match="sampling_rate must be a positive number of Hz or None"):
        load_audio(_wav_bytes(SPEECH, 16000, "PCM_16"), sampling_rate=rate)
