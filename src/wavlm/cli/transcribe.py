"""`wavlm transcribe`: CTC speech recognition, greedy or beam search with an optional word n-gram LM, with word
timestamps."""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from wavlm.cli import executor
from wavlm.cli.options import add_inputs, check_number, positive_int
from wavlm.cli.report import UsageError
from wavlm.tasks.manifest import Input
from wavlm.tasks.srt import to_srt, words_to_captions

HELP = "speech to text with a CTC model"
DESCRIPTION = ("Greedy or beam-search CTC decoding (optionally with a word n-gram LM in ARPA or KenLM format) with "
               "word timestamps. Formats: txt, json, srt per input; txt, jsonl, srt (one input) for the run.")
RUNS_MODEL = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_inputs(p)
    p.add_argument("--decoder", choices=["greedy", "beam"], default=None,
                   help="greedy (default) or beam (default when --lm is given)")
    p.add_argument("--beam-width", type=positive_int, default=16)
    p.add_argument("--lm", default=None, help="word n-gram LM: ARPA file, or a KenLM binary with `pip install kenlm`")
    p.add_argument("--alpha", type=float, default=0.5, help="LM weight (default 0.5)")
    p.add_argument("--beta", type=float, default=1.0, help="word insertion bonus (default 1.0)")
    p.add_argument("--format", choices=["txt", "json", "jsonl", "srt"], default=None)


@dataclass(frozen=True)
class TranscribeOptions:
    decoder: str | None = None  # None: beam with an LM, else greedy
    beam_width: int = 16
    lm: str | None = None  # a word n-gram LM file
    alpha: float = 0.5
    beta: float = 1.0

    def __post_init__(self) -> None:
        if self.decoder is None:
            object.__setattr__(self, "decoder", "beam" if self.lm else "greedy")
        if self.decoder not in ("greedy", "beam"):
            raise UsageError(f"--decoder must be 'greedy' or 'beam', got {self.decoder!r}")
        if self.lm and self.decoder == "greedy":
            raise UsageError("--lm needs --decoder beam")
        check_number("--alpha", self.alpha, allow_none=False)  # argparse's float() takes 'nan' and 'inf'
        check_number("--beta", self.beta, allow_none=False)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "TranscribeOptions":
        return cls(args.decoder, args.beam_width, args.lm, args.alpha, args.beta)


def run(args: argparse.Namespace) -> int:
    return executor.run(TranscribeTask(TranscribeOptions.from_args(args)), args)


def _text(s: str) -> bytes:
    return s.encode("utf-8")


class TranscribeTask(executor.Task):
    """CTC transcription: greedy best path or our prefix beam search (optionally with a word n-gram LM), with
    word timestamps from the token spans (frame f starts at f * 20 ms)."""
    name = "transcribe"
    model_class = "WavLMForCTC"
    needs = ("tokenizer",)
    item_formats = ("txt", "json", "srt")
    run_formats = ("txt", "jsonl", "srt")
    default_item_format = "txt"
    default_run_format = "txt"

    def __init__(self, options: TranscribeOptions = TranscribeOptions()) -> None:
        super().__init__(options)
        self.lm = None
        if options.lm:  # read before the model loads: a bad LM file fails fast
            from wavlm.tasks.ctc_decode import load_lm

            try:
                self.lm = load_lm(options.lm)
            except (OSError, ValueError) as e:
                raise UsageError(f"cannot read the LM {options.lm}: {e}") from None

    def bind(self, runtime: Any) -> None:
        super().bind(runtime)
        tok = self.tok = runtime.tokenizer
        self.tokens = [tok.convert_ids_to_tokens(i) for i in range(runtime.config.vocab_size)]
        self.blank = tok.pad_token_id
        self.delimiter = tok.word_delimiter_token_id

    def _seconds(self, frame: int) -> float:
        return round(frame * self.rt.frame_shift_s, 3)

    def run_batch(self, wavs: list[Any]) -> list[dict[str, Any]]:
        import torch

        opts = self.options
        values, mask = self.rt.inputs(wavs)
        logits = self.rt.forward(values, attention_mask=mask).logits.float()
        results = []
        for b, n in enumerate(self.rt.frame_lengths(mask)):
            if opts.decoder == "greedy":
                out = self.tok.decode(logits[b, :n].argmax(-1), output_word_offsets=True)
                text = out.text
                words = [{"word": w["word"], "start": self._seconds(w["start_offset"]),
                          "end": self._seconds(w["end_offset"])} for w in out.word_offsets]
            else:
                from wavlm.tasks.ctc_decode import beam_search, ids_to_text, word_timestamps

                lp = torch.log_softmax(logits[b, :n], dim=-1).cpu().numpy()
                best = beam_search(lp, opts.beam_width, blank=self.blank, lm=self.lm, alpha=opts.alpha,
                                   beta=opts.beta, word_delimiter_id=self.delimiter, tokens=self.tokens)[0]
                text = ids_to_text(best.ids, self.tokens, self.delimiter)
                words = [{"word": w.text, "start": round(w.start, 3), "end": round(w.end, 3)}
                         for w in word_timestamps(best.ids, best.spans, self.tokens, self.delimiter,
                                                  self.rt.frame_shift_s)]
                if self.tok.do_lower_case:
                    text = text.lower()
                    words = [{**w, "word": w["word"].lower()} for w in words]
            results.append({"text": text, "words": words})
        return results

    def check(self, inputs: list[Input], output: Any) -> None:
        super().check(inputs, output)
        if output.kind == "file" and output.fmt == "srt" and len(inputs) > 1:
            raise UsageError(f"-o {output.path}: SRT holds the captions of one recording, and there are "
                             f"{len(inputs)} inputs: give a folder with -o for one .srt per input")

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
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                uid, tab, text = line.partition("\t")
                if not uid or not tab or "\t" in text:
                    raise ValueError(f"line {n}: expected an id and its text, separated by one tab")
                out[uid] = {"text": text, "words": []}
            return out
        if fmt == "srt":
            raise UsageError("--resume cannot tell which input an .srt file came from; write to a folder")
        return super().load_run(path, fmt)
