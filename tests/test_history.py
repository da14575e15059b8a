"""History and answers (issue 9): eval-file keys, the episode's memory of earlier steps,
tool calls written as text, and the policy for invalid answers. Episodes run through the
real SDK and loopback server; every request body is checked against the official schema."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import openai
import pytest

from pytest_crafter_eval import cli
from pytest_crafter_eval.agent.episode import check, run_episode
from pytest_crafter_eval.config import spec
from pytest_crafter_eval.data import trace
from pytest_crafter_eval.report import results
from pytest_crafter_eval.wire.client import ModelClient, RetryPolicy
from pytest_crafter_eval.wire.local import LocalServer

DATA = Path(__file__).parent / "data"
SCHEMA = jsonschema.Draft202012Validator(
    json.loads((DATA / "openai-CreateChatCompletionRequest.schema.json").read_text())
)
POLICY = RetryPolicy(max_retries=1, deadline_s=10, backoff_s=0.01, max_backoff_s=0.02)
BASE = spec.Run(
    model="local/heuristic",
    steps=8,
    observation=spec.Observation(),
    request=spec.Request(),
    expect=spec.Expect(min_tool_call_rate=1.0),
)


@pytest.fixture(scope="module")
def client():
    with (
        LocalServer() as server,
        openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0) as sdk,
    ):
        yield ModelClient(sdk, policy=POLICY)


def play(client, model="local/heuristic", steps=8, history=(0, 0), layout="window", **answer):
    run = replace(
        BASE,
        model=model,
        steps=steps,
        history=spec.History(*history, layout=layout),
        answer=spec.Answer(**answer),
    )
    events = []
    result = run_episode(run, 0, client, eval_name="h", on_step=events.append)
    for event in events:  # every request of the episode, as sent
        assert list(SCHEMA.iter_errors(event["request"])) == [], event["step"]
    return run, result, events


def images(body):
    return json.dumps(body).count("data:image/png;base64,")


# -- eval-file keys ---------------------------------------------------------------------


def load(tmp_path, text):
    path = tmp_path / "evals" / "h.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return spec.load(path)


def test_history_and_answer_default_to_todays_protocol_and_override_per_model(tmp_path):
    loaded = load(
        tmp_path,
        "models:\n  - local/random\n  - local/hermes: {answer: {format: auto}, "
        "history: {steps: 2}}\nhistory: {steps: 8, images: 1}\n"
        "answer: {on_invalid: retry, retries: 3, feedback: false}\n",
    )
    first, hermes = loaded.runs
    assert first.history == spec.History(8, 1)
    assert first.answer == spec.Answer("tool", "retry", 3, False)
    assert hermes.history == spec.History(2, 1) and hermes.answer.format == "auto"
    assert hermes.answer.on_invalid == "retry"  # the rest from the file
    plain = load(tmp_path, "models: [local/random]\n").runs[0]
    assert plain.history == spec.History(0, 0) and plain.answer == spec.Answer("tool", "end")


@pytest.mark.parametrize(
    "text, message",
    [
        ("answer: {format: json}", "h.yaml:2: answer.format: must be one of tool, text, auto"),
        ("answer: {on_invalid: skip}", "h.yaml:2: answer.on_invalid: must be one of end, noop"),
        ("answer: {retries: 0}", "h.yaml:2: answer.retries: must be from 1 to 10, got 0"),
        ("answer: {feedbak: true}", "h.yaml:2: answer.feedbak: unknown key (did you mean"),
        ("history: {steps: -1}", "h.yaml:2: history.steps: must be from 0 to 100, got -1"),
        ("history: {steps: 2, images: 3}", "h.yaml:2: history.images: images (3) cannot exceed"),
        ("history: 8", "h.yaml:2: history: must be a mapping, got a number"),
    ],
)
def test_bad_history_and_answer_keys_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(spec.SpecError) as error:
        load(tmp_path, f"models: [local/random]\n{text}\n")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_fingerprint_changes_with_history_and_answer_and_not_at_their_defaults():
    class Old:  # a run as records were fingerprinted before these keys existed
        model, steps = BASE.model, BASE.steps
        observation, request, profiles = BASE.observation, BASE.request, ()

    before = results.fingerprint(Old(), "e", None)
    assert results.fingerprint(BASE, "e", None) == before
    changed = {
        results.fingerprint(replace(BASE, history=spec.History(4, 1)), "e", None),
        results.fingerprint(replace(BASE, answer=spec.Answer(on_invalid="noop")), "e", None),
        results.fingerprint(replace(BASE, answer=spec.Answer(format="auto")), "e", None),
    }
    assert len(changed) == 3 and before not in changed


# -- history ----------------------------------------------------------------------------


def test_each_request_holds_the_last_steps_and_grows_with_history_not_with_the_episode(client):
    _, result, events = play(client, steps=10, history=(3, 1))
    assert result.steps == 10 and result.tool_calls == 10
    for event in events:
        messages = event["request"]["messages"]
        earlier = min(event["step"], 3)
        assert [m["role"] for m in messages] == (
            ["system"] + ["user", "assistant", "tool"] * earlier + ["user"]
        )
        assert images(event["request"]) == min(event["step"], 1) + 1  # images + 1 at most
    # bounded: the requests of steps 5 and 9 hold the same number of messages
    assert len(events[5]["request"]["messages"]) == len(events[9]["request"]["messages"])
    tool = events[9]["request"]["messages"][-2]
    assert tool["role"] == "tool" and tool["content"].startswith("played ")


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-5-nano"])
def test_payload_step_prints_the_history_of_earlier_steps(capsys, tmp_path, model):
    path = tmp_path / "h.yaml"
    path.write_text(f"models: [{model}]\nhistory: {{steps: 4, images: 2, layout: window}}\n")
    assert cli.main(["payload", "--model", model, "--eval", str(path), "--step", "6"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert list(SCHEMA.iter_errors(body)) == []
    messages = body["messages"]
    assistants = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    assert len(assistants) == 4
    for i in assistants:
        ids = [call["id"] for call in messages[i]["tool_calls"]]
        following = messages[i + 1 : i + 1 + len(ids)]
        assert [(m["role"], m["tool_call_id"]) for m in following] == [("tool", x) for x in ids]
    assert images(body) == 3
    assert "turn: 7 of 7" in messages[-1]["content"][0]["text"]  # the current observation last
    # the same body again (answers are deterministic), and another answering model differs
    assert cli.main(["payload", "--model", model, "--eval", str(path), "--step", "6"]) == 0
    assert json.loads(capsys.readouterr().out) == body
    argv = ["payload", "--model", model, "--eval", str(path), "--step", "6"]
    assert cli.main([*argv, "--answer-with", "local/random"]) == 0
    assert json.loads(capsys.readouterr().out) != body


def test_payload_step_errors_are_one_line(capsys, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("models: [local/silent]\n")
    argv = ["payload", "--model", "gpt-4o-mini", "--step", "2"]
    assert cli.main([*argv, "--answer-with", "gpt-4o"]) == 4
    assert cli.main([*argv, "--answer-with", "local/silent"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "not a local model" in err[0]
    assert "ended at step 0 (no_tool_call" in err[1] and "before step 2" in err[1]


# -- answers written as text --------------------------------------------------------------


def test_with_format_auto_a_model_writing_hermes_text_plays_full_episodes(client):
    run, result, events = play(client, "local/hermes", steps=6, history=(2, 1), format="auto")
    assert result.end == "steps" and result.steps == 6
    assert result.tool_calls == result.text_tool_calls == 6 and check(result, run.expect) == []
    assert all(e["request"]["tools"] for e in events)  # auto still offers the tool
    # its text answer is in the history: the assistant message as written, no tool message
    roles = [m["role"] for m in events[-1]["request"]["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "<tool_call>" in events[-1]["request"]["messages"][2]["content"]


def test_format_text_sends_no_tools_documents_the_line_and_reads_it(client):
    _, result, events = play(client, steps=4, history=(1, 0), format="text")
    assert result.end == "steps" and result.tool_calls == result.text_tool_calls == 4
    body = events[0]["request"]
    assert "tools" not in body and "tool_choice" not in body
    assert "ACTIONS: move_left, move_left, do" in body["messages"][0]["content"]
    assert events[1]["response"]["choices"][0]["message"]["content"].startswith("ACTIONS: ")


# -- invalid answers ---------------------------------------------------------------------------


def test_on_invalid_noop_plays_to_the_step_limit_and_names_the_unknown_actions(client):
    model = "local/fumble?rate=0.5&fumble=action"
    run, result, events = play(client, model, steps=12, history=(2, 1), on_invalid="noop")
    assert result.end == "steps" and result.steps == 12 and result.error is None
    invalid = result.invalid_answers["invalid_tool_call"]
    assert invalid == result.noops == 12 - result.tool_calls > 0
    assert result.invalid_names and set(result.invalid_names) <= {
        "jump",
        "craft_sword",
        "attack",
        "move_forward",
        "mine",
    }
    noop_steps = [e for e in events if e["no_tool_call"]]
    assert all(e["actions"] == ["noop"] for e in noop_steps)
    # feedback: the next request's tool message says what was wrong
    later = events[noop_steps[0]["step"] + 1]["request"]["messages"]
    tool = [m for m in later if m["role"] == "tool"][-1]
    assert "played noop" in tool["content"] and "error: unknown action(s) '" in tool["content"]
    # the record and the failure message name them (min_tool_call_rate judges valid steps)
    message = check(result, run.expect)[0]
    assert f"tool-call rate {result.tool_call_rate:.2f} is below" in message
    assert f"{invalid} invalid_tool_call" in message and repr(result.invalid_names[0]) in message
    record = result.to_dict()
    assert record["invalid_names"] == result.invalid_names and record["noops"] == invalid


def test_feedback_without_history_goes_in_the_next_user_text_and_can_be_off(client):
    model = "local/fumble?rate=0.5&fumble=action"
    _, _, events = play(client, model, steps=8, on_invalid="noop")
    step = next(e["step"] for e in events if e["no_tool_call"])
    text = events[step + 1]["request"]["messages"][-1]["content"][0]["text"]
    assert text.startswith("Your last answer was invalid: unknown action(s) '")
    assert f"\n\nturn: {step + 2} of 8\n" in text  # the observation follows
    _, quiet, events = play(client, model, steps=8, on_invalid="noop", feedback=False)
    assert quiet.noops > 0  # invalid answers still play noop, unannounced (the model's
    # draws follow the last user text, which the feedback changes: not the same count)
    assert all("invalid" not in json.dumps(e["request"]["messages"]) for e in events)


def test_on_invalid_retry_asks_the_same_step_again_with_the_reason(client):
    model = "local/fumble?rate=0.5&fumble=tool"
    _, result, events = play(client, model, steps=8, on_invalid="retry", retries=2)
    assert result.reasks > 0 and result.steps == 8
    again = next(e for e in events if e["attempt"] == 1)
    first = next(e for e in events if e["step"] == again["step"] and e["attempt"] == 0)
    text = again["request"]["messages"][-1]["content"][0]["text"]
    assert text.startswith("Your answer was invalid: unknown tool '")
    assert "Call interact_many again" in text and images(again["request"]) == 1
    assert first["no_tool_call"]["class"] == "invalid_tool_call"
    # every answer without a valid action is counted, the re-asked ones too
    assert sum(result.invalid_answers.values()) == result.reasks + result.noops


def test_the_trace_holds_the_messages_sent_history_included(client, tmp_path):
    run = replace(BASE, steps=4, history=spec.History(2, 1, "window"))
    with trace.TraceWriter(tmp_path) as writer:
        run_episode(run, 0, client, eval_name="h", on_step=writer)
    lines = [json.loads(x) for x in (tmp_path / "steps.jsonl").read_text().splitlines()]
    last = lines[-1]
    assert last["frame"] == "frames/0003.png"
    earlier = [p for m in last["messages"][:-2] for p in trace.image_files(m)]
    assert earlier == ["frames/0002.png"]  # a frame sent again refers to its own step's file
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [
        f"{i:04d}.png" for i in range(4)
    ]
    example = trace.sft_example(last, tmp_path)
    sent = [m["role"] for m in example["messages"]]
    assert sent == ["system", "user", "assistant", "tool", "user", "assistant", "tool", "user"] + [
        "assistant"
    ]


def test_an_exported_example_is_the_request_as_sent_plus_the_answer(client, tmp_path):
    run = replace(BASE, steps=3, history=spec.History(2, 1), answer=spec.Answer(format="text"))
    where = tmp_path / "t" / trace.episode_path("h", run.model, 0)
    events = []
    with trace.TraceWriter(where) as writer:
        run_episode(run, 0, client, eval_name="h", on_step=trace.chain(writer, events.append))
    assert (
        cli.main(["export", str(tmp_path / "t"), "--out", str(tmp_path / "d"), "--val", "0"]) == 0
    )
    lines = [json.loads(x) for x in (tmp_path / "d" / "train.jsonl").read_text().splitlines()]
    assert len(lines) == 3  # text answers (ACTIONS lines) are examples too
    for line, event in zip(lines, events):
        sent = event["request"]["messages"]
        assert [m["role"] for m in line["messages"]] == [m["role"] for m in sent] + ["assistant"]
        (call,) = line["messages"][-1]["tool_calls"]  # the native call the text was parsed to
        assert json.loads(call["function"]["arguments"])["actions"] == event["actions"]
        assert texts(line["messages"][:-1]) == texts(sent)
    out = str(tmp_path / "as-written")
    assert (
        cli.main(
            ["export", str(tmp_path / "t"), "--out", out, "--val", "0", "--calls", "as-written"]
        )
        == 0
    )
    lines = [
        json.loads(x) for x in (tmp_path / "as-written" / "train.jsonl").read_text().splitlines()
    ]
    assert all(line["messages"][-1]["content"].startswith("ACTIONS: ") for line in lines)


def texts(messages):
    """The text of each message, image parts left out."""
    return [
        [p["text"] for p in m["content"] if p["type"] == "text"]
        if isinstance(m["content"], list)
        else m["content"]
        for m in messages
    ]


FUMBLE_EVAL = """\
models:
  - local/fumble?rate=0.5&fumble=action
seeds: 1
steps: 10
history: {steps: 2, images: 1}
answer: {on_invalid: noop}
expect: {tool_call_at_first_step: false, min_tool_call_rate: 1.0}
"""


@pytest.mark.slow
def test_the_plugin_records_invalid_answers_and_resume_replays_other_settings(pytester):
    pytester.makefile(".yaml", **{"evals/fumble": FUMBLE_EVAL})
    args = ("-p", "no:cacheprovider", "-m", "not crafter_payload", "evals", "--report-dir", "out")
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(failed=1)
    (record,) = results.read(pytester.path / "out" / results.RESULTS)
    assert record["steps"] == 10 and record["end"] == "steps"
    # it did not end early: no no_tool_call, but the first invalid answer is kept
    assert record["no_tool_call"] is None and record["no_tool_call_class"] is None
    assert record["first_invalid"]["class"] == "invalid_tool_call"
    assert record["invalid_answers"] == {"invalid_tool_call": record["noops"]}
    assert record["noops"] == 10 - record["tool_calls"] > 0
    names = record["invalid_names"]
    assert names and f"invalid answers: {record['noops']} invalid_tool_call" in record["message"]
    assert repr(names[0]) in record["message"]
    result.stdout.fnmatch_lines([f"*invalid answers: * (unknown: {names[0]!r}*"])
    # --resume reuses the record; with other answer settings it plays the episode again
    result = pytester.runpytest_subprocess(*args, "--resume")
    assert len(list(results.read(pytester.path / "out" / results.RESULTS))) == 1
    pytester.makefile(
        ".yaml", **{"evals/fumble": FUMBLE_EVAL.replace("on_invalid: noop", "on_invalid: retry")}
    )
    result = pytester.runpytest_subprocess(*args, "--resume")
    *_, last = results.read(pytester.path / "out" / results.RESULTS)
    assert last["reasks"] > 0 and not last["resumed"]
