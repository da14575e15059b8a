"""tools and the chat adapter: parsing an assistant message into actions, counting what was wrong (pure)."""

import json

import pytest

from pytest_crafter_eval.wire import tools
from pytest_crafter_eval.wire.adapters.chat import first_choice
from pytest_crafter_eval.wire.adapters.chat import parse_message as parse_tool_calls
from pytest_crafter_eval.wire.conversation import Reply
from pytest_crafter_eval.wire.tools import MAX_ACTIONS, MAX_NAMES


def call(arguments, name="interact_many"):
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def test_several_calls_run_in_order_with_string_or_mapping_arguments():
    parsed = parse_tool_calls(
        {
            "tool_calls": [
                call(json.dumps({"actions": ["do", "noop"]})),
                call({"actions": ["move_left"]}),
            ]
        }
    )
    assert parsed.actions == ["do", "noop", "move_left"]
    assert (parsed.tool_calls, parsed.valid_calls, parsed.invalid_actions) == (2, 2, 0)


def test_each_kind_of_bad_call_is_counted_and_nothing_raises():
    parsed = parse_tool_calls(
        {
            "tool_calls": [
                call("{not json"),
                call({"actions": ["fly", "do"]}),
                call({"actions": ["do"]}, name="other"),
                call({"actions": ["noop"] * (MAX_ACTIONS + 2)}),
                "junk",
            ]
        }
    )
    assert parsed.malformed_json == 1 and parsed.unknown_tools == 2
    # the 2 actions cut at 8 are counted apart from invalid ones
    assert parsed.too_many_actions == 1 and parsed.invalid_actions == 1
    assert parsed.actions == ["do"] + ["noop"] * MAX_ACTIONS
    assert parsed.invalid_names == ["fly"] and "other" in parsed.unknown_tool_names


def test_wrong_names_are_kept_distinct_clipped_and_few():
    names = ["jump", "jump", 3, None, "x" * 100, "a", "b", "c"]
    parsed = parse_tool_calls(
        {"tool_calls": [call({"actions": names}), call({}, name="move"), call({}, name="move")]}
    )
    assert parsed.invalid_actions == len(names) and parsed.unknown_tools == 2
    assert parsed.invalid_names == ["jump", "3", "null", "x" * 37 + "...", "a"]
    assert len(parsed.invalid_names) == MAX_NAMES and parsed.unknown_tool_names == ["move"]


def reply(text=None, **kwargs):
    return Reply(text=text, finish="stop", **kwargs)


def diagnose(reply, parsed=None):
    return tools.diagnose(
        reply, parsed, finish="finish_reason=stop", budget="max_tokens=512", empty="no choices"
    )


HERMES = '<tool_call>\n{"name": "interact_many", "arguments": {"actions": ["do"]}}\n</tool_call>'


@pytest.mark.parametrize(
    "text, fix",
    [
        (HERMES, "--enable-auto-tool-choice --tool-call-parser hermes, or set answer.format: auto"),
        ('<tool_call>\n{"name": "interact_many", "argu', "--tool-call-parser hermes"),
        (
            'Sure! {"name": "interact_many", "parameters": {"actions": ["do"]}}',
            "the model's --tool-call-parser (llama3_json for Llama 3), or set answer.format: auto",
        ),
        ('["move_left", "do"]', "or set answer.format: auto"),
        ("I see a tree.\nACTIONS: move_left, do", "text answer format: set answer.format: text"),
    ],
)
def test_a_call_written_in_the_text_is_its_own_class_with_the_fix(text, fix):
    kind, why = diagnose(reply(text), parse_tool_calls({"content": text}))
    assert kind == tools.TOOL_CALL_IN_TEXT
    assert why.startswith("finish_reason=stop, a tool call in the text (tool_call_in_text): '")
    assert fix in why and why.endswith(("auto", "text"))


def test_plain_text_is_still_a_text_answer():
    kind, why = diagnose(reply("I will move left to find a tree."))
    assert kind == tools.TEXT_ANSWER and "set request.tool_choice: required" in why


def test_an_invalid_call_names_the_unknown_tools_and_actions():
    parsed = parse_tool_calls(
        {"tool_calls": [call({"actions": ["jump", "craft_sword"]}), call({}, name="craft")]}
    )
    kind, why = diagnose(reply(), parsed)
    assert kind == tools.INVALID_CALL
    assert why == (
        "2 tool call(s) but no valid action: 1 to an unknown tool ('craft'), "
        "2 invalid action name(s) ('jump', 'craft_sword')"
    )


@pytest.mark.parametrize("message", [None, "text", [], {"tool_calls": "x"}, {"content": "hi"}])
def test_messages_without_calls_give_no_actions(message):
    parsed = parse_tool_calls(message)
    assert not parsed.ok and parsed.tool_calls == 0


@pytest.mark.parametrize(
    "response, choice",
    [
        ({"choices": [{"finish_reason": "stop"}]}, {"finish_reason": "stop"}),
        ({"choices": []}, {}),
        ({"choices": ["x"]}, {}),
        ({}, {}),
    ],
)
def test_first_choice(response, choice):
    assert first_choice(response) == choice
