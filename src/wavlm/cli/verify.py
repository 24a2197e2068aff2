"""`wavlm verify`: speaker verification, cosine scores of x-vectors for two recordings or a trial list, with EER
and minDCF when the trials are labelled."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from wavlm.cli import executor, io
from wavlm.cli.options import add_inputs, check_number
from wavlm.cli.report import UsageError, log
from wavlm.tasks.manifest import Input

HELP = "speaker verification with an x-vector model"
DESCRIPTION = ("Cosine score of x-vector embeddings. Either two audio files, or --trials with 'enroll test [label]' "
               "lines (ids of the given inputs or paths relative to the list); with labels, EER and minDCF are "
               "printed (stdout with -o, else stderr). Output lines: enroll, test, score, decision (tab-separated).")
RUNS_MODEL = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_inputs(p, "*")
    p.add_argument("--trials", default=None, help="trial list: 'enroll test [label]' per line")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="cosine score at or above which two recordings are the same speaker (default 0.5; "
                        "calibrate on labelled trials: the EER threshold is printed)")
    p.add_argument("--p-target", type=float, default=0.01, help="prior of a target trial for minDCF (default 0.01)")


@dataclass(frozen=True)
class VerifyOptions:
    trials: str | None = None  # a trial list; None: the two inputs are one trial
    threshold: float = 0.5
    p_target: float = 0.01

    def __post_init__(self) -> None:
        check_number("--threshold", self.threshold, allow_none=False)  # NaN made every decision 'different'
        if not 0 < self.p_target < 1:  # NaN too; minDCF refused it only after the whole run
            raise UsageError(f"--p-target must be in (0, 1) (the prior of a target trial), got {self.p_target:g}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "VerifyOptions":
        return cls(args.trials, args.threshold, args.p_target)


def run(args: argparse.Namespace) -> int:
    return executor.run(VerifyTask(VerifyOptions.from_args(args)), args)


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


def score_trials(trials: Sequence[Any], mapping: dict[str, str], embeddings: dict[str, Any],
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


class XVectorTask(executor.Task):
    """Speaker embeddings (x-vectors), one (D,) vector per utterance."""
    name = "verify"
    model_class = "WavLMForXVector"

    def min_samples(self) -> int:
        from wavlm.heads import xvector_min_samples

        return xvector_min_samples(self.rt.config)

    def run_batch(self, wavs: list[Any]) -> list[Any]:
        values, mask = self.rt.inputs(wavs)
        return list(self.rt.forward(values, attention_mask=mask).embeddings.float().cpu().numpy())

    def to_record(self, result: Any) -> dict[str, Any]:
        return {"embedding": result}

    def from_record(self, record: dict[str, Any]) -> Any:
        import numpy as np

        return np.asarray(record["embedding"], dtype=np.float32)


class VerifyTask(XVectorTask):
    """x-vectors of the recordings the trials name; the summary scores the trials (the run's output)."""
    writes_per_input = False
    default_run_format = "tsv"

    def __init__(self, options: VerifyOptions = VerifyOptions()) -> None:
        super().__init__(options)
        self.trials: list[Any] = []
        self.mapping: dict[str, str] = {}

    def collect(self, paths: Sequence[str]) -> list[Input]:
        from wavlm.tasks.scoring import Trial, read_trials

        if self.options.trials:
            try:
                self.trials = read_trials(self.options.trials)
            except (OSError, ValueError) as e:
                raise UsageError(f"cannot read the trial list: {e}") from None
            inputs = io.collect(paths) if paths else []
            wanted, self.mapping = resolve_trial_inputs(self.trials, inputs,
                                                        Path(self.options.trials).resolve().parent)
        else:
            if len(paths) != 2:
                raise UsageError("give two audio files, or --trials LIST")
            wanted = io.collect(paths)
            if len(wanted) != 2:
                raise UsageError("give two audio files (not folders), or --trials LIST")
            self.trials = [Trial(paths[0], paths[1])]
            self.mapping = {paths[0]: wanted[0].id, paths[1]: wanted[1].id}
        if not self.trials:
            raise UsageError("the trial list is empty")
        return wanted

    def summarize(self, run: executor.RunResult, inputs: list[Input]) -> executor.Summary | None:
        from wavlm.tasks.scoring import compute_eer, compute_min_dcf

        if not run.is_main:
            return None
        rows, skipped = score_trials(self.trials, self.mapping, run.results, self.options.threshold)
        if skipped:
            log(f"{skipped} trials left out: one of their recordings failed")
        text = "".join(f"{r['enroll']}\t{r['test']}\t{r['score']:.6f}\t{r['decision']}\n" for r in rows)
        metrics = None
        labelled = [r for r in rows if r["label"] is not None]
        if labelled:
            scores, labels = [r["score"] for r in labelled], [r["label"] for r in labelled]
            p_target = self.options.p_target
            try:
                eer, eer_thr = compute_eer(scores, labels)
                dcf, dcf_thr = compute_min_dcf(scores, labels, p_target=p_target)
                metrics = (f"EER {100 * eer:.2f}% (threshold {eer_thr:.4f})  minDCF(p_target={p_target:g}) "
                           f"{dcf:.4f} (threshold {dcf_thr:.4f})  trials {len(labelled)}\n")
            except ValueError as e:
                log(f"no EER/minDCF: {e}")
        return executor.Summary(text, metrics)
