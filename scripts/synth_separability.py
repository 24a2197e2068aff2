"""How separable the speakers of `wavlm synth speakers` are, and how fast corpora are made.

    python scripts/synth_separability.py                       # 24 speakers x 8 utterances, seed 0
    python scripts/synth_separability.py --num-speakers 48 --per-speaker 10 --speed

Each utterance becomes a 40-dim vector: mean and standard deviation over its speech frames (within 40 dB of the
loudest) of MFCCs 1-20 (c0, the level, left out; 25 ms Hann window, 10 ms hop, 40 mel bands, 20-7600 Hz), minus
the corpus mean. Reported: cosine-scoring EER on the corpus's own
trial lists (held-out test speakers, valid speakers), on all pairs of the whole corpus, on the pairs of speakers
that share a base voice (speaker = voice + pitch + rate), and leave-one-out nearest-centroid speaker accuracy.
This MFCC-statistics baseline is what a trained x-vector model must beat. With --speed: entries per second of
asr corpora with 1 and 2 worker threads.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from wavlm.synth import make_corpus  # noqa: E402
from wavlm.tasks.scoring import compute_eer, read_trials  # noqa: E402


def mfcc_stats(wav: np.ndarray, sr: int = 16000, n_mels: int = 40, n_ceps: int = 20) -> np.ndarray:
    win, hop, n_fft = int(0.025 * sr), int(0.010 * sr), 512
    n = 1 + max(0, (wav.size - win) // hop)
    frames = np.lib.stride_tricks.as_strided(wav, (n, win), (wav.strides[0] * hop, wav.strides[0])) * np.hanning(win)
    power = np.abs(np.fft.rfft(frames, n_fft)) ** 2
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    edges = 700 * (10 ** (np.linspace(mel(20), mel(7600), n_mels + 2) / 2595) - 1)
    bins = np.fft.rfftfreq(n_fft, 1 / sr)
    fbank = np.maximum(0, np.minimum((bins - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None]),
                                     (edges[2:, None] - bins) / (edges[2:, None] - edges[1:-1, None])))
    energy = power.sum(1)
    power = power[energy >= energy.max() * 1e-4]  # speech frames only: the padding is digital silence
    logmel = np.log(power @ fbank.T + 1e-10)
    k = np.arange(n_mels)
    dct = np.cos(np.pi / n_mels * (k[None, :] + 0.5) * np.arange(1, n_ceps + 1)[:, None])  # c0 (level) left out
    ceps = logmel @ dct.T
    return np.concatenate([ceps.mean(0), ceps.std(0)])


def embed(corpus) -> dict[str, np.ndarray]:
    import soundfile

    vecs = {r["audio"]: mfcc_stats(soundfile.read(corpus.root / r["audio"], dtype="float64")[0])
            for r in corpus.records}
    mean = np.mean(list(vecs.values()), axis=0)
    return {k: (v - mean) / np.linalg.norm(v - mean) for k, v in vecs.items()}


def eer_of(pairs, emb) -> tuple[float, int]:
    scores = [float(emb[a] @ emb[b]) for a, b, _ in pairs]
    return compute_eer(scores, [label for *_, label in pairs])[0], len(pairs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num-speakers", type=int, default=24)
    ap.add_argument("--per-speaker", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise-prob", type=float, default=0.0)
    ap.add_argument("--speed", action="store_true", help="also time asr corpora of 200 entries, 1 and 2 workers")
    ap.add_argument("--json", default=None, help="write the numbers to this file")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        corpus = make_corpus("speakers", Path(tmp) / "spk", args.num_speakers * args.per_speaker, args.seed,
                             num_speakers=args.num_speakers, noise_prob=args.noise_prob)
        made = time.perf_counter() - t0
        emb = embed(corpus)
        speaker = {r["audio"]: r["speaker"] for r in corpus.records}
        voice = {r["speaker"]: r["voice"] for r in corpus.records}
        results = {"speakers": args.num_speakers, "per_speaker": args.per_speaker, "seed": args.seed,
                   "noise_prob": args.noise_prob, "generation_s": round(made, 2),
                   "entries_per_s": round(len(corpus.records) / made, 1)}
        for split in ("test", "valid"):
            trials = read_trials(corpus.root / f"trials_{split}.txt")
            results[f"eer_trials_{split}"] = eer_of([(t.enroll, t.test, t.label) for t in trials], emb)
        keys = sorted(emb)
        allpairs = [(a, b, int(speaker[a] == speaker[b])) for i, a in enumerate(keys) for b in keys[i + 1:]]
        results["eer_all_pairs"] = eer_of(allpairs, emb)
        shared = [p for p in allpairs if p[2] == 1 or voice[speaker[p[0]]] == voice[speaker[p[1]]]]
        if any(p[2] == 0 for p in shared):
            results["eer_same_base_voice"] = eer_of(shared, emb)
        # leave-one-out nearest centroid
        correct = 0
        for k in keys:
            cents = {}
            for j in keys:
                if j != k:
                    cents.setdefault(speaker[j], []).append(emb[j])
            best = max(cents, key=lambda s: float(np.mean(cents[s], axis=0) @ emb[k]))
            correct += best == speaker[k]
        results["speaker_id_accuracy"] = round(correct / len(keys), 4)
        results["chance"] = round(1 / args.num_speakers, 4)
        if args.speed:
            for workers in (1, 2):
                t0 = time.perf_counter()
                c = make_corpus("asr", Path(tmp) / f"asr{workers}", 200, 1, workers=workers)
                dt = time.perf_counter() - t0
                results[f"asr_entries_per_s_{workers}_workers"] = round(len(c.records) / dt, 1)
                results[f"asr_realtime_factor_{workers}_workers"] = round(dt / sum(r["duration"] for r in c.records), 4)

    for k, v in results.items():
        if isinstance(v, tuple):
            print(f"{k:32s} {100 * v[0]:6.2f} %  ({v[1]} trials)")
        else:
            print(f"{k:32s} {v}")
    print(f"cpu: {os.cpu_count()} cores", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
