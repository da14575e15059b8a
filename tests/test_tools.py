"""tools and the chat adapter: parsing an assistant message into actions, counting what was wrong (pure)."""

import json

import pytest

from pytest_crafter_eval.adapters.chat import first_choice
from pytest_crafter_eval.adapters.chat import parse_message as parse_tool_calls
from pytest_crafter_eval.tools import MAX_ACTIONS


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
    assert parsed.too_many_actions == 1 and parsed.invalid_actions == 1 + 2
    assert parsed.actions == ["do"] + ["noop"] * MAX_ACTIONS


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
