"""Partial runs say so: a run stopped by -x, --maxfail or Ctrl-C writes reports marked
incomplete, with the episodes not played and why, and judges no gate of a model with
unplayed episodes. Only a run that plays an episode replaces results.jsonl and the
reports; --resume appends no duplicate records. Real pytest subprocesses throughout."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

EVAL = """\
models:
  - local/silent
  - local/random{options}: {{expect: {{min_achievements: 0}}}}
seeds: {seeds}
steps: {steps}
gate: {{min_tool_call_rate: 0.0}}
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT"):
        monkeypatch.delenv(name, raising=False)


def run(pytester, *args):
    return pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "-m",
        "not crafter_payload",
        *args,
        timeout=300,
    )


def reports(pytester):
    d = pytester.path / "reports"
    summary = json.loads((d / "summary.json").read_text())
    return summary, (d / "summary.md").read_text(), (d / "index.html").read_text()


def test_exitfirst_reports_an_incomplete_run_and_judges_no_gate(pytester):
    pytester.makefile(".yaml", **{"evals/e": EVAL.format(options="", seeds="0-1", steps=2)})
    result = run(pytester, "evals", "-x")
    result.assert_outcomes(failed=1)
    summary, md, page = reports(pytester)
    assert list(summary)[:4] == ["schema", "complete", "not_played", "incomplete_reason"]
    assert (summary["complete"], summary["not_played"]) == (False, 3)
    assert "stopping after 1 failures" in summary["incomplete_reason"]
    models = summary["evals"]["e"]["models"]
    assert list(models) == ["local/silent", "local/random"]  # the unplayed model is listed
    assert models["local/silent"]["not_played"] == 1 and models["local/random"]["not_played"] == 2
    assert {m["gate"]["status"] for m in models.values()} == {"not_judged"}
    assert summary["failed_gates"] == []
    assert "Incomplete run: 3 of 4 episodes not played (stopping after 1 failures)" in md
    assert "| not judged |" in md and "| passed |" not in md
    assert (
        "Incomplete run" in page and ">passed<" not in page.split("<main")[1].split("Episodes")[0]
    )
    result.stdout.fnmatch_lines(
        ["*crafter-eval: incomplete run: 3 of 4 episodes not played (stopping after 1 failures)*"]
    )


def test_maxfail_under_xdist_reports_an_incomplete_run(pytester):
    pytester.makefile(
        ".yaml", **{"evals/e": EVAL.format(options="?latency_ms=300", seeds="0-3", steps=4)}
    )
    result = run(pytester, "evals", "-n", "2", "--maxfail", "1")
    summary, md, _ = reports(pytester)
    assert summary["complete"] is False and summary["not_played"] >= 1, summary
    played = sum(summary["outcomes"].values())
    assert played + summary["not_played"] == 8
    assert "Incomplete run" in md
    result.stdout.fnmatch_lines(["*crafter-eval: incomplete run:*episodes not played*"])


def test_ctrl_c_writes_an_incomplete_report_without_a_traceback(pytester):
    pytester.makefile(
        ".yaml", **{"evals/e": EVAL.format(options="?latency_ms=100", seeds="0-3", steps=40)}
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "-m",
            "not crafter_payload",
            "evals",
        ],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    results = pytester.path / "reports" / "results.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not results.exists():  # local/silent has ended
        time.sleep(0.1)
    time.sleep(1.0)  # local/random seed 0 is mid-episode
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    summary, md, page = reports(pytester)
    assert "Incomplete run" in md and "Incomplete run" in page
    assert summary["complete"] is False and summary["not_played"] >= 4, summary
    assert summary["incomplete_reason"] == "interrupted (Ctrl-C)"
    assert "incomplete run" in out and "Traceback" not in out and "ConnectionReset" not in out, out


def test_a_run_that_plays_nothing_leaves_results_and_reports_alone(pytester):
    pytester.makefile(".yaml", **{"evals/e": EVAL.format(options="", seeds="0-1", steps=2)})
    run(pytester, "evals").assert_outcomes(passed=2, failed=2)
    d = pytester.path / "reports"
    before = {
        name: (d / name).read_bytes() for name in ("results.jsonl", "index.html", "summary.json")
    }
    for _ in range(2):  # twice: the second must not rotate the first one's results away
        result = run(pytester, "evals", "--model", "gpt-4o-mini")
        result.assert_outcomes(skipped=2)
        result.stdout.fnmatch_lines(
            ["*no episode played: results.jsonl and the reports are left as they were*"]
        )
        assert {name: (d / name).read_bytes() for name in before} == before
        assert not (d / "results.prev.jsonl").exists()


@pytest.mark.slow
def test_resume_appends_no_duplicate_records(pytester):
    pytester.makefile(
        ".yaml",
        **{
            "evals/e": "models: [local/random, gpt-4o-mini]\nseeds: 0-1\nsteps: 2\nexpect: {min_achievements: 0}\n"
        },
    )
    run(pytester, "evals").assert_outcomes(passed=2, skipped=2)
    path = pytester.path / "reports" / "results.jsonl"
    first = path.read_text().splitlines()
    assert len(first) == 4
    for _ in range(2):
        run(pytester, "evals", "--resume").assert_outcomes(passed=2, skipped=2)
        assert path.read_text().splitlines() == first
