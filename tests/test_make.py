"""The Makefile's commands, as the README gives them (dry runs: `make -n`)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(*args: str) -> str:
    done = subprocess.run(
        ["make", "-n", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def test_make_test_shows_why_tests_skip():
    # the Chromium test skips on a machine without it; `make test` must say so
    (line,) = [x for x in dry_run("test").splitlines() if "pytest tests/" in x]
    assert " -rs" in line or " -ra" in line, line


def test_make_eval_passes_arguments_to_pytest():
    (line,) = [x for x in dry_run("eval", "ARGS=--model gpt-4o-mini").splitlines() if "pytest" in x]
    assert line.endswith("--model gpt-4o-mini"), line
