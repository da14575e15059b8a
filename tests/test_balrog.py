"""protocol: balrog (issue 21). The request bodies this project sends under BALROG's
protocol equal, message for message, the bodies BALROG's own agent code sent for the same
observations and answers: tests/data/balrog_reference.json, recorded by
scripts/balrog_reference.py from BALROG at the commit it names (3 seeds x 50 steps, text
and vision modes). No BALROG install is needed here."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path

import jsonschema
import numpy as np
import openai
import pytest

from pytest_crafter_eval.agent import balrog
from pytest_crafter_eval.agent.episode import run_episode
from pytest_crafter_eval.config import balrog as facts
from pytest_crafter_eval.config import spec
from pytest_crafter_eval.report import html, metrics, results, summary
from pytest_crafter_eval.wire.client import ModelClient, RetryPolicy
from pytest_crafter_eval.wire.local import LocalServer
from pytest_crafter_eval.wire.local.inprocess import Reply

DATA = Path(__file__).parent / "data"
REFERENCE = json.loads((DATA / "balrog_reference.json").read_text())
SCHEMA = jsonschema.Draft202012Validator(
    json.loads((DATA / "openai-CreateChatCompletionRequest.schema.json").read_text())
)
# PNG bytes depend on the zlib inside Pillow: compared when Pillow is the one recorded
SAME_PILLOW = version("pillow") == REFERENCE["provenance"]["pillow"]


def run_of(text: str) -> spec.Run:
    return spec.load("t.yaml", text=text).runs[0]


class Scripted:
    """A model that answers the reference's scripted completions in order."""

    def __init__(self, answers: list[str], offset: int):
        self.answers, self.offset, self.calls = answers, offset, 0

    def complete(self, body, adapter):
        text = self.answers[(self.calls + self.offset) % len(self.answers)]
        self.calls += 1
        message = {"role": "assistant", "content": text}
        usage = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
        return Reply({"choices": [{"message": message, "finish_reason": "stop"}], "usage": usage})


def expected(request: dict) -> dict:
    table = REFERENCE["messages"]
    return {**request, "messages": [table[i] for i in request["messages"]]}


def as_recorded(body: dict, frame: np.ndarray | None) -> dict:
    """`body` with its image as the reference stores images (digests of the PNG bytes
    and of the pixels); the pixels are the frame the request was built from."""
    messages = []
    for message in body["messages"]:
        parts = []
        for part in message["content"]:
            if part["type"] == "image_url":
                png = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
                assert frame is not None
                part = {
                    "type": "image_url",
                    "image": {
                        "png_sha256": hashlib.sha256(png).hexdigest(),
                        "rgb_sha256": hashlib.sha256(frame.tobytes()).hexdigest(),
                        "size": [frame.shape[1], frame.shape[0]],
                    },
                }
            parts.append(part)
        messages.append({**message, "content": parts})
    return {**body, "messages": messages}


def _drop_png(body: dict) -> dict:
    return json.loads(json.dumps(body).replace('"png_sha256"', '"_"'), object_hook=_no_png)


def _no_png(d: dict) -> dict:
    d.pop("_", None)
    return d


@pytest.mark.parametrize(
    "episode",
    REFERENCE["episodes"],
    ids=[f"seed{e['seed']}-{'vision' if e['vision'] else 'text'}" for e in REFERENCE["episodes"]],
)
def test_requests_equal_balrogs_own(episode):
    protocol = "{name: balrog, vision: true}" if episode["vision"] else "balrog"
    run = run_of(f"models: [gpt-4o]\nprotocol: {protocol}\nsteps: 50\n")
    events: list[dict] = []
    client = Scripted(REFERENCE["answers"], episode["answers_offset"])
    result = run_episode(run, episode["seed"], client, eval_name="t", on_step=events.append)
    wanted = episode["requests"]
    assert len(events) == len(wanted) == 50
    for step, (event, request) in enumerate(zip(events, wanted)):
        frame = event["frame"] if episode["vision"] else None
        mine, theirs = as_recorded(event["request"], frame), expected(request)
        if not SAME_PILLOW:
            mine, theirs = _drop_png(mine), _drop_png(theirs)
        assert mine == theirs, f"seed {episode['seed']} step {step}"
    for step in (0, 49):  # and each is a valid chat-completions request
        SCHEMA.validate(events[step]["request"])
    # BALROG's episode log: its progression and the answers it played Noop for
    assert balrog_progression(result.achievements) == pytest.approx(episode["progression"])
    assert result.noops == len(episode["failed_candidates"])
    assert sorted(result.achievements) == episode["achievements"]


def balrog_progression(achievements: dict) -> float:
    return sum(1 for n in achievements.values() if n) / len(facts.ACHIEVEMENT_TITLES)


def test_the_reference_covers_what_balrog_does_specially():
    """The recorded answers exercise every path: rewritten ("Do." plays Do), rejected with
    feedback, filtered to nothing (not remembered), and a window that starts with an
    answer and holds an observation without its text."""
    texts = [m["content"][0]["text"] for m in REFERENCE["messages"]]
    assert any("Defaulted to action: Noop" in t for t in texts)
    assert "Observation:" in texts  # an observation beyond the 16 with text
    assert {"", " Move East", "move west"} <= set(REFERENCE["episodes"][0]["failed_candidates"])
    windows = [expected(r)["messages"] for e in REFERENCE["episodes"] for r in e["requests"]]
    # the oldest observation fell out of the window: an answer comes right after the prompt
    assert any(messages[1]["role"] == "assistant" for messages in windows)
    assert REFERENCE["provenance"]["balrog_commit"] == facts.COMMIT


def test_read_answer_filters_as_balrog():
    assert balrog.read_answer("Do.") == ("Do", "do")
    assert balrog.read_answer("  Move North\n") == ("Move North", "move_up")
    assert balrog.read_answer("42") == ("", None)
    assert balrog.read_answer("1. Move East") == (" Move East", None)
    assert balrog.read_answer(None) == ("", None)
    assert balrog.read_answer("move west") == ("move west", None)


def _state(**changes) -> balrog.State:
    semantic = np.full((64, 64), 2, dtype=np.uint8)  # grass
    names = ("None", "water", "grass", "stone", "path", "sand", "tree", "lava", "coal",
             "iron", "diamond", "table", "furnace", "player", "cow", "zombie", "skeleton",
             "arrow", "plant")  # fmt: skip
    x, y = changes.pop("position", (32, 32))
    semantic[x, y] = 13
    for (dx, dy), thing in changes.pop("things", {}).items():
        semantic[x + dx, y + dy] = names.index(thing)
    inventory = dict.fromkeys(facts.VITALS, 9) | {"wood": 2, "sapling": 0}
    return balrog.State(
        **{
            "semantic": semantic,
            "names": names,
            "position": (x, y),
            "facing": (0, 1),
            "view": (9, 9),
            "inventory": inventory,
            "sleeping": False,
            "health": 9,
            **changes,
        }
    )


def test_observation_text_cases_the_reference_does_not_reach():
    long, short = balrog.describe(_state(things={(-2, -1): "tree", (3, 3): "cow", (0, 1): "water"}))
    assert long == (
        "You see:\n- grass 1 step to your west\n- tree 3 steps to your north-west\n"
        "- water 1 step to your south\n- cow 6 steps to your south-east\n\n"
        "You face water at your front."
    )
    assert short == (
        "Your status:\n- health: 9/9\n- food: 9/9\n- drink: 9/9\n- energy: 9/9\n\n"
        "Your inventory:\n- wood: 2"
    )
    # BALROG joins the status line (ending in two newlines) with two more
    assert balrog.describe(_state(sleeping=True))[0].startswith(
        "You are sleeping, and will not be able take actions until energy is full.\n\n\n\nYou see:"
    )
    assert balrog.describe(_state(health=0))[0].startswith("You died.\n\n\n\nYou see:")
    # near the map's west edge BALROG's slice starts below 0 and comes out empty
    edge = balrog.describe(_state(position=(2, 32)))[0]
    assert edge == "You see nothing away from you.\n\nYou face nothing at your front."
    # a player tile without the player is BALROG's "out of the map"
    missing = _state()
    missing.semantic[32, 32] = 2
    assert balrog.describe(missing)[0] == facts.OUT_OF_MAP


def test_eval_file_protocol_key():
    run = run_of("models: [local/heuristic]\nprotocol: balrog\n")
    assert (run.protocol.label, run.steps) == ("balrog", 2000)
    assert run.history == spec.History(16, 0, "window")
    assert facts.settings(run) == ({"max_tokens": 8192, "temperature": 1.0}, ())
    vision = run_of("models: [{local/heuristic: {protocol: {vision: true}}}]\nprotocol: balrog\n")
    assert (vision.protocol.label, vision.history.images) == ("balrog-vision", 1)
    changed = run_of(
        "models: [local/heuristic]\nprotocol: balrog\nsteps: 100\n"
        "request: {temperature: 0.2, max_output_tokens: 300}\n"
    )
    assert facts.settings(changed) == (
        {"max_tokens": 300, "temperature": 0.2},
        ("steps 100 (BALROG: 2000)", "max_tokens 300 (BALROG: 8192)",
         "temperature 0.2 (BALROG: 1.0)"),
    )  # fmt: skip
    assert run_of("models: [local/heuristic]\n").protocol == spec.Protocol()
    # --resume and compare tell a BALROG episode from this project's own
    default = replace(run, protocol=spec.Protocol())
    assert results.fingerprint(run, "e", None) != results.fingerprint(default, "e", None)
    assert results.settings(run, None)["protocol"] == {"name": "balrog", "vision": False}
    assert "protocol" not in results.settings(default, None)


@pytest.mark.parametrize(
    "text, where",
    [
        ("protocol: nope", "t.yaml:1: protocol: unknown protocol 'nope'"),
        ("protocol: {name: default, vision: true}", "t.yaml:1: protocol.vision: only"),
        ("protocol: balrog\nhistory: {steps: 3}", "t.yaml:2: history: not used with protocol"),
        ("protocol: balrog\nrequest: {tool_choice: required}", "t.yaml:2: request.tool_choice"),
        ("protocol: balrog\ninstructions: hi", "t.yaml:2: instructions: not used with protocol"),
    ],
)
def test_eval_file_protocol_errors(text, where):
    with pytest.raises(spec.SpecError) as error:
        spec.load("t.yaml", text=f"{text}\nmodels: [local/heuristic]\n")
    assert str(error.value).startswith(where)


def test_standard_error_is_balrogs():
    # BALROG: population standard deviation / sqrt(n), in percent; 0 for one episode
    values = [0.0, 1 / 22, 3 / 22, 2 / 22]
    mean = sum(values) / 4
    sd = (sum((v - mean) ** 2 for v in values) / 4) ** 0.5
    assert metrics.balrog_standard_error([100 * v for v in values]) == pytest.approx(100 * sd / 2)
    assert metrics.balrog_standard_error([50.0]) == 0.0


def test_heuristic_plays_full_episodes_offline_and_reports_show_balrogs_numbers():
    """local/heuristic answers BALROG's text format over the real SDK and loopback server
    until the episode ends (death, well before 2,000 steps); every report shows the
    progression with BALROG's standard error and the settings changed from BALROG's."""
    run = run_of("models: [local/heuristic]\nprotocol: balrog\nrequest: {temperature: 0.2}\n")
    policy = RetryPolicy(max_retries=1, deadline_s=10, backoff_s=0.01, max_backoff_s=0.02)
    with (
        LocalServer() as server,
        openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0) as sdk,
    ):
        client = ModelClient(sdk, policy=policy)
        played = [run_episode(run, seed, client, eval_name="b") for seed in (1, 5)]
    for result in played:
        assert (result.end, result.protocol, result.error) == ("done", "balrog", None)
        assert 0 < result.steps < 2000 and result.tool_calls == result.steps
        assert result.env_steps == result.steps + 1  # BALROG's noop before the first step
    records = [
        results.make_record(r, outcome="passed", message=None, nodeid=f"b::{r.seed}",
                            path="b.yaml", fingerprint="f")
        for r in played
    ]  # fmt: skip
    done = summary.summarize(records, {("b", run.model): run})
    item = done["evals"]["b"]["models"]["local/heuristic"]
    percents = metrics.progression_percents([r.achievements for r in played])
    assert item["metrics"]["progression_se"] == metrics.balrog_standard_error(percents) > 0
    assert item["protocol_changes"] == ["temperature 0.2 (BALROG: 1.0)"]
    line = (
        f"local/heuristic (balrog): progression {sum(percents) / 2:.2f}% ± "
        f"{metrics.balrog_standard_error(percents):.2f}% (BALROG's standard error, 2 episodes"
    )
    assert any(line in x for x in summary.terminal_lines(done))
    assert line in summary.markdown(done)
    assert f"BALROG: {line}".replace("'", "&#x27;") in html.render_html(records, done)
