"""The command line's one loader. A model source (a local directory, a Hub repo id, an original microsoft .pt) is
resolved once, with one Hub snapshot that holds every file the command needs (config, weights, feature extractor,
tokenizer); config.json is read once; the model comes back with its feature extractor, its tokenizer and what
loading did (wavlm.checkpoint.LoadingInfo), from which a missing task head is recognised."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from wavlm.cli.dist import dist_info
from wavlm.cli.options import RunOptions
from wavlm.cli.report import UsageError, log, warnings_logged

CONFIG_FILE = "config.json"
FRONT_END_FILES = ("preprocessor_config.json", "processor_config.json")
TOKENIZER_FILES = ("vocab.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
NEEDS = {  # model class -> what such a checkpoint is, for the error message
    "WavLMForCTC": "a checkpoint fine-tuned for CTC speech recognition, with its vocab.json",
    "WavLMForSequenceClassification": "an utterance classification checkpoint",
    "WavLMForAudioFrameClassification": "a frame classification checkpoint, e.g. speaker diarization",
    "WavLMForXVector": "a speaker-verification checkpoint",
}


@dataclass
class Source:
    """A resolved model source: a local `directory` holding every requested file, or an original checkpoint
    `file`; `config` is config.json, read once (None for an original checkpoint, whose cfg is in the file)."""
    name: str
    directory: Path | None = None
    file: Path | None = None
    config: Any = None

    @property
    def architecture(self) -> str | None:
        """The class named in config.json's `architectures` (None for original checkpoints or when absent)."""
        return None if self.config is None else (self.config.architectures or [None])[0]


def resolve_source(name: str, files: Sequence[str] = (), weights: bool = True) -> Source:
    """Resolve `name` once: an existing file is an original checkpoint; anything else is a directory or a Hub repo
    id, fetched in one snapshot with config.json, the weights (unless `weights=False`) and `files`. Reads
    config.json. UsageError naming the source when it cannot be read."""
    path = Path(name).expanduser()
    if path.is_file():
        return Source(name, file=path)
    from wavlm.checkpoint.hf import HUB_PATTERNS
    from wavlm.config import WavLMConfig
    from wavlm.hub import resolve_files

    patterns = list(dict.fromkeys([*(HUB_PATTERNS if weights else [CONFIG_FILE]), *files]))
    try:
        with warnings.catch_warnings():  # a shipped model's notice goes to stderr once, below
            warnings.simplefilter("ignore", UserWarning)
            directory = resolve_files(name, patterns)
        if not (directory / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{name} has no {CONFIG_FILE}")
        config = WavLMConfig.from_json_file(directory / CONFIG_FILE)
    except (OSError, ValueError, TypeError) as e:
        raise UsageError(f"cannot read the model {name!r}: {e}") from None
    from wavlm.zoo import notice, shipped_path

    if directory == shipped_path(name):  # not a local folder of that name
        log(f"note: {notice(name)}")
    return Source(name, directory=directory, config=config)


def resolve_device(name: str, local_rank: int = 0) -> Any:
    """'auto' -> cuda:<local rank> when CUDA is available, else cpu; anything else as torch spells it."""
    import torch

    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise UsageError(f"--device {name!r}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device


def resolve_dtype(name: str) -> Any:
    """'float32' | 'bfloat16' | 'float16' -> the torch dtype."""
    import torch

    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise UsageError(f"--dtype must be float32, bfloat16 or float16, got {name!r}")
    return dtype


@dataclass
class Runtime:
    """A loaded model with its feature extractor (and tokenizer), device, dtype, and what loading did."""
    model: Any
    extractor: Any
    device: Any
    dtype: Any
    name: str
    forward: Callable[..., Any] | None = None  # the model, or its compiled form
    tokenizer: Any = None
    info: Any = None  # wavlm.checkpoint.LoadingInfo

    def __post_init__(self) -> None:
        if self.forward is None:
            self.forward = self.model

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def sampling_rate(self) -> int:
        return int(self.extractor.sampling_rate)

    @property
    def frame_shift_s(self) -> float:
        return self.config.frame_stride / self.sampling_rate

    def inputs(self, wavs: Sequence[Any]) -> tuple[Any, Any]:
        """Normalised, right-padded input_values (B, S) in the model dtype and attention_mask (B, S) int."""
        feats = self.extractor(list(wavs), sampling_rate=self.sampling_rate, padding=True,
                               return_attention_mask=True, return_tensors="pt")
        values = feats["input_values"].to(self.device, self.dtype)
        return values, feats["attention_mask"].to(self.device)

    def frame_lengths(self, attention_mask: Any) -> list[int]:
        return self.model._get_feat_extract_output_lengths(attention_mask.sum(-1)).tolist()


def load(opts: RunOptions, command: str, model_class: Callable[[str | None], str] = lambda arch: "WavLMModel",
         tokenizer: bool = False) -> Runtime:
    """Load what `wavlm <command>` runs: resolve `opts.model` once, choose the class from its architecture
    (`model_class`), refuse a checkpoint without that head (from config.json, then from the loading info), the
    tokenizer when asked, the weights onto the device in the dtype (bfloat16 keeps the norms in float32,
    wavlm.inference.to_bfloat16; --int8 quantises the transformer's linear layers on the CPU; --compile wraps the
    forward in torch.compile), and the saved feature extractor or the default that matches the model."""
    import torch

    import wavlm
    from wavlm import inference
    from wavlm.checkpoint import load_checkpoint

    device = resolve_device(opts.device, dist_info().local_rank)
    dtype = resolve_dtype(opts.dtype)
    if opts.int8 and device.type != "cpu":
        raise UsageError("--int8 (dynamic quantisation) runs on the CPU only: add --device cpu")
    source = resolve_source(opts.model, FRONT_END_FILES + (TOKENIZER_FILES if tokenizer else ()))
    class_name, arch = model_class(source.architecture), source.architecture
    need = f"`wavlm {command}` needs a {class_name} model ({NEEDS.get(class_name, 'any WavLM checkpoint')})"
    if class_name != "WavLMModel" and arch is not None and arch != class_name:
        raise UsageError(f"{need}; {opts.model} holds a {arch}")
    # bfloat16 is cast from float32 weights, so that the norms, which stay float32, keep theirs unrounded
    load_dtype = torch.float32 if opts.int8 or dtype == torch.bfloat16 else dtype
    with warnings_logged():
        try:
            model, info = load_checkpoint(getattr(wavlm, class_name), source.directory or source.file,
                                          config=source.config, torch_dtype=load_dtype,
                                          device=device)
        except Exception as e:  # noqa: BLE001 - any failure to load is a usage error with its reason
            raise UsageError(f"cannot load {opts.model!r} as {class_name}: {e}") from None
    if class_name != "WavLMModel" and any(not k.startswith("wavlm.") for k in info.new_keys):
        raise UsageError(f"{need}; {opts.model} has no {class_name} head weights"
                         + (f" (it holds a {arch})" if arch else " (it is a pre-trained backbone)"))
    tok = load_tokenizer(source, command, model.config) if tokenizer else None
    # padded items in a batch give the same result as alone: GroupNorm and x-vector pooling over real frames
    model.config.mask_padding_in_group_norm = True
    model.config.xvector_exact_pooling = True
    model.eval()
    if dtype == torch.bfloat16 and not opts.int8:
        with warnings_logged():
            model = inference.to_bfloat16(model)  # float32 (warned) on a CPU without native bfloat16
        dtype = model.dtype
    if opts.int8:
        model, dtype = inference.quantize_int8(model), torch.float32
    forward = inference.compile_model(model, dynamic=True) if opts.compile else model
    return Runtime(model, load_feature_extractor(source, model.config), device, dtype, opts.model, forward, tok,
                   info)


def load_feature_extractor(source: Source, config: Any) -> Any:
    """The source's saved feature extractor, or the default that matches the model (do_normalize by
    wavlm.checkpoint.original.normalizes_input, padding-invariant attention masks)."""
    from wavlm.checkpoint.original import normalizes_input
    from wavlm.features import WavLMFeatureExtractor

    if source.directory is not None:
        from wavlm.auto import AutoFeatureExtractor

        try:
            return AutoFeatureExtractor.from_pretrained(source.directory)
        except OSError:
            pass  # no saved extractor
        except ValueError as e:
            raise UsageError(f"cannot read the feature extractor of {source.name}: {e}") from None
    return WavLMFeatureExtractor(do_normalize=normalizes_input(config), return_attention_mask=True)


def load_tokenizer(source: Source, command: str, config: Any = None) -> Any:
    """The source's CTC tokenizer (vocab.json and its side files); UsageError when there is none, or when it does
    not cover the outputs of the CTC model with `config` (wavlm.tokenizer.check_vocab_matches: ids it lacks would
    decode as <unk>)."""
    from wavlm.auto import AutoTokenizer
    from wavlm.tokenizer import VocabularyMismatchError, check_vocab_matches

    try:
        if source.directory is None:
            raise OSError(f"{source.name} is an original checkpoint, which holds no vocabulary")
        tokenizer = AutoTokenizer.from_pretrained(source.directory)
        if config is not None:
            check_vocab_matches(config, tokenizer, f"the tokenizer in {source.name}")
    except VocabularyMismatchError as e:
        raise UsageError(f"`wavlm {command}`: {e}") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"`wavlm {command}` needs the model's tokenizer (vocab.json): {e}") from None
    return tokenizer
