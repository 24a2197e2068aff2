"""Shared fixtures: tiny WavLM configurations (hidden 32, 2 layers, conv strides multiplying to 320) that keep the
whole suite fast on 2 CPU cores, a character vocabulary as written by wav2vec2 CTC fine-tuning, and the policy on
missing tools: a test that needs a program or a Python package that is not installed is skipped locally, and
fails the run under CI=true (require_tool, skip_without, require_module, pytest.importorskip)."""
from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import warnings
from pathlib import Path
from types import ModuleType

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the network
warnings.filterwarnings("ignore", message=".*mismatched key_padding_mask and attn_mask.*")

# strides 5*4*16 = 320 and kernels (10, 3, 20) giving a 400-sample receptive field, as in the real models
TINY = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
    conv_dim=(16, 24, 20), conv_kernel=(10, 3, 20), conv_stride=(5, 4, 16), conv_bias=False,
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, num_buckets=32, max_bucket_distance=64,
    vocab_size=11, num_labels=3, classifier_proj_size=7,
    tdnn_dim=(8, 8, 12), tdnn_kernel=(3, 3, 1), tdnn_dilation=(1, 2, 1), xvector_output_dim=6,
    hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
    final_dropout=0.0, layerdrop=0.0,
)
# base: group-norm feature encoder + post-LN encoder; large ("stable"): layer-norm encoder + pre-LN encoder
VARIANTS = {
    "base": dict(feat_extract_norm="group", do_stable_layer_norm=False),
    "large": dict(feat_extract_norm="layer", do_stable_layer_norm=True),
}


def tiny_kwargs(variant: str = "base", **overrides) -> dict:
    return {**TINY, **VARIANTS[variant], **overrides}


@pytest.fixture(params=sorted(VARIANTS))
def variant(request) -> str:
    return request.param

LETTERS = list("ETAONIHSRDLUMWCFGYPBVK'XJQZ")


def make_vocab() -> dict[str, int]:
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
    for i, c in enumerate(LETTERS):
        vocab[c] = 5 + i
    return vocab


@pytest.fixture
def vocab() -> dict[str, int]:
    return make_vocab()


@pytest.fixture
def vocab_file(tmp_path: Path, vocab: dict[str, int]) -> Path:
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(vocab))
    return path


# ------------------------------------------------------------------------------------------------ missing tools

MISSING = "missing tool or package"  # the reason of every skip for something not installed starts with this
# pytest.importorskip's own reason ("could not import 'x': ...") counts too
_MISSING_REASON = re.compile(rf"^(Skipped: )?({MISSING}|could not import )")
PACKAGES = {"c++": "g++"}  # Debian package of a command, where the names differ


def ci() -> bool:
    """CI=true (or 1, yes): skips for missing tools and packages fail the run."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _tool_reason(commands: list[str], why: str) -> str:
    packages = " ".join(PACKAGES.get(c, c) for c in commands)
    return (f"{MISSING}: {', '.join(commands)} not installed{f' ({why})' if why else ''}; "
            f"scripts/system_packages.sh installs it (apt-get install {packages})")


def require_tool(command: str, why: str = "") -> str:
    """The path of program COMMAND; skips the calling test when it is not on PATH (a failure under CI=true)."""
    path = shutil.which(command)
    if path is None:
        pytest.skip(_tool_reason([command], why))
    return path


def skip_without(*commands: str, why: str = "") -> pytest.MarkDecorator:
    """A skipif mark for tests that run COMMANDS (a failure under CI=true when one is missing)."""
    missing = [c for c in commands if shutil.which(c) is None]
    return pytest.mark.skipif(bool(missing), reason=_tool_reason(missing, why))


def require_module(name: str, install: str = "make venv") -> ModuleType:
    """pytest.importorskip with the install hint: the module, or a skip (a failure under CI=true)."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        pytest.skip(f"{MISSING}: Python package {name} cannot be imported ({e}); {install} installs it")


def _missing_reason(report: pytest.TestReport | pytest.CollectReport) -> str | None:
    """The reason of a skip for something not installed, else None (other skips and xfails)."""
    if not report.skipped or hasattr(report, "wasxfail") or not isinstance(report.longrepr, tuple):
        return None
    reason = str(report.longrepr[2])
    return reason.removeprefix("Skipped: ") if _MISSING_REASON.match(reason) else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a test skipped for a missing tool or package is reported as failed, with the reason."""
    report = yield
    reason = _missing_reason(report) if ci() else None
    if reason is not None:
        report.outcome = "failed"
        report.longrepr = f"CI=true: a test may not be skipped because something is not installed: {reason}"
    return report


_missing_at_collection: list[str] = []


def pytest_collectreport(report):
    """A whole module skipped at import (a module-level importorskip): recorded, and the run fails at the end
    under CI=true (failing the collection itself would stop every other test)."""
    reason = _missing_reason(report) if ci() else None
    if reason is not None:
        _missing_at_collection.append(f"{report.nodeid}: {reason}")


def pytest_terminal_summary(terminalreporter):
    if _missing_at_collection:
        terminalreporter.section("CI=true: modules skipped because something is not installed", red=True)
        for line in _missing_at_collection:
            terminalreporter.line(line)


def pytest_sessionfinish(session, exitstatus):
    if _missing_at_collection and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# ------------------------------------------------------------------------------------------------ tests/slow


def pytest_collection_modifyitems(config, items):
    """Tests under tests/slow (ONNX export, torch.compile) carry the `slow` mark: `-m "not slow"` leaves them out."""
    slow = Path(__file__).parent / "slow"
    for item in items:
        if slow in Path(item.fspath).parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def one_thread():
    """Two cores are shared by several jobs: one torch thread is much faster than two contended ones."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
