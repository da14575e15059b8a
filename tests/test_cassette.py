"""cassette and redact: keys, normalising, miss diffs and redaction, as pure functions; the
recorder and the replaying server through real SDK calls over loopback HTTP."""

import base64
import json

import openai
import pytest

from pytest_crafter_eval.wire import cassette, redact
from pytest_crafter_eval.wire.local import LocalServer


def png(payload: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(payload).decode()


def body(**changes):
    b = {
        "model": "gpt-4o-mini",
        "temperature": 0.6,
        "tool_choice": "auto",
        "messages": [
            {"role": "system", "content": "play"},
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "step: 1\ninventory: wood 1\nfacing: tree (up)\nnearby: water",
                    },
                    {"type": "image_url", "image_url": {"url": png(b"frame-1"), "detail": "low"}},
                ],
            },
        ],
    }
    b.update(changes)
    return b


def test_key_ignores_key_order_nulls_and_tracking_fields():
    a = body()
    b = dict(reversed(list(body(user="run-42", metadata={"job": "7"}, top_p=None).items())))
    assert cassette.key(cassette.normalise(a)) == cassette.key(cassette.normalise(b))


@pytest.mark.parametrize(
    "change", [{"temperature": 0.7}, {"model": "gpt-4o"}, {"seed": 1}, {"tool_choice": "required"}]
)
def test_key_changes_with_any_parameter(change):
    assert cassette.key(cassette.normalise(body(**change))) != cassette.key(
        cassette.normalise(body())
    )


def test_key_covers_the_image_bytes_but_the_entry_keeps_only_their_digest():
    other = body()
    other["messages"][1]["content"][1]["image_url"]["url"] = png(b"frame-2")
    assert cassette.key(cassette.normalise(other)) != cassette.key(cassette.normalise(body()))
    entry = cassette.make_entry(body(), 200, '{"choices": []}')
    text = json.dumps(entry)
    assert "base64" not in text and cassette.image_digest(png(b"frame-1")) in text
    assert entry["response"] == {"status": 200, "body": {"choices": []}}
    assert cassette.make_entry(body(), 200, "not json")["response"] == {
        "status": 200,
        "text": "not json",
    }


def test_miss_names_the_closest_request_and_each_difference():
    recorded = {
        "a.json": cassette.normalise(body()),
        "b.json": cassette.normalise(body(model="other", temperature=1.0)),
    }
    flat = {name: cassette.flatten(req) for name, req in recorded.items()}
    now = body(temperature=0.7)
    now["messages"][1]["content"][1]["image_url"]["url"] = png(b"frame-two")
    now["messages"][1]["content"][0]["text"] = (
        "step: 1\ninventory: wood 2\nfacing: tree (up)\nnearby: water"
    )
    message = cassette.miss_message("cas", cassette.normalise(now), recorded, flat)
    assert "\n" not in message and cassette.is_miss(message)
    assert "closest recorded request a.json differs at " in message
    assert "temperature: 0.6 recorded, 0.7 now" in message
    assert (
        "messages[1].content[0].text: text differs at char 24: ...'ntory: wood 1\\nfacing: "
        "tree (up)\\n' recorded, ...'ntory: wood 2\\nfacing: tree (up)\\n' now"
    ) in message
    assert (
        f"{cassette.image_digest(png(b'frame-1'))} recorded, "
        f"{cassette.image_digest(png(b'frame-two'))} now"
    ) in message
    assert "base64" not in message


def test_miss_reports_added_and_removed_parameters():
    recorded = {"a.json": cassette.normalise(body())}
    flat = {"a.json": cassette.flatten(recorded["a.json"])}
    now = body(seed=3)
    del now["temperature"]
    message = cassette.miss_message("cas", cassette.normalise(now), recorded, flat)
    assert "seed: absent in recording, 3 now" in message
    assert "temperature: 0.6 recorded, absent now" in message


def test_recorded_exchange_replays_through_the_sdk(tmp_path):
    request = {
        "model": "local/random",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [],
        "temperature": 0.5,
    }
    recorder = cassette.Recorder(tmp_path)
    with LocalServer() as server:
        http = openai.DefaultHttpxClient(event_hooks={"response": [recorder.hook]})
        with openai.OpenAI(base_url=server.base_url, api_key="local", http_client=http) as sdk:
            live = sdk.chat.completions.create(**request)
            with pytest.raises(openai.NotFoundError):
                sdk.chat.completions.create(**{**request, "model": "local/nope"})
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].startswith("local_nope-")
    with LocalServer(responder=cassette.Cassette(tmp_path).respond, log=True) as server:
        with openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=2) as sdk:
            replayed = sdk.chat.completions.create(**request)
            with pytest.raises(openai.NotFoundError, match="local/nope"):
                sdk.chat.completions.create(**{**request, "model": "local/nope"})
            with pytest.raises(openai.BadRequestError, match=r"temperature: 0.5 recorded, 0.9 now"):
                sdk.chat.completions.create(**{**request, "temperature": 0.9})
        assert [status for _, _, status in server.requests] == [200, 404, 400]  # no retries
    assert replayed.choices[0].message.tool_calls == live.choices[0].message.tool_calls


def test_a_broken_cassette_file_is_named(tmp_path):
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match=r"x.json: not a cassette entry"):
        cassette.Cassette(tmp_path)


@pytest.mark.parametrize(
    "raw, clean",
    [
        (
            "HTTP 401: Incorrect API key provided: sk-proj-abc********************wxyz.",
            "HTTP 401: Incorrect API key provided: sk-***.",
        ),
        (
            "POST https://alice:s3cret@proxy.example:8443/v1/chat",
            "POST https://***@proxy.example:8443/v1/chat",
        ),
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
        (
            "headers {'authorization': 'Basic dXNlcjpwYXNz'}",
            "headers {'authorization': 'Basic ***'}",
        ),
        ("task-force and skill-sets stay", "task-force and skill-sets stay"),
    ],
)
def test_redact_text(raw, clean):
    assert redact.text(raw) == clean


def test_redact_registered_secrets_and_url_passwords():
    redact.add_secret("TOKEN-not-an-sk-key-123")
    redact.add_url("https://bob:pa55word-xyz@host/v1")
    redact.add_secret("local")  # too short to redact safely
    out = redact.text("key TOKEN-not-an-sk-key-123, pass pa55word-xyz, model local/random")
    assert out == "key ***, pass ***, model local/random"
    assert redact.url("http://u:p@127.0.0.1:1/v1") == "http://***@127.0.0.1:1/v1"


def test_key_depends_on_pixels_not_on_png_compression():
    import io

    import numpy as np
    from PIL import Image

    frame = np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3)

    def encoded(level: int) -> str:
        out = io.BytesIO()
        Image.fromarray(frame).save(out, format="PNG", compress_level=level)
        return png(out.getvalue())

    fast, small = body(), body()
    fast["messages"][1]["content"][1]["image_url"]["url"] = encoded(0)
    small["messages"][1]["content"][1]["image_url"]["url"] = encoded(9)
    assert fast != small
    assert cassette.key(cassette.normalise(fast)) == cassette.key(cassette.normalise(small))
    assert "64x64" in cassette.image_digest(encoded(0))
