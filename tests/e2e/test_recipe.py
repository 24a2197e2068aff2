"""recipes/tiny/recipe.py: the shipped models (wavlm.zoo) give the figures results.json records when the recipe's
corpora are generated again, and the short version of the recipe runs every stage, writes its table, and on a
second run skips every stage that finished."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import skip_without

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "tiny" / "recipe.py"
pytestmark = [pytest.mark.slow, skip_without("espeak-ng", "flite", "sox", why="the recipe generates its corpora")]


def recipe(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RECIPE), *args], capture_output=True, text=True, timeout=timeout,
                          env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})


def test_shipped_models_give_their_recorded_figures(tmp_path):
    from wavlm.zoo import MODELS, results, shipped_path

    assert all(shipped_path(name) is not None for name in MODELS), "a shipped model is missing from src/wavlm/zoo"
    shipped = results()
    assert shipped["scale"] == "full"
    r = recipe("--work", str(tmp_path), "--check-shipped")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("shipped ") >= 4 + len(MODELS) and "MOVED" not in r.stdout


def test_quick_recipe_runs_every_stage_and_resumes(tmp_path):
    r = recipe("--work", str(tmp_path), "--quick")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("$ wavlm finetune") == 8  # four heads x two initialisations
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["scale"] == "quick" and set(results["tasks"]) == {"ctc", "xvector", "frames", "classify"}
    for task, metric in (("ctc", "cer"), ("xvector", "eer"), ("frames", "der"), ("classify", "accuracy")):
        for init in ("pretrained", "random"):
            m = results["tasks"][task]["test"]["synthetic test"][init]
            assert m["items"] > 0 and math.isfinite(m[metric]) and m[metric] >= 0, (task, init, m)
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    assert "| ctc | synthetic test | CER |" in (tmp_path / "results.md").read_text()
    # pre-training learned something: the masked-prediction loss fell
    rows = [json.loads(x) for x in (tmp_path / "pretrain/run/metrics.jsonl").read_text().splitlines() if x.strip()]
    losses = [x["loss"] for x in rows if "loss" in x]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5

    again = recipe("--work", str(tmp_path), "--quick")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "$ wavlm" not in again.stdout  # every stage was found done
    assert json.loads((tmp_path / "results.json").read_text())["tasks"] == results["tasks"]
