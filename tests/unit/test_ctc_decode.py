"""CTC decoding: greedy against brute force, beam search against exhaustive path sums, ARPA LM by hand."""
import gzip
import itertools

import numpy as np
import pytest
import torch

from wavlm.tasks.ctc_decode import (ArpaLM, Word, beam_search, forced_align, greedy_decode, ids_to_text, load_lm,
                                    word_timestamps)


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _collapse(path, blank=0):
    return tuple(k for k, _ in itertools.groupby(path) if k != blank)


def _exact_sequence_logprobs(lp, blank=0):
    """log P(labels | x) for every label sequence, summing all V**T paths."""
    out = {}
    for path in itertools.product(range(lp.shape[1]), repeat=lp.shape[0]):
        score = sum(lp[t, c] for t, c in enumerate(path))
        seq = _collapse(path, blank)
        out[seq] = np.logaddexp(out.get(seq, -np.inf), score)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_greedy_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    lp = _log_softmax(rng.normal(size=(30, 5)) * 2)
    best = lp.argmax(1).tolist()
    hyp = greedy_decode(torch.tensor(lp))
    assert tuple(hyp.ids) == _collapse(best)
    assert hyp.acoustic == pytest.approx(lp.max(1).sum(), rel=1e-6)
    for tok, (s, e) in zip(hyp.ids, hyp.spans):
        assert all(best[t] == tok for t in range(s, e))
        assert (s == 0 or best[s - 1] != tok) and (e == 30 or best[e] != tok)


def test_greedy_spans_hand_case():
    path = [0, 1, 1, 0, 1, 2, 2, 0]  # "1 1 2" with a blank separating the repeated 1
    lp = np.log(np.full((8, 3), 0.1))
    lp[np.arange(8), path] = np.log(0.8)
    hyp = greedy_decode(lp)
    assert hyp.ids == [1, 1, 2] and hyp.spans == [(1, 3), (4, 5), (5, 7)]


@pytest.mark.parametrize("seed", range(4))
def test_forced_align_is_the_best_path(seed):
    rng = np.random.default_rng(seed)
    lp = _log_softmax(rng.normal(size=(6, 3)))
    ids = [1, 1] if seed % 2 else [2, 1]
    spans = forced_align(lp, ids)
    paths = [p for p in itertools.product(range(3), repeat=6) if _collapse(p) == tuple(ids)]
    best = max(paths, key=lambda p: sum(lp[t, c] for t, c in enumerate(p)))
    runs = [(k, len(list(g))) for k, g in itertools.groupby(best)]
    expect, t = [], 0
    for k, n in runs:
        if k != 0:
            expect.append((t, t + n))
        t += n
    assert spans == expect
    with pytest.raises(ValueError, match="at least"):
        forced_align(lp[:2], [1, 1])


@pytest.mark.parametrize("seed", range(6))
def test_beam_width_one_equals_greedy_on_peaked_posteriors(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(50, 8))
    logits[np.arange(50), rng.integers(0, 8, 50)] += 8  # one clear winner per frame
    lp = _log_softmax(logits)
    beam = beam_search(lp, beam_width=1)[0]
    greedy = greedy_decode(lp)
    assert beam.ids == greedy.ids
    assert beam.spans == greedy.spans


@pytest.mark.parametrize("seed", range(12))
def test_beam_search_finds_the_exact_best_sequence(seed):
    rng = np.random.default_rng(seed)
    n_frames, vocab = 3 + seed % 4, 3
    lp = _log_softmax(rng.normal(size=(n_frames, vocab)) * 1.5)
    exact = _exact_sequence_logprobs(lp)
    hyps = beam_search(lp, beam_width=10_000, prune_logp=-np.inf, align="all")
    best = max(exact, key=exact.get)
    assert tuple(hyps[0].ids) == best
    assert hyps[0].acoustic == pytest.approx(exact[best])
    for h in hyps:  # with an unbounded beam every prefix probability is exact
        assert h.acoustic == pytest.approx(exact[tuple(h.ids)])
        assert h.spans == forced_align(lp, h.ids)
    assert len(hyps) == len(exact)


ARPA = """
some header text is ignored
\\data\\
ngram 1=5
ngram 2=3
ngram 3=1

\\1-grams:
-1.0\t<s>\t-0.5
-0.7\t</s>
-0.5\ta\t-0.3
-0.6\tb\t-0.2
-1.5\t<unk>

\\2-grams:
-0.2\t<s> a\t-0.25
-0.4\ta b
-0.3\tb </s>

\\3-grams:
-0.1\t<s> a b

\\end\\
"""


def test_arpa_scores_by_hand(tmp_path):
    lm = ArpaLM.from_text(ARPA)
    assert lm.order == 3
    assert lm.score("a", ["<s>"]) == pytest.approx(-0.2)              # bigram
    assert lm.score("b", ["<s>", "a"]) == pytest.approx(-0.1)         # trigram
    assert lm.score("b", ["a"]) == pytest.approx(-0.4)
    assert lm.score("a", ["b"]) == pytest.approx(-0.2 + -0.5)         # bow(b) + P(a)
    assert lm.score("</s>", ["a"]) == pytest.approx(-0.3 + -0.7)      # bow(a) + P(</s>)
    assert lm.score("a", ["<s>", "a"]) == pytest.approx(-0.25 + -0.3 + -0.5)  # bow(<s> a) + bow(a) + P(a)
    assert lm.score("b", ["b", "a"]) == pytest.approx(-0.4)           # no (b a) context: no back-off weight
    assert lm.score("zzz", ["a"]) == pytest.approx(-0.3 + -1.5)       # unknown word -> <unk>
    assert lm.score("b", ["x", "<s>", "a"]) == pytest.approx(-0.1)    # only the last two words count
    assert lm.score_sentence(["a", "b"]) == pytest.approx(-0.2 + -0.1 + -0.3)
    path = tmp_path / "lm.arpa.gz"
    with gzip.open(path, "wt") as f:
        f.write(ARPA)
    assert load_lm(path, prefer_kenlm=False).score("b", ["<s>", "a"]) == pytest.approx(-0.1)


def test_arpa_errors():
    with pytest.raises(ValueError, match="declares 3 2-grams but 2"):
        ArpaLM.from_text(ARPA.replace("-0.3\tb </s>\n", ""))
    with pytest.raises(ValueError, match="no \\\\end\\\\"):
        ArpaLM.from_text(ARPA.replace("\\end\\", ""))
    with pytest.raises(ValueError, match=r"<arpa>:17: a 2-gram line needs 3 or 4 fields"):
        ArpaLM.from_text(ARPA.replace("-0.4\ta b", "-0.4\ta"))
    with pytest.raises(ValueError, match="cannot read the probability"):
        ArpaLM.from_text(ARPA.replace("-0.4\ta b", "x\ta b"))


def test_kenlm_agrees_with_arpa(tmp_path):
    pytest.importorskip("kenlm")
    path = tmp_path / "lm.arpa"
    path.write_text(ARPA.split("\n", 2)[2])
    ken, ours = load_lm(path), ArpaLM.load(path)
    for word, hist in [("a", ["<s>"]), ("b", ["<s>", "a"]), ("a", ["b"]), ("</s>", ["a"])]:
        assert ken.score(word, hist) == pytest.approx(ours.score(word, hist), abs=1e-5)


TOKENS = ["<pad>", "|", "a", "b"]


def test_lm_changes_the_beam_result():
    # one ambiguous frame: "a" 0.51 vs "b" 0.47; the LM strongly prefers the word "b"
    lp = np.log(np.array([[0.01, 0.01, 0.51, 0.47], [0.97, 0.01, 0.01, 0.01]]))
    lm = ArpaLM.from_text("\\data\\\nngram 1=4\n\\1-grams:\n-99 <s>\n-0.5 </s>\n-3.0 a\n-0.3 b\n\\end\\\n")
    assert greedy_decode(lp).ids == [2]
    assert beam_search(lp, beam_width=4)[0].ids == [2]
    with_lm = beam_search(lp, beam_width=4, lm=lm, alpha=1.0, beta=0.0, word_delimiter_id=1, tokens=TOKENS)
    assert with_lm[0].ids == [3]
    # the LM term is alpha * ln(10) * (log10 P(b) + log10 P(</s>)) + beta
    assert with_lm[0].lm == pytest.approx(np.log(10) * (-0.3 - 0.5))
    # summed over the alignments "b -", "- b" and "b b"
    assert with_lm[0].acoustic == pytest.approx(np.log(0.47 * 0.97 + 0.01 * 0.01 + 0.47 * 0.01))
    # a tiny weight leaves the acoustic choice alone
    assert beam_search(lp, beam_width=4, lm=lm, alpha=0.001, beta=0.0, word_delimiter_id=1,
                       tokens=TOKENS)[0].ids == [2]


def test_lm_scores_words_at_delimiters():
    # "ab|ba" vs "ab|ab" are acoustically close; a bigram makes "ab ba" the winner only with the LM
    lm = ArpaLM.from_text("\\data\\\nngram 1=5\nngram 2=1\n\\1-grams:\n-99 <s> 0\n-1 </s>\n-1 ab -1\n-1 ba\n-5 <unk>\n"
                          "\\2-grams:\n-0.1 ab ba\n\\end\\\n")
    def frame(probs):
        return np.log(np.array(probs) / sum(probs))
    # "a b | x - y": x is a 50 / b 48, y is a 48 / b 50, so "ab ab" (.5 * .5) beats "ab ba" (.48 * .48)
    lp = np.stack([frame([1, 1, 90, 1]), frame([1, 1, 1, 90]), frame([1, 90, 1, 1]),
                   frame([1, 1, 50, 48]), frame([98, 1, 1, 1]), frame([1, 1, 48, 50])])
    plain = beam_search(lp, beam_width=8)[0]
    assert ids_to_text(plain.ids, TOKENS, 1) == "ab ab"
    rescored = beam_search(lp, beam_width=8, lm=lm, alpha=0.5, beta=0.0, word_delimiter_id=1, tokens=TOKENS)[0]
    assert ids_to_text(rescored.ids, TOKENS, 1) == "ab ba"
    with pytest.raises(ValueError, match="word_delimiter_id"):
        beam_search(lp, lm=lm)


def test_word_timestamps_and_text():
    ids = [1, 2, 3, 1, 1, 3, 1]
    spans = [(0, 1), (2, 4), (5, 6), (7, 8), (9, 10), (12, 15), (16, 17)]
    assert ids_to_text(ids, TOKENS, 1) == "ab b"
    assert word_timestamps(ids, spans, TOKENS, 1) == [Word("ab", pytest.approx(0.04), pytest.approx(0.12)),
                                                     Word("b", pytest.approx(0.24), pytest.approx(0.30))]
    words = word_timestamps([2, 3], [(1, 2), (3, 5)], TOKENS, 1, frame_shift_s=0.1, frame_offset_s=1.0)
    assert words == [Word("ab", pytest.approx(1.1), pytest.approx(1.5))]
