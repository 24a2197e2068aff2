"""Deterministic synthetic corpora: read sentences and digit strings (asr), N speakers x M utterances with trial
lists (speakers), conversations of 2-3 voices with pauses, overlaps and exact RTTM (conversations), and command
words (commands). Same seed and options -> byte-identical audio, manifests, RTTM and trial lists.

A corpus is planned first (every random draw, in order, from one frozen RandomState) and then rendered item by
item in worker threads: the engines run as subprocesses, so two threads use two cores, and the result does not
depend on the number of workers.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from . import effects, text
from .manifest import CUTS_NAME, MANIFEST_NAME, write_cuts, write_manifest
from .voices import (ENGINES, HELD_OUT_VOICES, SAMPLE_RATE, SPLITS, Prosody, Voice, check_engines, require_engines,
                     require_tool, synthesize, tool_versions, voices_for)

KINDS = ("asr", "speakers", "conversations", "commands")
DEFAULT_SIZES = {"asr": 200, "speakers": 192, "conversations": 24, "commands": 200}
# Options of each kind with their defaults (make_corpus(..., **options)).
KIND_OPTIONS: dict[str, dict[str, Any]] = {
    "asr": {"digit_fraction": 0.3},
    "speakers": {"num_speakers": 24},
    "conversations": {"speakers_per_conversation": (2, 3), "turns": (4, 8), "overlap_prob": 0.3,
                      "pause": (0.1, 0.8)},
    "commands": {"words": text.COMMAND_WORDS},
}
SPLIT_FRACTIONS = {"train": 0.8, "valid": 0.1, "test": 0.1}
MAX_OVERLAP_S = 1.0
# (pitch, rate, shift) of the 1st, 2nd, ... speaker made from one base voice: far apart, so that they stay
# separable (the spectral shift matters most: pitch and rate alone hardly move MFCC statistics).
_SPEAKER_PROSODY = ((0.0, 1.0, 0.0), (-0.6, 1.1, -2.0), (0.6, 0.9, 2.0), (0.3, 1.14, -3.0), (-0.9, 0.95, 3.5),
                    (0.9, 1.05, -1.0), (0.0, 0.86, 1.0))
_OUTPUTS = ("audio", "rttm", MANIFEST_NAME, "train.jsonl", "valid.jsonl", "test.jsonl", "trials_valid.txt",
            "trials_test.txt", "corpus.json", CUTS_NAME)


@dataclass(frozen=True)
class Segment:
    """One utterance inside an item: who says what, how, and at which peak level (dB full scale)."""
    voice: Voice
    prosody: Prosody
    transcript: str
    speaker: str
    peak_db: float


@dataclass
class Item:
    """One manifest entry to render: segments placed after `lead` seconds of silence, each later one after a
    pause (gap >= 0, seconds) or overlapping the previous one by a fraction of the shorter of the two (gap < 0),
    then `trail` seconds; optional reverb (reverberance, damping, room scale) and noise (colour, SNR dB, seed)."""
    id: str
    split: str
    segments: list[Segment]
    gaps: list[float]
    lead: float
    trail: float
    noise: tuple[str, float, int] | None
    reverb: tuple[float, float, float] | None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Corpus:
    """What make_corpus wrote: its folder, the manifest path, the records (as in the manifest) and corpus.json."""
    root: Path
    manifest: Path
    records: list[dict[str, Any]]
    info: dict[str, Any]

    def split(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["split"] == name]


# ------------------------------------------------------------------------------------------------ planning


class _Draw:
    """The corpus's random draws, all from one RandomState (numpy keeps its streams frozen across versions)."""

    def __init__(self, seed: int):
        self.rng = np.random.RandomState(seed)

    def uniform(self, lo: float, hi: float, digits: int = 3) -> float:
        return round(float(self.rng.uniform(lo, hi)), digits)

    def chance(self, p: float) -> bool:
        return bool(self.rng.rand() < p)

    def int(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi]."""
        return lo + int(self.rng.randint(hi - lo + 1))

    def shuffled(self, items: list) -> list:
        return [items[i] for i in self.rng.permutation(len(items))]

    def prosody(self, pitch: float = 0.8, rate: tuple[float, float] = (0.85, 1.15), shift: float = 1.5,
                shift_prob: float = 0.5) -> Prosody:
        """Random pitch in [-pitch, pitch], rate in `rate`, and with probability shift_prob a spectral shift in
        [-shift, shift] semitones (it costs a sox call)."""
        p, r = self.uniform(-pitch, pitch), self.uniform(*rate)
        use, s = self.chance(shift_prob), self.uniform(-shift, shift)
        return Prosody(p, r, s if use else 0.0)

    def transcript(self, digit_fraction: float) -> str:
        return text.digit_string(self.rng) if self.chance(digit_fraction) else text.sentence(self.rng)


def _effects(draw: _Draw, noise_prob: float, snr_db: tuple[float, float], reverb_prob: float):
    # Every parameter is drawn whether used or not, so that the effect options change nothing else in a corpus.
    noise = (draw.chance(noise_prob), effects.NOISE_COLOURS[draw.int(0, 2)], draw.uniform(*snr_db, digits=2),
             draw.int(0, 2**31 - 2))
    reverb = (draw.chance(reverb_prob), draw.uniform(20, 80, 1), draw.uniform(20, 80, 1),
              draw.uniform(30, 100, 1))
    return (noise[1:] if noise[0] else None), (reverb[1:] if reverb[0] else None)


def _split_counts(n: int) -> dict[str, int]:
    if n < len(SPLITS):
        raise ValueError(f"num_utterances must be at least {len(SPLITS)} (one per split), got {n}")
    counts = {s: max(1, int(n * SPLIT_FRACTIONS[s])) for s in ("valid", "test")}
    return {"train": n - sum(counts.values()), **counts}


def _pools(engines: tuple[str, ...], need: int = 1) -> dict[str, list[Voice]]:
    pools = {s: voices_for(s, engines) for s in SPLITS}
    for split, pool in pools.items():
        if len(pool) < need:
            raise ValueError(f"the {split} split has {len(pool)} voice(s) with engines {list(engines)}, "
                             f"{need} needed; add an engine")
    return pools


def _single(draw: _Draw, uid: str, split: str, seg: Segment, fx: tuple, fields: dict) -> Item:
    return Item(uid, split, [seg], [], draw.uniform(0.05, 0.3), draw.uniform(0.05, 0.3), *_effects(draw, *fx),
                fields=fields)


def _plan_asr(draw: _Draw, n: int, engines, fx, digit_fraction: float) -> list[Item]:
    if not 0.0 <= digit_fraction <= 1.0:
        raise ValueError(f"digit_fraction must be in [0, 1], got {digit_fraction}")
    items = []
    pools = _pools(engines)
    for split, count in _split_counts(n).items():
        pool = draw.shuffled(pools[split])
        for k in range(count):
            voice = pool[k % len(pool)]
            seg = Segment(voice, draw.prosody(), draw.transcript(digit_fraction), voice.id, draw.uniform(-12, -1))
            items.append(_single(draw, f"asr-{split}-{k:05d}", split, seg, fx,
                                 {"text": seg.transcript, "voice": voice.id}))
    return items


def _plan_commands(draw: _Draw, n: int, engines, fx, words: Iterable[str]) -> list[Item]:
    words = [text.normalize_text(w) for w in words]
    if len(words) < 2 or len(set(words)) != len(words) or not all(words):
        raise ValueError(f"commands need at least 2 distinct non-empty words, got {words}")
    items = []
    pools = _pools(engines)
    for split, count in _split_counts(n).items():
        pool = draw.shuffled(pools[split])
        for k in range(count):  # every voice says every word before any word comes again with that voice
            word, voice = words[k % len(words)], pool[(k // len(words)) % len(pool)]
            seg = Segment(voice, draw.prosody(), word, voice.id, draw.uniform(-12, -1))
            items.append(_single(draw, f"cmd-{split}-{k:05d}", split, seg, fx,
                                 {"text": word, "label": word, "voice": voice.id}))
    return items


def _speaker_counts(num_speakers: int) -> dict[str, int]:
    if num_speakers < 6:
        raise ValueError(f"num_speakers must be at least 6 (2 per split), got {num_speakers}")
    test, valid = max(2, round(num_speakers / 4)), max(2, round(num_speakers / 8))
    return {"train": num_speakers - test - valid, "valid": valid, "test": test}


def _plan_speakers(draw: _Draw, n: int, engines, fx, num_speakers: int) -> list[Item]:
    per_speaker = n // num_speakers if num_speakers > 0 else 0
    if per_speaker < 2:
        raise ValueError(f"speakers need at least 2 utterances each: num_utterances={n} over "
                         f"num_speakers={num_speakers}")
    items, index = [], 0
    pools = _pools(engines)
    for split, count in _speaker_counts(num_speakers).items():
        pool = draw.shuffled(pools[split])
        for k in range(count):
            voice, round_ = pool[k % len(pool)], k // len(pool)
            if round_ < len(_SPEAKER_PROSODY):
                pitch, rate, shift = _SPEAKER_PROSODY[round_]
                prosody = Prosody(round(pitch + draw.uniform(-0.05, 0.05), 3),
                                  round(rate + draw.uniform(-0.02, 0.02), 3), round(shift + draw.uniform(-0.1, 0.1), 3))
            else:
                prosody = draw.prosody(1.0, (0.85, 1.15), 3.5, 1.0)
            speaker, said = f"spk{index:03d}", set()
            index += 1
            for u in range(per_speaker):
                transcript = draw.transcript(0.2)
                while transcript in said:  # different texts per utterance of a speaker
                    transcript = draw.transcript(0.2)
                said.add(transcript)
                seg = Segment(voice, prosody, transcript, speaker, draw.uniform(-12, -1))
                items.append(_single(draw, f"{speaker}-{u:03d}", split, seg, fx,
                                     {"text": transcript, "speaker": speaker, "voice": voice.id}))
    return items


def _pair(value: Any, name: str, kind: type = int) -> tuple:
    lo, hi = (value, value) if isinstance(value, (int, float)) else tuple(value)
    if lo < 0 or hi < lo:
        raise ValueError(f"{name} must be a number or a (min, max) pair with 0 <= min <= max, got {value}")
    return kind(lo), kind(hi)


def _plan_conversations(draw: _Draw, n: int, engines, fx, speakers_per_conversation, turns, overlap_prob: float,
                        pause) -> list[Item]:
    k_lo, k_hi = _pair(speakers_per_conversation, "speakers_per_conversation")
    t_lo, t_hi = _pair(turns, "turns")
    p_lo, p_hi = _pair(pause, "pause", float)
    if k_lo < 2:
        raise ValueError(f"a conversation needs at least 2 speakers, got speakers_per_conversation={k_lo}")
    if not 0.0 <= overlap_prob <= 1.0:
        raise ValueError(f"overlap_prob must be in [0, 1], got {overlap_prob}")
    items = []
    pools = _pools(engines, need=k_hi)
    for split, count in _split_counts(n).items():
        for c in range(count):
            voices = draw.shuffled(pools[split])[: draw.int(k_lo, k_hi)]
            speakers = [(v, draw.prosody(0.6, (0.9, 1.1), 1.5, 1.0), draw.uniform(-10, -3)) for v in voices]
            num_turns = max(len(speakers), draw.int(t_lo, t_hi))
            order = draw.shuffled(list(range(len(speakers))))  # everyone speaks, then anyone but the last one
            while len(order) < num_turns:
                order.append((order[-1] + draw.int(1, len(speakers) - 1)) % len(speakers))
            segments = [Segment(v, p, draw.transcript(0.15), v.id, peak) for v, p, peak in
                        (speakers[i] for i in order)]
            gaps = [-draw.uniform(0.1, 0.45) if draw.chance(overlap_prob) else draw.uniform(p_lo, p_hi)
                    for _ in segments[1:]]
            items.append(Item(f"conv-{split}-{c:04d}", split, segments, gaps, draw.uniform(0.2, 0.6),
                              draw.uniform(0.2, 0.6), *_effects(draw, *fx),
                              fields={"speakers": sorted(v.id for v in voices)}))
    return items


_PLANNERS: dict[str, Callable[..., list[Item]]] = {
    "asr": _plan_asr, "speakers": _plan_speakers, "conversations": _plan_conversations, "commands": _plan_commands,
}


# ------------------------------------------------------------------------------------------------ rendering


def _place(item: Item, lengths: list[int]) -> list[int]:
    """Start sample of every segment (all on the GRID); a voice never overlaps its own previous turn."""
    starts, cursor, free_at = [], effects.on_grid(item.lead), {}
    for i, (seg, n) in enumerate(zip(item.segments, lengths)):
        if i == 0:
            start = cursor
        elif item.gaps[i - 1] >= 0:
            start = cursor + effects.on_grid(item.gaps[i - 1])
        else:
            overlap = int(-item.gaps[i - 1] * min(lengths[i - 1], n)) // effects.GRID * effects.GRID
            start = cursor - min(overlap, effects.on_grid(MAX_OVERLAP_S))
        start = max(start, free_at.get(seg.speaker, 0))
        starts.append(start)
        cursor = max(cursor, start + n)
        free_at[seg.speaker] = start + n
    return starts


def _render(item: Item, root: Path, kind: str) -> dict[str, Any]:
    import soundfile

    pieces = [effects.set_peak(effects.trim(synthesize(s.voice, text.spoken(s.transcript), s.prosody)), s.peak_db)
              for s in item.segments]
    starts = _place(item, [p.size for p in pieces])
    total = max(s + p.size for s, p in zip(starts, pieces)) + effects.on_grid(item.trail)
    wav = np.zeros(total, dtype=np.float32)
    active = np.zeros((len({s.speaker for s in item.segments}), total), dtype=bool)
    index = {spk: i for i, spk in enumerate(dict.fromkeys(s.speaker for s in item.segments))}
    for seg, start, piece in zip(item.segments, starts, pieces):
        wav[start:start + piece.size] += piece
        active[index[seg.speaker], start:start + piece.size] = True
    synth: dict[str, Any] = {}
    if item.reverb is not None:
        wav = effects.reverberate(wav, *item.reverb)
        synth["reverb"] = dict(zip(("reverberance", "damping", "room_scale"), item.reverb))
    if item.noise is not None:
        wav = effects.add_noise(wav, active.any(axis=0), *item.noise)
        synth["noise"] = {"colour": item.noise[0], "snr_db": item.noise[1]}
    wav = effects.limit(wav)

    audio = Path("audio") / item.split / f"{item.id}.wav"
    soundfile.write(root / audio, wav, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    record: dict[str, Any] = {"audio": audio.as_posix(), "id": item.id, "duration": total / SAMPLE_RATE}
    if kind == "conversations":
        from wavlm.tasks.rttm import Turn, write_rttm

        rttm = Path("rttm") / f"{item.id}.rttm"
        turns = sorted(Turn(s / SAMPLE_RATE, (s + p.size) / SAMPLE_RATE, seg.speaker, uri=item.id)
                       for seg, s, p in zip(item.segments, starts, pieces))
        write_rttm(turns, root / rttm)  # exact: every position is on the 1 ms grid
        record.update(rttm=rttm.as_posix(), **item.fields, num_turns=len(turns),
                      overlap=int((active.sum(axis=0) > 1).sum()) / SAMPLE_RATE)
    else:
        prosody = item.segments[0].prosody
        record.update(item.fields)
        synth = {"pitch": prosody.pitch, "rate": prosody.rate, "shift": prosody.shift,
                 "peak_db": item.segments[0].peak_db, **synth}
    record["split"] = item.split
    if synth:
        record["synth"] = synth
    return record


# ------------------------------------------------------------------------------------------------ trials


def make_trials(records: list[dict[str, Any]], seed: int | list[int]) -> list[tuple[str, str, int]]:
    """Balanced verification trials over the records' speakers: every same-speaker pair (label 1) and as many
    different-speaker pairs (label 0) drawn without replacement, shuffled; entries are the records' audio paths."""
    by_speaker: dict[str, list[str]] = {}
    for r in records:
        by_speaker.setdefault(r["speaker"], []).append(r["audio"])
    names = sorted(by_speaker)
    if len(names) < 2:
        raise ValueError(f"trials need at least 2 speakers, got {len(names)}")
    same = [(u[i], u[j], 1) for name in names for u in [by_speaker[name]] for i in range(len(u))
            for j in range(i + 1, len(u))]
    cross = [(a, b) for i, x in enumerate(names) for y in names[i + 1:] for a in by_speaker[x] for b in by_speaker[y]]
    rng = np.random.RandomState(seed)
    picked = rng.choice(len(cross), size=min(len(same), len(cross)), replace=False)
    trials = same + [(*cross[i], 0) for i in sorted(picked)]
    return [trials[i] for i in rng.permutation(len(trials))]


# ------------------------------------------------------------------------------------------------ the corpus


def _prepare(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out_dir} is not empty; choose an empty folder or pass overwrite=True "
                                  f"(--overwrite), which replaces only what a corpus writes")
        for name in _OUTPUTS:
            p = out_dir / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def make_corpus(kind: str, out_dir: str | os.PathLike, num_utterances: int | None = None, seed: int = 0, *,
                noise_prob: float = 0.0, snr_db: tuple[float, float] = (5.0, 20.0), reverb_prob: float = 0.0,
                engines: Iterable[str] = ENGINES, workers: int | None = None, lhotse: bool = False,
                overwrite: bool = False, log: Callable[[str], None] | None = None, **options: Any) -> Corpus:
    """Generate a synthetic corpus of `kind` ("asr", "speakers", "conversations" or "commands") in `out_dir`.

    num_utterances: manifest entries (conversations for "conversations"), over the train / valid / test splits
        (80 / 10 / 10 %; "speakers": speakers split 1/2 : 1/8 : 1/4 and num_utterances // num_speakers each).
        Default: DEFAULT_SIZES[kind].
    seed: the same seed and options give byte-identical files, whatever `workers` is.
    noise_prob, snr_db: chance that an entry gets white, pink or brown noise, at an SNR drawn from snr_db (dB,
        relative to the speech).  reverb_prob: chance of sox reverb.
    engines: "espeak" and/or "flite". workers: rendering threads (default: up to 2 CPUs).
    lhotse: also write cuts.jsonl.gz (needs `pip install 'wavlm[train]'`).
    options: per kind (KIND_OPTIONS): asr digit_fraction; speakers num_speakers; conversations
        speakers_per_conversation (min, max), turns (min, max), overlap_prob, pause (min, max) seconds;
        commands words.

    Writes audio/<split>/<id>.wav (16 kHz mono PCM_16), manifest.jsonl (all splits) and <split>.jsonl,
    rttm/<id>.rttm (conversations), trials_valid.txt and trials_test.txt (speakers: `enroll test label` with audio
    paths relative to the corpus folder), and corpus.json (options, voices per split, counts, tool versions).
    Voices of the valid and test splits (test: HELD_OUT_VOICES) never occur in train.

    Raises SynthError when espeak-ng / flite / sox is missing or fails, ValueError for bad options,
    FileExistsError when out_dir is not empty and overwrite is False.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    unknown = sorted(set(options) - set(KIND_OPTIONS[kind]))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for kind {kind!r}; it takes {sorted(KIND_OPTIONS[kind])}")
    options = {**KIND_OPTIONS[kind], **options}
    n = DEFAULT_SIZES[kind] if num_utterances is None else int(num_utterances)
    if not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    if not (0.0 <= noise_prob <= 1.0 and 0.0 <= reverb_prob <= 1.0):
        raise ValueError(f"noise_prob and reverb_prob must be in [0, 1], got {noise_prob} and {reverb_prob}")
    snr = tuple(float(x) for x in snr_db)
    if len(snr) != 2 or snr[0] > snr[1]:
        raise ValueError(f"snr_db must be (min, max) in dB with min <= max, got {snr_db}")
    engines = check_engines(engines)
    workers = max(1, min(2, os.cpu_count() or 1) if workers is None else int(workers))

    items = _PLANNERS[kind](_Draw(seed), n, engines, (noise_prob, snr, reverb_prob), **options)
    require_engines(engines)
    needs_sox = reverb_prob > 0 or "flite" in engines  # flite voices are pitch-shifted with sox
    if needs_sox:
        require_tool("sox", "needed for reverberation and for the pitch of flite voices")
    out_dir = Path(out_dir)
    _prepare(out_dir, overwrite)
    for split in SPLITS:
        (out_dir / "audio" / split).mkdir(parents=True, exist_ok=True)
    if kind == "conversations":
        (out_dir / "rttm").mkdir(exist_ok=True)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        records = list(pool.map(lambda item: _render(item, out_dir, kind), items))
    elapsed = time.perf_counter() - t0

    manifest = write_manifest(records, out_dir / MANIFEST_NAME)
    for split in SPLITS:
        write_manifest([r for r in records if r["split"] == split], out_dir / f"{split}.jsonl")
    info: dict[str, Any] = {
        "kind": kind, "seed": seed, "num_utterances": n, "sample_rate": SAMPLE_RATE,
        "options": {**{k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
                    "noise_prob": noise_prob, "snr_db": list(snr), "reverb_prob": reverb_prob,
                    "engines": list(engines)},
        "held_out_voices": [v for v in HELD_OUT_VOICES if v.split(":")[0] in engines],
        "splits": {s: {"entries": sum(r["split"] == s for r in records),
                       "seconds": round(sum(r["duration"] for r in records if r["split"] == s), 3),
                       "voices": sorted({v for r in records if r["split"] == s
                                         for v in (r["speakers"] if kind == "conversations" else [r["voice"]])})}
                   for s in SPLITS},
    }
    if kind == "commands":
        info["labels"] = list(dict.fromkeys(r["label"] for r in records))
    if kind == "speakers":
        info["speakers"] = {s: sorted({r["speaker"] for r in records if r["split"] == s}) for s in SPLITS}
        info["trials"] = {}
        for s in ("valid", "test"):
            trials = make_trials([r for r in records if r["split"] == s], [seed, SPLITS.index(s)])
            path = out_dir / f"trials_{s}.txt"
            path.write_text("".join(f"{a} {b} {label}\n" for a, b, label in trials), encoding="utf-8")
            info["trials"][s] = {"file": path.name, "target": sum(t[2] for t in trials),
                                 "nontarget": sum(1 - t[2] for t in trials)}
    info["tools"] = tool_versions(engines, needs_sox)
    (out_dir / "corpus.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    if lhotse:
        write_cuts(manifest)
    if log is not None:
        seconds = sum(r["duration"] for r in records)
        log(f"{kind}: {len(records)} entries, {seconds:.1f} s of audio in {elapsed:.1f} s "
            f"({len(records) / max(elapsed, 1e-9):.1f} entries/s, {workers} worker(s)) -> {manifest}")
    return Corpus(out_dir, manifest, records, info)
