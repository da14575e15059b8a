"""local/hermes and local/fumble: the real openai SDK against the loopback server."""

from __future__ import annotations

import json

import openai
import pytest

from pytest_crafter_eval.agent.env import ACTIONS
from pytest_crafter_eval.report import results
from pytest_crafter_eval.wire.answers import LINE, TAG, parse_text
from pytest_crafter_eval.wire.local.models import UNKNOWN_ACTIONS, UNKNOWN_TOOLS
from pytest_crafter_eval.wire.tools import TOOL, TOOL_NAME


def messages(i):
    """A different observation per i, so that each request draws its own answer."""
    return [
        {"role": "system", "content": "You play Crafter."},
        {"role": "user", "content": f"Step {i}. You see grass and a tree to your left."},
    ]


def create(sdk, model, i=0):
    return sdk.chat.completions.create(model=model, messages=messages(i), tools=[TOOL])


def native_calls(response):
    """(name, arguments text) of each tool call, as the SDK gives them."""
    return [(c.function.name, c.function.arguments) for c in response.choices[0].message.tool_calls]


def heuristic_actions(sdk, i=0):
    ((_name, arguments),) = native_calls(create(sdk, "local/heuristic", i))
    return json.loads(arguments)["actions"]


def test_hermes_writes_heuristics_call_as_text_without_tool_calls(sdk):
    for i in range(3):
        response = create(sdk, "local/hermes", i)
        choice = response.choices[0]
        assert choice.finish_reason == "stop" and choice.message.tool_calls is None
        content = choice.message.content
        assert content.startswith("<tool_call>\n{") and content.endswith("}\n</tool_call>")
        body = json.loads(content.removeprefix("<tool_call>").removesuffix("</tool_call>"))
        assert body["name"] == TOOL_NAME
        parsed = parse_text(content)
        assert parsed.form == TAG and parsed.actions == heuristic_actions(sdk, i)


def test_fumble_without_fumbles_plays_like_heuristic(sdk):
    for i in range(3):
        ((name, arguments),) = native_calls(create(sdk, "local/fumble?rate=0", i))
        assert name == TOOL_NAME and json.loads(arguments)["actions"] == heuristic_actions(sdk, i)


def test_fumble_fumbles_about_its_rate_reproducibly_and_every_way(sdk):
    answers = [native_calls(create(sdk, "local/fumble?rate=0.5", i)) for i in range(40)]
    assert answers == [native_calls(create(sdk, "local/fumble?rate=0.5", i)) for i in range(40)]
    fumbled = [
        calls for i, calls in enumerate(answers) if not _valid(calls, heuristic_actions(sdk, i))
    ]
    assert 8 <= len(fumbled) <= 32  # 40 draws at 0.5


@pytest.mark.parametrize("fumble", ["action", "partial", "tool", "json"])
def test_each_fumble(sdk, fumble):
    for i in range(4):
        ((name, arguments),) = native_calls(create(sdk, f"local/fumble?rate=1&fumble={fumble}", i))
        if fumble == "json":
            assert name == TOOL_NAME
            with pytest.raises(ValueError):
                json.loads(arguments)
            continue
        actions = json.loads(arguments)["actions"]
        if fumble == "tool":
            assert name in UNKNOWN_TOOLS and actions == heuristic_actions(sdk, i)
        elif fumble == "action":
            assert name == TOOL_NAME and set(actions) <= set(UNKNOWN_ACTIONS)
        else:
            unknown = [a for a in actions if a not in ACTIONS]
            assert len(unknown) == 1 and unknown[0] in UNKNOWN_ACTIONS
            assert len(actions) == len(heuristic_actions(sdk, i))


def test_fumble_rejects_a_rate_outside_zero_to_one(sdk):
    with pytest.raises(openai.BadRequestError, match="`rate` of model `local/fumble`"):
        create(sdk, "local/fumble?rate=2")


def _valid(calls, actions):
    ((name, arguments),) = calls
    try:
        return name == TOOL_NAME and json.loads(arguments)["actions"] == actions
    except ValueError:
        return False


@pytest.mark.parametrize("model", ["local/heuristic", "local/random", "local/fumble?rate=0"])
@pytest.mark.parametrize("offer", [{}, {"tools": [TOOL], "tool_choice": "none"}])
def test_without_tools_offered_models_answer_with_an_actions_line(sdk, model, offer):
    with_tools = native_calls(create(sdk, model))
    response = sdk.chat.completions.create(model=model, messages=messages(0), **offer)
    choice = response.choices[0]
    assert choice.message.tool_calls is None and choice.finish_reason == "stop"
    assert choice.message.content.startswith("ACTIONS: ")
    parsed = parse_text(choice.message.content)
    assert parsed.form == LINE and parsed.actions == json.loads(with_tools[0][1])["actions"]


def test_fumble_without_tools_names_unknown_actions_in_its_line(sdk):
    response = sdk.chat.completions.create(
        model="local/fumble?rate=1&fumble=action", messages=messages(0)
    )
    parsed = parse_text(response.choices[0].message.content)
    assert parsed.form == LINE and parsed.tool_calls == 1 and not parsed.ok
    assert parsed.invalid_actions >= 1


def test_a_tool_call_left_in_the_text_fails_as_tool_call_in_text_with_the_fix(pytester):
    """local/hermes with the default answer format: the eval fails and says why and how
    to fix it (a real pytest run over the loopback server)."""
    pytester.makefile(".yaml", **{"evals/hermes": "models: [local/hermes]\nseeds: 1\nsteps: 2\n"})
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-m", "not crafter_payload", "evals", "--report-dir", "out"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            (
                "*no tool call at step 0: finish_reason=stop, a tool call in the text "
                "(tool_call_in_text): '<tool_call> *'; the server did not parse it: for vLLM "
                "start it with --enable-auto-tool-choice --tool-call-parser hermes, or set "
                "answer.format: auto*"
            )
        ]
    )
    (record,) = results.read(pytester.path / "out" / results.RESULTS)
    assert record["no_tool_call_class"] == "tool_call_in_text" and record["steps"] == 1
