"""The `wavlm` subcommands' model work: layer embeddings, CTC transcription, utterance classification, speaker
verification and diarization, plus checkpoint conversion and model information. Each task maps a batch of
waveforms to results and knows its output formats; tasks/runner.py does the batching, I/O and sharding."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import IO, Any, Sequence

import numpy as np
import torch

from wavlm.tasks.io import Caption, Input, to_srt
from wavlm.tasks.rttm import Turn, format_rttm, read_rttm
from wavlm.tasks.runner import Runtime, Task, UsageError, log

__all__ = ["EmbedTask", "TranscribeTask", "ClassifyTask", "XVectorTask", "DiarizeTask", "parse_layers",
           "score_trials", "resolve_trial_inputs", "words_to_captions", "plot_turns", "convert_checkpoint",
           "model_info"]


def _text(s: str) -> bytes:
    return s.encode("utf-8")


# ---------------------------------------------------------------------------------------------------------------
# embed

def parse_layers(spec: str, num_layers: int, weights: str | None = None) -> tuple[list[int], np.ndarray | None]:
    """`--layers` -> (layer indices, weights or None). Layer 0 is the encoder input, L the last layer's output;
    'last' (last_hidden_state), 'all', a comma list ('6,12', negatives count from the end) or 'weighted' with --weights (L+1 numbers,
    used as given)."""
    n = num_layers + 1
    if spec == "weighted":
        if weights is None:
            raise UsageError(f"--layers weighted needs --weights with {n} comma-separated numbers (layers 0..{n - 1})")
        try:
            w = np.array([float(x) for x in weights.split(",")], dtype=np.float64)
        except ValueError:
            raise UsageError(f"--weights must be comma-separated numbers, got {weights!r}") from None
        if w.size != n:
            raise UsageError(f"--weights needs {n} numbers (layers 0..{n - 1}) for this model, got {w.size}")
        return list(range(n)), w
    if weights is not None:
        raise UsageError("--weights goes with --layers weighted")
    if spec == "last":
        return [num_layers], None
    if spec == "all":
        return list(range(n)), None
    try:
        layers = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--layers must be 'last', 'all', 'weighted' or comma-separated integers, got {spec!r}") \
            from None
    out = []
    for layer in layers:
        if not -n <= layer < n:
            raise UsageError(f"--layers {layer}: this model has layers 0..{num_layers}")
        out.append(layer % n)
    if not out:
        raise UsageError("--layers is empty")
    return out, None


class EmbedTask(Task):
    """Hidden states of chosen layers: (T, D) per frame, (D,) pooled, with a leading layer axis for several."""
    name = "embed"
    item_formats = ("npy", "safetensors")
    run_formats = ("jsonl", "npz")
    default_item_format = "npy"

    def __init__(self, runtime: Runtime, layers: str = "last", weights: str | None = None,
                 pool: str = "mean") -> None:
        super().__init__(runtime)
        self.layers, self.weights = parse_layers(layers, runtime.config.num_hidden_layers, weights)
        if pool not in ("mean", "none"):
            raise UsageError(f"--pool must be 'mean' or 'none', got {pool!r}")
        self.pool = pool
        # 'last' is last_hidden_state: for pre-LN (large) models that is after the final LayerNorm, while
        # hidden_states[L] is before it (as in transformers 5.23)
        self.last = layers == "last"
        self.describe = "weighted" if self.weights is not None else "last" if self.last else \
            ",".join(map(str, self.layers))

    def run_batch(self, wavs: list[np.ndarray]) -> list[np.ndarray]:
        values, mask = self.rt.inputs(wavs)
        out = self.rt.forward(values, attention_mask=mask, output_hidden_states=not self.last)
        hs = out.hidden_states
        if self.last:
            x = out.last_hidden_state.float()[:, None]
        elif self.weights is not None:
            x = sum(float(w) * hs[i].float() for i, w in zip(self.layers, self.weights))[:, None]
        else:
            x = torch.stack([hs[i].float() for i in self.layers], dim=1)  # (B, L, T, D)
        results = []
        for b, n in enumerate(self.rt.frame_lengths(mask)):
            e = x[b, :, :n]
            e = e.mean(dim=1) if self.pool == "mean" else e
            results.append((e[0] if e.shape[0] == 1 else e).cpu().numpy().astype(np.float32))
        return results

    def to_record(self, result: np.ndarray) -> dict[str, Any]:
        return {"layers": self.describe, "pool": self.pool, "shape": list(result.shape), "embedding": result}

    def from_record(self, record: dict[str, Any]) -> np.ndarray:
        return np.asarray(record["embedding"], dtype=np.float32).reshape(record["shape"])

    def write_item(self, file: IO[bytes], item: Input, result: np.ndarray, fmt: str) -> None:
        if fmt == "npy":
            np.save(file, result)
        else:
            from safetensors.numpy import save

            file.write(save({"embedding": np.ascontiguousarray(result)},
                            metadata={"id": item.id, "layers": self.describe, "pool": self.pool}))

    def dumps(self, pairs: list[tuple[Input, Any]], fmt: str) -> str | bytes:
        if fmt == "npz":
            buf = io.BytesIO()
            np.savez(buf, **{i.id: r for i, r in pairs})
            return buf.getvalue()
        return super().dumps(pairs, fmt)

    def load_run(self, path: Path, fmt: str) -> dict[str, Any]:
        if fmt == "npz":
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        return super().load_run(path, fmt)


# ---------------------------------------------------------------------------------------------------------------
# transcribe

def words_to_captions(words: Sequence[dict[str, Any]], max_chars: int = 42, max_gap_s: float = 1.0,
                      max_duration_s: float = 7.0) -> list[Caption]:
    """Group timed words into subtitle cues: a new cue after a pause longer than max_gap_s, or when the line would
    exceed max_chars characters or max_duration_s seconds."""
    cues: list[list[dict[str, Any]]] = []
    for w in words:
        cur = cues[-1] if cues else None
        if cur and (w["start"] - cur[-1]["end"] <= max_gap_s
                    and len(" ".join(x["word"] for x in cur + [w])) <= max_chars
                    and w["end"] - cur[0]["start"] <= max_duration_s):
            cur.append(w)
        else:
            cues.append([w])
    return [Caption(c[0]["start"], c[-1]["end"], " ".join(x["word"] for x in c)) for c in cues]


class TranscribeTask(Task):
    """CTC transcription: greedy best path or our prefix beam search (optionally with a word n-gram LM), with
    word timestamps from the token spans (frame f starts at f * 20 ms)."""
    name = "transcribe"
    item_formats = ("txt", "json", "srt")
    run_formats = ("txt", "jsonl", "srt")
    default_item_format = "txt"
    default_run_format = "txt"

    def __init__(self, runtime: Runtime, tokenizer: Any, decoder: str = "greedy", beam_width: int = 16,
                 lm: Any = None, alpha: float = 0.5, beta: float = 1.0) -> None:
        super().__init__(runtime)
        self.tok = tokenizer
        self.decoder, self.beam_width, self.lm, self.alpha, self.beta = decoder, beam_width, lm, alpha, beta
        vocab = runtime.config.vocab_size
        self.tokens = [tokenizer.convert_ids_to_tokens(i) for i in range(vocab)]
        self.blank = tokenizer.pad_token_id
        self.delimiter = tokenizer.word_delimiter_token_id

    def _seconds(self, frame: int) -> float:
        return round(frame * self.rt.frame_shift_s, 3)

    def run_batch(self, wavs: list[np.ndarray]) -> list[dict[str, Any]]:
        values, mask = self.rt.inputs(wavs)
        logits = self.rt.forward(values, attention_mask=mask).logits.float()
        results = []
        for b, n in enumerate(self.rt.frame_lengths(mask)):
            if self.decoder == "greedy":
                out = self.tok.decode(logits[b, :n].argmax(-1), output_word_offsets=True)
                text = out.text
                words = [{"word": w["word"], "start": self._seconds(w["start_offset"]),
                          "end": self._seconds(w["end_offset"])} for w in out.word_offsets]
            else:
                from wavlm.tasks.ctc_decode import beam_search, ids_to_text, word_timestamps

                lp = torch.log_softmax(logits[b, :n], dim=-1).cpu().numpy()
                best = beam_search(lp, self.beam_width, blank=self.blank, lm=self.lm, alpha=self.alpha,
                                   beta=self.beta, word_delimiter_id=self.delimiter, tokens=self.tokens)[0]
                text = ids_to_text(best.ids, self.tokens, self.delimiter)
                words = [{"word": w.text, "start": round(w.start, 3), "end": round(w.end, 3)}
                         for w in word_timestamps(best.ids, best.spans, self.tokens, self.delimiter,
                                                  self.rt.frame_shift_s)]
                if self.tok.do_lower_case:
                    text = text.lower()
                    words = [{**w, "word": w["word"].lower()} for w in words]
            results.append({"text": text, "words": words})
        return results

    def write_item(self, file: IO[bytes], item: Input, result: dict[str, Any], fmt: str) -> None:
        if fmt == "txt":
            file.write(_text(result["text"] + "\n"))
        elif fmt == "json":
            file.write(_text(json.dumps({"id": item.id, **result}, ensure_ascii=False, indent=1) + "\n"))
        else:
            file.write(_text(to_srt(words_to_captions(result["words"]))))

    def dumps(self, pairs: list[tuple[Input, Any]], fmt: str) -> str | bytes:
        if fmt == "txt":
            return "".join(f"{i.id}\t{r['text']}\n" for i, r in pairs)
        if fmt == "srt":
            if len(pairs) > 1:
                raise UsageError("SRT holds the captions of one recording: give a folder with -o for one .srt "
                                 "per input")
            return to_srt(words_to_captions(pairs[0][1]["words"])) if pairs else ""
        return super().dumps(pairs, fmt)

    def load_run(self, path: Path, fmt: str) -> dict[str, Any]:
        if fmt == "txt":
            out = {}
            for line in path.read_text(encoding="utf-8").splitlines():
                uid, _, text = line.partition("\t")
                out[uid] = {"text": text, "words": []}
            return out
        if fmt == "srt":
            raise UsageError("--resume cannot tell which input an .srt file came from; write to a folder")
        return super().load_run(path, fmt)


# ---------------------------------------------------------------------------------------------------------------
# classify

class ClassifyTask(Task):
    """Utterance classification: the top-k labels with their probabilities (softmax; sigmoid for multi-label
    models; the raw value for regression)."""
    name = "classify"
    item_formats = ("json",)
    run_formats = ("txt", "jsonl")
    default_run_format = "txt"

    def __init__(self, runtime: Runtime, top_k: int = 5) -> None:
        super().__init__(runtime)
        if top_k < 1:
            raise UsageError(f"--top-k must be >= 1, got {top_k}")
        self.top_k = top_k

    def run_batch(self, wavs: list[np.ndarray]) -> list[dict[str, Any]]:
        config = self.rt.config
        values, mask = self.rt.inputs(wavs)
        logits = self.rt.forward(values, attention_mask=mask).logits.float()
        if config.problem_type == "regression" or (config.problem_type is None and config.num_labels == 1):
            return [{"labels": [{"label": config.id2label[0], "score": round(float(v), 6)}]} for v in logits[:, 0]]
        probs = logits.sigmoid() if config.problem_type == "multi_label_classification" else logits.softmax(-1)
        k = min(self.top_k, probs.shape[-1])
        top = probs.topk(k, dim=-1)
        return [{"labels": [{"label": config.id2label[int(i)], "score": round(float(p), 6)}
                            for p, i in zip(ps, ids)]} for ps, ids in zip(top.values, top.indices)]

    def write_item(self, file: IO[bytes], item: Input, result: dict[str, Any], fmt: str) -> None:
        file.write(_text(json.dumps({"id": item.id, **result}, ensure_ascii=False) + "\n"))

    def dumps(self, pairs: list[tuple[Input, Any]], fmt: str) -> str | bytes:
        if fmt == "txt":
            return "".join(f"{i.id}\t" + "\t".join(f"{x['label']}:{x['score']:.4f}" for x in r["labels"]) + "\n"
                           for i, r in pairs)
        return super().dumps(pairs, fmt)

    def load_run(self, path: Path, fmt: str) -> dict[str, Any]:
        if fmt == "txt":
            out = {}
            for line in path.read_text(encoding="utf-8").splitlines():
                uid, *fields = line.split("\t")
                labels = [{"label": f.rpartition(":")[0], "score": float(f.rpartition(":")[2])} for f in fields]
                out[uid] = {"labels": labels}
            return out
        return super().load_run(path, fmt)


# ---------------------------------------------------------------------------------------------------------------
# verify

def xvector_min_samples(config: Any) -> int:
    from wavlm.heads import frames_needed

    return (frames_needed(config) - 1) * config.frame_stride + config.receptive_field


class XVectorTask(Task):
    """Speaker embeddings (x-vectors), one (D,) vector per utterance."""
    name = "verify"

    def min_samples(self) -> int:
        return xvector_min_samples(self.rt.config)

    def run_batch(self, wavs: list[np.ndarray]) -> list[np.ndarray]:
        values, mask = self.rt.inputs(wavs)
        emb = self.rt.forward(values, attention_mask=mask).embeddings.float().cpu().numpy()
        return list(emb)

    def to_record(self, result: np.ndarray) -> dict[str, Any]:
        return {"embedding": result}

    def from_record(self, record: dict[str, Any]) -> np.ndarray:
        return np.asarray(record["embedding"], dtype=np.float32)


def resolve_trial_inputs(trials: Sequence[Any], inputs: list[Input], base: Path) -> tuple[list[Input], dict[str, str]]:
    """Map each enroll/test token of a trial list to an input: an id among `inputs` (with or without its file
    extension), else a file relative to the trial list's folder or the working directory. Returns the inputs to
    embed and token -> input id. Raises UsageError naming tokens that match nothing."""
    by_id = {i.id: i for i in inputs}
    by_path = {str(i.path.resolve()): i for i in inputs}
    extra: dict[str, Input] = {}
    mapping, missing = {}, []
    for token in dict.fromkeys(t for trial in trials for t in (trial.enroll, trial.test)):
        stem = token.rsplit(".", 1)[0] if "." in token.rsplit("/", 1)[-1] else token
        found = by_id.get(token) or by_id.get(stem)
        if found is None:
            for root in (base, Path.cwd()):
                p = (root / token).resolve()
                if p.is_file():
                    found = by_path.get(str(p)) or extra.get(str(p)) or Input(token, p)
                    extra[str(p)] = found
                    break
        if found is None:
            missing.append(token)
        else:
            mapping[token] = found.id
    if missing:
        raise UsageError(f"{len(missing)} trial entries match no input id and no file (first: {missing[:3]}); "
                         "give the audio folder as input, or paths relative to the trial list")
    wanted = set(mapping.values())
    chosen = [i for i in inputs if i.id in wanted] + [i for i in extra.values() if i.id not in by_id]
    return list({i.id: i for i in chosen}.values()), mapping


def score_trials(trials: Sequence[Any], mapping: dict[str, str], embeddings: dict[str, np.ndarray],
                 threshold: float) -> tuple[list[dict[str, Any]], int]:
    """Cosine score per trial with its decision; trials with a failed input are left out (counted)."""
    from wavlm.tasks.scoring import cosine_scores

    rows, skipped = [], 0
    for t in trials:
        a, b = embeddings.get(mapping[t.enroll]), embeddings.get(mapping[t.test])
        if a is None or b is None:
            skipped += 1
            continue
        score = float(cosine_scores(a, b))
        rows.append({"enroll": t.enroll, "test": t.test, "score": score,
                     "decision": "same" if score >= threshold else "different", "label": t.label})
    return rows, skipped


# ---------------------------------------------------------------------------------------------------------------
# diarize

class DiarizeTask(Task):
    """Speaker diarization of one recording at a time.

    Frame mode (WavLMForAudioFrameClassification): per-speaker sigmoid activity -> median filter -> onset/offset
    hysteresis -> minimum durations. Window mode (x-vector or base model): embeddings of sliding windows (windows
    much quieter than the loudest one are left out as silence) -> agglomerative or spectral clustering."""
    name = "diarize"
    per_file = True
    item_formats = ("rttm",)
    run_formats = ("rttm", "jsonl")
    default_item_format = "rttm"
    default_run_format = "rttm"

    def __init__(self, runtime: Runtime, mode: str, batch_size: int = 8, onset: float = 0.5,
                 offset: float | None = None, median_width: int = 11, min_duration_on: float = 0.0,
                 min_duration_off: float = 0.0, window_s: float = 1.5, step_s: float = 0.75,
                 method: str = "spectral", num_speakers: int | None = None, max_speakers: int = 8,
                 threshold: float = 0.5, layer: int | None = None, silence_db: float = 40.0) -> None:
        super().__init__(runtime)
        self.mode, self.batch_size = mode, batch_size
        self.onset, self.offset, self.median_width = onset, offset, median_width
        self.min_on, self.min_off = min_duration_on, min_duration_off
        self.window_s, self.step_s, self.method = window_s, step_s, method
        self.num_speakers, self.max_speakers, self.threshold = num_speakers, max_speakers, threshold
        self.layer = runtime.config.num_hidden_layers if layer is None else layer
        self.silence_db = silence_db
        if median_width < 1 or median_width % 2 == 0:
            raise UsageError(f"--median-width must be a positive odd number of frames, got {median_width}")
        if method not in ("agglomerative", "spectral"):
            raise UsageError(f"--cluster must be 'agglomerative' or 'spectral', got {method!r}")

    def min_samples(self) -> int:
        if self.mode == "xvector":
            return xvector_min_samples(self.rt.config)
        return int(self.rt.config.receptive_field)

    def _speaker(self, index: int) -> str:
        label = self.rt.config.id2label.get(index, "")
        return label if label and not label.startswith("LABEL_") and not any(c.isspace() for c in label) \
            else f"spk{index:02d}"

    def run_batch(self, wavs: list[np.ndarray]) -> list[list[tuple[float, float, str]]]:
        return [self._frames(w) if self.mode == "frames" else self._windows(w) for w in wavs]

    def _frames(self, wav: np.ndarray) -> list[tuple[float, float, str]]:
        from wavlm.tasks.segmentation import binarize, median_filter

        values, mask = self.rt.inputs([wav])
        probs = self.rt.forward(values, attention_mask=mask).logits[0].float().sigmoid().cpu().numpy()
        probs = median_filter(probs, self.median_width)
        tracks = binarize(probs, self.onset, self.offset, self.min_on, self.min_off, self.rt.frame_shift_s)
        turns = [(round(s, 3), round(e, 3), self._speaker(k)) for k, segs in enumerate(tracks) for s, e in segs]
        return sorted(turns)

    def _embed(self, crops: list[np.ndarray]) -> np.ndarray:
        values, mask = self.rt.inputs(crops)
        if self.mode == "xvector":
            return self.rt.forward(values, attention_mask=mask).embeddings.float().cpu().numpy()
        hs = self.rt.forward(values, attention_mask=mask, output_hidden_states=True).hidden_states[self.layer].float()
        valid = self.rt.model._get_feature_vector_attention_mask(hs.shape[1], mask)[..., None].to(hs.dtype)
        return ((hs * valid).sum(1) / valid.sum(1)).cpu().numpy()

    def _windows(self, wav: np.ndarray) -> list[tuple[float, float, str]]:
        from wavlm.tasks.cluster import agglomerative_cluster, sliding_windows, spectral_cluster, windows_to_segments

        sr = self.rt.sampling_rate
        windows = sliding_windows(len(wav), sr, self.window_s, self.step_s)
        rms = np.array([np.sqrt(np.mean(wav[s:e].astype(np.float64) ** 2)) for s, e in windows])
        speech = rms > rms.max() * 10 ** (-self.silence_db / 20) if rms.max() > 0 else np.zeros(len(rms), bool)
        index = np.flatnonzero(speech)
        labels = np.full(len(windows), -1, dtype=np.int64)
        if index.size:
            crops = [wav[windows[i][0]:windows[i][1]] for i in index]
            emb = np.concatenate([self._embed(crops[k:k + self.batch_size])
                                  for k in range(0, len(crops), self.batch_size)])
            k = None if self.num_speakers is None else min(self.num_speakers, len(index))
            if self.method == "agglomerative":
                found = agglomerative_cluster(emb, k, None if k is not None else self.threshold) \
                    if len(index) > 1 else np.zeros(1, np.int64)
            else:
                found = spectral_cluster(emb, k, max_clusters=self.max_speakers)
            labels[index] = found
        return [(round(s, 3), round(e, 3), f"spk{l:02d}") for s, e, l in windows_to_segments(windows, labels, sr)]

    def to_record(self, result: list[tuple[float, float, str]]) -> dict[str, Any]:
        return {"turns": [list(t) for t in result]}

    def from_record(self, record: dict[str, Any]) -> list[tuple[float, float, str]]:
        return [(float(s), float(e), str(spk)) for s, e, spk in record["turns"]]

    @staticmethod
    def _uri(item: Input) -> str:
        return "".join("_" if c.isspace() else c for c in item.id)

    def _rttm(self, pairs: list[tuple[Input, Any]]) -> str:
        return format_rttm([Turn(s, e, spk, uri=self._uri(i)) for i, turns in pairs for s, e, spk in turns])

    def write_item(self, file: IO[bytes], item: Input, result: Any, fmt: str) -> None:
        file.write(_text(self._rttm([(item, result)])))

    def dumps(self, pairs: list[tuple[Input, Any]], fmt: str) -> str | bytes:
        return self._rttm(pairs) if fmt == "rttm" else super().dumps(pairs, fmt)

    def load_run(self, path: Path, fmt: str) -> dict[str, Any]:
        if fmt == "rttm":
            out: dict[str, Any] = {}
            for t in read_rttm(path):
                out.setdefault(t.uri, []).append((t.start, t.end, t.speaker))
            return out
        return super().load_run(path, fmt)


def plot_turns(turns: Sequence[tuple[float, float, str]], duration: float, path: Path, title: str) -> None:
    """A PNG timeline: one row per speaker, a bar per turn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'wavlm[plot]' (or pip install matplotlib)") from None
    speakers = sorted({spk for _, _, spk in turns})
    fig, ax = plt.subplots(figsize=(10, 0.6 + 0.45 * max(1, len(speakers))))
    colours = plt.get_cmap("tab10")
    for row, spk in enumerate(speakers):
        bars = [(s, e - s) for s, e, who in turns if who == spk]
        ax.broken_barh(bars, (row - 0.4, 0.8), color=colours(row % 10))
    ax.set_yticks(range(len(speakers)), speakers)
    ax.set_xlim(0, max(duration, max((e for _, e, _ in turns), default=0.0)))
    ax.set_xlabel("time (s)")
    ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    from wavlm.tasks.io import atomic_write

    atomic_write(path, buf.getvalue())


# ---------------------------------------------------------------------------------------------------------------
# convert and info

def _original_kind(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".pt", ".pth", ".ckpt")


def convert_checkpoint(source: str, destination: str, to: str | None = None, dtype: str = "float32") -> str:
    """Original microsoft checkpoint (.pt) -> transformers directory (config.json, model.safetensors,
    preprocessor_config.json), or a transformers WavLMModel directory -> original .pt. Returns a summary line."""
    import wavlm
    from wavlm.features import WavLMFeatureExtractor
    from wavlm.tasks.io import atomic_write
    from wavlm.tasks.runner import resolve_dtype

    src, dst = Path(source), Path(destination)
    to = to or ("original" if dst.suffix.lower() in (".pt", ".pth") else "hf")
    if to not in ("hf", "original"):
        raise UsageError(f"--to must be 'hf' or 'original', got {to!r}")
    torch_dtype = resolve_dtype(dtype)
    if to == "hf":
        if dst.exists() and not dst.is_dir():
            raise UsageError(f"{dst} exists and is not a folder")
        try:
            model = wavlm.WavLMModel.from_pretrained(source, torch_dtype=torch_dtype)
        except Exception as e:  # noqa: BLE001
            raise UsageError(f"cannot load {source}: {e}") from None
        model.save_pretrained(dst)
        normalize = bool(getattr(model.config, "normalize", model.config.feat_extract_norm == "layer"))
        WavLMFeatureExtractor(do_normalize=normalize, return_attention_mask=True).save_pretrained(dst)
        return (f"wrote {dst}/config.json, model.safetensors and preprocessor_config.json "
                f"({model.num_parameters():,} parameters, {model.dtype})")
    from wavlm.checkpoint.original import original_to_config_cfg, state_dict_to_original
    from wavlm.config import WavLMConfig

    if _original_kind(src):
        raise UsageError(f"{src} is already an original checkpoint")
    try:
        config = WavLMConfig.from_pretrained(source)
    except Exception as e:  # noqa: BLE001
        raise UsageError(f"cannot read {source}: {e}") from None
    arch = (config.architectures or ["WavLMModel"])[0]
    if arch != "WavLMModel":
        log(f"note: {source} holds a {arch}; its task head has no original form, only the backbone is written")
    with torch.no_grad():
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not use these weights.*")
            model = wavlm.WavLMModel.from_pretrained(source, torch_dtype=torch_dtype)
    state = state_dict_to_original(model.state_dict(), model.config)
    payload = {"cfg": original_to_config_cfg(model.config), "model": {k: v.contiguous() for k, v in state.items()}}
    atomic_write(dst, lambda f: torch.save(payload, f))
    return f"wrote {dst} (original microsoft layout, {len(state)} tensors)"


def model_info(source: str) -> dict[str, Any]:
    """Configuration summary, parameter count, frame rate and receptive field of a checkpoint (no weights read
    for transformers directories: parameters are counted on the meta device)."""
    import wavlm
    from wavlm.config import WavLMConfig

    path = Path(source).expanduser()
    if path.is_file():
        from wavlm.checkpoint.hf import read_torch_file
        from wavlm.checkpoint.original import config_from_original, is_original_checkpoint

        obj = read_torch_file(path)
        if not is_original_checkpoint(obj):
            raise UsageError(f"{source} is not an original microsoft WavLM checkpoint")
        config, arch, kind = config_from_original(obj["cfg"]), "WavLMModel", "original microsoft checkpoint"
    else:
        try:
            config = WavLMConfig.from_pretrained(source)
        except Exception as e:  # noqa: BLE001
            raise UsageError(f"cannot read the model {source!r}: {e}") from None
        arch = (config.architectures or ["WavLMModel"])[0]
        kind = "transformers checkpoint"
    cls = getattr(wavlm, arch, wavlm.WavLMModel)
    with torch.device("meta"):
        params = cls(config).num_parameters()
    sr = 16000
    info: dict[str, Any] = {
        "model": source, "format": kind, "class": cls.__name__,
        "variant": "large-style (layer-norm conv, pre-LN encoder)" if config.do_stable_layer_norm
        else "base-style (group-norm conv, post-LN encoder)",
        "hidden_size": config.hidden_size, "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads, "intermediate_size": config.intermediate_size,
        "parameters": params,
        "frame_rate_hz": sr / config.frame_stride, "frame_stride_samples": config.frame_stride,
        "receptive_field_samples": config.receptive_field,
        "receptive_field_ms": 1000 * config.receptive_field / sr,
    }
    if cls.__name__ == "WavLMForCTC":
        info["vocab_size"] = config.vocab_size
    if cls.__name__ in ("WavLMForSequenceClassification", "WavLMForAudioFrameClassification", "WavLMForXVector"):
        info["num_labels"] = config.num_labels
        labels = [config.id2label[i] for i in range(config.num_labels)]
        info["labels"] = labels if len(labels) <= 20 else labels[:20] + ["..."]
    if cls.__name__ == "WavLMForXVector":
        info["xvector_output_dim"] = config.xvector_output_dim
    return info


def format_info(info: dict[str, Any]) -> str:
    width = max(len(k) for k in info)
    lines = []
    for k, v in info.items():
        if k == "parameters":
            v = f"{v:,} ({v / 1e6:.2f} M)"
        elif isinstance(v, float):
            v = f"{v:g}"
        lines.append(f"{k:<{width}}  {v}")
    return "\n".join(lines) + "\n"

