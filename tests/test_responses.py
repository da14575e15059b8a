"""The Responses API end to end: request bodies against the official CreateResponse
schema, the local server's answers against the official Response schema, episodes,
no-tool-call classes, budgets and record/replay over real loopback HTTP through the
openai SDK, and a third-party Responses server written here with the standard library."""

import json
import shutil
import threading
import warnings
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import jsonschema
import pytest

from pytest_crafter_eval import cli
from pytest_crafter_eval.agent import episode
from pytest_crafter_eval.config import profiles, spec
from pytest_crafter_eval.wire import adapters
from pytest_crafter_eval.wire.adapters import responses
from pytest_crafter_eval.wire.client import Connections
from pytest_crafter_eval.wire.conversation import (
    Conversation,
    Observation,
    Outcome,
    Reply,
    ToolCall,
)
from pytest_crafter_eval.wire.local import LocalServer
from pytest_crafter_eval.wire.local.models import list_models

DATA = Path(__file__).parent / "data"
REQUEST_SCHEMA = json.loads((DATA / "openai-CreateResponseRequest.schema.json").read_text())
RESPONSE_SCHEMA = json.loads((DATA / "openai-Response.schema.json").read_text())
ADAPTER = responses.ADAPTER


def errors(schema, body):
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)
    ]


def make_run(model, text_only=False, steps=3, **request):
    return spec.Run(
        model=model,
        steps=steps,
        observation=spec.Observation(image=None) if text_only else spec.Observation(),
        request=replace(spec.Request(), api="responses", **request),
        expect=spec.Expect(),
    )


@pytest.fixture(scope="module")
def connections():
    with Connections() as connections:
        yield connections


def test_the_gpt_5_nano_body_is_a_create_response(capsys):
    assert cli.main(["payload", "--model", "gpt-5-nano", "--api", "responses"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert errors(REQUEST_SCHEMA, body) == []
    parts = body["input"][0]["content"]
    assert [p["type"] for p in parts] == ["input_text", "input_image"]
    assert parts[1]["detail"] == "low"
    assert body["reasoning"] == {"effort": "low", "summary": "auto"}
    assert "temperature" not in body and body["max_output_tokens"] == 512 + 4096
    assert [t["name"] for t in body["tools"]] == ["interact_many"]
    assert body["store"] is False and body["include"] == ["reasoning.encrypted_content"]
    assert "messages" not in body and body["instructions"].startswith("You are playing Crafter")
    # the check can fail: the schema catches a wrong type
    assert errors(REQUEST_SCHEMA, dict(body, max_output_tokens="512"))


@pytest.mark.parametrize("text_only", [False, True], ids=["image", "text-only"])
def test_every_kind_of_model_gives_a_create_response(text_only):
    models = ["gpt-4o-mini", "gpt-4.1", "gpt-5-nano", "o3", "gpt-5-pro", "local/heuristic"]
    for model in models:
        run = make_run(model, text_only, temperature=0.6, tool_choice="required")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", profiles.CrafterEvalWarning)
            body = episode.first_request(run, 0)
        assert errors(REQUEST_SCHEMA, body) == [], model
        assert ("reasoning" in body) == profiles.resolve(model).reasoning
        assert ("include" in body) == profiles.resolve(model).reasoning
        assert ("input_image" in json.dumps(body)) != text_only


def test_a_history_renders_as_input_items_the_schema_accepts():
    run = make_run("gpt-5-nano")
    template = ADAPTER.prepare(run, profiles.resolve("gpt-5-nano"), "Play.").template
    conversation = Conversation("Play.", keep=5)
    image = episode._first_observation(0, spec.Observation(), "tool", 8).image
    for i in range(3):
        turn = conversation.observe(Observation(f"state {i}", image))
        turn.reply = Reply(
            tool_calls=(ToolCall(f"call_{i}", "interact_many", '{"actions": ["do"]}'),),
            text="Wood ahead." if i == 1 else None,
            reasoning_items=(
                {
                    "type": "reasoning",
                    "id": f"rs_{i}",
                    "summary": [{"type": "summary_text", "text": "Trees to the left."}],
                    "encrypted_content": "opaque",
                },
            ),
        )
        turn.outcome = Outcome(actions=("do",), reward=1.0, new_achievements=("collect_wood",))
    conversation.observe(Observation("state now", image))
    body = ADAPTER.body(template, conversation.window(3), keep_images=1)
    assert errors(REQUEST_SCHEMA, body) == []
    kinds = [item.get("type", item.get("role")) for item in body["input"]]
    assert kinds == (
        ["user", "reasoning", "function_call", "function_call_output"] * 1
        + ["user", "reasoning", "assistant", "function_call", "function_call_output"]
        + ["user", "reasoning", "function_call", "function_call_output"]
        + ["user"]
    )
    outputs = [i for i in body["input"] if i.get("type") == "function_call_output"]
    assert [o["call_id"] for o in outputs] == ["call_0", "call_1", "call_2"]
    assert outputs[0]["output"] == "played do; reward +1; unlocked collect_wood"
    assert json.dumps(body).count("input_image") == 2  # the last earlier frame and the current
    # the chat form of the same request: one tool message per call, matching ids
    form = ADAPTER.chat_form(body)
    roles = [m["role"] for m in form["messages"]]
    assert roles[:4] == ["system", "user", "assistant", "tool"]
    assert form["messages"][2]["tool_calls"][0]["id"] == form["messages"][3]["tool_call_id"]
    assert form["params"]["reasoning_effort"] == "low" and "include" not in form["params"]


@pytest.mark.parametrize("model", list_models())
def test_the_local_server_answers_every_model_with_a_valid_response(server, sdk, model):
    body = episode.first_request(make_run(model), 0)
    if model == "local/chaos":
        model = "local/chaos?rate_malformed=1&malformed=json"
    raw = sdk.post("/responses", body=dict(body, model=model), cast_to=str)
    response = json.loads(raw)
    assert errors(RESPONSE_SCHEMA, response) == [], model
    assert response["object"] == "response" and response["model"] == model
    assert server.log[-1].model == model and server.log[-1].status == 200


def test_the_sdk_reads_a_local_response_as_its_own_type(sdk):
    body = episode.first_request(make_run("local/heuristic"), 0)
    response = sdk.responses.create(**body)
    calls = [item for item in response.output if item.type == "function_call"]
    assert calls and calls[0].name == "interact_many" and json.loads(calls[0].arguments)["actions"]
    assert response.usage.input_tokens > 0


def test_an_episode_plays_through_the_responses_api(connections):
    seen = []
    result = episode.run_episode(
        make_run("local/heuristic", steps=4),
        0,
        connections.for_model("local/heuristic"),
        eval_name="t",
        on_step=seen.append,
    )
    assert (result.steps, result.tool_calls, result.end, result.error) == (4, 4, "steps", None)
    assert result.tokens_in > 0 and result.tokens_out > 0
    assert seen[0]["adapter"] is ADAPTER and seen[0]["request"]["store"] is False
    chat_result = episode.run_episode(
        replace(make_run("local/heuristic", steps=4), request=spec.Request(api="chat")),
        0,
        connections.for_model("local/heuristic"),
        eval_name="t",
    )
    # the same model plays the same game whichever API carries it
    assert (chat_result.achievements, chat_result.valid_actions, chat_result.reward) == (
        result.achievements,
        result.valid_actions,
        result.reward,
    )


@pytest.mark.parametrize(
    "model, kind, said",
    [
        ("local/exhaust", "budget_exhausted", "reasoning used 4608 of max_output_tokens=4608"),
        ("local/silent", "text_answer", "status=completed, text answer: 'I will move left"),
        ("local/silent?mode=refusal", "refusal", "refusal: \"I'm sorry"),
        (
            "local/silent?mode=content_filter",
            "content_filter",
            "status=incomplete (content_filter): the provider filtered the answer",
        ),
        ("local/silent?mode=empty", "empty_response", "empty response: no output items"),
        ("local/chaos?rate_malformed=1&malformed=action", "invalid_tool_call", "invalid action"),
    ],
)
def test_each_no_tool_call_class_over_the_responses_api(connections, model, kind, said):
    result = episode.run_episode(make_run(model), 0, connections.for_model(model), eval_name="t")
    assert result.end == "no_tool_call" and result.no_tool_call["class"] == kind
    assert said in result.no_tool_call["message"], result.no_tool_call["message"]


def test_reasoning_summaries_and_tokens_reach_records_and_traces(connections, tmp_path):
    from pytest_crafter_eval.data.trace import TraceWriter

    run = replace(
        make_run("local/exhaust"),
        profiles=profiles.check_entries(
            {"local/exhaust": {"like": "gpt-5-nano"}}, lambda k, m: ValueError(m)
        ),
    )
    with TraceWriter(tmp_path) as writer:
        result = episode.run_episode(
            run, 0, connections.for_model(run.model), eval_name="t", on_step=writer
        )
    assert result.tokens_reasoning == 512 + 4096 and result.reasoning_summaries == 1
    assert result.no_tool_call["reasoning"].startswith("Thinking")
    line = json.loads((tmp_path / "steps.jsonl").read_text())
    assert line["reasoning"].startswith("Thinking") and line["reasoning_tokens"] == 512 + 4096
    assert line["messages"][0]["role"] == "system" and line["params"]["max_completion_tokens"]


def test_record_then_replay_and_the_budget_count_for_responses(tmp_path):
    counted = []
    run = make_run("local/random?seed=3", steps=3)
    with Connections(
        record=str(tmp_path), on_reply=lambda model, usage: counted.append(usage)
    ) as live:
        recorded = episode.run_episode(run, 1, live.for_model(run.model), eval_name="t")
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 3 and json.loads(files[0].read_text())["request"]["store"] is False
    assert sum(u.input + u.output for u in counted) == recorded.tokens_in + recorded.tokens_out > 0
    with Connections(replay=str(tmp_path)) as replay:
        replayed = episode.run_episode(run, 1, replay.for_model(run.model), eval_name="t")
        missed = episode.run_episode(run, 2, replay.for_model(run.model), eval_name="t")
    keep = ("steps", "achievements", "reward", "valid_actions", "tokens_in", "tokens_out")
    assert {k: getattr(replayed, k) for k in keep} == {k: getattr(recorded, k) for k in keep}
    assert missed.error and "replay: request not in cassette" in missed.error


# -- a third-party server: the Responses API in a few lines of the standard library ----


class _ThirdParty(BaseHTTPRequestHandler):
    """Answers POST /v1/responses with one function_call item: 'do', then a move."""

    protocol_version = "HTTP/1.1"
    requests: ClassVar[list] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((self.path, body))
        turn = len(type(self).requests)
        actions = ["do", ["move_left", "move_right", "move_up", "move_down"][turn % 4]]
        answer = {
            "id": f"resp_{turn}",
            "object": "response",
            "status": "completed",
            "model": body["model"],
            "output": [
                {
                    "type": "function_call",
                    "call_id": f"fc{turn}",
                    "name": "interact_many",
                    "arguments": json.dumps({"actions": actions}),
                }
            ],
            "usage": {"input_tokens": 100, "output_tokens": 10},
        }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_a_third_party_responses_server_plays_full_episodes(monkeypatch):
    monkeypatch.setenv("THIRD_PARTY_KEY", "tp-key")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ThirdParty)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    _ThirdParty.requests = []
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        with Connections(base_url=url, api_key_env="THIRD_PARTY_KEY") as connections:
            results = [
                episode.run_episode(
                    make_run("acme-vl-7b", steps=5),
                    seed,
                    connections.for_model("acme-vl-7b"),
                    eval_name="t",
                )
                for seed in (0, 1)
            ]
    finally:
        httpd.shutdown()
        httpd.server_close()
    for result in results:
        assert (result.steps, result.tool_calls, result.error) == (5, 5, None)
        assert result.valid_actions == 10 and result.tokens_in == 500
    paths = {path for path, _ in _ThirdParty.requests}
    assert paths == {"/v1/responses"} and len(_ThirdParty.requests) == 10
    assert all(errors(REQUEST_SCHEMA, body) == [] for _, body in _ThirdParty.requests)


def test_the_api_is_chosen_by_profile_then_eval_file_then_option(tmp_path):
    run = make_run("gpt-4o-mini")
    assert (
        adapters.for_run(replace(run, request=spec.Request()), profiles.resolve("gpt-4o-mini")).name
        == "chat"
    )
    assert adapters.for_run(run, profiles.resolve("gpt-4o-mini")).name == "responses"
    entries = profiles.check_entries({"acme-*": {"api": "responses"}}, lambda k, m: ValueError(m))
    assert profiles.resolve("acme-9", entries).api == "responses"
    with pytest.raises(ValueError, match="must be one of chat, responses, got 'soap'"):
        profiles.check_entries({"acme": {"api": "soap"}}, lambda k, m: ValueError(m))
    path = tmp_path / "bad.yaml"
    path.write_text("models: [local/random]\nrequest:\n  api: soap\n")
    with pytest.raises(
        spec.SpecError, match=r"bad.yaml:3: request.api: must be one of chat, responses"
    ):
        spec.load(path)
    loaded = spec.load(path.with_name("ok.yaml"), "models: [local/random]\n")
    assert loaded.with_overrides(api="responses").runs[0].request.api == "responses"


# -- an eval file with request.api: responses, under xdist, recorded and replayed ---------

TIMINGS = ("latencies_s", "duration_s", "latency_p50_s", "latency_p95_s", "finished_at")


def _results(path):
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return sorted(
        ({k: v for k, v in r.items() if k not in TIMINGS} for r in records),
        key=lambda r: r["nodeid"],
    )


@pytest.mark.slow
def test_a_responses_eval_passes_under_xdist_and_replays_to_the_same_results(pytester, monkeypatch):
    shutil.copytree(DATA / "evals", pytester.path / "evals")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-recording-only")
    with LocalServer(model="local/heuristic") as server:  # answers gpt-5-nano
        recorded = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "evals", "-n", "2", "--record", "cassette",
            "--report-dir", "rec", "--base-url", server.base_url,
        )  # fmt: skip
    # 3 models x 2 seeds pass, local/exhaust's 2 xfail, 4 payload snapshots pass
    recorded.assert_outcomes(passed=6 + 4, xfailed=2)
    cassette = sorted((pytester.path / "cassette").glob("*.json"))
    assert cassette and all(
        json.loads(f.read_text())["request"]["store"] is False for f in cassette
    )
    monkeypatch.delenv("OPENAI_API_KEY")
    replayed = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "evals", "-n", "2", "--replay", "cassette",
        "--report-dir", "rep",
    )  # fmt: skip
    replayed.assert_outcomes(passed=6 + 4, xfailed=2)
    first = _results(pytester.path / "rec" / "results.jsonl")
    assert len(first) == 8 and {r["api"] for r in first} == {"responses"}
    assert first == _results(pytester.path / "rep" / "results.jsonl")


def test_the_api_option_and_ini_key_choose_the_api_and_records_name_it(pytester):
    pytester.makefile(".yaml", **{"evals/e": "models: [local/random]\nseeds: 1\nsteps: 2\n"})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--api", "soap", "evals")
    assert "--api: expected one of chat, responses, got 'soap'" in result.stderr.str()
    pytester.makeini("[pytest]\ncrafter_api = responses\n")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "evals", "-m", "not crafter_payload", "--report-dir", "r"
    )
    result.assert_outcomes(passed=1)
    record = json.loads((pytester.path / "r" / "results.jsonl").read_text())
    assert record["api"] == "responses" and record["tool_calls"] == 2


def test_fingerprints_of_runs_without_request_api_are_unchanged():
    from pytest_crafter_eval.report.results import fingerprint

    run = replace(make_run("local/random"), request=spec.Request())
    before_the_key = json.dumps(  # what fingerprint hashed before request.api existed
        {
            "eval": "e",
            "instructions": None,
            "model": run.model,
            "steps": run.steps,
            "observation": {"image": {"size": 64, "detail": "low"}, "text": True},
            "request": {
                "max_output_tokens": 512,
                "temperature": None,
                "top_p": None,
                "reasoning_effort": None,
                "reasoning_budget": None,
                "tool_choice": None,
                "parallel_tool_calls": None,
            },
            "profiles": "()",
        },
        sort_keys=True,
    )
    import hashlib

    assert fingerprint(run, "e", None) == hashlib.sha256(before_the_key.encode()).hexdigest()[:16]
    assert fingerprint(make_run("local/random"), "e", None) != fingerprint(run, "e", None)


def test_an_episode_with_history_sends_valid_responses_bodies_with_bounded_images(connections):
    run = replace(
        make_run("local/exhaust", steps=4),
        history=spec.History(steps=2, images=1, layout="window"),
        answer=spec.Answer(on_invalid="noop"),
        profiles=profiles.check_entries(
            {"local/exhaust": {"like": "gpt-5-nano"}}, lambda k, m: ValueError(m)
        ),
    )
    seen = []
    result = episode.run_episode(
        run, 0, connections.for_model(run.model), eval_name="t", on_step=seen.append
    )
    assert result.steps == 4 and result.reasoning_summaries == 4
    last = seen[-1]["request"]
    assert all(errors(REQUEST_SCHEMA, e["request"]) == [] for e in seen)
    assert max(json.dumps(e["request"]).count('"input_image"') for e in seen) == 2
    kinds = [item.get("type", item.get("role")) for item in last["input"]]
    # two earlier steps, each with its reasoning item carried back (encrypted), then now
    assert kinds == ["user", "reasoning", "user", "reasoning", "user"]
    assert all("encrypted_content" in i for i in last["input"] if i.get("type") == "reasoning")
