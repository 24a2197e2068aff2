"""Character-level CTC tokenizer: text <-> ids through `vocab.json`, and CTC decoding with char/word offsets.

Reads and writes the files of transformers' `Wav2Vec2CTCTokenizer` (vocab.json, tokenizer_config.json,
special_tokens_map.json, added_tokens.json), including nested multi-language vocabularies (`target_lang`).
"""
from __future__ import annotations

import itertools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wavlm.features import BatchFeature, pad_sequences

VOCAB_NAME = "vocab.json"
TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_NAME = "special_tokens_map.json"
ADDED_TOKENS_NAME = "added_tokens.json"
HF_TOKENIZER_CLASS = "Wav2Vec2CTCTokenizer"
_SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token")
# Keys of a transformers tokenizer_config.json that describe transformers' own state, not ours.
_DERIVED_KEYS = {"added_tokens_decoder", "backend", "tokenizer_class", "name_or_path", "special_tokens_map_file",
                 "tokenizer_file", "vocab_file", "additional_special_tokens", "extra_special_tokens"}


@dataclass
class CTCDecoderOutput:
    """Decoded text with optional offsets; offsets are frame indices into the logits (end exclusive).

    `char_offsets`: list of {"char", "start_offset", "end_offset"}; `word_offsets`: list of {"word",
    "start_offset", "end_offset"}. For `batch_decode`, each field is a list over the batch. Offsets are plain
    ints (transformers returns np.int64; values are equal). Index by name (`out["text"]`) or attribute.
    """

    text: str | list[str]
    char_offsets: list | None = None
    word_offsets: list | None = None

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def keys(self) -> list[str]:
        return [k for k in ("text", "char_offsets", "word_offsets") if getattr(self, k) is not None]


def _token_content(value: Any) -> Any:
    # transformers serialises special tokens either as strings or as AddedToken dicts with a "content" field.
    return value.get("content") if isinstance(value, dict) else value


def _ids_list(token_ids: Any) -> list[int]:
    if hasattr(token_ids, "tolist"):  # numpy arrays and torch tensors
        token_ids = token_ids.tolist()
    if isinstance(token_ids, int):
        return [token_ids]
    return [int(i) for i in token_ids]


class WavLMCTCTokenizer:
    """Character CTC tokenizer with the behaviour of transformers' `Wav2Vec2CTCTokenizer`.

    Encoding: spaces become `word_delimiter_token`, each character is one token, vocabulary entries longer than
    one character (`<unk>`, `<s>`, multi-letter units) are matched first and swallow the whitespace around them
    (as transformers' lstrip/rstrip added tokens do), unknown characters map to `unk_token`; no BOS/EOS is
    added. With `do_lower_case` the text is upper-cased before lookup and decoded text is lower-cased.

    Decoding (CTC): merge runs of identical ids (`group_tokens`), drop `pad_token` (the CTC blank), map the
    word delimiter to `replace_word_delimiter_char`, join, strip.

    Known difference: with `skip_special_tokens=True`, transformers removes blanks and special tokens *before*
    merging repeats, so a blank between two identical letters is lost ("HEL<pad>LO" -> "HELO"); we merge first
    and then drop them ("HELLO"), which is the CTC rule, and offsets stay frame indices. Without
    `skip_special_tokens` (the default) both libraries give identical text and offsets.

    Args:
        vocab_file: path to `vocab.json` ({token: id}, or {lang: {token: id}} with `target_lang`).
        vocab: the vocabulary as a dict instead of a file.
        target_lang: language to use from a nested multi-language vocabulary.
    """

    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str | os.PathLike | None = None,
        bos_token: str = "<s>",
        eos_token: str = "</s>",
        unk_token: str = "<unk>",
        pad_token: str = "<pad>",
        word_delimiter_token: str = "|",
        replace_word_delimiter_char: str = " ",
        do_lower_case: bool = False,
        target_lang: str | None = None,
        *,
        vocab: dict[str, Any] | None = None,
        added_tokens: dict[str, int] | None = None,
        additional_special_tokens: list[str] | None = None,
        padding_side: str = "right",
        clean_up_tokenization_spaces: bool = False,
        **kwargs: Any,
    ) -> None:
        if (vocab_file is None) == (vocab is None):
            raise ValueError("pass exactly one of vocab_file (path to vocab.json) and vocab (a dict)")
        if vocab is None:
            vocab = json.loads(Path(vocab_file).read_text(encoding="utf-8"))
        self.vocab: dict[str, Any] = dict(vocab)
        self.bos_token, self.eos_token = _token_content(bos_token), _token_content(eos_token)
        self.unk_token, self.pad_token = _token_content(unk_token), _token_content(pad_token)
        self.word_delimiter_token = _token_content(word_delimiter_token)
        self.replace_word_delimiter_char = replace_word_delimiter_char
        self.do_lower_case = bool(do_lower_case)
        self.additional_special_tokens = [_token_content(t) for t in additional_special_tokens or []]
        self.padding_side = padding_side
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self._extra_added = dict(added_tokens or {})
        self.extra_config: dict[str, Any] = {k: v for k, v in kwargs.items() if k not in _DERIVED_KEYS}
        self.target_lang = None
        self.set_target_lang(target_lang)

    # ------------------------------------------------------------------------------------------ vocab
    @property
    def is_multilingual(self) -> bool:
        return bool(self.vocab) and all(isinstance(v, dict) for v in self.vocab.values())

    def set_target_lang(self, target_lang: str | None) -> None:
        """Select the language of a nested multi-language vocabulary (no-op check for a flat one)."""
        if self.is_multilingual:
            if target_lang is None or target_lang not in self.vocab:
                langs = sorted(self.vocab)
                shown = ", ".join(langs[:20]) + (", ..." if len(langs) > 20 else "")
                what = "needs target_lang" if target_lang is None else f"has no language {target_lang!r}"
                raise ValueError(f"this vocab.json holds {len(langs)} languages and {what}; choose one of: {shown}")
            encoder = {str(k): int(v) for k, v in self.vocab[target_lang].items()}
        else:
            # A flat vocabulary has one language; target_lang is then only a label (as in transformers).
            encoder = {str(k): int(v) for k, v in self.vocab.items()}
        self.target_lang = target_lang
        self.encoder = encoder
        self._base_size = len(encoder)
        # Special tokens missing from the vocabulary get fresh ids after it, as transformers does.
        next_id = max(encoder.values(), default=-1) + 1
        next_id = max(next_id, len(encoder))
        for token, idx in self._extra_added.items():
            if token not in self.encoder:
                self.encoder[token] = int(idx)
        for token in [self.bos_token, self.eos_token, self.unk_token, self.pad_token, self.word_delimiter_token,
                      *self.additional_special_tokens]:
            if token is not None and token not in self.encoder:
                while next_id in self.encoder.values():
                    next_id += 1
                self.encoder[token] = next_id
                next_id += 1
        self.decoder = {v: k for k, v in self.encoder.items()}
        multi = sorted((t for t in self.encoder if len(t) > 1), key=len, reverse=True)
        self._split_re = re.compile("(" + "|".join(re.escape(t) for t in multi) + ")") if multi else None

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        """Tokens that are not in vocab.json (special tokens it lacks), token -> id."""
        base = self.vocab[self.target_lang] if self.is_multilingual else self.vocab
        return {t: i for t, i in self.encoder.items() if t not in base}

    @property
    def vocab_size(self) -> int:
        """Size of the (selected language's) vocab.json, without added tokens."""
        return self._base_size

    def __len__(self) -> int:
        return len(self.encoder)

    def get_vocab(self) -> dict[str, int]:
        """token -> id, added tokens included."""
        return dict(self.encoder)

    def _special_id(self, token: str | None) -> int | None:
        return None if token is None else self.encoder.get(token)

    @property
    def pad_token_id(self) -> int:
        return self._special_id(self.pad_token)

    @property
    def unk_token_id(self) -> int:
        return self._special_id(self.unk_token)

    @property
    def bos_token_id(self) -> int | None:
        return self._special_id(self.bos_token)

    @property
    def eos_token_id(self) -> int | None:
        return self._special_id(self.eos_token)

    @property
    def word_delimiter_token_id(self) -> int | None:
        return self._special_id(self.word_delimiter_token)

    @property
    def all_special_tokens(self) -> list[str]:
        tokens = [self.bos_token, self.eos_token, self.unk_token, self.pad_token, self.word_delimiter_token,
                  *self.additional_special_tokens]
        return list(dict.fromkeys(t for t in tokens if t is not None))

    @property
    def all_special_ids(self) -> list[int]:
        return [self.encoder[t] for t in self.all_special_tokens]

    @property
    def _skipped_tokens(self) -> set[str]:
        # The word delimiter is special but is text (a space), so skip_special_tokens keeps it.
        return {t for t in self.all_special_tokens if t != self.word_delimiter_token}

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> int | list[int]:
        """Token(s) -> id(s); unknown tokens map to `unk_token_id`."""
        if isinstance(tokens, str):
            return self.encoder.get(tokens, self.unk_token_id)
        return [self.encoder.get(t, self.unk_token_id) for t in tokens]

    def convert_ids_to_tokens(self, ids: int | list[int], skip_special_tokens: bool = False) -> str | list[str]:
        """Id(s) -> token(s); ids outside the vocabulary map to `unk_token`."""
        if isinstance(ids, (int, np.integer)):
            return self.decoder.get(int(ids), self.unk_token)
        tokens = [self.decoder.get(i, self.unk_token) for i in _ids_list(ids)]
        if skip_special_tokens:
            tokens = [t for t in tokens if t not in self._skipped_tokens and t != self.pad_token]
        return tokens

    # --------------------------------------------------------------------------------------- encoding
    def tokenize(self, text: str) -> list[str]:
        """Split text into tokens: multi-character vocabulary entries first, then single characters."""
        pieces = self._split_re.split(text) if self._split_re is not None else [text]
        tokens: list[str] = []
        # re.split with one group alternates text, match, text, ...: odd indices are multi-char tokens.
        for i, piece in enumerate(pieces):
            if i % 2:
                tokens.append(piece)
                continue
            if i > 0:
                piece = piece.lstrip()
            if i < len(pieces) - 1:
                piece = piece.rstrip()
            if self.do_lower_case:
                piece = piece.upper()
            tokens.extend(piece.replace(" ", self.word_delimiter_token))
        return tokens

    def encode(self, text: str) -> list[int]:
        """Text -> token ids (no BOS/EOS)."""
        return self.convert_tokens_to_ids(self.tokenize(text))

    def __call__(
        self,
        text: str | list[str],
        padding: bool | str = False,
        max_length: int | None = None,
        truncation: bool = False,
        pad_to_multiple_of: int | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        padding_side: str | None = None,
    ) -> BatchFeature:
        """Encode one string or a batch.

        Returns:
            BatchFeature with `input_ids` and `attention_mask` (lists, or (B, L) int64 arrays/tensors with
            `return_tensors`); a single string gives flat lists. Padding uses `pad_token_id`; to make CTC labels
            use `WavLMProcessor.pad(..., label_pad_token_id=-100)` or `labels_with_ignore_index`.
        """
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        if not all(isinstance(t, str) for t in texts):
            raise ValueError("text must be a string or a list of strings")
        ids = [self.encode(t) for t in texts]
        if truncation and max_length is not None:
            ids = [i[:max_length] for i in ids]
        out = self.pad({"input_ids": ids}, padding=padding, max_length=max_length,
                       pad_to_multiple_of=pad_to_multiple_of, return_attention_mask=return_attention_mask,
                       return_tensors=return_tensors, padding_side=padding_side)
        if single and return_tensors is None:
            out = BatchFeature({k: v[0] for k, v in out.items()})
        return out

    def pad(
        self,
        encoded_inputs: dict[str, Any] | list[dict[str, Any]],
        padding: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        padding_side: str | None = None,
    ) -> BatchFeature:
        """Pad `input_ids` (dict of lists or list of dicts) with `pad_token_id`; mask 1 = real token.

        Returns lists (return_tensors=None) or int64 (B, L) arrays/tensors ("np"/"pt").
        """
        if isinstance(encoded_inputs, (list, tuple)):
            if encoded_inputs and isinstance(encoded_inputs[0], dict):
                ids = [e["input_ids"] for e in encoded_inputs]
            else:
                ids = list(encoded_inputs)  # a bare list of id lists
        elif isinstance(encoded_inputs, dict):
            if "input_ids" not in encoded_inputs:
                raise ValueError(f"pad() needs 'input_ids', got keys {list(encoded_inputs)}")
            ids = list(encoded_inputs["input_ids"])
        else:
            raise ValueError(f"pad() takes a dict of lists or a list of dicts, got {type(encoded_inputs).__name__}")
        rows = [np.asarray(_ids_list(r), dtype=np.int64) for r in ids]
        padded, masks, _ = pad_sequences(rows, padding, max_length, False, pad_to_multiple_of,
                                         self.pad_token_id, padding_side or self.padding_side)
        data: dict[str, Any] = {"input_ids": padded}
        if return_attention_mask is None or return_attention_mask:
            data["attention_mask"] = [m.astype(np.int64) for m in masks]
        if return_tensors is None:
            return BatchFeature({k: [r.tolist() for r in v] for k, v in data.items()})
        return BatchFeature(data, tensor_type=return_tensors)

    # --------------------------------------------------------------------------------------- decoding
    def decode(
        self,
        token_ids: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        output_char_offsets: bool = False,
        output_word_offsets: bool = False,
        group_tokens: bool = True,
        spaces_between_special_tokens: bool = False,
    ) -> str | CTCDecoderOutput:
        """CTC-decode one sequence of ids (list, (L,) array or tensor, e.g. `logits.argmax(-1)[0]`).

        Args:
            skip_special_tokens: also drop `<s>`, `</s>`, `<unk>` (after merging repeats; see class docstring).
            clean_up_tokenization_spaces: remove spaces before punctuation (" ." -> ".").
            output_char_offsets / output_word_offsets: return a `CTCDecoderOutput` with frame offsets.
            group_tokens: merge runs of identical ids (CTC); False decodes each id on its own.
            spaces_between_special_tokens: join all tokens with spaces (transformers' meaning).

        Returns:
            The text, or a `CTCDecoderOutput` when offsets are asked for. Convert a frame offset to seconds with
            `wavlm.frames.frame_to_seconds`.
        """
        ids = _ids_list(token_ids)
        tokens = [self.decoder.get(i, self.unk_token) for i in ids]
        if group_tokens:
            groups, start = [], 0
            for token, run in itertools.groupby(tokens):
                n = len(list(run))
                groups.append((token, start, start + n))
                start += n
        else:
            groups = [(t, i, i + 1) for i, t in enumerate(tokens)]
        groups = [g for g in groups if g[0] != self.pad_token]
        if skip_special_tokens:
            skipped = self._skipped_tokens
            groups = [g for g in groups if g[0] not in skipped]
        chars = [self.replace_word_delimiter_char if t == self.word_delimiter_token else t for t, _, _ in groups]
        text = (" " if spaces_between_special_tokens else "").join(chars).strip()
        if self.do_lower_case:
            text = text.lower()
        cleanup = self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces
        if cleanup:
            text = clean_up_tokenization(text)
        if not (output_char_offsets or output_word_offsets):
            return text
        char_offsets = [{"char": c, "start_offset": s, "end_offset": e} for c, (_, s, e) in zip(chars, groups)]
        word_offsets = self._word_offsets(char_offsets) if output_word_offsets else None
        return CTCDecoderOutput(text=text, char_offsets=char_offsets if output_char_offsets else None,
                                word_offsets=word_offsets)

    def _word_offsets(self, char_offsets: list[dict[str, Any]]) -> list[dict[str, Any]]:
        words: list[dict[str, Any]] = []
        current: dict[str, Any] | None = None
        for offset in char_offsets:
            if offset["char"] == self.replace_word_delimiter_char:
                current = None
                continue
            if current is None:
                current = {"word": "", "start_offset": offset["start_offset"], "end_offset": offset["end_offset"]}
                words.append(current)
            current["word"] += offset["char"]
            current["end_offset"] = offset["end_offset"]
        return words

    def batch_decode(
        self,
        sequences: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        output_char_offsets: bool = False,
        output_word_offsets: bool = False,
        group_tokens: bool = True,
        spaces_between_special_tokens: bool = False,
    ) -> list[str] | CTCDecoderOutput:
        """`decode` over a batch ((B, L) array/tensor or list of id lists); offsets come as lists per item."""
        if hasattr(sequences, "tolist"):
            sequences = sequences.tolist()
        outputs = [self.decode(s, skip_special_tokens, clean_up_tokenization_spaces, output_char_offsets,
                               output_word_offsets, group_tokens, spaces_between_special_tokens) for s in sequences]
        if not (output_char_offsets or output_word_offsets):
            return outputs
        return CTCDecoderOutput(
            text=[o.text for o in outputs],
            char_offsets=[o.char_offsets for o in outputs] if output_char_offsets else None,
            word_offsets=[o.word_offsets for o in outputs] if output_word_offsets else None)

    # --------------------------------------------------------------------------------------------- I/O
    def to_config(self) -> dict[str, Any]:
        """The `tokenizer_config.json` content (transformers' key names)."""
        config = {
            **self.extra_config,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "unk_token": self.unk_token,
            "pad_token": self.pad_token,
            "word_delimiter_token": self.word_delimiter_token,
            "replace_word_delimiter_char": self.replace_word_delimiter_char,
            "do_lower_case": self.do_lower_case,
            "target_lang": self.target_lang,
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
            "tokenizer_class": HF_TOKENIZER_CLASS,
        }
        if self.additional_special_tokens:
            config["additional_special_tokens"] = list(self.additional_special_tokens)
        return config

    def save_pretrained(self, save_directory: str | os.PathLike) -> list[str]:
        """Write vocab.json, tokenizer_config.json, special_tokens_map.json (and added_tokens.json if any)."""
        path = Path(save_directory)
        if path.is_file():
            raise ValueError(f"save_pretrained needs a directory, {path} is a file")
        path.mkdir(parents=True, exist_ok=True)
        special_map = {k: getattr(self, k) for k in _SPECIAL_KEYS if getattr(self, k) is not None}
        if self.additional_special_tokens:
            special_map["additional_special_tokens"] = list(self.additional_special_tokens)
        files = {VOCAB_NAME: self.vocab, TOKENIZER_CONFIG_NAME: self.to_config(), SPECIAL_TOKENS_MAP_NAME: special_map}
        if self.added_tokens_encoder:
            files[ADDED_TOKENS_NAME] = self.added_tokens_encoder
        written = []
        for name, content in files.items():
            (path / name).write_text(json.dumps(content, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
            written.append(str(path / name))
        return written

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        token: str | bool | None = None,
        local_files_only: bool = False,
        **kwargs: Any,
    ) -> WavLMCTCTokenizer:
        """Load from a directory or Hub id holding vocab.json (+ tokenizer_config.json, special_tokens_map.json,
        added_tokens.json); keyword arguments (e.g. `target_lang`) override saved values."""
        from wavlm.hub import resolve_files

        directory = resolve_files(pretrained_model_name_or_path,
                                  [VOCAB_NAME, TOKENIZER_CONFIG_NAME, SPECIAL_TOKENS_MAP_NAME, ADDED_TOKENS_NAME],
                                  revision=revision, cache_dir=cache_dir, token=token, local_files_only=local_files_only)
        if not (directory / VOCAB_NAME).is_file():
            raise OSError(f"no {VOCAB_NAME} in {pretrained_model_name_or_path}: a CTC tokenizer needs one")

        def read(name: str) -> dict[str, Any]:
            file = directory / name
            return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}

        config = read(TOKENIZER_CONFIG_NAME)
        specials = read(SPECIAL_TOKENS_MAP_NAME)
        for key in (*_SPECIAL_KEYS, "additional_special_tokens"):
            if key in specials and key not in config:
                config[key] = specials[key]
        added = {str(k): int(v) for k, v in read(ADDED_TOKENS_NAME).items()}
        # Tokens transformers added beyond vocab.json are also listed (by id) in added_tokens_decoder.
        for idx, entry in config.get("added_tokens_decoder", {}).items():
            content = _token_content(entry)
            if content is not None:
                added.setdefault(content, int(idx))
        extra_special = config.get("additional_special_tokens") or config.get("extra_special_tokens") or []
        if isinstance(extra_special, dict):
            extra_special = list(extra_special.values())
        config = {k: v for k, v in config.items() if k not in _DERIVED_KEYS}
        config.update(kwargs)
        config.setdefault("additional_special_tokens", [_token_content(t) for t in extra_special])
        # added_tokens_decoder repeats vocab entries; only those missing from the vocabulary are real additions.
        return cls(vocab_file=directory / VOCAB_NAME, added_tokens=added, **config)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(vocab_size={self.vocab_size}, target_lang={self.target_lang!r}, "
                f"do_lower_case={self.do_lower_case}, word_delimiter_token={self.word_delimiter_token!r})")


Wav2Vec2CTCTokenizer = WavLMCTCTokenizer


def labels_with_ignore_index(input_ids: Any, attention_mask: Any, ignore_index: int = -100) -> Any:
    """Replace padded label positions (attention_mask == 0) with `ignore_index` (-100: ignored by CTC loss).

    Works on (B, L) numpy arrays and torch tensors; returns a new array/tensor of the same kind.
    """
    if hasattr(input_ids, "masked_fill"):
        return input_ids.masked_fill(attention_mask == 0, ignore_index)
    ids = np.array(input_ids, dtype=np.int64)
    ids[np.asarray(attention_mask) == 0] = ignore_index
    return ids


_CLEANUP_RULES = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                  (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]


def clean_up_tokenization(text: str) -> str:
    """Remove the space before punctuation and English contractions (" ." -> ".", " n't" -> "n't")."""
    for old, new in _CLEANUP_RULES:
        text = text.replace(old, new)
    return text
