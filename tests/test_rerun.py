"""pytest's rerun options on eval items: --lf, --ff and --sw select and order episode and
payload items by their node ids, with and without xdist (real pytest subprocesses, real
cache, real syrupy snapshots)."""

import re

import pytest

V1 = """\
models:
  - local/random: {expect: {min_achievements: 0}}
  - local/silent
seeds: 0-1
steps: 2
request: {temperature: 0.6}
"""
# local/silent's first request changes: its payload snapshot no longer matches
V2 = V1.replace("  - local/silent\n", "  - local/silent: {request: {temperature: 0.3}}\n")
FAILING = {
    "evals/smoke.yaml::payload[local/silent]",
    "evals/smoke.yaml::local/silent[seed=0]",
    "evals/smoke.yaml::local/silent[seed=1]",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)


def _ran(result) -> list[str]:
    """The items run, in order, from -v output (with or without xdist)."""
    ran = []
    for line in result.outlines:
        if line.startswith(("FAILED ", "PASSED ")):  # the short summary
            continue
        found = re.search(
            r"(evals/smoke\.yaml::\S+) (PASSED|FAILED)|(PASSED|FAILED) (evals/\S+)", line
        )
        if found:
            ran.append(found[1] or found[4])
    return ran


def run(pytester, *args):
    return pytester.runpytest_subprocess("-p", "no:randomly", *args, timeout=120)


@pytest.mark.slow
def test_last_failed_failed_first_and_stepwise_select_by_node_id(pytester):
    # a project whose last run failed local/silent's two episodes and its payload item
    pytester.makefile(".yaml", **{"evals/smoke": V1})
    run(pytester, "evals", "--snapshot-update", "-m", "crafter_payload").assert_outcomes(passed=2)
    pytester.makefile(".yaml", **{"evals/smoke": V2})
    run(pytester, "evals").assert_outcomes(passed=3, failed=3)

    result = run(pytester, "evals", "--lf", "-v")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(["*run-last-failure: rerun previous 3 failures*"])
    assert set(_ran(result)) == FAILING

    result = run(pytester, "evals", "--lf", "-v", "-n", "2")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(["2 workers [[]3 items[]]"])  # the workers selected them
    assert set(_ran(result)) == FAILING

    result = run(pytester, "evals", "--ff", "-v")
    result.assert_outcomes(passed=3, failed=3)
    ran = _ran(result)
    assert set(ran[:3]) == FAILING and len(ran) == 6, ran

    result = run(pytester, "evals", "--sw", "-v", "-m", "not crafter_payload")
    result.assert_outcomes(passed=2, failed=1)
    result = run(pytester, "evals", "--sw", "-v", "-m", "not crafter_payload")
    result.stdout.fnmatch_lines(["stepwise: skipping * already passed items*"])
    assert _ran(result) == ["evals/smoke.yaml::local/silent[seed=0]"]
