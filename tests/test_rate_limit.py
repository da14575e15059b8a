"""Rate limits: the local models' `rpm` option answers 429 with a wait like a provider,
and runstate.Pacer makes every request to the model wait in turn (across threads here;
across workers through the same files), so that nothing is lost at the limit."""

import threading

import openai

from pytest_crafter_eval.run import runstate
from pytest_crafter_eval.wire.client import ModelClient, RetryPolicy
from pytest_crafter_eval.wire.tools import TOOL


def test_pacer_queues_requests_one_wait_apart_after_a_429(tmp_path):
    clock = [1000.0]
    pacer = runstate.Pacer(tmp_path, "m")
    other = runstate.Pacer(tmp_path, "m")  # another worker: the same files
    assert pacer.turn(lambda: clock[0]) == 0  # nothing queues: go
    pacer.limited(0.5, lambda: clock[0])
    waits = [p.turn(lambda: clock[0]) for p in (pacer, other, pacer)]
    assert waits == [0.5, 1.0, 1.5]  # in turn, one wait apart
    pacer.limited(0.01, lambda: clock[0])  # a late request told a tiny wait
    assert other.turn(lambda: clock[0]) == 2.0  # does not shrink the spacing
    clock[0] += 60
    assert pacer.turn(lambda: clock[0]) == 0  # drained: free again
    assert runstate.Pacer(tmp_path, "n").turn(lambda: clock[0]) == 0  # per model


def test_rpm_answers_429_with_retry_after_ms(server, sdk):
    body = {
        "model": "local/random?rpm=60&seed=7",  # one a second, one at once
        "tools": [TOOL],
        "messages": [{"role": "user", "content": "x"}],
    }
    sdk.post("/chat/completions", body=body, cast_to=str)
    try:
        sdk.post("/chat/completions", body=body, cast_to=str)
    except openai.RateLimitError as exc:
        assert exc.status_code == 429
        assert 0 < int(exc.response.headers["retry-after-ms"]) <= 1000
        assert exc.response.headers["retry-after"] == "1"
        assert "limit 60 requests per minute" in exc.message
    else:
        raise AssertionError("the second request within a second was not limited")


def test_threads_sharing_a_pacer_all_get_through_at_the_limit(server, sdk, tmp_path):
    model = "local/random?rpm=1200&seed=3"  # 20 a second, 20 at once
    answered, failed = [], []

    def worker(n):
        client = ModelClient(
            sdk,
            model=model,
            policy=RetryPolicy(max_retries=0, deadline_s=60),  # 429s with a wait: paced
            pace=runstate.Pacer(tmp_path, model),
        )
        for i in range(4):
            body = {
                "model": model,
                "tools": [TOOL],
                "messages": [{"role": "user", "content": f"thread {n} call {i}"}],
            }
            try:
                answered.append(client.complete(body))
            except Exception as exc:  # reported below
                failed.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failed and len(answered) == 64  # none lost, though max_retries is 0
    limited = [e for e in server.log if e.model == model and e.status == 429]
    assert limited  # the limit was reached
    assert len(limited) < 64  # in turn, not all at once after each 429 (a herd)
