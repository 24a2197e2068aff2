"""Character-level CTC tokenizer: text <-> ids through `vocab.json`, and CTC decoding with char/word offsets.

Reads and writes the files of transformers' `Wav2Vec2CTCTokenizer` (vocab.json, tokenizer_config.json with
`added_tokens_decoder`, special_tokens_map.json, added_tokens.json), including nested multi-language vocabularies
(`target_lang`), and gives the ids transformers gives, added and missing special tokens included.
"""
from __future__ import annotations

import itertools
import json
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wavlm.config import ConfigError, read_json_object
from wavlm.features import BatchFeature, _is_torch, _padding_strategy, check_lengths
from wavlm.hub import hub_options
from wavlm.outputs import ModelOutput

VOCAB_NAME = "vocab.json"
TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_NAME = "special_tokens_map.json"
ADDED_TOKENS_NAME = "added_tokens.json"
HF_TOKENIZER_CLASS = "Wav2Vec2CTCTokenizer"
# Named special tokens in transformers' order (which fixes the ids of those missing from vocab.json).
SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
                       "word_delimiter_token")
NO_MAX_LENGTH = int(1e30)  # transformers' model_max_length for "no limit"; anything above 1e20 counts as none
_TRUNCATION = {True: "longest_first", "longest_first": "longest_first", "only_first": "only_first",
               "only_second": "only_second", False: "do_not_truncate", None: "do_not_truncate",
               "do_not_truncate": "do_not_truncate"}
_ID_FIELDS = {"input_ids", "attention_mask", "token_type_ids", "special_tokens_mask", "length"}
# Keys of a transformers tokenizer_config.json that describe transformers' own state, not ours.
_DERIVED_KEYS = {"added_tokens_decoder", "backend", "tokenizer_class", "name_or_path", "special_tokens_map_file",
                 "tokenizer_file", "vocab_file", "additional_special_tokens", "extra_special_tokens",
                 "model_specific_special_tokens", "is_local", "local_files_only", "files_loaded"}


def check_vocab(vocab: Any, source: str) -> dict[str, Any]:
    """`vocab` as vocab.json must hold it: {token: id} with distinct non-negative integer ids, or {language:
    {token: id}}; ConfigError naming `source` (the file) and the problem otherwise."""
    if not isinstance(vocab, Mapping):
        raise ConfigError(f"{source} must hold a JSON object {{token: id}} (or {{language: {{token: id}}}}), found "
                          f"{type(vocab).__name__}")
    if not vocab:
        raise ConfigError(f"{source} holds no tokens")
    nested = [isinstance(v, Mapping) for v in vocab.values()]
    if any(nested) and not all(nested):
        flat = next(k for k, v in vocab.items() if not isinstance(v, Mapping))
        lang = next(k for k, v in vocab.items() if isinstance(v, Mapping))
        raise ConfigError(f"{source} mixes a flat vocabulary ({flat!r}: id) and languages ({lang!r}: {{...}}); "
                          "it must be one or the other")
    for lang, table in (vocab.items() if all(nested) else [(None, vocab)]):
        where = source if lang is None else f"{source}, language {lang!r},"
        if lang is not None and not table:
            raise ConfigError(f"{where} holds no tokens")
        seen: dict[int, str] = {}
        for token, idx in table.items():
            if not isinstance(token, str):
                raise ConfigError(f"{where} has the token {token!r}: tokens must be strings")
            if isinstance(idx, bool) or not isinstance(idx, (int, np.integer)):
                raise ConfigError(f"{where} gives the token {token!r} the id {idx!r} ({type(idx).__name__}); ids "
                                  "must be integers")
            if idx < 0:
                raise ConfigError(f"{where} gives the token {token!r} the negative id {idx}")
            if int(idx) in seen:
                raise ConfigError(f"{where} gives the id {idx} to both {seen[int(idx)]!r} and {token!r}; each id "
                                  "must decode to one token")
            seen[int(idx)] = token
    return dict(vocab)


class VocabularyMismatchError(ConfigError):
    """A tokenizer's vocabulary does not fit the model it is paired with (a ConfigError, so a ValueError)."""


def check_vocab_matches(model_config: Any, tokenizer: WavLMCTCTokenizer, source: str = "the tokenizer") -> None:
    """Raise VocabularyMismatchError when `tokenizer` cannot decode every output of a CTC model with
    `model_config` (a WavLMConfig or anything with `vocab_size`/`pad_token_id`): its vocabulary (vocab.json plus
    added tokens) must cover ids 0..vocab_size-1, and its pad token (the CTC blank) must be the model's
    pad_token_id. Without this, ids the tokenizer lacks decode as '<unk>' or are dropped without a word."""
    vocab_size = model_config.vocab_size
    decodable = set(tokenizer.decoder) | set(tokenizer.added_tokens_decoder)
    missing = [i for i in range(vocab_size) if i not in decodable]
    if missing:
        shown = ", ".join(str(i) for i in missing[:10]) + (f", ... ({len(missing) - 10} more)" if len(missing) > 10
                                                           else "")
        raise VocabularyMismatchError(
            f"{source} has no token for {len(missing)} of the model's {vocab_size} output ids ({shown}); the "
            f"model (vocab_size={vocab_size}) was trained with another vocabulary: use the vocab.json it was "
            "trained with")
    pad = getattr(model_config, "pad_token_id", None)
    if pad is not None and tokenizer.pad_token_id is not None and tokenizer.pad_token_id != pad:
        raise VocabularyMismatchError(
            f"{source}'s pad token {tokenizer.pad_token!r} has id {tokenizer.pad_token_id}, but the model's CTC "
            f"blank (pad_token_id) is {pad}: decoding would drop the wrong token")


@dataclass
class AddedToken:
    """A token matched whole in the text before the character split, with transformers' `AddedToken` fields.

    `lstrip`/`rstrip` swallow the whitespace on that side; `single_word` matches only a whole word; `normalized`
    tokens are lower-cased when added to a `do_lower_case` tokenizer. `normalized=None` means `not special`.
    """

    content: str
    single_word: bool = False
    lstrip: bool = False
    rstrip: bool = False
    normalized: bool | None = None
    special: bool = False

    def __post_init__(self) -> None:
        if self.normalized is None:
            self.normalized = not self.special

    def __str__(self) -> str:
        return self.content

    def to_dict(self) -> dict[str, Any]:
        """The entry written into `added_tokens_decoder` of tokenizer_config.json."""
        return {"content": self.content, "lstrip": self.lstrip, "normalized": self.normalized,
                "rstrip": self.rstrip, "single_word": self.single_word, "special": self.special}


def _as_added(token: Any, **defaults: Any) -> AddedToken:
    """str, {"content": ...} dict, or any AddedToken-like object (transformers' included) -> AddedToken."""
    if isinstance(token, str):
        return AddedToken(token, **defaults)
    if isinstance(token, Mapping):
        if not isinstance(token.get("content"), str):
            raise TypeError(f"an added token given as a dict needs a string 'content', got {dict(token)!r}")
        fields = ("single_word", "lstrip", "rstrip", "normalized", "special")
        return AddedToken(token["content"], **{**defaults, **{k: token[k] for k in fields if k in token}})
    content = getattr(token, "content", None)
    if not isinstance(content, str):
        raise TypeError(f"a token must be a string or an AddedToken, got {type(token).__name__}")
    return AddedToken(content, single_word=bool(getattr(token, "single_word", False)),
                      lstrip=bool(getattr(token, "lstrip", False)), rstrip=bool(getattr(token, "rstrip", False)),
                      normalized=getattr(token, "normalized", None), special=bool(getattr(token, "special", False)))


def _token_content(value: Any) -> Any:
    # transformers serialises special tokens either as strings or as AddedToken dicts with a "content" field.
    if value is None or isinstance(value, str):
        return value
    return _as_added(value).content


@dataclass
class CTCDecoderOutput(ModelOutput):
    """Decoded text with optional offsets; offsets are frame indices into the logits (end exclusive).

    A mapping like transformers' `Wav2Vec2CTCTokenizerOutput`: the fields asked for are its keys
    (`"char_offsets" in out`, `list(out)`, `dict(out)`), also reachable as attributes, by index and with
    `to_tuple()`. `char_offsets`: list of {"char", "start_offset", "end_offset"}; `word_offsets`: list of
    {"word", "start_offset", "end_offset"}; for `batch_decode` each field is a list over the batch. Offsets are
    plain ints (transformers returns np.int64 with equal values), so the output is JSON-serialisable.
    """

    text: str | list[str] | None = None
    char_offsets: list | None = None
    word_offsets: list | None = None


Wav2Vec2CTCTokenizerOutput = CTCDecoderOutput


def _ids_list(token_ids: Any) -> list[int]:
    """One sequence of token ids as ints; a TypeError that says what was given instead (logits, a batch)."""
    shape = getattr(token_ids, "shape", None)
    if hasattr(token_ids, "tolist"):  # numpy arrays and torch tensors
        kind = str(getattr(token_ids, "dtype", ""))
        if "float" in kind or "complex" in kind:
            raise TypeError(f"token ids must be integers, got a {kind.replace('torch.', '')} array of shape "
                            f"{tuple(shape)}; for logits decode logits.argmax(-1)")
        token_ids = token_ids.tolist()
    if isinstance(token_ids, (int, np.integer)) and not isinstance(token_ids, bool):
        return [int(token_ids)]
    if not isinstance(token_ids, (list, tuple)):
        raise TypeError(f"token ids must be an int, a list of ints, or a 1-D array/tensor, got "
                        f"{type(token_ids).__name__}")
    ids = []
    for i in token_ids:
        if isinstance(i, (list, tuple)):
            where = f" of shape {tuple(shape)}" if shape is not None else ""
            raise TypeError(f"decode takes one sequence of token ids, got a nested one{where}; use batch_decode for "
                            "a batch (and logits.argmax(-1) for logits)")
        if isinstance(i, float) and not i.is_integer() or not isinstance(i, (int, float, np.integer)):
            raise TypeError(f"token ids must be integers, got {i!r}")
        ids.append(int(i))
    return ids


def _special(name: str) -> property:
    def get(self: WavLMCTCTokenizer) -> str | None:
        return self._specials.get(name)

    def set(self: WavLMCTCTokenizer, value: Any) -> None:
        self._specials[name] = _token_content(value)

    return property(get, set, doc=f"The {name.replace('_', ' ')} (a string, or None when not set).")


def _special_id(name: str) -> property:
    def get(self: WavLMCTCTokenizer) -> int | None:
        token = self._specials.get(name)
        return None if token is None else self.convert_tokens_to_ids(token)

    def set(self: WavLMCTCTokenizer, value: int | None) -> None:
        self._specials[name] = None if value is None else self.convert_ids_to_tokens(int(value))

    return property(get, set, doc=f"Id of the {name.replace('_', ' ')}; setting an id sets the token it decodes to.")


class WavLMCTCTokenizer:
    """Character CTC tokenizer with the behaviour of transformers' `Wav2Vec2CTCTokenizer`.

    Encoding: added tokens (multi-character vocabulary entries such as `<unk>` or `CH`, special tokens, tokens from
    `add_tokens`) are matched first, longest first, and may swallow the whitespace next to them (vocabulary entries
    do, `add_tokens` entries do not, as in transformers); the rest is split into characters, spaces becoming
    `word_delimiter_token`, unknown characters `unk_token`; no BOS/EOS is added. With `do_lower_case` that rest is
    upper-cased before lookup, and decoded text is lower-cased.

    Ids: vocab.json gives the ids; special tokens it lacks get the ids transformers gives them (`len(vocab)`,
    `len(vocab) + 1`, ... in the order bos, eos, unk, sep, pad, cls, mask, word delimiter, extra special tokens),
    and so do tokens added later. Decoding prefers vocab.json where an id is taken twice, as transformers does.

    Decoding (CTC): merge runs of identical ids (`group_tokens`), drop `pad_token` (the CTC blank), map the
    word delimiter to `replace_word_delimiter_char`, join, strip.

    Known differences (README, "Differences from transformers"): with `skip_special_tokens=True`, transformers
    removes blanks and special tokens *before* merging repeats, so a blank between two identical letters is lost
    ("HEL<pad>LO" -> "HELO"); we merge first and then drop them ("HELLO"), which is the CTC rule, and offsets stay
    frame indices. An unknown character maps to the id of `unk_token` also when vocab.json lacks it (transformers
    gives None); a multi-character word delimiter stays one token; setting `word_delimiter_token` takes effect.
    Otherwise both libraries give identical ids, text and offsets.

    Args:
        vocab_file: path to `vocab.json` ({token: id}, or {lang: {token: id}} with `target_lang`).
        target_lang: language to use from a nested multi-language vocabulary.
        vocab: the vocabulary as a dict instead of a file.
        added_tokens_decoder: {id: AddedToken or its dict} as saved in tokenizer_config.json.
        extra_special_tokens / additional_special_tokens: more special tokens (skipped by `skip_special_tokens`).
        model_max_length: limit used by `padding="max_length"` / `truncation=True` without `max_length`.
        Other keyword arguments are kept and written back into tokenizer_config.json (forward compatibility).
    """

    model_input_names = ["input_ids", "attention_mask"]
    vocab_files_names = {"vocab_file": VOCAB_NAME}

    bos_token, eos_token, unk_token = _special("bos_token"), _special("eos_token"), _special("unk_token")
    sep_token, pad_token, cls_token = _special("sep_token"), _special("pad_token"), _special("cls_token")
    mask_token, word_delimiter_token = _special("mask_token"), _special("word_delimiter_token")
    bos_token_id, eos_token_id = _special_id("bos_token"), _special_id("eos_token")
    unk_token_id, sep_token_id = _special_id("unk_token"), _special_id("sep_token")
    pad_token_id, cls_token_id = _special_id("pad_token"), _special_id("cls_token")
    mask_token_id, word_delimiter_token_id = _special_id("mask_token"), _special_id("word_delimiter_token")

    def __init__(
        self,
        vocab_file: str | os.PathLike | None = None,
        bos_token: str | None = "<s>",
        eos_token: str | None = "</s>",
        unk_token: str | None = "<unk>",
        pad_token: str | None = "<pad>",
        word_delimiter_token: str | None = "|",
        replace_word_delimiter_char: str = " ",
        do_lower_case: bool = False,
        target_lang: str | None = None,
        *,
        vocab: dict[str, Any] | None = None,
        sep_token: str | None = None,
        cls_token: str | None = None,
        mask_token: str | None = None,
        extra_special_tokens: list | None = None,
        additional_special_tokens: list | None = None,
        added_tokens_decoder: Mapping[Any, Any] | None = None,
        padding_side: str = "right",
        truncation_side: str = "right",
        model_max_length: int | None = None,
        clean_up_tokenization_spaces: bool = False,
        split_special_tokens: bool = False,
        name_or_path: str = "",
        **kwargs: Any,
    ) -> None:
        if (vocab_file is None) == (vocab is None):
            raise ValueError("pass exactly one of vocab_file (path to vocab.json) and vocab (a dict)")
        for name, side in (("padding_side", padding_side), ("truncation_side", truncation_side)):
            if side not in ("right", "left"):
                raise ValueError(f"{name} must be 'right' or 'left', got {side!r}")
        if vocab is None:
            vocab = check_vocab(read_json_object(Path(vocab_file), "a vocabulary"), str(vocab_file))
        else:
            vocab = check_vocab(vocab, "vocab")
        self.vocab: dict[str, Any] = dict(vocab)
        self.replace_word_delimiter_char = replace_word_delimiter_char
        self.do_lower_case = bool(do_lower_case)
        self.padding_side, self.truncation_side = padding_side, truncation_side
        unlimited = model_max_length is None or model_max_length == float("inf")
        self.model_max_length = NO_MAX_LENGTH if unlimited else int(model_max_length)
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.split_special_tokens = bool(split_special_tokens)
        self.name_or_path = str(name_or_path)
        self._specials: dict[str, str | None] = {}
        for name, value in zip(SPECIAL_TOKEN_NAMES, (bos_token, eos_token, unk_token, sep_token, pad_token,
                                                     cls_token, mask_token, word_delimiter_token)):
            self._specials[name] = _token_content(value)
        extra = extra_special_tokens if extra_special_tokens is not None else additional_special_tokens
        self._extra_specials = [_token_content(t) for t in extra or []]
        self.extra_config: dict[str, Any] = {k: v for k, v in kwargs.items() if k not in _DERIVED_KEYS}
        # Added tokens: id -> AddedToken, content -> id (an entry can outlive its id being given to another token,
        # as in transformers), and the contents matched whole in the text: those present whenever tokens were
        # added (never shrinks, like transformers' trie: a token dropped by set_target_lang still matches).
        self._added: dict[int, AddedToken] = {}
        self._added_ids: dict[str, int] = {}
        self._ids_of: dict[str, set[int]] = {}  # content -> ids of the records that hold it now
        self._matched: set[str] = set()
        self._split_re: re.Pattern | None = None
        for idx, token in (added_tokens_decoder or {}).items():
            self._register(int(idx), _as_added(token, normalized=False))
        self.target_lang = None
        self._select_language(target_lang)
        self._add_tokens([t for t in self.all_special_tokens if t not in self._added_ids], special_tokens=True)
        self._protect_multichar_entries()

    # ------------------------------------------------------------------------------------------ vocab
    @property
    def is_multilingual(self) -> bool:
        return bool(self.vocab) and all(isinstance(v, dict) for v in self.vocab.values())

    def _select_language(self, target_lang: str | None) -> None:
        if self.is_multilingual:
            if target_lang is None or target_lang not in self.vocab:
                langs = sorted(self.vocab)
                shown = ", ".join(langs[:20]) + (", ..." if len(langs) > 20 else "")
                what = "needs target_lang" if target_lang is None else f"has no language {target_lang!r}"
                raise ValueError(f"this vocab.json holds {len(langs)} languages and {what}; choose one of: {shown}")
            encoder = self.vocab[target_lang]
        else:
            # A flat vocabulary has one language; target_lang is then only a label.
            encoder = self.vocab
        self.target_lang = target_lang
        self.encoder: dict[str, int] = {str(k): int(v) for k, v in encoder.items()}
        self.decoder: dict[int, str] = {v: k for k, v in self.encoder.items()}

    def set_target_lang(self, target_lang: str) -> None:
        """Switch the language of a nested multi-language vocabulary.

        Added tokens whose id the new language uses are dropped (its own entries win); the others keep their ids.
        """
        if not self.is_multilingual:
            raise ValueError("set_target_lang needs a nested multi-language vocab.json ({lang: {token: id}}); "
                             "this one is flat")
        self._select_language(target_lang)
        for idx in [i for i in self._added if i in self.decoder]:
            token = self._added.pop(idx)
            self._ids_of[token.content].discard(idx)
            self._added_ids.pop(token.content, None)
        self._protect_multichar_entries()

    def _protect_multichar_entries(self) -> None:
        # Vocabulary entries longer than one character are matched whole and swallow the spaces around them.
        # One at a time, in file order, each taking the id get_vocab() gives it at that moment (the highest id of
        # an added record with that content, else its vocab.json id), as transformers adds them.
        for token in [t for t in self.encoder if len(t) > 1]:
            ids = self._ids_of.get(token)
            self._register(max(ids) if ids else self.encoder[token],
                           AddedToken(token, lstrip=True, rstrip=True, normalized=False))
        self._sync_matched()

    def _register(self, idx: int, token: AddedToken) -> None:
        old = self._added.get(idx)
        if old is not None:
            self._ids_of[old.content].discard(idx)
        self._added[idx] = token
        self._added_ids[token.content] = idx
        self._ids_of.setdefault(token.content, set()).add(idx)

    def _sync_matched(self) -> None:
        new = {t.content for t in self._added.values()} - self._matched
        if new:
            self._matched |= new
            self._split_re = None

    def _add_tokens(self, tokens: list[Any], special_tokens: bool = False) -> int:
        current = self.get_vocab()
        added = 0
        for token in tokens:
            token = _as_added(token, normalized=False)
            if not token.content:
                continue
            if special_tokens:
                token.special = True
            if not token.special and token.normalized and self.do_lower_case:
                token.content = token.content.lower()
            if token.content in current:
                idx = current[token.content]
            else:  # new ids count from len(vocab), not max id + 1 (transformers' rule, holes and all)
                idx = current[token.content] = len(current)
                added += 1
            if token.special and token.content not in self.all_special_tokens:
                self._extra_specials.append(token.content)
            self._register(idx, token)
        self._sync_matched()
        return added

    def add_tokens(self, new_tokens: Any, special_tokens: bool = False) -> int:
        """Add token(s) (str or AddedToken) matched whole when encoding; returns how many got a new id.

        A token already in the vocabulary keeps its id. New ids are `len(tokenizer)`, `len(tokenizer) + 1`, ...
        Resize the model's output layer to `len(tokenizer)` if it has to predict them.
        """
        if not new_tokens:
            return 0
        if not isinstance(new_tokens, (list, tuple)):
            new_tokens = [new_tokens]
        return self._add_tokens(list(new_tokens), special_tokens=special_tokens)

    def add_special_tokens(self, special_tokens_dict: Mapping[str, Any],
                           replace_extra_special_tokens: bool = True,
                           replace_additional_special_tokens: bool | None = None) -> int:
        """Set named special tokens ({"pad_token": "[PAD]", "extra_special_tokens": [...]}) and add them.

        Keys: bos/eos/unk/sep/pad/cls/mask/word_delimiter `_token`, `extra_special_tokens` (or the older
        `additional_special_tokens`). `replace_extra_special_tokens=False` extends the extra list instead of
        replacing it. Returns how many tokens got a new id.
        """
        if replace_additional_special_tokens is not None:
            replace_extra_special_tokens = replace_additional_special_tokens
        tokens: list[AddedToken] = []
        for key, value in dict(special_tokens_dict or {}).items():
            if key in ("extra_special_tokens", "additional_special_tokens"):
                if not isinstance(value, (list, tuple)):
                    raise ValueError(f"{key} must be a list of tokens, got {type(value).__name__}")
                new = [_as_added(t, normalized=False, special=True) for t in value
                       if replace_extra_special_tokens or _token_content(t) not in self._extra_specials]
                if replace_extra_special_tokens and new:
                    self._extra_specials = [t.content for t in new]
                else:
                    self._extra_specials += [t.content for t in new]
                tokens += new
            elif key in SPECIAL_TOKEN_NAMES:
                token = _as_added(value, normalized=False, special=True)
                self._specials[key] = token.content
                tokens.append(token)
            else:
                raise ValueError(f"{key!r} is not a special token name; use one of "
                                 f"{', '.join(SPECIAL_TOKEN_NAMES)}, extra_special_tokens")
        return self._add_tokens(tokens, special_tokens=True)

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        """Added tokens (special tokens, multi-character vocabulary entries, `add_tokens`), content -> id."""
        return {t.content: i for i, t in sorted(self._added.items())}

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        """Added tokens, id -> AddedToken, sorted by id."""
        return dict(sorted(self._added.items()))

    def get_added_vocab(self) -> dict[str, int]:
        return dict(self._added_ids)

    @property
    def vocab_size(self) -> int:
        """Size of the (selected language's) vocab.json, without added tokens."""
        return len(self.decoder)

    def __len__(self) -> int:
        return len(self.get_vocab())

    def get_vocab(self) -> dict[str, int]:
        """token -> id: vocab.json (the selected language) with the added tokens on top."""
        return {**self.encoder, **self.added_tokens_encoder}

    @property
    def extra_special_tokens(self) -> list[str]:
        return list(self._extra_specials)

    @extra_special_tokens.setter
    def extra_special_tokens(self, tokens: list | None) -> None:
        self._extra_specials = [_token_content(t) for t in tokens or []]

    additional_special_tokens = extra_special_tokens  # the name before transformers 5

    @property
    def extra_special_tokens_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self._extra_specials)

    additional_special_tokens_ids = extra_special_tokens_ids

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """Named special tokens that are set, name -> token."""
        return {k: v for k, v in self._specials.items() if v is not None}

    @property
    def all_special_tokens(self) -> list[str]:
        return list(dict.fromkeys([*self.special_tokens_map.values(), *self._extra_specials]))

    @property
    def all_special_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.all_special_tokens)

    @property
    def _skipped_tokens(self) -> set[str]:
        # The word delimiter is special but is text (a space), so skip_special_tokens keeps it.
        return {t for t in self.all_special_tokens if t != self.word_delimiter_token}

    def _token_to_id(self, token: str) -> int | None:
        if token in self._added_ids:
            return self._added_ids[token]
        if token in self.encoder:
            return self.encoder[token]
        unk = self.unk_token  # vocab.json's entry first, as transformers looks it up
        return self.encoder[unk] if unk in self.encoder else self._added_ids.get(unk)

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> int | list[int]:
        """Token(s) -> id(s); unknown tokens map to `unk_token_id`."""
        if isinstance(tokens, str):
            return self._token_to_id(tokens)
        return [self._token_to_id(t) for t in tokens]

    def _id_to_token(self, idx: int) -> str:
        if idx in self.decoder:  # vocab.json first where an added token shares the id
            return self.decoder[idx]
        return self._added[idx].content if idx in self._added else self.unk_token

    def convert_ids_to_tokens(self, ids: int | list[int], skip_special_tokens: bool = False) -> str | list[str]:
        """Id(s) -> token(s); ids outside the vocabulary map to `unk_token`. Skipping drops every special id,
        the word delimiter included."""
        if isinstance(ids, (int, np.integer)):
            return self._id_to_token(int(ids))
        ids = _ids_list(ids)
        if skip_special_tokens:
            special = set(self.all_special_ids)
            ids = [i for i in ids if i not in special]
        return [self._id_to_token(i) for i in ids]

    # --------------------------------------------------------------------------------------- encoding
    def _matcher(self) -> re.Pattern | None:
        if self._split_re is None and self._matched:
            # Longest alternative first: at each position the longest added token wins.
            alternatives = sorted(self._matched, key=len, reverse=True)
            self._split_re = re.compile("(" + "|".join(re.escape(t) for t in alternatives) + ")")
        return self._split_re

    def tokenize(self, text: str, is_split_into_words: bool = False, split_special_tokens: bool | None = None,
                 **kwargs: Any) -> list[str]:
        """Split text into tokens: added tokens whole (with their whitespace stripping), then single characters."""
        if is_split_into_words:
            text = " " + text
        if split_special_tokens if split_special_tokens is not None else self.split_special_tokens:
            return self._split_chars(text)
        matcher = self._matcher()
        pieces = [p for p in (matcher.split(text) if matcher is not None else [text]) if p]
        for i, piece in enumerate(pieces):
            token = self._added.get(self._added_ids[piece]) if piece in self._added_ids else None
            if token is None:
                continue
            left = pieces[i - 1] if i > 0 else None
            right = pieces[i + 1] if i + 1 < len(pieces) else None
            if token.rstrip and right:
                pieces[i + 1] = right.lstrip()
            if token.lstrip and left:
                pieces[i - 1] = left.rstrip()
            if token.single_word:  # inside a word it is not a token of its own but text
                if left and left[-1] != " ":
                    pieces[i - 1], pieces[i] = pieces[i - 1] + piece, ""
                elif right and right[0] != " ":
                    pieces[i + 1], pieces[i] = piece + pieces[i + 1], ""
        whole = set(self._added_ids) | set(self.all_special_tokens)
        tokens: list[str] = []
        for piece in pieces:
            if piece in whole:
                tokens.append(piece)
            elif piece:
                tokens += self._split_chars(piece)
        return tokens

    def _split_chars(self, text: str) -> list[str]:
        if self.do_lower_case:
            text = text.upper()
        delimiter = self.word_delimiter_token
        return list(text) if delimiter is None else [delimiter if c == " " else c for c in text]

    def _text_ids(self, text: Any, is_split_into_words: bool, split_special_tokens: bool | None) -> list[int]:
        if isinstance(text, str):
            return self.convert_tokens_to_ids(self.tokenize(text, split_special_tokens=split_special_tokens))
        if isinstance(text, (list, tuple)) and text:
            if all(isinstance(t, (int, np.integer)) for t in text):
                return [int(t) for t in text]
            if all(isinstance(t, str) for t in text):
                if is_split_into_words:  # words are tokenized one by one and joined without delimiter
                    return self.convert_tokens_to_ids([tok for word in text for tok in
                                                       self.tokenize(word, split_special_tokens=split_special_tokens)])
                return self.convert_tokens_to_ids(list(text))
        raise ValueError(f"text must be a string, a list of strings (tokens, or words with is_split_into_words=True) "
                         f"or a list of ids, got {type(text).__name__} {text!r:.60}")

    def _strategies(self, padding: Any, truncation: Any, max_length: int | None, pad_to_multiple_of: int | None,
                    verbose: bool = True) -> tuple[str, str, int | None]:
        check_lengths(max_length, pad_to_multiple_of)
        if max_length is not None and padding is False and truncation is None:
            truncation = True  # max_length alone truncates, as in transformers
        strategy = _padding_strategy(padding)
        truncation = getattr(truncation, "value", truncation)
        if truncation not in _TRUNCATION:
            raise ValueError(f"truncation must be True, False, 'longest_first', 'only_first', 'only_second' or "
                             f"'do_not_truncate', got {truncation!r}")
        cut = _TRUNCATION[truncation]
        if padding is True and verbose and max_length is not None and cut == "do_not_truncate":
            warnings.warn("max_length is ignored with padding=True and no truncation; to pad to max_length use "
                          "padding='max_length'", UserWarning, stacklevel=3)
        if max_length is None:
            limited = self.model_max_length <= int(1e20)
            if strategy == "max_length":
                strategy, max_length = ("max_length", self.model_max_length) if limited else ("do_not_pad", None)
            if cut != "do_not_truncate":
                if limited:
                    max_length = self.model_max_length
                else:
                    cut = "do_not_truncate"
        if strategy != "do_not_pad" and (self.pad_token is None or self.pad_token_id is None or self.pad_token_id < 0):
            raise ValueError("padding needs a pad token; set tokenizer.pad_token (or add_special_tokens("
                             "{'pad_token': ...}))")
        if cut != "do_not_truncate" and strategy != "do_not_pad" and pad_to_multiple_of and max_length \
                and max_length % pad_to_multiple_of:
            raise ValueError(f"truncation and padding are both on, but max_length={max_length} is not a multiple of "
                             f"pad_to_multiple_of={pad_to_multiple_of}")
        return strategy, cut, max_length

    def _truncate(self, ids: list[int], pair: list[int] | None, excess: int, cut: str) -> tuple[list, list | None]:
        def drop(seq: list[int], n: int) -> list[int]:
            if n <= 0:
                return seq
            return seq[n:] if self.truncation_side == "left" else seq[:-n]

        if cut == "only_first" or (cut == "longest_first" and pair is None):
            return drop(ids, excess), pair
        if cut == "only_second":
            return ids, (drop(pair, excess) if pair else pair)
        # longest_first with a pair: cut the longer one down to the other, then both alternately.
        first = min(abs(len(pair) - len(ids)), excess)
        rest = excess - first
        if len(ids) > len(pair):
            from_ids, from_pair = first + rest // 2, rest - rest // 2
        else:
            from_ids, from_pair = rest // 2, first + rest - rest // 2
        return drop(ids, from_ids), (drop(pair, from_pair) if pair else pair)

    def _encode_one(self, text: Any, pair: Any, cut: str, max_length: int | None, *, add_special_tokens: bool,
                    is_split_into_words: bool, split_special_tokens: bool | None, return_token_type_ids: bool,
                    return_special_tokens_mask: bool) -> dict[str, list[int]]:
        ids = self._text_ids(text, is_split_into_words, split_special_tokens)
        pair_ids = None if pair is None else self._text_ids(pair, is_split_into_words, split_special_tokens)
        total = len(ids) + len(pair_ids or [])
        if cut != "do_not_truncate" and max_length and total > max_length:
            ids, pair_ids = self._truncate(ids, pair_ids, total - max_length, cut)
        out: dict[str, list[int]] = {"input_ids": ids + (pair_ids or [])}
        if return_token_type_ids:
            # transformers marks the pair with 1 only when add_special_tokens (no special token is ever added)
            second = 1 if add_special_tokens else 0
            out["token_type_ids"] = [0] * len(ids) + [second] * len(pair_ids or [])
        if return_special_tokens_mask:
            out["special_tokens_mask"] = [0] * len(out["input_ids"])
        return out

    def __call__(
        self,
        text: Any = None,
        text_pair: Any = None,
        text_target: Any = None,
        text_pair_target: Any = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
        split_special_tokens: bool | None = None,
        max_target_length: int | None = None,
    ) -> BatchFeature:
        """Encode one text or a batch (with optional second texts), as transformers' tokenizer `__call__`.

        A text is a string, a list of words with `is_split_into_words=True`, a list of tokens or a list of ids;
        a batch is a list of texts or of (text, text_pair) tuples. No special token is added, so
        `add_special_tokens` changes nothing but `token_type_ids` of pairs. `max_length` alone truncates;
        `padding="max_length"` pads to it; `truncation` is True/"longest_first", "only_first", "only_second" or
        False. `text_target` encodes labels (returned as `labels` next to the `text` encoding). `stride` only
        matters for overflowing tokens, which are not supported.

        Returns:
            BatchFeature with `input_ids` and `attention_mask` (+ `token_type_ids`, `special_tokens_mask`,
            `length` when asked): lists, flat for a single text, or (B, L) int64 arrays/tensors with
            `return_tensors`. For CTC labels padded with -100 use `WavLMProcessor(..., label_pad_token_id=-100)`
            or `labels_with_ignore_index`.
        """
        if return_overflowing_tokens or return_offsets_mapping:
            what = "return_overflowing_tokens" if return_overflowing_tokens else "return_offsets_mapping"
            raise NotImplementedError(f"{what} is not supported by the CTC tokenizer (nor by transformers' "
                                      f"Python tokenizers for offsets); encode the full text instead")
        if text is None and text_target is None:
            raise ValueError("pass text or text_target")
        strategy, cut, max_length = self._strategies(padding, truncation, max_length, pad_to_multiple_of, verbose)
        common = dict(add_special_tokens=add_special_tokens, is_split_into_words=is_split_into_words,
                      split_special_tokens=split_special_tokens, padding_side=padding_side,
                      pad_to_multiple_of=pad_to_multiple_of, return_tensors=return_tensors,
                      return_token_type_ids=bool(return_token_type_ids),
                      return_attention_mask=return_attention_mask,
                      return_special_tokens_mask=return_special_tokens_mask,
                      return_length=return_length, verbose=verbose)
        encodings = None if text is None else self._encode(text, text_pair, strategy, cut, max_length, **common)
        if text_target is None:
            return encodings
        target_length = max_target_length if max_target_length is not None else max_length
        targets = self._encode(text_target, text_pair_target, strategy, cut, target_length, **common)
        if encodings is None:
            return targets
        encodings["labels"] = targets["input_ids"]
        return encodings

    def _encode(self, text: Any, text_pair: Any, strategy: str, cut: str, max_length: int | None, *,
                add_special_tokens: bool, is_split_into_words: bool, split_special_tokens: bool | None,
                padding_side: str | None, pad_to_multiple_of: int | None, return_tensors: str | None,
                return_token_type_ids: bool, return_attention_mask: bool | None, return_special_tokens_mask: bool,
                return_length: bool, verbose: bool) -> BatchFeature:
        one = dict(add_special_tokens=add_special_tokens, is_split_into_words=is_split_into_words,
                   split_special_tokens=split_special_tokens, return_token_type_ids=return_token_type_ids,
                   return_special_tokens_mask=return_special_tokens_mask)
        pad = dict(padding=strategy, max_length=max_length, pad_to_multiple_of=pad_to_multiple_of,
                   padding_side=padding_side, return_attention_mask=return_attention_mask, verbose=False)
        batched = isinstance(text, (list, tuple)) and (
            (not text and not is_split_into_words)
            or (bool(text) and is_split_into_words and isinstance(text[0], (list, tuple)))
            or (bool(text) and not is_split_into_words and isinstance(text[0], (str, list, tuple))))
        if not batched:
            out = self._encode_one(text, text_pair, cut, max_length, **one)
            if return_attention_mask is None:
                pad["return_attention_mask"] = True
            if strategy != "do_not_pad" or pad["return_attention_mask"]:
                out = dict(self.pad(out, **pad))
            if return_length:
                out["length"] = len(out["input_ids"])
            if return_tensors is not None:  # a single text becomes a batch of one
                out = {k: [v] for k, v in out.items()}
            return _int_batch(out, return_tensors)
        if not text:
            raise ValueError("text is an empty list; pass at least one text")
        if text_pair is not None and (not isinstance(text_pair, (list, tuple)) or len(text_pair) != len(text)):
            raise ValueError("when text is a batch, text_pair must be a list of the same length")
        rows: dict[str, list] = {}
        for item, pair in zip(text, text_pair if text_pair is not None else [None] * len(text)):
            if isinstance(item, (list, tuple)) and item and pair is None and not isinstance(item[0], int):
                if len(item) == 2 and (not is_split_into_words or isinstance(item, tuple)) and \
                        all(isinstance(x, (str, list, tuple)) for x in item):
                    item, pair = item
                elif len(item) == 1:
                    item = item[0]
                elif not is_split_into_words:
                    raise ValueError(f"a batch item that is a list must be a (text, text_pair) pair, got {len(item)} "
                                     f"texts; pass is_split_into_words=True for lists of words")
            encoded = self._encode_one(item, pair, cut, max_length, **one)
            if return_length:
                encoded["length"] = len(encoded["input_ids"])
            for key, value in encoded.items():
                rows.setdefault(key, []).append(value)
        return _int_batch(dict(self.pad(rows, **pad)), return_tensors)

    def encode(self, text: Any, text_pair: Any = None, add_special_tokens: bool = True, padding: bool | str = False,
               truncation: bool | str | None = None, max_length: int | None = None, return_tensors: str | None = None,
               **kwargs: Any) -> Any:
        """Text -> token ids (no BOS/EOS); the keyword arguments of `__call__` apply."""
        return self(text, text_pair, add_special_tokens=add_special_tokens, padding=padding, truncation=truncation,
                    max_length=max_length, return_tensors=return_tensors, **kwargs)["input_ids"]

    def _pad_one(self, inputs: dict[str, Any], max_length: int | None, strategy: str, pad_to_multiple_of: int | None,
                 padding_side: str | None, return_attention_mask: bool) -> dict[str, Any]:
        ids = list(inputs["input_ids"])
        if strategy == "longest":
            max_length = len(ids)
        if max_length is not None and pad_to_multiple_of and max_length % pad_to_multiple_of:
            max_length = (max_length // pad_to_multiple_of + 1) * pad_to_multiple_of
        if return_attention_mask and "attention_mask" not in inputs:
            inputs["attention_mask"] = [1] * len(ids)  # a given mask is kept as it is
        missing = max_length - len(ids) if strategy != "do_not_pad" and max_length is not None else 0
        if missing > 0:
            side = padding_side or self.padding_side

            def extend(seq: list, value: int) -> list:
                return list(seq) + [value] * missing if side == "right" else [value] * missing + list(seq)

            if return_attention_mask:
                inputs["attention_mask"] = extend(inputs["attention_mask"], 0)
            if "token_type_ids" in inputs:
                inputs["token_type_ids"] = extend(inputs["token_type_ids"], 0)
            if "special_tokens_mask" in inputs:
                inputs["special_tokens_mask"] = extend(inputs["special_tokens_mask"], 1)
            inputs["input_ids"] = extend(ids, self.pad_token_id)
        return inputs

    def pad(
        self,
        encoded_inputs: Any,
        padding: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        verbose: bool = True,
    ) -> BatchFeature:
        """Pad `input_ids` with `pad_token_id`, e.g. in a data collator; a given `attention_mask` is kept and
        padded with 0 (`token_type_ids` with 0, `special_tokens_mask` with 1); other keys pass through.

        Args:
            encoded_inputs: a mapping of lists ({"input_ids": [[...], ...]}), a list of mappings, or a list of
                id lists. Rows may be lists, numpy arrays or tensors.
            return_tensors: None keeps lists (or infers "np"/"pt" from array/tensor rows); "np" or "pt".

        Returns:
            BatchFeature with padded `input_ids` and `attention_mask` (1 = real token) unless
            `return_attention_mask=False`.
        """
        if isinstance(encoded_inputs, (list, tuple)):
            if encoded_inputs and isinstance(encoded_inputs[0], Mapping):
                encoded_inputs = {k: [e[k] for e in encoded_inputs] for k in encoded_inputs[0]}
            else:
                encoded_inputs = {"input_ids": list(encoded_inputs)}  # a bare list of id lists
        elif isinstance(encoded_inputs, Mapping):
            encoded_inputs = dict(encoded_inputs)
        else:
            raise ValueError(f"pad() takes a mapping of lists or a list of mappings, got "
                             f"{type(encoded_inputs).__name__}")
        if "input_ids" not in encoded_inputs:
            raise ValueError(f"pad() needs 'input_ids', got keys {list(encoded_inputs)}")
        rows = encoded_inputs["input_ids"]
        if rows is None or len(rows) == 0:
            if return_attention_mask:
                encoded_inputs["attention_mask"] = []
            return BatchFeature(encoded_inputs)
        first = rows[0]
        if isinstance(first, (list, tuple)):
            first = next((r[0] for r in rows if len(r)), first)
        if not isinstance(first, (int, list, tuple)):
            if _is_torch(first) or (_is_torch(rows)):
                return_tensors = return_tensors or "pt"
            elif isinstance(first, (np.ndarray, np.integer)) or isinstance(rows, np.ndarray):
                return_tensors = return_tensors or "np"
            else:
                raise ValueError(f"pad() takes ids as ints, lists, numpy arrays or tensors, got "
                                 f"{type(first).__name__}")
            encoded_inputs = {k: _to_py(v) for k, v in encoded_inputs.items()}
            rows = encoded_inputs["input_ids"]
        strategy, _, max_length = self._strategies(padding, None, max_length, None, verbose=False)
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        if rows and not isinstance(rows[0], (list, tuple)):  # one sequence, not a batch
            out = self._pad_one(encoded_inputs, max_length, strategy, pad_to_multiple_of, padding_side,
                                return_attention_mask)
            return _int_batch(out, return_tensors)
        if any(len(v) != len(rows) for v in encoded_inputs.values()):
            raise ValueError(f"pad() got fields of different batch sizes: "
                             f"{ {k: len(v) for k, v in encoded_inputs.items()} }")
        if strategy == "longest":
            strategy, max_length = "max_length", max(len(r) for r in rows)
        batch: dict[str, list] = {}
        for i in range(len(rows)):
            one = self._pad_one({k: v[i] for k, v in encoded_inputs.items()}, max_length, strategy,
                                pad_to_multiple_of, padding_side, return_attention_mask)
            for key, value in one.items():
                batch.setdefault(key, []).append(value)
        return _int_batch(batch, return_tensors)

    # --------------------------------------------------------------------------------------- decoding
    def _groups(self, tokens: list[str], group_tokens: bool) -> list[tuple[str, int, int]]:
        """(token, start, end) per CTC step: runs merged when `group_tokens`, blanks (`pad_token`) dropped."""
        if group_tokens:
            groups, start = [], 0
            for token, run in itertools.groupby(tokens):
                n = len(list(run))
                groups.append((token, start, start + n))
                start += n
        else:
            groups = [(t, i, i + 1) for i, t in enumerate(tokens)]
        return [g for g in groups if g[0] != self.pad_token]

    def _render(self, groups: list[tuple[str, int, int]], spaces_between_special_tokens: bool,
                output_char_offsets: bool, output_word_offsets: bool) -> tuple[str, list | None, list | None]:
        chars = [self.replace_word_delimiter_char if t == self.word_delimiter_token else t for t, _, _ in groups]
        text = (" " if spaces_between_special_tokens else "").join(chars).strip()
        if self.do_lower_case:
            text = text.lower()
        char_offsets = [{"char": c, "start_offset": s, "end_offset": e} for c, (_, s, e) in zip(chars, groups)]
        word_offsets = self._word_offsets(char_offsets) if output_word_offsets else None
        return text, (char_offsets if output_char_offsets else None), word_offsets

    def convert_tokens_to_string(self, tokens: list[str], group_tokens: bool = True,
                                 spaces_between_special_tokens: bool = False, output_char_offsets: bool = False,
                                 output_word_offsets: bool = False) -> dict[str, Any]:
        """CTC tokens -> {"text", "char_offsets", "word_offsets"} (a dict, as transformers' CTC tokenizer gives;
        offsets are None unless asked, and empty lists for no tokens)."""
        if not tokens:
            return {"text": "", "char_offsets": [], "word_offsets": []}
        text, chars, words = self._render(self._groups(list(tokens), group_tokens), spaces_between_special_tokens,
                                          output_char_offsets, output_word_offsets)
        return {"text": text, "char_offsets": chars, "word_offsets": words}

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
            skip_special_tokens: also drop `<s>`, `</s>`, `<unk>` and other special tokens (after merging
                repeats; see class docstring); the word delimiter stays.
            clean_up_tokenization_spaces: remove spaces before punctuation (" ." -> "."); default: the attribute.
            output_char_offsets / output_word_offsets: return a `CTCDecoderOutput` with frame offsets.
            group_tokens: merge runs of identical ids (CTC); False decodes each id on its own.
            spaces_between_special_tokens: join all tokens with spaces (transformers' meaning).

        Returns:
            The text, or a `CTCDecoderOutput` when offsets are asked for. Convert a frame offset to seconds with
            `wavlm.frames.frame_to_seconds`.
        """
        groups = self._groups(self.convert_ids_to_tokens(_ids_list(token_ids)), group_tokens)
        if skip_special_tokens:
            skipped = self._skipped_tokens
            groups = [g for g in groups if g[0] not in skipped]
        text, char_offsets, word_offsets = self._render(groups, spaces_between_special_tokens, output_char_offsets,
                                                        output_word_offsets)
        cleanup = self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None \
            else clean_up_tokenization_spaces
        if cleanup:
            text = clean_up_tokenization(text)
        if not (output_char_offsets or output_word_offsets):
            return text
        return CTCDecoderOutput(text=text, char_offsets=char_offsets, word_offsets=word_offsets)

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
            if getattr(sequences, "ndim", 2) != 2:
                raise TypeError(f"batch_decode takes a (batch, length) array of token ids, got shape "
                                f"{tuple(sequences.shape)}; for logits decode logits.argmax(-1)")
            _ids_list(sequences.reshape(-1)[:1])  # float arrays (logits) are named before the rows are split
            sequences = sequences.tolist()
        outputs = [self.decode(s, skip_special_tokens, clean_up_tokenization_spaces, output_char_offsets,
                               output_word_offsets, group_tokens, spaces_between_special_tokens) for s in sequences]
        if not (output_char_offsets or output_word_offsets):
            return outputs
        return CTCDecoderOutput(
            text=[o.text for o in outputs],
            char_offsets=[o.char_offsets for o in outputs] if output_char_offsets else None,
            word_offsets=[o.word_offsets for o in outputs] if output_word_offsets else None)

    @staticmethod
    def clean_up_tokenization(text: str) -> str:
        return clean_up_tokenization(text)

    # --------------------------------------------------------------------------------------------- I/O
    def to_config(self) -> dict[str, Any]:
        """The `tokenizer_config.json` content (transformers' key names, `added_tokens_decoder` included)."""
        config = {
            **self.extra_config,
            **self.special_tokens_map,
            "replace_word_delimiter_char": self.replace_word_delimiter_char,
            "do_lower_case": self.do_lower_case,
            "target_lang": self.target_lang,
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
            "model_max_length": self.model_max_length,
            "added_tokens_decoder": {str(i): t.to_dict() for i, t in self.added_tokens_decoder.items()},
            "tokenizer_class": HF_TOKENIZER_CLASS,
        }
        if self.padding_side != "right":
            config["padding_side"] = self.padding_side
        if self.truncation_side != "right":
            config["truncation_side"] = self.truncation_side
        if self._extra_specials:
            config["additional_special_tokens"] = list(self._extra_specials)  # read by transformers 4 and 5
        return config

    def save_pretrained(self, save_directory: str | os.PathLike, legacy_format: bool | None = None,
                        filename_prefix: str | None = None, push_to_hub: bool = False) -> tuple[str, ...]:
        """Write vocab.json, tokenizer_config.json, special_tokens_map.json (and added_tokens.json for ids past
        vocab.json); returns the paths."""
        if push_to_hub:
            raise NotImplementedError("push_to_hub is not supported; save locally and upload with huggingface_hub")
        path = Path(save_directory)
        if path.is_file():
            raise ValueError(f"save_pretrained needs a directory, {path} is a file")
        path.mkdir(parents=True, exist_ok=True)
        special_map = dict(self.special_tokens_map)
        if self._extra_specials:
            special_map["additional_special_tokens"] = list(self._extra_specials)
        files = {TOKENIZER_CONFIG_NAME: self.to_config(), SPECIAL_TOKENS_MAP_NAME: special_map,
                 VOCAB_NAME: self.vocab}
        beyond = {t: i for t, i in self.added_tokens_encoder.items() if i >= self.vocab_size}
        if beyond:
            files[ADDED_TOKENS_NAME] = beyond
        written = []
        for name, content in files.items():
            file = path / ((filename_prefix + "-" if filename_prefix else "") + name)
            file.write_text(json.dumps(content, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
            written.append(str(file))
        return tuple(written)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> WavLMCTCTokenizer:
        """Load from a directory or Hub id holding vocab.json (+ tokenizer_config.json, special_tokens_map.json,
        added_tokens.json). Hub options (revision, cache_dir, token, local_files_only, ...) select the files; other
        keyword arguments (`target_lang`, `bos_token`, ...) override saved values, as in transformers."""
        from wavlm.hub import resolve_files

        hub = hub_options(kwargs)
        directory = resolve_files(pretrained_model_name_or_path,
                                  [VOCAB_NAME, TOKENIZER_CONFIG_NAME, SPECIAL_TOKENS_MAP_NAME, ADDED_TOKENS_NAME],
                                  **hub)
        if not (directory / VOCAB_NAME).is_file():
            raise OSError(f"no {VOCAB_NAME} in {pretrained_model_name_or_path}: a CTC tokenizer needs one")

        def read(name: str) -> dict[str, Any]:
            file = directory / name
            return read_json_object(file, "a tokenizer") if file.is_file() else {}

        try:
            return cls._from_files(directory, read, pretrained_model_name_or_path, kwargs)
        except ConfigError:
            raise
        except (ValueError, TypeError, AttributeError, OverflowError) as e:  # a value the tokenizer refuses
            raise ConfigError(f"the tokenizer files in {directory} hold a value the tokenizer cannot use: {e}") from e

    @classmethod
    def _from_files(cls, directory: Path, read: Any, pretrained_model_name_or_path: str | os.PathLike,
                    kwargs: dict[str, Any]) -> WavLMCTCTokenizer:
        config = read(TOKENIZER_CONFIG_NAME)
        _check_tokenizer_config(config, directory / TOKENIZER_CONFIG_NAME)
        named = config.pop("model_specific_special_tokens", None) or {}
        if isinstance(config.get("extra_special_tokens"), Mapping):  # transformers 4.5x: named extra tokens
            named = {**config.pop("extra_special_tokens"), **named}
        extra = list(config.pop("extra_special_tokens", None) or config.pop("additional_special_tokens", None) or [])
        for name, token in named.items():
            if name in SPECIAL_TOKEN_NAMES:
                config.setdefault(name, token)
            else:
                extra.append(token)
        if "added_tokens_decoder" in config:  # transformers >= 4.34 writes everything here
            decoder = {int(i): t for i, t in config.pop("added_tokens_decoder").items()}
        else:  # older directories: special_tokens_map.json and added_tokens.json
            added = read(ADDED_TOKENS_NAME)
            bad = next(((t, i) for t, i in added.items() if isinstance(i, bool) or not isinstance(i, int) or i < 0),
                       None)
            if bad:
                raise ConfigError(f"{directory / ADDED_TOKENS_NAME} gives the token {bad[0]!r} the id {bad[1]!r}; "
                                  "ids must be non-negative integers")
            for key, value in read(SPECIAL_TOKENS_MAP_NAME).items():
                if key in ("additional_special_tokens", "extra_special_tokens"):
                    extra += [t for t in value or [] if t not in extra]
                elif not kwargs.get(key):
                    config[key] = value
            specials = {_token_content(config.get(k)) for k in SPECIAL_TOKEN_NAMES if config.get(k)}
            specials |= {_token_content(t) for t in extra}
            decoder = {int(i): AddedToken(str(t), special=t in specials) for t, i in added.items()}
        if extra and "extra_special_tokens" not in kwargs and "additional_special_tokens" not in kwargs:
            config["extra_special_tokens"] = extra
        config = {k: v for k, v in config.items() if k not in _DERIVED_KEYS or k == "extra_special_tokens"}
        config.update(kwargs)
        config.setdefault("name_or_path", str(pretrained_model_name_or_path))
        return cls(vocab_file=directory / VOCAB_NAME, added_tokens_decoder=decoder, **config)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
                f"len={len(self)}, target_lang={self.target_lang!r}, do_lower_case={self.do_lower_case}, "
                f"word_delimiter_token={self.word_delimiter_token!r}, special_tokens={self.all_special_tokens})")


Wav2Vec2CTCTokenizer = WavLMCTCTokenizer


# tokenizer_config.json settings and the types they must have (the others are checked where they are used)
_BOOL_SETTINGS = ("do_lower_case", "clean_up_tokenization_spaces", "split_special_tokens")
_TOKEN_SETTINGS = (*SPECIAL_TOKEN_NAMES, "replace_word_delimiter_char")


def _check_tokenizer_config(config: dict[str, Any], file: Path) -> None:
    """The settings of tokenizer_config.json that would be misread silently, or fail without naming the file."""
    for name in _BOOL_SETTINGS:
        if name in config and not isinstance(config[name], bool):
            raise ConfigError(f"{file}: {name} must be true or false, got {config[name]!r}")
    for name in _TOKEN_SETTINGS:
        value = config.get(name)
        if value is not None and not isinstance(value, (str, Mapping)):
            raise ConfigError(f"{file}: {name} must be a token (a string), got {value!r}")
    limit = config.get("model_max_length")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit < 0
                              or limit != limit):
        raise ConfigError(f"{file}: model_max_length must be a non-negative number, got {limit!r}")
    decoder = config.get("added_tokens_decoder")
    if decoder is not None:
        if not isinstance(decoder, Mapping):
            raise ConfigError(f"{file}: added_tokens_decoder must map ids to tokens, got {type(decoder).__name__}")
        for idx, token in decoder.items():
            if not str(idx).isdigit():
                raise ConfigError(f"{file}: added_tokens_decoder has the key {idx!r}; keys must be token ids")
            if not isinstance(token, (str, Mapping)) or (isinstance(token, Mapping)
                                                         and not isinstance(token.get("content"), str)):
                raise ConfigError(f"{file}: added_tokens_decoder[{idx!r}] must be a token with a string 'content', "
                                  f"got {token!r}")
    for name in ("extra_special_tokens", "additional_special_tokens"):
        value = config.get(name)
        if value is not None and not isinstance(value, (list, Mapping)):
            raise ConfigError(f"{file}: {name} must be a list of tokens, got {value!r}")


def _int_batch(data: dict[str, Any], tensor_type: str | None) -> BatchFeature:
    """BatchFeature of id lists; with a tensor type, rectangular id rows become int64 even when empty."""
    if tensor_type is not None:
        for key in _ID_FIELDS.intersection(data):
            rows = data[key]
            if isinstance(rows, list) and len({len(r) if isinstance(r, list) else -1 for r in rows}) <= 1:
                data[key] = np.asarray(rows, dtype=np.int64)
    return BatchFeature(data, tensor_type=tensor_type)


def _to_py(value: Any) -> Any:
    """Arrays/tensors (or lists of them) -> nested Python lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_to_py(v) for v in value]
    return value


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
