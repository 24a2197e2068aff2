"""CTC decoding: greedy best path, Viterbi forced alignment, prefix beam search with a word n-gram LM, ARPA LMs.

Prefix beam search follows Hannun et al. 2014 (arXiv 1408.2873); the LM is a Katz back-off n-gram read from
an ARPA file (or kenlm when installed), applied when a word is completed. Frames are 20 ms apart for WavLM.
"""
from __future__ import annotations

import gzip
import heapq
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from wavlm.tasks.arrays import as_float64

_LN10 = math.log(10.0)
_NEG_INF = -math.inf


def _as_numpy(x: Any) -> np.ndarray:
    x = as_float64(x)
    if x.ndim != 2:
        raise ValueError(f"log_probs must be (T, V), got shape {x.shape}")
    return x


def _logaddexp(a: float, b: float) -> float:
    if a == _NEG_INF:
        return b
    if b == _NEG_INF:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


@dataclass
class Hypothesis:
    """A decoded label sequence.

    ids: token ids (blanks and repeats removed); spans: [start, end) frame range of each token; acoustic: natural
    log probability (best path for greedy, sum over alignments for beam search); lm: weighted LM terms
    (alpha * ln P_lm + beta per word); score = acoustic + lm.
    """
    ids: list[int]
    spans: list[tuple[int, int]] = field(default_factory=list)
    acoustic: float = 0.0
    lm: float = 0.0

    @property
    def score(self) -> float:
        return self.acoustic + self.lm


@dataclass(frozen=True)
class Word:
    """A word with its time span in seconds."""
    text: str
    start: float
    end: float


def greedy_decode(log_probs: Any, blank: int = 0) -> Hypothesis:
    """Best-path decoding of (T, V) log-probs (numpy or torch): argmax per frame, merge repeats, drop blanks.

    Each token's span is the run of frames where it was the argmax.
    """
    lp = _as_numpy(log_probs)
    best = lp.argmax(1) if lp.shape[0] else np.zeros(0, dtype=np.int64)
    ids, spans = [], []
    start = 0
    for t in range(1, len(best) + 1):
        if t == len(best) or best[t] != best[start]:
            if best[start] != blank:
                ids.append(int(best[start]))
                spans.append((start, t))
            start = t
    acoustic = float(lp[np.arange(len(best)), best].sum()) if len(best) else 0.0
    return Hypothesis(ids, spans, acoustic)


def forced_align(log_probs: Any, ids: Sequence[int], blank: int = 0) -> list[tuple[int, int]]:
    """Viterbi CTC alignment of a known label sequence: the [start, end) frames each token occupies on the most
    probable path (every token gets at least one frame). Raises ValueError when ids cannot fit in T frames.
    """
    lp = _as_numpy(log_probs)
    ids = [int(i) for i in ids]
    if not ids:
        return []
    n_frames = lp.shape[0]
    ext = np.full(2 * len(ids) + 1, blank, dtype=np.int64)
    ext[1::2] = ids
    n_states = ext.size
    need = len(ids) + sum(a == b for a, b in zip(ids, ids[1:]))
    if need > n_frames:
        raise ValueError(f"{len(ids)} tokens need at least {need} frames, got {n_frames}")
    skip = np.zeros(n_states, dtype=bool)
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    score = np.full(n_states, -np.inf)
    score[:2] = lp[0, ext[:2]]
    back = np.zeros((n_frames, n_states), dtype=np.int8)  # 0 stay, 1 from s-1, 2 from s-2
    for t in range(1, n_frames):
        prev1 = np.concatenate([[-np.inf], score[:-1]])
        prev2 = np.where(skip, np.concatenate([[-np.inf, -np.inf], score[:-2]]), -np.inf)
        stacked = np.stack([score, prev1, prev2])
        choice = stacked.argmax(0)
        back[t] = choice
        score = stacked[choice, np.arange(n_states)] + lp[t, ext]
    s = n_states - 1 if score[-1] >= score[-2] else n_states - 2
    state_at = np.empty(n_frames, dtype=np.int64)
    for t in range(n_frames - 1, -1, -1):
        state_at[t] = s
        s -= int(back[t, s])
    label_states = 2 * np.arange(len(ids)) + 1  # the path's states never decrease, so each token is one run
    starts = np.searchsorted(state_at, label_states, side="left")
    ends = np.searchsorted(state_at, label_states, side="right")
    return list(zip(starts.tolist(), ends.tolist()))


# ---------------------------------------------------------------------------------------------------------------
# language models

class LanguageModel(Protocol):
    """What beam_search needs from an LM: its order and log10 P(word | history)."""
    order: int

    def score(self, word: str, history: Sequence[str] = ()) -> float: ...


class ArpaLM:
    """A back-off n-gram LM read from an ARPA file; scores are log10 probabilities as in the file.

    score(word, history) applies Katz back-off: the longest n-gram (history[-(n-1):] + word) in the model gives
    its probability, plus the back-off weights of every longer history that was skipped. Words missing from the
    vocabulary are scored as <unk> when the model has it, else get `oov_log10`.
    """

    def __init__(self, ngrams: dict[tuple[str, ...], tuple[float, float]], order: int, oov_log10: float = -10.0):
        self.ngrams, self.order, self.oov_log10 = ngrams, order, oov_log10
        self.vocab = {k[0] for k in ngrams if len(k) == 1}

    @classmethod
    def from_text(cls, text: str, source: str = "<arpa>", oov_log10: float = -10.0) -> "ArpaLM":
        """Parse ARPA text: a \\data\\ header of `ngram N=count` lines, then \\N-grams: sections of
        `log10prob w1 .. wN [log10backoff]` lines, then \\end\\. Errors name the line."""
        declared: dict[int, int] = {}
        ngrams: dict[tuple[str, ...], tuple[float, float]] = {}
        found: dict[int, int] = {}
        section: int | None = None  # 0 for \data\, N for \N-grams:
        ended = False
        for lineno, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line:
                continue
            if line == "\\data\\":
                section = 0
                continue
            if line == "\\end\\":
                ended = True
                break
            if line.startswith("\\") and line.endswith("-grams:"):
                try:
                    section = int(line[1:-len("-grams:")])
                except ValueError:
                    raise ValueError(f"{source}:{lineno}: bad section header {line!r}") from None
                if section not in declared:
                    raise ValueError(f"{source}:{lineno}: section {line!r} not declared in \\data\\")
                found[section] = 0
                continue
            if section is None:
                continue  # text before \data\ is a comment by convention
            if section == 0:
                key, _, value = line.partition("=")
                parts = key.split()
                if len(parts) != 2 or parts[0] != "ngram" or not value.strip().isdigit() or not parts[1].isdigit():
                    raise ValueError(f"{source}:{lineno}: expected 'ngram N=count' in \\data\\, got {line!r}")
                declared[int(parts[1])] = int(value)
                continue
            fields = line.split()
            if len(fields) not in (section + 1, section + 2):
                raise ValueError(f"{source}:{lineno}: a {section}-gram line needs {section + 1} or {section + 2} "
                                 f"fields, got {len(fields)}: {line!r}")
            try:
                logp = float(fields[0])
                backoff = float(fields[section + 1]) if len(fields) == section + 2 else 0.0
            except ValueError:
                raise ValueError(f"{source}:{lineno}: cannot read the probability/back-off in {line!r}") from None
            ngrams[tuple(fields[1:section + 1])] = (logp, backoff)
            found[section] += 1
        if not ended:
            raise ValueError(f"{source}: no \\end\\ marker (truncated ARPA file?)")
        if not declared:
            raise ValueError(f"{source}: no \\data\\ section with ngram counts")
        for n, count in declared.items():
            if found.get(n, 0) != count:
                raise ValueError(f"{source}: \\data\\ declares {count} {n}-grams but {found.get(n, 0)} were read")
        return cls(ngrams, max(declared), oov_log10)

    @classmethod
    def load(cls, path: str | Path, oov_log10: float = -10.0) -> "ArpaLM":
        """Read an ARPA file (plain or .gz)."""
        path = Path(path)
        with open(path, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        with (gzip.open if gzipped else open)(path, "rt", encoding="utf-8") as f:
            return cls.from_text(f.read(), source=str(path), oov_log10=oov_log10)

    def _known(self, word: str) -> str | None:
        if word in self.vocab:
            return word
        return "<unk>" if "<unk>" in self.vocab else None

    def score(self, word: str, history: Sequence[str] = ()) -> float:
        """log10 P(word | history) with back-off; only the last order-1 history words matter."""
        w = self._known(word)
        if w is None:
            return self.oov_log10
        hist = tuple(self._known(h) or "<unk>" for h in history)[-(self.order - 1):] if self.order > 1 else ()
        total = 0.0
        while True:
            entry = self.ngrams.get(hist + (w,))
            if entry is not None:
                return total + entry[0]
            if not hist:
                return total + self.oov_log10
            total += self.ngrams.get(hist, (0.0, 0.0))[1]
            hist = hist[1:]

    def score_sentence(self, words: Sequence[str], bos: bool = True, eos: bool = True) -> float:
        """log10 probability of a word sequence, with <s> as first history and </s> scored at the end."""
        history: list[str] = ["<s>"] if bos else []
        total = 0.0
        for w in list(words) + (["</s>"] if eos else []):
            total += self.score(w, history)
            history.append(w)
        return total


class KenLM:
    """LanguageModel adapter over a `kenlm.Model` (ARPA or binary); log10 scores like ArpaLM."""

    def __init__(self, path: str | Path):
        try:
            import kenlm
        except ImportError:
            raise ImportError("reading this LM needs kenlm: pip install kenlm") from None
        self._kenlm = kenlm
        self.model = kenlm.Model(str(path))
        self.order = int(self.model.order)

    def score(self, word: str, history: Sequence[str] = ()) -> float:
        state, out = self._kenlm.State(), self._kenlm.State()
        hist = list(history)
        if hist and hist[0] == "<s>":
            self.model.BeginSentenceWrite(state)
            hist = hist[1:]
        else:
            self.model.NullContextWrite(state)
        for h in hist:
            self.model.BaseScore(state, h, out)
            state, out = out, state
        return float(self.model.BaseScore(state, word, out))


def load_lm(path: str | Path, prefer_kenlm: bool = True) -> LanguageModel:
    """An n-gram LM from a file: kenlm when installed and prefer_kenlm, else the pure-Python ArpaLM (ARPA only)."""
    if prefer_kenlm:
        try:
            return KenLM(path)
        except ImportError:
            pass
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"mmap lm"):
        raise ValueError(f"{path} looks like a binary kenlm model; pip install kenlm, or give an ARPA file")
    return ArpaLM.load(path)


# ---------------------------------------------------------------------------------------------------------------
# prefix beam search

@dataclass
class _LMState:
    total: float  # alpha * ln P + beta per completed word
    history: tuple[str, ...]
    word: str  # characters of the word being spelled


def beam_search(log_probs: Any, beam_width: int = 16, blank: int = 0, lm: LanguageModel | None = None,
                alpha: float = 0.5, beta: float = 1.0, word_delimiter_id: int | None = None,
                prune_logp: float = -10.0, tokens: Sequence[str] | None = None,
                align: str = "best") -> list[Hypothesis]:
    """CTC prefix beam search over (T, V) log-probs (natural log, e.g. log_softmax of the logits).

    Each prefix keeps the probability of ending in blank and in non-blank, summed over alignments; at every
    frame only tokens with log-prob > prune_logp (and the frame's best token) are tried, and the beam_width
    best prefixes by acoustic + LM score are kept. With `lm`, a word (the characters `tokens[id]` between
    word-delimiter tokens) is scored when its delimiter is emitted and, for the last word, at the end, where
    </s> is scored too: each word adds alpha * ln P_lm(word | previous words) + beta. tokens (id -> string)
    and word_delimiter_id are needed with an LM. Returns up to beam_width hypotheses, best first; frame spans
    come from a Viterbi alignment (forced_align) for the best one (align="best"), all ("all") or none ("none").
    """
    if align not in ("best", "all", "none"):
        raise ValueError(f"align must be 'best', 'all' or 'none', got {align!r}")
    lp = _as_numpy(log_probs)
    n_frames, vocab = lp.shape
    if beam_width < 1:
        raise ValueError(f"beam_width must be >= 1, got {beam_width}")
    if not 0 <= blank < vocab:
        raise ValueError(f"blank id {blank} is outside the vocabulary of {vocab}")
    if lm is not None and (tokens is None or word_delimiter_id is None):
        raise ValueError("an LM needs tokens (id -> string) and word_delimiter_id to find words")
    if tokens is not None and len(tokens) < vocab:
        raise ValueError(f"tokens has {len(tokens)} entries for a vocabulary of {vocab}")
    keep_hist = max(0, lm.order - 1) if lm is not None else 0
    word_cache: dict[tuple[tuple[str, ...], str], float] = {}

    def word_score(history: tuple[str, ...], word: str) -> float:
        key = (history, word)
        if key not in word_cache:
            word_cache[key] = alpha * _LN10 * lm.score(word, history) + beta
        return word_cache[key]

    def extend(state: _LMState, c: int) -> _LMState:
        if lm is None:
            return state
        if c == word_delimiter_id:
            if not state.word:
                return state
            hist = (state.history + (state.word,))[-keep_hist:] if keep_hist else ()
            return _LMState(state.total + word_score(state.history, state.word), hist, "")
        return _LMState(state.total, state.history, state.word + tokens[c])

    # prefixes live in a trie: node n is prefix(parent[n]) + (token[n],); node 0 is the empty prefix
    start_hist = ("<s>",) if keep_hist else ()
    parent, token, lm_states = [-1], [-1], [_LMState(0.0, start_hist, "")]
    children: dict[tuple[int, int], int] = {}

    def child(node: int, c: int) -> int:
        n = children.get((node, c))
        if n is None:
            n = children[(node, c)] = len(parent)
            parent.append(node)
            token.append(c)
            lm_states.append(extend(lm_states[node], c))
        return n

    beams: dict[int, tuple[float, float]] = {0: (0.0, _NEG_INF)}  # node -> (log P ending in blank, in non-blank)
    for t in range(n_frames):
        row = lp[t]
        cands = [(c, float(row[c])) for c in set(np.flatnonzero(row > prune_logp).tolist()) | {int(row.argmax())}]
        nxt: dict[int, list[float]] = {}

        def add(node: int, which: int, value: float) -> None:
            if value == _NEG_INF:  # e.g. a repeat after a prefix that cannot end in blank
                return
            slot = nxt.setdefault(node, [_NEG_INF, _NEG_INF])
            slot[which] = _logaddexp(slot[which], value)

        for node, (pb, pnb) in beams.items():
            ptot = _logaddexp(pb, pnb)
            last = token[node]
            for c, p in cands:
                if c == blank:
                    add(node, 0, ptot + p)
                elif c == last:
                    add(node, 1, pnb + p)  # repeated token without a blank in between: same prefix
                    if pb != _NEG_INF:
                        add(child(node, c), 1, pb + p)
                else:
                    add(child(node, c), 1, ptot + p)
        best = heapq.nlargest(beam_width, nxt.items(),
                              key=lambda kv: _logaddexp(kv[1][0], kv[1][1]) + lm_states[kv[0]].total)
        beams = {node: (v[0], v[1]) for node, v in best}

    results = []
    for node, (pb, pnb) in beams.items():
        ids = []
        n = node
        while n > 0:
            ids.append(token[n])
            n = parent[n]
        ids.reverse()
        state = lm_states[node]
        lm_total = state.total
        if lm is not None:
            history = state.history
            if state.word:
                lm_total += word_score(history, state.word)
                history = (history + (state.word,))[-keep_hist:] if keep_hist else ()
            lm_total += alpha * _LN10 * lm.score("</s>", history)
        results.append(Hypothesis(ids, [], _logaddexp(pb, pnb), lm_total))
    results.sort(key=lambda h: -h.score)
    for h in results[: {"best": 1, "all": len(results), "none": 0}[align]]:
        h.spans = forced_align(lp, h.ids, blank)
    return results


# ---------------------------------------------------------------------------------------------------------------
# text and word timestamps

def ids_to_text(ids: Sequence[int], tokens: Sequence[str], word_delimiter_id: int | None = None) -> str:
    """Join token strings; the word delimiter becomes a space, runs of spaces collapse, ends are stripped."""
    text = "".join(" " if i == word_delimiter_id else tokens[i] for i in ids)
    return " ".join(text.split())


def word_timestamps(ids: Sequence[int], spans: Sequence[tuple[int, int]], tokens: Sequence[str],
                    word_delimiter_id: int | None, frame_shift_s: float = 0.02,
                    frame_offset_s: float = 0.0) -> list[Word]:
    """Words with [start, end) times in seconds: from the first frame of a word's first token to the end of its
    last token's span; frame f starts at frame_offset_s + f * frame_shift_s (20 ms frames for WavLM)."""
    if len(ids) != len(spans):
        raise ValueError(f"got {len(ids)} ids but {len(spans)} spans")
    words: list[Word] = []
    chars: list[str] = []
    first = last = None
    for i, (s, e) in list(zip(ids, spans)) + [(word_delimiter_id, (0, 0))]:
        if i == word_delimiter_id:
            if chars:
                words.append(Word("".join(chars), frame_offset_s + first * frame_shift_s,
                                  frame_offset_s + last * frame_shift_s))
            chars, first = [], None
            continue
        chars.append(tokens[i])
        first = s if first is None else first
        last = e
    return words
