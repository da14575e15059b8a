"""Local models: the real openai SDK against the loopback server over 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import jsonschema
import openai
import pytest

from pytest_crafter_eval.agent.env import ACTIONS
from pytest_crafter_eval.wire.adapters.chat import parse_message as parse_tool_calls
from pytest_crafter_eval.wire.local import LocalServer, ModelError
from pytest_crafter_eval.wire.tools import MAX_ACTIONS, TOOL

SCHEMA = json.loads(
    (Path(__file__).parent / "data" / "openai-CreateChatCompletionResponse.schema.json").read_text()
)
TEXT = [
    {"role": "system", "content": "You play Crafter."},
    {"role": "user", "content": "You see grass and a tree to your left. Inventory: empty."},
]
IMAGE = [
    {
        "role": "user",
        "content": [
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
            }
        ],
    }
]


def create(sdk, model, messages=TEXT, **kwargs):
    return sdk.chat.completions.create(model=model, messages=messages, tools=[TOOL], **kwargs)


def raw_body(sdk, model, messages=TEXT, **kwargs):
    response = sdk.chat.completions.with_raw_response.create(
        model=model, messages=messages, tools=[TOOL], **kwargs
    )
    assert response.status_code == 200
    return json.loads(response.text)


def post(server, data: bytes, path="/v1/chat/completions"):
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{path}",
        data=data,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_random_calls_the_tool_with_valid_actions(sdk):
    response = create(sdk, "local/random")
    choice = response.choices[0]
    parsed = parse_tool_calls(choice.message.model_dump())
    assert choice.finish_reason == "tool_calls"
    assert parsed.ok and parsed.tool_calls == parsed.valid_calls == 1
    assert 1 <= len(parsed.actions) <= MAX_ACTIONS and set(parsed.actions) <= set(ACTIONS)
    assert parsed.invalid_actions == parsed.malformed_json == 0
    assert response.model == "local/random" and response.id.startswith("chatcmpl-local-")


def test_random_is_deterministic_per_request(sdk):
    def actions(model, messages=TEXT):
        return parse_tool_calls(
            create(sdk, model, messages).choices[0].message.model_dump()
        ).actions

    assert actions("local/random") == actions("local/random")
    assert actions("local/random?seed=3") == actions("local/random?seed=3")
    others = [actions(f"local/random?seed={seed}") for seed in range(1, 6)]
    assert any(a != actions("local/random") for a in others)
    steps = [
        actions("local/random", TEXT[:1] + [{"role": "user", "content": f"step {i}"}])
        for i in range(5)
    ]
    assert len({tuple(a) for a in steps}) > 1


def test_heuristic_without_text_falls_back_to_random_actions(sdk):
    parsed = parse_tool_calls(create(sdk, "local/heuristic", IMAGE).choices[0].message.model_dump())
    assert parsed.ok and set(parsed.actions) <= set(ACTIONS)


def test_heuristic_answers_text_observations(sdk):
    message = create(sdk, "local/heuristic").choices[0].message.model_dump()
    assert parse_tool_calls(message).tool_calls == 1


@pytest.mark.parametrize(
    "mode, content, refusal, finish",
    [
        ("text", "I will move left", None, "stop"),
        ("refusal", None, "I'm sorry", "stop"),
        ("content_filter", None, None, "content_filter"),
        ("empty", "", None, "stop"),
    ],
)
def test_silent_never_calls_the_tool(sdk, mode, content, refusal, finish):
    choice = create(sdk, f"local/silent?mode={mode}").choices[0]
    assert choice.finish_reason == finish and not choice.message.tool_calls
    assert not parse_tool_calls(choice.message.model_dump()).ok
    for got, want in [(choice.message.content, content), (choice.message.refusal, refusal)]:
        assert got == want if not want else got.startswith(want)


@pytest.mark.parametrize(
    "kwargs, budget", [({"max_completion_tokens": 300}, 300), ({"max_tokens": 40}, 40), ({}, 512)]
)
def test_exhaust_spends_the_whole_budget(sdk, kwargs, budget):
    response = create(sdk, "local/exhaust", **kwargs)
    choice = response.choices[0]
    assert (
        choice.finish_reason == "length"
        and not choice.message.content
        and not choice.message.tool_calls
    )
    assert response.usage.completion_tokens == budget
    assert response.usage.completion_tokens_details.reasoning_tokens == budget
    assert response.usage.total_tokens == response.usage.prompt_tokens + budget


def test_usage_counts_images_at_a_fixed_price(sdk):
    usage = create(sdk, "local/random", IMAGE * 3).usage
    assert usage.prompt_tokens >= 3 * 85 and usage.prompt_tokens_details.cached_tokens == 0


@pytest.mark.parametrize(
    "model",
    [
        "local/random",
        "local/random?seed=2&latency_ms=1",
        "local/heuristic",
        "local/exhaust",
        "local/silent",
        "local/silent?mode=refusal",
        "local/silent?mode=content_filter",
        "local/silent?mode=empty",
    ],
)
def test_raw_bodies_match_the_official_schema(sdk, model):
    body = raw_body(sdk, model, TEXT)
    errors = [e.message for e in jsonschema.Draft202012Validator(SCHEMA).iter_errors(body)]
    assert errors == []


def test_max_actions_bounds_the_actions_per_call(sdk):
    counts = {
        len(
            parse_tool_calls(
                create(
                    sdk, "local/random?max_actions=1", TEXT + [{"role": "user", "content": str(i)}]
                )
                .choices[0]
                .message.model_dump()
            ).actions
        )
        for i in range(20)
    }
    assert counts == {1}
    counts = {
        len(
            parse_tool_calls(
                create(sdk, "local/random", TEXT + [{"role": "user", "content": str(i)}])
                .choices[0]
                .message.model_dump()
            ).actions
        )
        for i in range(20)
    }
    assert len(counts) > 1 and max(counts) <= MAX_ACTIONS


def test_unknown_model_is_not_found_and_lists_known_models(sdk):
    with pytest.raises(openai.NotFoundError) as info:
        create(sdk, "local/nope")
    assert "local/nope" in str(info.value) and "local/random" in str(info.value)
    assert info.value.body["code"] == "model_not_found"


@pytest.mark.parametrize(
    "model, words",
    [
        ("local/random?colour=red", ["colour", "latency_ms", "seed"]),
        ("local/random?seed=one", ["seed", "int", "one"]),
        ("local/random?latency_ms=-5", ["latency_ms"]),
        ("local/silent?mode=shout", ["mode", "refusal", "shout"]),
        ("local/random?seed", ["key=value"]),
        ("local/random?max_actions=9", ["max_actions", "1 to 8", "9"]),
    ],
)
def test_bad_options_are_clear_bad_requests(sdk, model, words):
    with pytest.raises(openai.BadRequestError) as info:
        create(sdk, model)
    assert all(word in str(info.value) for word in words)


@pytest.mark.parametrize(
    "data, param",
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (json.dumps({"model": "local/random"}).encode(), "messages"),
        (
            json.dumps({"model": "local/random", "messages": TEXT, "stream": True}).encode(),
            "stream",
        ),
    ],
)
def test_bad_bodies_are_400_with_openai_errors(server, data, param):
    status, body = post(server, data)
    assert status == 400
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["param"] == param


def test_paths_with_and_without_v1(server, sdk):
    assert {m.id for m in sdk.models.list()} >= {
        "local/random",
        "local/heuristic",
        "local/silent",
        "local/exhaust",
    }
    status, body = post(
        server,
        json.dumps({"model": "local/random", "messages": TEXT}).encode(),
        "/chat/completions",
    )
    assert status == 200 and body["object"] == "chat.completion"
    assert post(server, b"{}", "/v1/completions")[0] == 404


def test_latency_option_is_honoured_and_runs_in_parallel(sdk):
    start = time.perf_counter()
    create(sdk, "local/silent?latency_ms=150")
    assert time.perf_counter() - start >= 0.15
    threads = [
        threading.Thread(target=create, args=(sdk, "local/random?latency_ms=400")) for _ in range(6)
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Served one after another, 6 x 400 ms would take 2.4 s; generous for a loaded machine.
    assert 0.4 <= time.perf_counter() - start < 1.6


def test_keep_alive_reuses_one_connection():
    # Round-trip time is measured by benchmarks/ (overhead_ratio), not asserted here.
    with LocalServer() as server, openai.OpenAI(base_url=server.base_url, api_key="local") as sdk:
        for i in range(50):
            create(sdk, "local/random", TEXT + [{"role": "user", "content": str(i)}])
        assert server.connections == 1


def test_request_log_records_model_and_status(server, sdk):
    before = len(server.requests)
    create(sdk, "local/random?seed=9")
    with pytest.raises(openai.NotFoundError):
        create(sdk, "local/missing")
    assert [(m, s) for _, m, s in server.requests[before:]] == [
        ("local/random?seed=9", 200),
        ("local/missing", 404),
    ]
    assert server.requests[-2][0] <= server.requests[-1][0]


def test_default_model_answers_foreign_model_names():
    with pytest.raises(ModelError):
        LocalServer(model="local/nope")
    with (
        LocalServer(model="local/silent") as server,
        openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0) as sdk,
    ):
        response = create(sdk, "gpt-4o")
        assert response.model == "gpt-4o" and response.choices[0].finish_reason == "stop"
        assert create(sdk, "local/random").choices[0].finish_reason == "tool_calls"


def test_close_is_quick_with_idle_connections_and_frees_the_port():
    server = LocalServer().start()
    with openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0) as sdk:
        create(sdk, "local/random")
        start = time.perf_counter()
        server.close()
        assert time.perf_counter() - start < 1
        with pytest.raises(openai.APIConnectionError):
            create(sdk, "local/random")


def test_heuristic_reads_the_text_parts_of_the_last_user_message():
    from pytest_crafter_eval.wire.local.models import last_user_text

    parts = [{"type": "text", "text": "a"}, IMAGE[0]["content"][0], {"type": "text", "text": "b"}]
    assert (
        last_user_text({"messages": TEXT + [{"role": "assistant", "content": "x"}]})
        == TEXT[1]["content"]
    )
    assert last_user_text({"messages": TEXT + [{"role": "user", "content": parts}]}) == "a\nb"
    assert last_user_text({"messages": TEXT + IMAGE}) == ""


def test_latency_ms_counts_from_the_request_as_a_remote_models_latency_does(monkeypatch):
    """`latency_ms` is the time from the request to the answer, the model's own work
    included (a bench's "model answering in 1 s" took 1 s plus the server's work under
    load); 429s and bad requests come at once."""
    from pytest_crafter_eval.wire.local import models

    body = {"model": "local/random?latency_ms=500", "messages": [{"role": "user", "content": "x"}]}
    answer = models._answer

    def slow(*args, **kwargs):
        time.sleep(0.4)  # the model's own work
        return answer(*args, **kwargs)

    monkeypatch.setattr(models, "_answer", slow)
    started = time.monotonic()
    models.complete(body)
    took = time.monotonic() - started
    assert 0.5 <= took < 0.75, took  # not 0.9: the work is inside the latency
    started = time.monotonic()
    with pytest.raises(models.ModelError):
        models.complete({**body, "messages": []})
    assert time.monotonic() - started < 0.1
