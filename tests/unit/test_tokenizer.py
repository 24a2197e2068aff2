"""CTC tokenizer: encoding rules, CTC decoding (blank-aware repeat collapse), offsets, files, multi-language."""
from __future__ import annotations

import json

import numpy as np
import pytest

from wavlm import Wav2Vec2CTCTokenizer, WavLMCTCTokenizer
from wavlm.tokenizer import labels_with_ignore_index


@pytest.fixture
def tok(vocab_file):
    return WavLMCTCTokenizer(vocab_file)


def ids_of(tok, text):
    return [tok.convert_tokens_to_ids(c) for c in text]


def test_basics(tok, vocab):
    assert Wav2Vec2CTCTokenizer is WavLMCTCTokenizer
    assert tok.pad_token_id == 0 and tok.word_delimiter_token_id == 4 and tok.unk_token_id == 3
    assert tok.vocab_size == len(tok) == len(vocab) and tok.get_vocab() == vocab
    assert tok.convert_ids_to_tokens([0, 5, 999]) == ["<pad>", "E", "<unk>"]
    assert tok.convert_tokens_to_ids(["E", "?"]) == [5, 3]
    enc = tok("HELLO WORLD")
    assert tok.convert_ids_to_tokens(enc.input_ids) == list("HELLO|WORLD") and enc.attention_mask == [1] * 11
    assert tok.tokenize("A <s> B") == ["A", "<s>", "B"]  # multi-char tokens swallow surrounding spaces
    assert tok.encode("a") == [3]


def test_batch_padding_and_labels(tok):
    batch = tok(["HI", "HELLO"], padding=True, return_tensors="np")
    assert batch.input_ids.shape == (2, 5) and batch.input_ids[0, 2:].tolist() == [0, 0, 0]
    labels = labels_with_ignore_index(batch.input_ids, batch.attention_mask)
    assert labels[0].tolist()[2:] == [-100, -100, -100] and labels[1].tolist() == batch.input_ids[1].tolist()
    torch = pytest.importorskip("torch")
    pt = tok(["HI", "HELLO"], padding=True, return_tensors="pt")
    assert labels_with_ignore_index(pt.input_ids, pt.attention_mask).tolist() == labels.tolist()
    assert pt.input_ids.dtype == torch.int64


def test_ctc_decode_collapses_repeats_then_drops_blanks(tok):
    """Documented difference from transformers: blank-separated repeats survive skip_special_tokens."""
    ids = ids_of(tok, "HHE") + [0] + ids_of(tok, "LL") + [0] + ids_of(tok, "LO||") + [0, 7, 3, 1]
    assert tok.decode(ids) == "HELLO A<unk><s>"
    assert tok.decode(ids, skip_special_tokens=True) == "HELLO A"  # transformers gives "HELO A"
    assert tok.decode(ids, group_tokens=False) == "HHELLLO  A<unk><s>"
    assert tok.decode(ids, spaces_between_special_tokens=True) == "H E L L O   A <unk> <s>"
    assert tok.decode(np.array(ids)) == tok.batch_decode([ids])[0]
    assert tok.decode(7) == "A" and tok.decode([]) == ""


def test_offsets_are_frame_indices(tok):
    ids = [0] + ids_of(tok, "HH") + [0] + ids_of(tok, "I|") + [0, 0] + ids_of(tok, "YOU") + [0]
    out = tok.decode(ids, output_char_offsets=True, output_word_offsets=True)
    assert out.text == "HI YOU" and out["text"] == "HI YOU"
    assert out.char_offsets[0] == {"char": "H", "start_offset": 1, "end_offset": 3}
    assert out.word_offsets == [{"word": "HI", "start_offset": 1, "end_offset": 5},
                                {"word": "YOU", "start_offset": 8, "end_offset": 11}]
    skipped = tok.decode(ids + [1], output_word_offsets=True, skip_special_tokens=True)
    assert skipped.word_offsets == out.word_offsets  # still frame indices after skipping <s>
    batch = tok.batch_decode([ids, ids[:4]], output_char_offsets=True)
    assert batch.text == ["HI YOU", "H"] and batch.word_offsets is None and batch.keys() == ["text", "char_offsets"]


def test_lower_case_and_delimiter_char(vocab_file):
    tok = WavLMCTCTokenizer(vocab_file, do_lower_case=True, replace_word_delimiter_char="_")
    ids = tok("Hi World")["input_ids"]
    assert tok.decode(ids) == "hi_world"
    assert [w["word"] for w in tok.decode(ids, output_word_offsets=True).word_offsets] == ["HI", "WORLD"]


def test_save_and_load(tmp_path, tok):
    tok.save_pretrained(tmp_path / "t")
    names = sorted(p.name for p in (tmp_path / "t").iterdir())
    assert names == ["special_tokens_map.json", "tokenizer_config.json", "vocab.json"]
    config = json.loads((tmp_path / "t" / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "Wav2Vec2CTCTokenizer" and config["word_delimiter_token"] == "|"
    loaded = WavLMCTCTokenizer.from_pretrained(tmp_path / "t")
    assert loaded.get_vocab() == tok.get_vocab() and loaded.to_config() == tok.to_config()
    with pytest.raises(OSError, match="vocab.json"):
        (tmp_path / "e").mkdir()
        WavLMCTCTokenizer.from_pretrained(tmp_path / "e")


def test_special_tokens_map_and_added_token_dicts(tmp_path, vocab):
    (tmp_path / "vocab.json").write_text(json.dumps({**vocab, "[PAD]": 32}))
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({"pad_token": {"content": "[PAD]", "lstrip": True}}))
    tok = WavLMCTCTokenizer.from_pretrained(tmp_path)
    assert tok.pad_token == "[PAD]" and tok.pad_token_id == 32
    assert tok.decode([7, 32, 7]) == "AA" and tok.decode([7, 7]) == "A"


def test_missing_specials_get_new_ids(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps({"<pad>": 0, "<unk>": 1, "|": 2, "A": 3}))
    tok = WavLMCTCTokenizer(tmp_path / "vocab.json")
    assert (tok.vocab_size, len(tok), tok.bos_token_id, tok.eos_token_id) == (4, 6, 4, 5)
    tok.save_pretrained(tmp_path / "s")
    assert json.loads((tmp_path / "s" / "added_tokens.json").read_text()) == {"<s>": 4, "</s>": 5}
    assert WavLMCTCTokenizer.from_pretrained(tmp_path / "s").get_vocab() == tok.get_vocab()


def test_multilingual_vocab(tmp_path, vocab):
    nested = {"eng": vocab, "fra": {**vocab, "É": 32}}
    (tmp_path / "vocab.json").write_text(json.dumps(nested))
    with pytest.raises(ValueError, match="needs target_lang.*eng, fra"):
        WavLMCTCTokenizer(tmp_path / "vocab.json")
    with pytest.raises(ValueError, match="no language 'deu'"):
        WavLMCTCTokenizer(tmp_path / "vocab.json", target_lang="deu")
    tok = WavLMCTCTokenizer(tmp_path / "vocab.json", target_lang="fra")
    assert tok("É")["input_ids"] == [32]
    tok.set_target_lang("eng")
    assert tok("É")["input_ids"] == [3]
    tok.save_pretrained(tmp_path / "s")
    assert json.loads((tmp_path / "s" / "vocab.json").read_text()) == nested
    assert WavLMCTCTokenizer.from_pretrained(tmp_path / "s", target_lang="fra")("É")["input_ids"] == [32]


def test_constructor_needs_one_vocab_source(vocab):
    with pytest.raises(ValueError, match="exactly one"):
        WavLMCTCTokenizer()
    assert WavLMCTCTokenizer(vocab=vocab).decode([7]) == "A"


def test_bad_arguments_name_the_problem(tok, vocab):
    with pytest.raises(ValueError, match="truncation must be"):
        tok("HI", truncation="sideways")
    with pytest.raises(ValueError, match="padding must be"):
        tok("HI", padding="everywhere")
    with pytest.raises(ValueError, match="'foo_token' is not a special token name"):
        tok.add_special_tokens({"foo_token": "<f>"})
    with pytest.raises(TypeError, match="a token must be a string"):
        tok.add_tokens([5])
    with pytest.raises(ValueError, match="pad\\(\\) takes a mapping"):
        tok.pad(5)
    with pytest.raises(ValueError, match="needs 'input_ids'"):
        tok.pad({"labels": [[1]]})
    with pytest.raises(ValueError, match="text_pair must be a list of the same length"):
        tok(["HI", "A"], ["B"])
    with pytest.raises(ValueError, match="empty list"):
        tok([])
    with pytest.raises(ValueError, match="pass text or text_target"):
        tok()
    with pytest.raises(ValueError, match="not a multiple of pad_to_multiple_of=4"):
        tok(["HELLO", "A"], padding=True, truncation=True, max_length=5, pad_to_multiple_of=4)
    with pytest.raises(NotImplementedError, match="return_overflowing_tokens"):
        tok("HI", return_overflowing_tokens=True)
    with pytest.raises(ValueError, match="flat"):
        tok.set_target_lang("eng")
    no_pad = WavLMCTCTokenizer(vocab=vocab, pad_token=None)
    with pytest.raises(ValueError, match="needs a pad token"):
        no_pad(["HI", "HELLO"], padding=True)


def test_decode_output_is_a_json_ready_mapping(tok):
    ids = ids_of(tok, "HH") + [0] + ids_of(tok, "I|YOU")
    out = tok.decode(ids, output_word_offsets=True)
    assert list(out) == ["text", "word_offsets"] and "char_offsets" not in out and out[0] == "HI YOU"
    assert json.loads(json.dumps(dict(out)))["word_offsets"][1] == {"word": "YOU", "start_offset": 5,
                                                                   "end_offset": 8}


def test_added_tokens_encode_decode_and_round_trip(tmp_path, tok, vocab):
    assert tok.add_tokens(["xy", "E"]) == 1 and len(tok) == len(vocab) + 1  # "E" is in the vocabulary already
    assert tok("A xy B")["input_ids"] == [7, 4, 32, 4, 24]  # added tokens keep the spaces around them
    assert tok.add_special_tokens({"cls_token": {"content": "[CLS]", "lstrip": True}}) == 1
    assert tok.cls_token_id == 33 and tok("A [CLS]")["input_ids"] == [7, 33]
    assert tok.decode([7, 32, 32, 0, 32, 33]) == "Axyxy[CLS]"
    assert tok.decode([7, 33, 7], skip_special_tokens=True) == "AA"
    tok.pad_token_id = 4
    assert tok.pad_token == "|" and tok.pad({"input_ids": [[5], [5, 6]]})["input_ids"] == [[5, 4], [5, 6]]
    tok.save_pretrained(tmp_path / "t")
    saved = json.loads((tmp_path / "t" / "tokenizer_config.json").read_text())
    assert saved["added_tokens_decoder"]["33"]["lstrip"] is True and saved["pad_token"] == "|"
    loaded = WavLMCTCTokenizer.from_pretrained(tmp_path / "t")
    assert loaded.get_vocab() == tok.get_vocab() and loaded("A [CLS] xy")["input_ids"] == [7, 33, 4, 32]
