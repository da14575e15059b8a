"""client retries: what is retried and how long we wait, through the real openai SDK
against local/chaos on the loopback server (its request log gives the timings)."""

from __future__ import annotations

import itertools
import random
import time

import openai
import pytest

from pytest_crafter_eval.run import runstate
from pytest_crafter_eval.wire.client import (
    Attempt,
    ModelCallError,
    ModelClient,
    RetryPolicy,
    classify,
    parse_retry_after,
)
from pytest_crafter_eval.wire.local import LocalServer
from pytest_crafter_eval.wire.tools import TOOL

FAST = RetryPolicy(max_retries=4, deadline_s=10, backoff_s=0.02, max_backoff_s=0.1)


_counter = iter(range(10**9))


def call(sdk, query, policy=FAST, timeout=5.0, pace=None):
    """One request to local/chaos?query with a body never sent before (fresh attempts)."""
    body = {
        "model": f"local/chaos?{query}",
        "tools": [TOOL],
        "messages": [{"role": "user", "content": f"request {next(_counter)} {time.time()}"}],
    }
    return ModelClient(sdk, timeout=timeout, policy=policy, pace=pace).complete(body)


def attempts(server, query):
    return [entry for entry in server.log if entry.model == f"local/chaos?{query}"]


@pytest.mark.parametrize(
    "error, cause",
    [
        ("429", "429"),
        ("500", "500"),
        ("502", "502"),
        ("503", "503"),
        ("408", "408"),
        ("409", "409"),
    ],
)
def test_transient_statuses_are_retried_until_they_pass(sdk, server, error, cause):
    reply = call(sdk, f"error={error}&error_attempts=2&retry_after=0")
    assert [r.cause for r in reply.retries] == [cause, cause]
    assert reply.body["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    "query, cause",
    [
        ("rate_drop=1", "connection"),
        ("rate_notjson=1", "not_json"),
        ("rate_slow=1&slow_ms=400", "timeout"),
    ],
)
def test_dropped_connections_bad_bodies_and_timeouts_are_retried_then_reported(
    sdk, server, query, cause
):
    policy = RetryPolicy(max_retries=2, deadline_s=10, backoff_s=0.02, max_backoff_s=0.05)
    with pytest.raises(ModelCallError) as info:
        call(sdk, query, policy, timeout=0.15)
    error = info.value
    assert [r.cause for r in error.retries] == [cause, cause]
    assert error.infra and "gave up after 3 attempts: --max-retries 2" in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    "error, status, words",
    [
        ("400", 400, "HTTP 400: Unsupported value: 'temperature'"),
        ("401", 401, "HTTP 401: Incorrect API key provided. (code invalid_api_key)"),
        ("403", 403, "HTTP 403: Country, region, or territory not supported."),
        ("404", 404, "HTTP 404: The model does not exist. (code model_not_found)"),
        (
            "quota",
            429,
            (
                "HTTP 429: You exceeded your current quota, please check your plan and billing "
                "details. (code insufficient_quota)"
            ),
        ),
    ],
)
def test_refusals_fail_at_once_with_the_apis_message(sdk, server, error, status, words):
    query = f"error={error}"
    before = len(attempts(server, query))
    with pytest.raises(ModelCallError) as info:
        call(sdk, query)
    assert str(info.value) == words or str(info.value).startswith(words)
    assert info.value.status == status and not info.value.infra and not info.value.retries
    assert len(attempts(server, query)) == before + 1  # exactly one request sent


def test_unknown_local_model_is_a_404_not_retried(sdk):
    body = {"model": "local/nope", "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(
        ModelCallError, match=r"HTTP 404: The model `local/nope` does not exist"
    ) as info:
        ModelClient(sdk, policy=FAST).complete(body)
    assert info.value.retries == ()


@pytest.mark.parametrize(
    "query, seconds", [("retry_after=0.2", 0.2), ("retry_after=0&retry_after_ms=250", 0.25)]
)
def test_retry_after_is_honoured_per_the_servers_log(sdk, server, query, seconds):
    query = f"error=429&error_attempts=2&{query}"
    reply = call(sdk, query)
    log = attempts(server, query)[-3:]
    assert [e.status for e in log] == [429, 429, 200] and len({e.key for e in log}) == 1
    gaps = [b.time - a.time for a, b in itertools.pairwise(log)]
    assert all(seconds <= gap < seconds * 1.1 + 0.1 for gap in gaps), gaps
    assert all(seconds <= r.wait_s <= seconds * 1.1 for r in reply.retries)


@pytest.mark.parametrize("paced", [False, True])
@pytest.mark.parametrize("retry_after", ["0", "0.001", "0.03"])
def test_every_429_counts_and_waits_at_least_the_backoff(sdk, server, tmp_path, paced, retry_after):
    """A provider that always answers 429, asking for no wait, a tiny one or a short
    one: the call ends at --max-retries (with the shared pacer too), each wait at least
    the backoff; no tight loop (it was 650 requests in 2 s with the pacer on)."""
    query = f"error=429&retry_after={retry_after}"
    policy = RetryPolicy(max_retries=3, deadline_s=20, backoff_s=0.02, max_backoff_s=0.04)
    pace = runstate.Pacer(tmp_path, "chaos") if paced else None
    before = len(attempts(server, query))
    with pytest.raises(ModelCallError, match=r"gave up after 4 attempts: --max-retries 3") as info:
        call(sdk, query, policy, pace=pace)
    assert len(attempts(server, query)) == before + 4  # exactly max_retries + 1 requests
    told = float(retry_after)
    floors = [0.01, 0.02, 0.02]  # half the backoff ceiling: 0.02 doubling, capped at 0.04
    assert [r.cause for r in info.value.retries] == ["429"] * 3
    assert all(r.wait_s >= max(told, floor) for r, floor in zip(info.value.retries, floors))


def test_a_retry_after_beyond_the_deadline_fails_at_once(sdk, server):
    policy = RetryPolicy(max_retries=4, deadline_s=1.0)
    start = time.monotonic()
    with pytest.raises(ModelCallError, match=r"Retry-After 5 s is beyond the step deadline of 1 s"):
        call(sdk, "error=429&retry_after=5", policy)
    assert time.monotonic() - start < 0.5


def test_the_step_deadline_bounds_slow_attempts(sdk):
    policy = RetryPolicy(max_retries=50, deadline_s=0.6, backoff_s=0.01, max_backoff_s=0.01)
    start = time.monotonic()
    with pytest.raises(ModelCallError, match="timed out"):
        call(sdk, "rate_slow=1&slow_ms=1000", policy, timeout=0.25)
    assert time.monotonic() - start < 0.9


def test_chaos_faults_are_reproducible_and_retries_get_through(sdk):
    """The same request sequence meets the same faults on a fresh server; every request
    eventually succeeds with the same answer as without faults."""

    def run():
        with (
            LocalServer(log=True) as fresh,
            openai.OpenAI(base_url=fresh.base_url, api_key="local", max_retries=0) as client,
        ):
            answers = []
            for i in range(30):
                body = {
                    "model": "local/chaos?rate_429=0.3&rate_500=0.1&retry_after=0.01&seed=4",
                    "messages": [{"role": "user", "content": f"turn {i}"}],
                    "tools": [TOOL],
                }
                reply = ModelClient(client, policy=FAST).complete(body)
                answers.append(reply.body["choices"][0]["message"]["tool_calls"][0]["function"])
            return answers, [(e.key, e.attempt, e.status) for e in fresh.log]

    first, second = run(), run()
    assert first == second
    statuses = [status for _, _, status in first[1]]
    assert statuses.count(429) > 3 and statuses.count(500) >= 1 and statuses.count(200) == 30


def test_classify_and_retry_after_parsing():
    assert classify(
        429,
        {"error": {"message": "slow down", "code": "rate_limit_exceeded"}},
        {"retry-after": "2"},
    ) == Attempt(
        "HTTP 429: slow down (code rate_limit_exceeded)",
        "429",
        True,
        status=429,
        retry_after_s=2.0,
        code="rate_limit_exceeded",
    )
    assert not classify(503, {}, {"x-should-retry": "false"}).retryable
    assert not classify(422, {"error": {"message": "no"}}, {}).retryable
    assert (
        classify(400, {"error": {"message": "bad", "param": "max_tokens"}}, {}).param
        == "max_tokens"
    )
    assert (
        classify(502, "<html>\n bad gateway</html>", {}).message
        == "HTTP 502: <html> bad gateway</html>"
    )
    assert parse_retry_after({"retry-after-ms": "150", "retry-after": "9"}) == 0.15
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert (
        parse_retry_after(
            {"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=lambda: 1445412480.0
        )
        == 10.0
    )
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_backoff_is_capped_exponential_with_jitter():
    policy = RetryPolicy(backoff_s=0.5, max_backoff_s=8)
    rng = random.Random(0)
    plain = Attempt("x", "500", True)
    for retry, ceiling in enumerate([0.5, 1, 2, 4, 8, 8, 8]):
        waits = [policy.wait(retry, plain, rng) for _ in range(200)]
        assert ceiling / 2 <= min(waits) and max(waits) <= ceiling
        assert max(waits) - min(waits) > ceiling / 4  # jittered, not fixed
    told = Attempt("x", "429", True, retry_after_s=3.0)
    assert all(3.0 <= policy.wait(0, told, rng) <= 3.3 for _ in range(50))
