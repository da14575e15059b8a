"""Resilience through real pytest runs (pytester subprocesses, real xdist): API faults
from local/chaos never crash or hang a run nor lose a result; errors are infrastructure,
failures are capability; budgets, concurrency caps and crashed workers."""

from __future__ import annotations

import itertools
import json
import re
from collections import defaultdict

import pytest

from pytest_crafter_eval.wire.local import LocalServer

# Faults are drawn from each request's text and `seed`: at 5%, 60 calls draw no malformed
# call 1 time in 20 (seed 1 did, once the observation said "turn: k of 3").
CHAOS = "local/chaos?rate_429=0.2&rate_500=0.05&rate_malformed=0.05&retry_after=0.2&seed=2"


def run(pytester, *args):
    # payload snapshot items are tested in test_payload.py; these files have no snapshots
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-m", "not crafter_payload", *args
    )


def outcome_lines(result) -> dict[str, str]:
    """node id -> the -rA summary line of each episode."""
    lines = {}
    for line in result.stdout.lines:
        match = re.match(r"(PASSED|FAILED|ERROR|SKIPPED|XFAIL) (\S+::\S+\])( - (.*))?", line)
        if match:
            lines[match[2]] = line
    return lines


@pytest.mark.slow
def test_chaos_run_completes_with_every_episode_judged_and_retry_after_honoured(
    pytester, monkeypatch
):
    """The done-when run: 20 episodes, 20% 429s with Retry-After 0.2 s, 5% 500s, 5%
    malformed tool calls, two xdist workers against one logged server."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-chaos-test")
    pytester.makefile(
        ".yaml",
        **{
            "evals/chaos": "models: [chaos]\nseeds: 20\nsteps: 3\n"
            "expect: {min_tool_call_rate: 1.0}\n"
        },
    )
    with LocalServer(model=CHAOS, log=True) as server:
        result = run(pytester, "evals", "-n", "2", "-rA", "--base-url", server.base_url)
        log = list(server.log)
    outcomes = result.parseoutcomes()
    lines = outcome_lines(result)
    assert (
        len(lines) == 20 and sum(outcomes.get(k, 0) for k in ("passed", "failed", "errors")) == 20
    )
    for _node, line in lines.items():  # every verdict other than a pass says why
        assert line.startswith("PASSED") or " - " in line, line
    assert outcomes.get("failed", 0) >= 1  # malformed calls end episodes as failures
    assert "Traceback" not in result.stdout.str()
    records = [json.loads(line) for line in results_lines(pytester)]  # none lost: one per episode
    assert sorted(r["seed"] for r in records) == list(range(20))
    assert all(r["outcome"] == "passed" or r["message"] for r in records)
    bad_calls = sum(
        r["malformed_calls"]
        + r["unknown_tools"]
        + r["invalid_actions"]
        + r["too_many_actions"]
        + (r["no_tool_call_class"] == "empty_response")
        for r in records
    )
    assert bad_calls >= 1  # malformed tool calls are counted in the records
    retried = sum(sum(r["retries"].values()) for r in records)
    assert retried >= 5 and sum(r["retry_wait_s"] for r in records) >= 5 * 0.2

    statuses = [entry.status for entry in log]
    assert statuses.count(429) >= 5 and statuses.count(500) >= 1
    # A retry is the next request with the same body from the same client (each worker
    # keeps one keep-alive connection). Bodies alone repeat: many seeds start on open grass.
    by_request = defaultdict(list)
    for entry in log:
        by_request[entry.client, entry.key].append(entry)
    waits = [
        b.time - a.time
        for attempts in by_request.values()
        for a, b in itertools.pairwise(attempts)
        if a.status == 429
    ]
    assert len(waits) >= 5 and min(waits) >= 0.2, waits


EVAL = (
    "models:\n  - local/random: {expect: {min_achievements: 0}}\n  - local/chaos?error=401\n"
    "seeds: 0-1\nsteps: 2\n"
)


@pytest.mark.slow
def test_api_refusals_are_errors_and_fail_on_error_sets_the_bar(pytester):
    pytester.makefile(".yaml", **{"evals/mixed": EVAL})
    above = run(pytester, "evals", "-rA", "--fail-on-error", "0.25")
    above.assert_outcomes(passed=2, errors=2)
    assert above.ret == pytest.ExitCode.TESTS_FAILED
    above.stdout.fnmatch_lines(
        [  # the API's own message, at once: no retries
            "*ERROR at setup of local/chaos?error=401[[]seed=0[]]*",
            (
                "local/chaos?error=401 seed 0: step 0: HTTP 401: Incorrect API key provided. "
                "(code invalid_api_key)"
            ),
        ]
    )
    above.stdout.fnmatch_lines(
        ["*2 of 4 episodes errored (50%), above --fail-on-error 0.25: the run fails*"]
    )

    within = run(pytester, "evals", "-n", "2", "--fail-on-error", "0.5")
    within.assert_outcomes(passed=2, errors=2)
    assert within.ret == pytest.ExitCode.OK
    within.stdout.fnmatch_lines(
        [
            (
                "*crafter-eval: 2 of 4 episodes errored (50%), within "
                "--fail-on-error 0.5: errors alone do not fail the run*"
            )
        ]
    )


def test_token_budget_skips_the_remaining_episodes_across_workers(pytester):
    pytester.makefile(
        ".yaml",
        **{
            "evals/budget": "models: [local/random]\nseeds: 8\nsteps: 2\n"
            "expect: {min_achievements: 0}\n"
        },
    )
    result = run(pytester, "evals", "-n", "2", "--max-tokens", "50", "-rs")
    outcomes = result.parseoutcomes()
    # one response is over 50 tokens: each worker starts at most one episode
    assert outcomes.get("passed", 0) <= 2 and outcomes["skipped"] >= 6
    assert outcomes.get("passed", 0) + outcomes["skipped"] == 8
    result.stdout.fnmatch_lines(
        [
            (
                "SKIPPED *evals/budget.yaml:1: token budget reached: * tokens used, --max-tokens 50: "
                "episode not started"
            )
        ]
    )


def test_cost_budget_uses_profile_prices(pytester, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    pytester.makefile(
        ".yaml",
        **{
            "evals/priced": "models: [gpt-4o-mini-2024-07-18]\nseeds: 3\n"
            "steps: 2\nexpect: {min_achievements: 0}\n"
        },
    )
    with LocalServer(model="local/random", log=True) as server:
        result = run(
            pytester,
            "evals",
            "-p",
            "no:xdist",
            "-rs",
            "--base-url",
            server.base_url,
            "--max-cost",
            "0.00001",
        )
        requests = len(server.log)
    result.assert_outcomes(skipped=3)
    assert requests == 1  # the first call spent the budget: no other call was made
    # gpt-4o-mini: $0.15 / $0.60 per million tokens in and out; ~700 tokens a step
    result.stdout.fnmatch_lines(
        [
            (
                "SKIPPED [[]1[]] evals/priced.yaml:1: cost budget reached: $0.000[0-9]* spent, "
                "--max-cost 1e-05: episode cut before step 1"
            ),
            (
                "SKIPPED [[]2[]] evals/priced.yaml:1: cost budget reached: $0.000[0-9]* spent, "
                "--max-cost 1e-05: episode not started"
            ),
        ]
    )

    pytester.makefile(
        ".yaml",
        **{
            "evals/priced": "models: [mystery-model]\nseeds: 2\nsteps: 1\n"
            "expect: {min_achievements: 0}\n"
        },
    )
    with LocalServer(model="local/random") as server:
        unpriced = run(
            pytester,
            "evals",
            "-p",
            "no:xdist",
            "--base-url",
            server.base_url,
            "--max-cost",
            "0.00001",
            "-W",
            "ignore::UserWarning",
        )
    unpriced.assert_outcomes(passed=2)  # no price, no cost: said, not guessed
    unpriced.stdout.fnmatch_lines(
        [
            (
                "*crafter-eval: * tokens of models without prices are not in "
                "--max-cost (add price: to their profiles)*"
            )
        ]
    )


@pytest.mark.parametrize("where", ["eval file", "--profiles"])
def test_cost_budget_prices_with_the_runs_profiles_as_the_records_do(pytester, monkeypatch, where):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    profile = "mystery-model: {like: gpt-4o-mini, price: {input: 300, output: 300}}"
    text = "models: [mystery-model]\nseeds: 3\nsteps: 1\nexpect: {min_achievements: 0}\n"
    args = []
    if where == "eval file":
        text += f"profiles:\n  {profile}\n"
    else:
        pytester.makefile(".yaml", prices=f"profiles:\n  {profile}\n")
        args = ["--profiles", "prices.yaml"]
    pytester.makefile(".yaml", **{"evals/priced": text})
    with LocalServer(model="local/random") as server:
        result = run(
            pytester,
            "evals",
            "-p",
            "no:xdist",
            "-rs",
            "--base-url",
            server.base_url,
            "--max-cost",
            "0.01",
            "-W",
            "ignore::UserWarning",
            *args,
        )
    result.assert_outcomes(passed=1, skipped=2)
    (played,) = [
        json.loads(line)
        for line in (pytester.path / "reports" / "results.jsonl").open()
        if json.loads(line)["outcome"] == "passed"
    ]
    assert played["cost_usd"] > 0.01  # ~700 tokens at $300 per million
    result.stdout.fnmatch_lines(
        [f"*cost budget reached: ${played['cost_usd']:.6f} spent, --max-cost 0.01*"]
    )


def test_max_concurrency_caps_requests_across_workers(pytester, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    pytester.makefile(
        ".yaml",
        **{"evals/slow": "models: [slow]\nseeds: 4\nsteps: 2\nexpect: {min_achievements: 0}\n"},
    )
    with LocalServer(model="local/random?latency_ms=150", log=True) as server:
        result = run(
            pytester, "evals", "-n", "2", "--max-concurrency", "1", "--base-url", server.base_url
        )
        times = sorted(entry.time for entry in server.log)
    result.assert_outcomes(passed=4)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 8 and min(gaps) >= 0.14, gaps  # one at a time: 150 ms apart at least


KILLER = """
import os, signal, threading
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # Fault injection: SIGKILL this xdist worker 0.3 s into seed 1's episode.
    if item.name.endswith("[seed=1]") and os.environ.get("KILL_SEED_1"):
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGKILL)).start()
"""


@pytest.mark.slow
def test_a_worker_killed_mid_episode_is_one_error_and_resume_reruns_only_it(pytester, monkeypatch):
    monkeypatch.setenv("KILL_SEED_1", "1")
    pytester.makeconftest(KILLER)
    pytester.makefile(
        ".yaml",
        **{
            "evals/crash": "models: ['local/random?latency_ms=100']\n"
            "seeds: 4\nsteps: 8\nexpect: {min_achievements: 0}\n"
        },
    )
    result = run(pytester, "evals", "-n", "2", "-rA")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of local/random?latency_ms=100[[]seed=1[]]*",
            (
                "local/random?latency_ms=100 seed 1: the xdist worker gw* running this episode died "
                "(killed or crashed)*"
            ),
        ]
    )
    result.stdout.fnmatch_lines(
        ["ERROR evals/crash.yaml::local/random?latency_ms=100[[]seed=1[]]*"]
    )
    records = {r["seed"]: r for r in map(json.loads, results_lines(pytester))}
    assert {s: r["outcome"] for s, r in records.items()} == {
        0: "passed",
        1: "error",
        2: "passed",
        3: "passed",
    }
    assert records[1]["crashed"] and "died" in records[1]["message"]

    monkeypatch.delenv("KILL_SEED_1")
    before = len(results_lines(pytester))
    resumed = run(pytester, "evals", "-n", "2", "--resume")
    resumed.assert_outcomes(passed=4)  # three taken from results.jsonl, judged again
    new = [json.loads(line) for line in results_lines(pytester)[before:]]
    assert [(r["seed"], r["outcome"], r["steps"]) for r in new] == [(1, "passed", 8)]


def results_lines(pytester) -> list[str]:
    return (pytester.path / "reports" / "results.jsonl").read_text().splitlines()


def test_a_budget_cuts_the_episodes_in_flight(pytester):
    """--max-tokens with 8 episodes in flight is checked before every model call: the
    run spends at most the budget and one call per episode in flight (70,167 tokens were
    spent for --max-tokens 10000 at --concurrency 8), and the episodes in flight when it
    is spent end there, recorded as skipped (end: cut), neither passed nor failed."""
    pytester.makefile(
        ".yaml",
        **{
            "evals/budget": "models: ['local/random?latency_ms=20']\nseeds: 16\nsteps: 10\n"
            "expect: {min_achievements: 0}\n"
        },
    )
    result = run(
        pytester, "evals", "-p", "no:xdist", "--episodes-per-process", "8", "--max-tokens", "10000"
    )
    records = [json.loads(line) for line in results_lines(pytester)]
    assert len(records) == 16
    spent = sum(r["tokens_in"] + r["tokens_out"] for r in records)
    per_call = max((r["tokens_in"] + r["tokens_out"]) / r["steps"] for r in records if r["steps"])
    assert spent <= 10000 + 8 * 1.5 * per_call, (spent, per_call)
    cut = [r for r in records if r["end"] == "cut"]
    assert cut and all(r["outcome"] == "skipped" for r in cut)
    assert all(
        re.search(r"token budget reached: .* episode cut before step \d+", r["message"])
        for r in cut
    ), cut[0]["message"]
    assert all(r["steps"] == 10 for r in records if r["outcome"] == "passed")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes["skipped"] >= len(cut)


def test_a_budget_cuts_episodes_of_another_protocol_too(pytester):
    """protocol: balrog plays its own loop; the budget cuts its episodes the same way
    (skipped, end cut), never as an error."""
    pytester.makefile(
        ".yaml",
        **{"evals/cut": "protocol: balrog\nmodels: [local/heuristic]\nseeds: 0-3\nsteps: 20\n"},
    )
    result = run(
        pytester, "evals", "-p", "no:xdist", "--episodes-per-process", "2", "--max-tokens", "3000"
    )
    records = [json.loads(line) for line in results_lines(pytester)]
    assert records and not [r for r in records if r["outcome"] == "error"], result.stdout.str()
    assert [r for r in records if r["end"] == "cut" and r["outcome"] == "skipped"]
