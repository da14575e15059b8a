"""adapters and conversation: the wire seam. Rendering a history of turns, parsing
replies, the registry; each request body against the official schema (pure)."""

import json
import threading
import warnings
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import jsonschema
import pytest

from pytest_crafter_eval.agent import episode
from pytest_crafter_eval.agent.env import CrafterEnv, data_uri
from pytest_crafter_eval.config import profiles, spec
from pytest_crafter_eval.wire import adapters
from pytest_crafter_eval.wire.adapters import chat
from pytest_crafter_eval.wire.client import Connections
from pytest_crafter_eval.wire.conversation import (
    Conversation,
    Observation,
    Outcome,
    Reply,
    ToolCall,
    Usage,
)

DATA = Path(__file__).parent / "data"
CHAT_SCHEMA = json.loads((DATA / "openai-CreateChatCompletionRequest.schema.json").read_text())


@pytest.fixture(scope="module")
def frame_uri():
    env = CrafterEnv(0)
    env.reset()
    return data_uri(env.frame())


def make_run(model="gpt-4o-mini", **request):
    return spec.Run(
        model=model,
        steps=3,
        observation=spec.Observation(),
        request=spec.Request(**request),
        expect=spec.Expect(),
    )


def call(i, actions):
    return ToolCall(f"call_{i}", "interact_many", json.dumps({"actions": actions}))


def history(frame_uri, steps=3):
    """A conversation of `steps` answered turns and a current one."""
    conversation = Conversation("Play Crafter.", keep=10)
    for i in range(steps):
        turn = conversation.observe(Observation(f"state {i}", frame_uri, "low"))
        calls = (call(i, ["move_left"]), call(f"{i}b", ["do", "fly"]))
        turn.reply = Reply(tool_calls=calls, usage=Usage(100, 20, 5))
        turn.outcome = Outcome(
            actions=("move_left", "do"),
            reward=1.0,
            new_achievements=("collect_wood",),
            invalid=("fly",),
        )
    conversation.observe(Observation("state now", frame_uri, "low"))
    return conversation


def images_in(value):
    return json.dumps(value).count("data:image/png;base64,")


def test_the_registry_names_each_api_and_finds_adapters_by_endpoint():
    assert adapters.names()[0] == "chat"
    assert adapters.get("chat") is chat.ADAPTER
    assert adapters.by_endpoint("/v1/chat/completions") is chat.ADAPTER
    assert adapters.by_endpoint("/v1/embeddings") is None
    assert adapters.by_endpoint("/v1/responses") is adapters.get("responses")
    with pytest.raises(KeyError, match="unknown API 'soap'; known: chat, responses"):
        adapters.get("soap")


def test_the_window_holds_the_current_turn_and_recent_answered_ones(frame_uri):
    conversation = history(frame_uri, steps=3)
    assert [t.observation.text for t in conversation.window()] == ["state now"]
    assert [t.observation.text for t in conversation.window(2)] == [
        "state 1",
        "state 2",
        "state now",
    ]
    bounded = Conversation("x", keep=2)
    for i in range(5):
        bounded.observe(Observation(str(i)))
    assert [t.observation.text for t in bounded.turns] == ["3", "4"]  # memory stays bounded


def test_chat_renders_earlier_turns_with_tool_messages_and_the_schema_accepts_it(frame_uri):
    adapter = chat.ADAPTER
    template = adapter.prepare(make_run(), profiles.resolve("gpt-4o-mini"), "Play.").template
    conversation = history(frame_uri, steps=3)
    body = adapter.body(template, conversation.window(2), keep_images=1)
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system"] + ["user", "assistant", "tool", "tool"] * 2 + ["user"]
    assert images_in(body) == 2  # the last earlier turn's frame and the current one
    first_user, assistant, tool = body["messages"][1:4]
    assert [p["type"] for p in first_user["content"]] == ["text"]
    ids = [c["id"] for c in assistant["tool_calls"]]
    assert ids == ["call_1", "call_1b"]
    assert [m["tool_call_id"] for m in body["messages"][3:5]] == ids
    assert tool["content"] == (
        "played move_left, do; reward +1; unlocked collect_wood; invalid: fly"
    )
    errors = list(jsonschema.Draft202012Validator(CHAT_SCHEMA).iter_errors(body))
    assert errors == []
    # without history the body is today's: instructions and the current observation
    assert [m["role"] for m in adapter.body(template, conversation.window())["messages"]] == [
        "system",
        "user",
    ]


def test_chat_parses_a_reply_with_usage_reasoning_and_finish():
    response = {
        "choices": [
            {
                "message": {
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "interact_many", "arguments": {"actions": []}},
                        },
                        "junk",
                    ],
                    "reasoning_content": "I should collect wood.",
                },
                "finish_reason": "length",
            }
        ],
        "usage": {
            "prompt_tokens": 120,
            "completion_tokens": 40,
            "completion_tokens_details": {"reasoning_tokens": 30},
            "prompt_tokens_details": {"cached_tokens": 64},
        },
    }
    reply = chat.ADAPTER.parse(response)
    assert reply.tool_calls == (
        ToolCall("c1", "interact_many", '{"actions": []}'),
        ToolCall("call_1", "", ""),
    )
    assert reply.usage == Usage(input=120, output=40, reasoning=30, cached=64)
    assert (reply.finish, reply.incomplete, reply.empty) == ("length", "max_output_tokens", False)
    assert reply.reasoning_summary == "I should collect wood."
    assert chat.ADAPTER.usage(response) == reply.usage
    kind, why = chat.ADAPTER.diagnose(reply, {"max_completion_tokens": 40}, None)
    assert (kind, why) == (
        "budget_exhausted",
        (
            "reasoning used 30 of max_completion_tokens=40; raise request.max_output_tokens "
            "or lower reasoning_effort"
        ),
    )
    empty = chat.ADAPTER.parse({"choices": []})
    assert empty.empty and chat.ADAPTER.diagnose(empty, {}, None) == (
        "empty_response",
        "empty response: no choices; check the server",
    )


def test_chat_redaction_describes_images_and_keeps_the_rest(frame_uri):
    body = {
        "messages": [
            {
                "role": "user",
                "content": [chat.user_message(Observation("t", frame_uri))["content"][1]],
            }
        ]
    }
    shown = chat.ADAPTER.redact(body, byte_count=False)
    url = shown["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith("<image/png 64x64, pixels sha256:") and images_in(shown) == 0
    assert images_in(body) == 1  # a copy: the body is untouched


# -- a third wire API: one module and a registration line ---------------------------------

ECHO_MODULE = """
from pytest_crafter_eval.wire.adapters.chat import Chat


class Echo(Chat):
    name = "echo"
    endpoint = "/echo/completions"

    def headers(self, api_key):
        return {"x-echo-version": "1", "x-echo-key": api_key or ""}


ADAPTER = Echo()
"""


class _EchoServer(BaseHTTPRequestHandler):
    """Chat completions at /v1/echo/completions, for the adapter above; logs headers."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, self.headers.get("x-echo-key"), body["model"]))
        call = {
            "id": "c1",
            "type": "function",
            "function": {"name": "interact_many", "arguments": '{"actions": ["do"]}'},
        }
        answer = {
            "id": "x",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2},
        }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_a_third_api_is_one_module_and_a_registration_line(tmp_path, monkeypatch):
    (tmp_path / "echo_adapter.py").write_text(ECHO_MODULE)
    monkeypatch.syspath_prepend(tmp_path)
    monkeypatch.setitem(adapters.REGISTRY, "echo", "echo_adapter")  # the registration line
    monkeypatch.setenv("ECHO_KEY", "k-echo")
    loaded = spec.load(tmp_path / "e.yaml", "models: [acme-vl]\nrequest: {api: echo}\n")
    run = replace(loaded.runs[0], steps=2)
    _EchoServer.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _EchoServer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        with (
            warnings.catch_warnings(),
            Connections(base_url=url, api_key_env="ECHO_KEY") as connections,
        ):
            warnings.simplefilter("ignore", profiles.CrafterEvalWarning)
            result = episode.run_episode(run, 0, connections.for_model(run.model), eval_name="t")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert (result.api, result.steps, result.tool_calls, result.error) == ("echo", 2, 2, None)
    assert _EchoServer.seen == [("/v1/echo/completions", "k-echo", "acme-vl")] * 2
