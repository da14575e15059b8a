"""Bad model output is counted and recorded, never a crash: episodes against local/chaos
through the real SDK and loopback server, with nothing of the project mocked."""

from __future__ import annotations

import openai
import pytest

from pytest_crafter_eval.agent.episode import check, run_episode
from pytest_crafter_eval.config import spec
from pytest_crafter_eval.wire.client import ModelClient, RetryPolicy
from pytest_crafter_eval.wire.local import LocalServer

POLICY = RetryPolicy(max_retries=2, deadline_s=10, backoff_s=0.01, max_backoff_s=0.02)


@pytest.fixture(scope="module")
def client():
    with (
        LocalServer() as server,
        openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0) as sdk,
    ):
        yield ModelClient(sdk, policy=POLICY)


def play(client, model, steps=3, seed=0, policy=None):
    if policy is not None:
        client = ModelClient(client._sdk, policy=policy)
    run = spec.Run(
        model=model,
        steps=steps,
        observation=spec.Observation(image=None),
        request=spec.Request(),
        expect=spec.Expect(min_tool_call_rate=1.0),
    )
    return run, run_episode(run, seed, client, eval_name="bad")


@pytest.mark.parametrize(
    "kind, counter, words",
    [
        ("json", "malformed_calls", "1 with malformed JSON arguments"),
        ("tool", "unknown_tools", "1 to an unknown tool"),
        ("action", "invalid_actions", "2 invalid action name(s)"),
    ],
)
def test_unusable_tool_calls_end_the_episode_as_a_counted_failure(client, kind, counter, words):
    run, result = play(client, f"local/chaos?rate_malformed=1&malformed={kind}")
    assert result.error is None and result.end == "no_tool_call" and result.steps == 1
    assert getattr(result, counter) >= 1
    assert (
        result.no_tool_call["class"] == "invalid_tool_call"
        and words in result.no_tool_call["message"]
    )
    assert check(result, run.expect) == [
        f"no tool call at step 0: {result.no_tool_call['message']}"
    ]


def test_more_than_eight_actions_are_cut_to_eight_and_counted(client):
    _run, result = play(client, "local/chaos?rate_malformed=1&malformed=many", steps=2)
    assert result.end == "steps" and result.tool_calls == 2
    assert result.too_many_actions == 2 and result.invalid_actions == 0  # cut, not invalid
    assert result.valid_actions == result.env_steps == 2 * 8


def test_empty_choices_are_an_empty_response(client):
    _run, result = play(client, "local/chaos?rate_malformed=1&malformed=empty")
    assert result.error is None and result.no_tool_call["class"] == "empty_response"
    assert result.no_tool_call["message"].startswith("empty response: no choices")


def test_a_body_that_is_not_json_is_retried_then_an_error_with_a_reason(client):
    run, result = play(client, "local/chaos?rate_notjson=1")
    assert result.end == "error" and result.infra_error and result.retries == {"not_json": 2}
    assert result.error.startswith("step 0: response body is not a JSON object: '<html>")
    assert check(result, run.expect) == []  # an error is not a verdict on the model


def test_a_400_names_the_parameter_and_the_profile_rule(client):
    _run, result = play(client, "local/chaos?error=400")
    assert result.end == "error" and not result.infra_error and result.retries == {}
    assert result.error == (
        "step 0: HTTP 400: Unsupported value: 'temperature' does not support this value with this "
        "model. (code unsupported_value) [request parameter 'temperature'; profile 'local/chaos' "
        "(exact match): temperature=(0.0, 2.0); fix the profile (--profiles, or profiles: in the "
        "eval file) or the request settings]"
    )


def test_mixed_faults_are_counted_and_the_results_match_a_fault_free_run(client):
    """Transient faults change nothing but the retry counts: same actions, same game."""
    faulty = "local/chaos?rate_429=0.3&rate_500=0.1&rate_drop=0.1&rate_notjson=0.1&retry_after=0.01"
    patient = RetryPolicy(max_retries=10, deadline_s=10, backoff_s=0.01, max_backoff_s=0.02)
    _, result = play(client, faulty, steps=6, seed=3, policy=patient)
    _, clean = play(client, "local/chaos", steps=6, seed=3)
    assert sum(result.retries.values()) >= 3 and set(result.retries) <= {
        "429",
        "500",
        "connection",
        "not_json",
    }
    assert result.error is None and result.retry_wait_s > 0
    assert (result.valid_actions, result.achievements, result.reward) == (
        clean.valid_actions,
        clean.achievements,
        clean.reward,
    )
