"""Which kernel runs each operation of the model: decided once per (device, dtype, CPU capability), inspectable with
`plan(...)`, overridable with the WAVLM_KERNELS environment variable. The figures behind each choice are in
BENCHMARKS.md ("Kernel choices"); `benchmarks/kernel_choices.py` measures them on the machine at hand."""
from __future__ import annotations

import functools
import os
import platform
import re
import warnings
from dataclasses import dataclass
from typing import Any

import torch

ENV = "WAVLM_KERNELS"

# operation -> {kernel: what it is}; the first kernel of each operation is its reference (plain PyTorch)
KERNELS: dict[str, dict[str, str]] = {
    "linear": {
        "torch": "F.linear on the default BLAS",
        "onednn": "oneDNN inner product (mkldnn._linear_pointwise), GELU/ReLU fused into the product",
    },
    "conv": {
        "torch": "nn.Conv1d, then the norm and the activation modules",
        "onednn": "oneDNN convolution with the activation fused; layer 0 as a product over strided frames with its "
                  "GroupNorm and activation in place; layers 1.. in time chunks above 10 s",
    },
    "attention": {
        "sdpa": "F.scaled_dot_product_attention with the gated bias as a float mask (query blocks for long inputs)",
        "onednn": "per-head oneDNN products in 256-row query blocks, the gated bias added in place",
    },
    "training_attention": {
        "sdpa": "F.scaled_dot_product_attention with the gated bias as a float mask; autograd keeps the weights",
        "recompute": "RecomputedAttention: keeps each row's log-sum-exp and the dropout mask, recomputes the "
                     "(B, H, T, T) weights in backward",
    },
}
# operations that run only with gradients (training); the others have fast kernels for inference only
TRAINING_OPERATIONS = frozenset({"training_attention"})
REFERENCE = {op: next(iter(kernels)) for op, kernels in KERNELS.items()}


class KernelConfigError(ValueError):
    """A WAVLM_KERNELS value that names no operation or kernel."""


@dataclass(frozen=True)
class Capability:
    """What the CPU (as torch and oneDNN see it, environment limits included) can run."""

    isa: str                 # torch.backends.cpu.get_cpu_capability(): "AVX512", "AVX2", "DEFAULT", ...
    onednn: bool             # oneDNN's fp32 inference ops are present in this torch build
    bf16: bool               # oneDNN runs bfloat16 natively (and its bf16 ops accept input)
    bf16_reason: str         # why (not)


@dataclass(frozen=True)
class Choice:
    """One record of a plan: `operation` runs as `kernel` because of `reason`."""

    operation: str
    kernel: str
    reason: str


@dataclass(frozen=True)
class Plan:
    """The kernels for one (device, dtype): records in the order the model uses them. Compiled, traced and exported
    calls always take the reference kernels (the fast ones are opaque to compilers), and so do gradient-enabled
    calls of the inference kernels (they have no autograd formulas): the plan is what eager inference runs, and
    for "training_attention" what eager training runs."""

    device: str
    dtype: torch.dtype
    choices: tuple[Choice, ...]

    def __getitem__(self, operation: str) -> Choice:
        for choice in self.choices:
            if choice.operation == operation:
                return choice
        raise KeyError(operation)

    def __iter__(self):
        return iter(self.choices)

    def kernel(self, operation: str) -> str:
        return self[operation].kernel

    def __str__(self) -> str:
        width = max(len(c.operation) for c in self.choices)
        kwidth = max(len(c.kernel) for c in self.choices)
        head = f"kernels for {self.device} {str(self.dtype).replace('torch.', '')}:"
        return "\n".join([head] + [f"  {c.operation:<{width}}  {c.kernel:<{kwidth}}  {c.reason}"
                                   for c in self.choices])


# ------------------------------------------------------------------------------------------------ detection
def _bf16_probe() -> str | None:
    """None when a tiny bfloat16 oneDNN product and convolution run, else the error they raise. The honest check:
    `_is_mkldnn_bf16_supported()` reads the CPU's flags, while ONEDNN_MAX_CPU_ISA can still make oneDNN refuse."""
    try:
        x = torch.ones(2, 8, dtype=torch.bfloat16)
        torch.ops.mkldnn._linear_pointwise(x, torch.ones(8, 8, dtype=torch.bfloat16), None, "none", [], "")
        signal = torch.ones(1, 8, 16, dtype=torch.bfloat16)
        torch.ops.mkldnn._convolution_pointwise(signal, torch.ones(8, 8, 3, dtype=torch.bfloat16), None, [0], [1],
                                                [1], 1, "none", [], "")
    except RuntimeError as e:
        return str(e).splitlines()[0]
    return None


@functools.lru_cache(maxsize=None)
def detect() -> Capability:
    """The running CPU's capability, probed once per process."""
    isa = torch.backends.cpu.get_cpu_capability()
    onednn = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    if not onednn:
        return Capability(isa, False, False, "this torch build has no oneDNN")
    if not isa.startswith("AVX512"):
        return Capability(isa, True, False, f"CPU capability {isa} has no native bfloat16 arithmetic")
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return Capability(isa, True, False, "oneDNN reports no bfloat16 support on this CPU")
    error = _bf16_probe()
    if error is not None:
        return Capability(isa, True, False, f"oneDNN refuses bfloat16 here ({error})")
    return Capability(isa, True, True, f"native bfloat16 ({isa}, oneDNN bf16 kernels run)")


# ------------------------------------------------------------------------------------------------ the plan
def parse_override(text: str) -> dict[str, str]:
    """WAVLM_KERNELS -> {operation: kernel}. "reference" (or "") forces every reference kernel; otherwise
    comma-separated `operation=kernel` pairs, a kernel being one of KERNELS[operation] or "reference"."""
    text = text.strip()
    if text in ("", "auto"):
        return {}
    if text == "reference":
        return dict(REFERENCE)
    forced = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        op, sep, kernel = (s.strip() for s in item.partition("="))
        if not sep or op not in KERNELS:
            raise KernelConfigError(
                f"{ENV}={text!r}: {item!r} is not `operation=kernel`; operations are {sorted(KERNELS)} (or set "
                f"{ENV}=reference for plain PyTorch everywhere)")
        if kernel == "reference":
            kernel = REFERENCE[op]
        if kernel not in KERNELS[op]:
            raise KernelConfigError(f"{ENV}={text!r}: {op} has no kernel {kernel!r}; choose one of "
                                    f"{sorted(KERNELS[op])} or 'reference'")
        forced[op] = kernel
    return forced


def plan(device: torch.device | str = "cpu", dtype: torch.dtype | str = torch.float32) -> Plan:
    """The kernels eager inference runs for tensors of `dtype` on `device`, each with its reason, e.g.
    `wavlm.kernels.plan("cpu", torch.bfloat16)`. Cached per (device, dtype, capability, WAVLM_KERNELS)."""
    device = torch.device(device)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype.replace("torch.", ""), None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"dtype must be a torch dtype or its name, got {dtype!r}")
    capability = detect() if device.type == "cpu" else None
    return _plan(device.type, dtype, capability, os.environ.get(ENV, ""))


@functools.lru_cache(maxsize=None)
def _plan(device: str, dtype: torch.dtype, cap: Capability | None, override: str) -> Plan:
    forced = parse_override(override)
    choices = dict(_automatic(device, dtype, cap))
    for op, kernel in forced.items():
        if kernel != REFERENCE[op] and device != "cpu":
            raise KernelConfigError(f"{ENV}: {op}={kernel} runs on the CPU only, not on {device}")
        if kernel == "onednn" and not cap.onednn:
            raise KernelConfigError(f"{ENV}: {op}={kernel} needs oneDNN, which this torch build lacks")
        choices[op] = (kernel, f"forced by {ENV}={override}")
    records = [Choice(op, *choices[op]) for op in KERNELS]
    if dtype == torch.bfloat16:
        records.append(bfloat16_choice(device, cap))
    return Plan(device, dtype, tuple(records))


def _automatic(device: str, dtype: torch.dtype, cap: Capability | None) -> dict[str, tuple[str, str]]:
    """{operation: (kernel, reason)} without overrides."""
    return {**_inference(device, dtype, cap), "training_attention": _training_attention(device, dtype)}


def _training_attention(device: str, dtype: torch.dtype) -> tuple[str, str]:
    if device != "cpu":
        return "sdpa", f"SDPA chooses its own backend on {device}"
    if dtype not in (torch.float32, torch.float64):
        return "sdpa", f"RecomputedAttention is written for float32/float64, not {str(dtype).replace('torch.', '')}"
    return "recompute", ("keeps no (B, H, T, T) weights for backward: a base training step (4 x 10 s) peaks at "
                         "0.66x transformers' memory (BENCHMARKS.md)")


def _inference(device: str, dtype: torch.dtype, cap: Capability | None) -> dict[str, tuple[str, str]]:
    """{operation: (kernel, reason)} of the inference kernels."""
    inference = [op for op in KERNELS if op not in TRAINING_OPERATIONS]
    if device != "cpu":
        reason = f"device-agnostic PyTorch ops on {device} (SDPA chooses its own backend)"
        return {op: (REFERENCE[op], reason) for op in inference}
    name = str(dtype).replace("torch.", "")
    if not cap.onednn:
        return {op: (REFERENCE[op], "this torch build has no oneDNN") for op in inference}
    if dtype not in (torch.float32, torch.bfloat16):
        return {op: (REFERENCE[op], f"oneDNN inference kernels are used for float32/bfloat16 only, not {name}")
                for op in inference}
    if dtype == torch.bfloat16 and not cap.bf16:
        return {op: (REFERENCE[op], f"{cap.bf16_reason}; plain PyTorch runs bfloat16 without crashing")
                for op in inference}
    if cap.isa.startswith("AVX512"):
        return {
            "linear": ("onednn", "oneDNN's GEMM uses AVX-512 (MKL stays on AVX2 on AMD CPUs): about 2x F.linear"),
            "conv": ("onednn", "fused activation, in-place first-layer norm, no blocked-layout copy of long inputs"),
            "attention": ("onednn", "AVX-512 products per head beat SDPA's CPU kernel here"),
        }
    if cap.isa == "AVX2":
        return {
            "linear": ("onednn", "oneDNN's AVX2 inner product, GELU fused: on par with F.linear at 10 s, "
                                 "faster at 60 s"),
            "conv": ("onednn", "fused activation, in-place first-layer norm, no blocked-layout copy of long inputs"),
            "attention": ("sdpa", "SDPA with the gated bias as a float mask: the fastest alone on AVX2 "
                                  "(BENCHMARKS.md)"),
        }
    return {op: (REFERENCE[op], f"oneDNN kernels are chosen for AVX2/AVX-512 CPUs only, this one is {cap.isa}")
            for op in inference}


def bfloat16_choice(device: str, cap: Capability | None) -> Choice:
    """How a request for bfloat16 (to_bfloat16, --dtype bfloat16) is served on `device`."""
    if device != "cpu":
        return Choice("bfloat16", "native", f"bfloat16 on {device}")
    if cap.bf16:
        return Choice("bfloat16", "native", cap.bf16_reason)
    return Choice("bfloat16", "float32", f"{cap.bf16_reason}: bfloat16 would run about 100x slower than float32, "
                                         "so a request for it warns once and keeps the model in float32")


def bfloat16_native(device: torch.device | str = "cpu") -> bool:
    """True where a bfloat16 model runs on fast native kernels (always off the CPU)."""
    return plan(device, torch.bfloat16)["bfloat16"].kernel == "native"


# ------------------------------------------------------------------------------------------------ call sites
def _eager(x: torch.Tensor, weights: tuple[torch.Tensor | None, ...], training: bool) -> bool:
    """True where the plan applies: an eager call (not compiled, traced or exported) whose tensors share x's dtype
    and that needs gradients exactly when `training` (a training kernel also refuses autocast: it has no rules)."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.compiler.is_exporting():
        return False
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or any(w is not None and w.requires_grad
                                                                     for w in weights))
    if needs_grad != training or (training and torch.is_autocast_enabled(x.device.type)):
        return False
    return all(w is None or w.dtype == x.dtype for w in weights)


def kernel(operation: str, x: torch.Tensor, *weights: torch.Tensor | None) -> str:
    """The kernel `operation` runs for input x (and weights of x's dtype): the plan's in eager inference (eager
    training for TRAINING_OPERATIONS), the reference otherwise."""
    if not _eager(x, weights, training=operation in TRAINING_OPERATIONS):
        return REFERENCE[operation]
    return plan(x.device, x.dtype).kernel(operation)


# ------------------------------------------------------------------------------------------------ the machine
def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo, else platform.processor())."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def library_versions() -> dict[str, str]:
    """torch, oneDNN and MKL versions as this torch build reports them."""
    config = torch.__config__.show()
    onednn = re.search(r"(?:MKL-DNN|oneDNN)\s+v?([\d.]+)", config)
    mkl = re.search(r"Math Kernel Library Version ([\w.\-]+)", config)
    return {"torch": torch.__version__, "onednn": onednn.group(1) if onednn else "none",
            "mkl": mkl.group(1) if mkl else "none"}


def system_info() -> dict[str, Any]:
    """The machine as the kernels see it: CPU, ISA, threads, library versions, environment limits and the plans."""
    cap = detect()
    info: dict[str, Any] = {
        "cpu": cpu_model(), "cpu_capability": cap.isa, "threads": torch.get_num_threads(),
        **library_versions(), "bfloat16": cap.bf16_reason,
        "environment": {k: os.environ[k] for k in (ENV, "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY",
                                                   "MKL_ENABLE_INSTRUCTIONS", "OMP_NUM_THREADS")
                        if k in os.environ},
    }
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    info["plans"] = [plan(d, dt) for d in devices for dt in (torch.float32, torch.bfloat16)]
    return info


_warned: set[str] = set()


def warn_once(message: str) -> None:
    """A UserWarning the first time `message` comes up in this process."""
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, UserWarning, stacklevel=3)
