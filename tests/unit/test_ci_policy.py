"""The CI=true policy of tests/conftest.py, on a throw-away test folder run by pytest in a subprocess: a test skipped
because a program or a Python package is missing is a skip locally and a failure under CI=true; other skips stay
skips."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

TESTS = '''
import pytest
from conftest import require_module, require_tool, skip_without

def test_program():
    require_tool("wavlm-no-such-program")

@skip_without("wavlm-no-such-program")
def test_program_mark():
    pass

def test_package():
    require_module("wavlm_no_such_package")

def test_importorskip():
    pytest.importorskip("wavlm_no_such_package")

def test_offline():
    pytest.skip("offline: cannot reach pypi.org")  # not a missing tool: a skip under CI too

@pytest.mark.xfail(reason="known", strict=True)
def test_xfail():
    assert False

def test_passes():
    require_tool("sh")
'''
MODULE_SKIP = '''
import pytest
pytest.importorskip("wavlm_no_such_package")

def test_never_runs():
    pass
'''


def run(tmp_path: Path, ci: str | None, *files: str) -> tuple[int, str]:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    for i, text in enumerate(files):
        (tmp_path / f"test_t{i}.py").write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def counts(out: str) -> dict[str, int]:
    last = out.strip().splitlines()[-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", last)}


@pytest.mark.parametrize("ci", [None, "false"])
def test_skips_for_missing_tools_are_skips_locally(tmp_path, ci):
    rc, out = run(tmp_path, ci, TESTS, MODULE_SKIP)
    assert rc == 0, out
    assert counts(out) == {"passed": 1, "skipped": 6, "xfailed": 1}, out
    assert "missing tool or package: wavlm-no-such-program not installed" in out


@pytest.mark.parametrize("ci", ["true"])
def test_skips_for_missing_tools_fail_under_ci(tmp_path, ci):
    rc, out = run(tmp_path, ci, TESTS)
    assert rc == 1, out
    # a skip mark acts in set-up, so that test counts as an error; the others as failures
    assert counts(out) == {"failed": 3, "error": 1, "passed": 1, "skipped": 1, "xfailed": 1}, out
    for name in ("test_program", "test_program_mark", "test_package", "test_importorskip"):
        assert re.search(rf"(FAILED|ERROR) .*::{name} - CI=true: a test may not be skipped because something is not "
                         "installed", out), out
    assert "scripts/system_packages.sh installs it (apt-get install wavlm-no-such-program)" in out
    assert re.search(r"SKIPPED .*offline: cannot reach pypi.org", out), out


def test_module_skipped_at_import_fails_the_run_under_ci(tmp_path):
    rc, out = run(tmp_path, "true", MODULE_SKIP, "def test_other():\n    pass\n")
    assert rc == 1, out
    assert counts(out) == {"passed": 1, "skipped": 1}, out  # the other module still ran
    assert "CI=true: modules skipped because something is not installed" in out
    assert "could not import 'wavlm_no_such_package'" in out
