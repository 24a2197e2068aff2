"""wavlm.train pieces without audio files: bucketing, schedules, PIT loss, AM-softmax, RTTM -> frame labels, WER/CER,
the layerdrop generator, and the CTC task's handling of impossible targets."""
from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import tiny_kwargs  # noqa: E402

pytest.importorskip("lhotse")

from wavlm import WavLMConfig, WavLMForCTC, WavLMModel  # noqa: E402
from wavlm.tasks.rttm import parse_rttm  # noqa: E402
from wavlm.train.data import Sampler, bucket_batches, crop  # noqa: E402
from wavlm.train.losses import am_softmax, pit_bce  # noqa: E402
from wavlm.train.metrics import cer, edit_distance, wer  # noqa: E402
from wavlm.train.schedule import lr_factor  # noqa: E402
from wavlm.train.tasks import frame_labels  # noqa: E402

# ------------------------------------------------------------------------------------------------ bucketing


def test_batches_are_bounded_by_padded_seconds_and_cover_every_item_once():
    rng = np.random.default_rng(0)
    durations = rng.uniform(0.5, 12.0, 300).tolist() + [30.0]  # one item longer than a batch
    batches = bucket_batches(durations, 40.0, num_buckets=8, seed=1)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(durations)))
    for b in batches:
        longest = max(durations[i] for i in b)
        assert len(b) * longest <= 40.0 or len(b) == 1
    assert [300] in batches  # the long one alone
    # buckets keep lengths together: the spread inside a batch is far below the corpus's
    spread = np.mean([max(durations[i] for i in b) - min(durations[i] for i in b) for b in batches if len(b) > 1])
    assert spread < 0.25 * (12.0 - 0.5)


def test_batch_order_depends_only_on_seed_and_epoch():
    durations = np.random.default_rng(1).uniform(1, 5, 100).tolist()
    a = bucket_batches(durations, 20.0, seed=3, epoch=0)
    assert a == bucket_batches(durations, 20.0, seed=3, epoch=0)
    assert a != bucket_batches(durations, 20.0, seed=3, epoch=1)
    assert a != bucket_batches(durations, 20.0, seed=4, epoch=0)
    fixed = bucket_batches(durations, 20.0, shuffle=False)
    assert [durations[b[0]] for b in fixed] == sorted(durations[b[0]] for b in fixed)
    with pytest.raises(ValueError, match="max_seconds"):
        bucket_batches(durations, 0.0)


def test_small_data_is_not_split_into_one_item_buckets():
    batches = bucket_batches([1.0, 1.1, 1.2, 1.3, 1.4, 1.5], 8.0, num_buckets=10, shuffle=False)
    assert len(batches) == 2  # 9 s in all: one bucket, two batches of padded length <= 8 s


def test_two_ranks_take_the_global_batches_of_one_rank_accumulating_two():
    durations = np.random.default_rng(2).uniform(1, 5, 60).tolist()
    one = Sampler(durations, 12.0, seed=5, world_size=1, accumulate=2)
    two = Sampler(durations, 12.0, seed=5, world_size=2, accumulate=1)
    batches = one.epoch_batches(0)
    assert one.steps_per_epoch() == two.steps_per_epoch() == len(batches) // 2
    for step in range(one.steps_per_epoch()):
        accumulated = one.step_batches(batches, step, 0)
        ranks = [two.step_batches(batches, step, r)[0] for r in range(2)]
        assert accumulated == ranks


def test_crop_is_random_with_a_generator_and_centred_without():
    wav = np.arange(100, dtype=np.float32)
    window, start = crop(wav, 40, None)
    assert start == 30 and window[0] == 30 and len(window) == 40
    starts = {crop(wav, 40, np.random.default_rng(s))[1] for s in range(20)}
    assert len(starts) > 5 and all(0 <= s <= 60 for s in starts)
    assert crop(wav, 200, np.random.default_rng(0))[0] is wav


# ------------------------------------------------------------------------------------------------ schedules


def test_warmup_then_linear_decay():
    f = [lr_factor(s, 10, 2, "linear") for s in range(10)]
    assert f[:2] == [0.5, 1.0]
    assert f[2] == 1.0 and f[9] == pytest.approx(1 - 7 / 8)
    assert all(a >= b for a, b in zip(f[1:], f[2:]))
    assert lr_factor(10, 10, 2, "linear") == 0.0
    assert lr_factor(10, 10, 2, "linear", final=0.1) == pytest.approx(0.1)


def test_cosine_and_constant():
    assert lr_factor(0, 101, 0, "cosine") == pytest.approx(1.0)
    assert lr_factor(50, 100, 0, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 100, 0, "cosine", final=0.2) == pytest.approx(0.2)
    assert lr_factor(77, 100, 10, "constant") == 1.0


def test_tri_stage_holds_then_decays_exponentially_to_final():
    total, warmup = 110, 10  # 100 steps after warmup: 40 held, 60 decaying
    assert lr_factor(0, total, warmup, "tri-stage", final=0.05, init=0.01) == pytest.approx(0.01 + 0.99 / 10)
    assert lr_factor(49, total, warmup, "tri-stage", final=0.05) == 1.0
    assert lr_factor(80, total, warmup, "tri-stage", final=0.05) == pytest.approx(0.05 ** 0.5)
    assert lr_factor(110, total, warmup, "tri-stage", final=0.05) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="final > 0"):
        lr_factor(0, total, warmup, "tri-stage")
    with pytest.raises(ValueError, match="schedule must be one of"):
        lr_factor(0, 10, 0, "step")
    with pytest.raises(ValueError, match="warmup"):
        lr_factor(0, 10, 11)


# ------------------------------------------------------------------------------------------------ losses


def _brute_force_pit(logits, labels, lengths):
    total = 0.0
    for b in range(logits.shape[0]):
        n = int(lengths[b])
        best = min(F.binary_cross_entropy_with_logits(logits[b, :n], labels[b, :n][:, list(p)], reduction="sum")
                   for p in itertools.permutations(range(logits.shape[2])))
        total += float(best)
    return total


@pytest.mark.parametrize("speakers", [1, 2, 3])
def test_pit_bce_equals_the_minimum_over_permutations(speakers):
    g = torch.Generator().manual_seed(speakers)
    logits = torch.randn(4, 30, speakers, generator=g, dtype=torch.float64)
    labels = (torch.rand(4, 30, speakers, generator=g) > 0.6).double()
    lengths = torch.tensor([30, 17, 5, 1])
    loss, perm = pit_bce(logits, labels, lengths)
    assert float(loss) == pytest.approx(_brute_force_pit(logits, labels, lengths), rel=1e-5)
    # the returned permutation is the one that attains it
    for b in range(4):
        n = int(lengths[b])
        picked = F.binary_cross_entropy_with_logits(logits[b, :n].float(), labels[b, :n][:, perm[b]].float(),
                                                    reduction="sum")
        assert float(picked) == pytest.approx(_brute_force_pit(logits[b:b + 1], labels[b:b + 1], lengths[b:b + 1]),
                                              rel=1e-5)


def test_pit_bce_ignores_padding_and_swapped_columns():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 20, 2, generator=g)
    labels = (torch.rand(1, 20, 2, generator=g) > 0.5).float()
    loss, _ = pit_bce(logits, labels, torch.tensor([12]))
    swapped, perm = pit_bce(logits, labels.flip(-1), torch.tensor([12]))
    assert float(loss) == pytest.approx(float(swapped))
    noisy = logits.clone()
    noisy[:, 12:] = 1e4  # padding: any value
    assert float(pit_bce(noisy, labels, torch.tensor([12]))[0]) == pytest.approx(float(loss))
    with pytest.raises(ValueError, match="batch, frames, speakers"):
        pit_bce(logits, labels[:, :, :1], torch.tensor([12]))


def test_am_softmax_sum_matches_the_heads_mean_loss():
    from wavlm.heads import AMSoftmaxLoss

    torch.manual_seed(0)
    head = AMSoftmaxLoss(6, 4)
    x, y = torch.randn(5, 6), torch.tensor([0, 3, 1, 1, 2])
    with torch.no_grad():
        assert float(am_softmax(x, head.weight, y)) == pytest.approx(5 * float(head(x, y)), rel=1e-5)


# ------------------------------------------------------------------------------------------------ frame labels


def test_rttm_turns_to_frame_labels_at_the_model_frame_rate():
    turns = parse_rttm("SPEAKER rec 1 0.00 0.05 <NA> <NA> A <NA> <NA>\n"
                       "SPEAKER rec 1 0.03 0.07 <NA> <NA> B <NA> <NA>\n")
    labels = frame_labels([(t.start, t.end, t.speaker) for t in turns], 6, ["A", "B"], 0.02)
    # frame centres 0.01 0.03 0.05 0.07 0.09 0.11: A covers [0, 0.05), B covers [0.03, 0.10)
    assert labels[:, 0].tolist() == [1, 1, 0, 0, 0, 0]
    assert labels[:, 1].tolist() == [0, 1, 1, 1, 1, 0]
    assert labels[1].tolist() == [1, 1]  # overlap: both active
    assert frame_labels([], 3, ["A", "x"]).sum() == 0
    with pytest.raises(ValueError, match="not among the speakers"):
        frame_labels([(0.0, 1.0, "C")], 3, ["A", "B"])


# ------------------------------------------------------------------------------------------------ WER / CER


@pytest.mark.parametrize("ref, hyp, distance", [
    ("kitten", "sitting", 3), ("", "abc", 3), ("abc", "", 3), ("abc", "abc", 0), ("ab", "ba", 2),
    (["the", "cat"], ["the", "cat", "sat"], 1),
])
def test_edit_distance(ref, hyp, distance):
    assert edit_distance(ref, hyp) == distance


def test_wer_and_cer_on_hand_cases():
    assert wer(["the cat sat"], ["the cat sat"]) == 0.0
    assert wer(["the cat sat"], ["the bat sat down"]) == pytest.approx(2 / 3)
    assert wer(["a b", "c d e f"], ["a", "c d e f"]) == pytest.approx(1 / 6)
    assert cer(["ab cd"], ["ab  cx"]) == pytest.approx(1 / 5)  # spaces count, runs of them are one
    assert wer([""], [""]) == 0.0 and wer([""], ["x"]) == 1.0
    with pytest.raises(ValueError, match="2 references but 1"):
        wer(["a", "b"], ["a"])


# ------------------------------------------------------------------------------------------------ layerdrop


def test_a_shared_layerdrop_generator_makes_every_replica_skip_the_same_layers():
    from wavlm.train.loop import _layerdrop_seed

    config = WavLMConfig(**tiny_kwargs(num_hidden_layers=6, layerdrop=0.5))
    torch.manual_seed(0)
    model = WavLMModel(config).train()
    x = torch.randn(1, 4000)

    def skipped(seed: int, other_rng_use: int) -> list[bool]:
        torch.rand(other_rng_use)  # ranks use the default generator differently (data, dropout)
        model.encoder.layerdrop_generator = torch.Generator().manual_seed(seed)
        states = model(x, output_hidden_states=True).hidden_states
        return [bool(torch.equal(a, b)) for a, b in zip(states[1:], states[2:])]

    rank0 = [skipped(_layerdrop_seed(7, step, 0), 3) for step in range(6)]
    rank1 = [skipped(_layerdrop_seed(7, step, 0), 1000) for step in range(6)]
    assert rank0 == rank1
    assert any(any(s) for s in rank0) and not all(all(s) for s in rank0)  # some layers dropped, not all
    assert len({tuple(s) for s in rank0}) > 1  # the draws differ between steps


# ------------------------------------------------------------------------------------------------ CTC


class _Cut:
    """A stand-in for a lhotse cut: in-memory audio."""

    def __init__(self, wav):
        self.wav, self.sampling_rate = wav, 16000
        self.duration = len(wav) / 16000

    def load_audio(self):
        return self.wav[None, :]


def test_ctc_task_skips_impossible_transcripts_and_zero_infinity_keeps_the_loss_finite():
    from wavlm.train.data import Item
    from wavlm.train.tasks import CTCTask, ctc_frames_needed

    assert ctc_frames_needed([5, 5, 6, 6, 6]) == 8
    logs = []
    task = CTCTask(log=logs.append)
    wav = np.random.default_rng(0).normal(size=3200).astype(np.float32) * 0.1  # 0.2 s: 9 frames
    fits = Item("fits", 0.2, _Cut(wav), text="AB C")
    too_long = Item("long", 0.2, _Cut(wav), text="ABCABCABC ABC")  # 13 tokens > 9 frames
    repeats = Item("repeats", 0.2, _Cut(wav), text="AAAAAA")  # 6 tokens, but 11 frames with the blanks between
    train, valid = task.prepare([fits, too_long, repeats], [fits])
    torch.manual_seed(0)
    task.build_model(_tiny_config_file(), {})
    kept, _ = task.check_fit(train, valid)
    assert [it.id for it in kept] == ["fits"]
    assert any("2 item(s)" in m and "long" in m and "repeats" in m for m in logs)
    # in a batch anyway (as a resumed run with a different vocabulary might get), zero_infinity zeroes it
    model = WavLMForCTC(task.config).train()
    batch = task.collate([fits, too_long], None)
    loss, extra = task.loss(model, batch)
    assert torch.isfinite(loss) and extra["infinite"] == 1.0
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_items_shorter_than_one_specaugment_span_are_skipped_in_training_only(tmp_path):
    """With SpecAugment on, a training batch shorter than mask_time_length frames would stop the run (transformers
    raises there too): such items are skipped and reported before training; validation (no masking) keeps them."""
    from wavlm.train.data import Item
    from wavlm.train.tasks import ClassifyTask

    config = tmp_path / "config.json"
    WavLMConfig(**tiny_kwargs("base", mask_time_prob=0.5, mask_time_length=10)).to_json_file(config)
    logs = []
    task = ClassifyTask(log=logs.append)
    wav = np.random.default_rng(0).normal(size=16000).astype(np.float32) * 0.1
    # one 10-frame span needs 9 * 320 + 400 = 3280 samples (0.205 s)
    short, enough = Item("short", 0.2, _Cut(wav[:3200]), label="a"), Item("enough", 1.0, _Cut(wav), label="b")
    train, valid = task.prepare([short, enough], [short, enough])
    task.build_model(str(config), {})
    assert task.min_input_seconds(True) == pytest.approx(0.205) and task.min_input_seconds(False) == 0.025
    train, valid = task.check_fit(train, valid)
    assert [it.id for it in train] == ["enough"] and [it.id for it in valid] == ["short", "enough"]
    assert any("skipped 1 item(s): shorter than 0.205 s: short" in m for m in logs)
    model = task.build_model(str(config), {}).train()
    assert torch.isfinite(task.loss(model, task.collate(train, np.random.default_rng(0)))[0])
    with pytest.raises(ValueError, match="must not exceed the number of"):  # what the rule prevents
        task.loss(model, task.collate([short], np.random.default_rng(0)))
    bad = ClassifyTask(crop_seconds=0.1, log=logs.append)
    both = [enough, Item("enough2", 1.0, _Cut(wav), label="a")]
    bad.prepare(both, both)
    bad.build_model(str(config), {})
    with pytest.raises(ValueError, match=r"crop_seconds=0.1 is shorter than the model needs in training \(0.205 s\)"):
        bad.check_fit(both, both)


def test_xvector_validation_runs_under_bfloat16_autocast():
    """The loop evaluates under its autocast; the trial scores used to come out bfloat16, which numpy cannot take,
    so every bf16 x-vector run (the default where the CPU has native bf16) stopped at its first validation."""
    from wavlm.train.data import Item
    from wavlm.train.tasks import XVectorTask

    rng = np.random.default_rng(0)
    items = [Item(f"u{i}", 1.0, _Cut(rng.normal(size=16000).astype(np.float32) * 0.1), speaker=f"s{i % 2}")
             for i in range(4)]
    task = XVectorTask(log=lambda m: None)
    train, valid = task.prepare(items, items)
    model = task.build_model(_tiny_config_file(), {}).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        metrics = task.evaluate(model, valid, torch.device("cpu"))
    assert 0.0 <= metrics["eer"] <= 1.0


def _tiny_config_file() -> str:
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="wavlm-train-"))
    WavLMConfig(**tiny_kwargs("large", mask_time_prob=0.0)).save_pretrained(folder)
    return str(folder / "config.json")
