"""answers: tool calls and actions written as text, found and counted (pure)."""

import json

import pytest

from pytest_crafter_eval.wire import answers
from pytest_crafter_eval.wire.answers import (
    JSON,
    LINE,
    TAG,
    TextCall,
    actions_line,
    find_calls,
    parse_text,
)
from pytest_crafter_eval.wire.tools import MAX_ACTIONS


def hermes(arguments, name="interact_many", key="arguments"):
    return "<tool_call>\n" + json.dumps({"name": name, key: arguments}) + "\n</tool_call>"


def call(*actions):
    return TextCall("interact_many", json.dumps({"actions": list(actions)}))


# -- the forms, each with what users write -----------------------------------------------


@pytest.mark.parametrize(
    "text, form, actions",
    [
        # Hermes / Qwen, as vLLM without a tool parser returns it
        (hermes({"actions": ["move_left", "do"]}), TAG, ["move_left", "do"]),
        # prose around, a code fence inside the tag, no newlines
        (
            (
                'Let me get wood.\n<tool_call>```json\n{"name": "interact_many", '
                '"arguments": {"actions": ["do"]}}\n```</tool_call> Done.'
            ),
            TAG,
            ["do"],
        ),
        # arguments as a JSON string
        (hermes(json.dumps({"actions": ["noop"]})), TAG, ["noop"]),
        # several tags run in order
        (hermes({"actions": ["do"]}) + "\n" + hermes({"actions": ["sleep"]}), TAG, ["do", "sleep"]),
        # Llama 3: parameters, python tag, objects joined by ;
        (
            (
                '<|python_tag|>{"name": "interact_many", "parameters": {"actions": ["do"]}}; '
                '{"name": "interact_many", "parameters": {"actions": ["noop"]}}'
            ),
            JSON,
            ["do", "noop"],
        ),
        # a bare call in a code fence after prose
        (
            (
                'I face a tree.\n```json\n{"name": "interact_many", "arguments": '
                '"{\\"actions\\": [\\"do\\", \\"do\\"]}"}\n```'
            ),
            JSON,
            ["do", "do"],
        ),
        ('{"name": "interact_many", "actions": ["move_up"]}', JSON, ["move_up"]),
        ('{"actions": ["move_left", "do"], "reason": "a tree"}', JSON, ["move_left", "do"]),
        ('Plan: ["move_left", "do"]', JSON, ["move_left", "do"]),
        (
            (
                '[{"name": "interact_many", "arguments": {"actions": ["do"]}}, '
                '{"name": "interact_many", "arguments": {"actions": ["noop"]}}]'
            ),
            JSON,
            ["do", "noop"],
        ),
        (
            (
                '{"type": "function", "function": {"name": "interact_many", '
                '"arguments": "{\\"actions\\": [\\"do\\"]}"}}'
            ),
            JSON,
            ["do"],
        ),
        # the documented text format
        ("ACTIONS: move_left, do", LINE, ["move_left", "do"]),
        ("I see a tree to the left.\nACTIONS: move_left; do\n", LINE, ["move_left", "do"]),
        ("actions: move_left do", LINE, ["move_left", "do"]),
        ("**Actions:** Move Left, PLACE-TABLE.", LINE, ["move_left", "place_table"]),
        ("- **ACTIONS**: `do`, `noop`", LINE, ["do", "noop"]),
        ('ACTION: ["move_left", "do"]', LINE, ["move_left", "do"]),
        ("ACTIONS: noop\nthinking again...\n  ACTIONS: do", LINE, ["do"]),  # the last line
    ],
)
def test_each_form_yields_its_actions(text, form, actions):
    parsed = parse_text(text)
    assert parsed.form == form and parsed.actions == actions
    assert parsed.ok and parsed.malformed_json == parsed.unknown_tools == 0


def test_tags_win_over_an_actions_line_which_wins_over_json():
    both = 'ACTIONS: noop\n{"actions": ["sleep"]}\n' + hermes({"actions": ["do"]})
    assert find_calls(both).calls == [call("do")]
    assert find_calls('ACTIONS: noop\n{"actions": ["sleep"]}').calls == [call("noop")]


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        42,
        "I will move left to find a tree, then collect wood.",
        'The cow said {"moo": true} and [1, 2, 3] and {"name": "Steve"}.',
        "call interact_many with move_left",
        "My action: do it",  # "action:" not at the start of a line
        '{"inventory": ["wood", "sapling"]}',  # a nested list of strings is no call
        "<tool_call",  # a tag cut before its >
        "['move_left', 'do']",  # Python, not JSON
        "[]",
        "true",
        '"move_left"',
    ],
)
def test_text_without_a_call_finds_none(text):
    found = find_calls(text)
    assert not found and found.form is None
    parsed = parse_text(text)
    assert not parsed.ok and parsed.tool_calls == 0 and parsed.form is None


# -- what is wrong is counted and named -----------------------------------------------------


def test_unknown_tools_and_actions_are_counted_with_their_names():
    text = (
        hermes({"actions": ["jump", "do", "craft_sword"]})
        + hermes({"actions": ["noop"]}, name="move")
        + hermes({"actions": [3, None]})
    )
    found = find_calls(text)
    assert [c.name for c in found.calls] == ["interact_many", "move", "interact_many"]
    parsed = parse_text(text)
    assert parsed.actions == ["do"]
    assert (parsed.tool_calls, parsed.valid_calls, parsed.unknown_tools) == (3, 1, 1)
    assert parsed.invalid_actions == 4


@pytest.mark.parametrize(
    "text, malformed, actions",
    [
        ("<tool_call>\nnot json\n</tool_call>", 1, []),
        ('<tool_call>\n{"name": "interact_many", "arguments": {"actions": ["do"', 1, []),  # cut
        ("<tool_call></tool_call>", 1, []),
        ('<tool_call>{"thought": "hmm"}</tool_call>', 1, []),  # JSON but no call
        ('<tool_call>{"name": "interact_many", "arguments": "{oops"}</tool_call>', 1, []),
        # an unclosed tag runs to the next tag
        (
            '<tool_call>{"name": "interact_many", <tool_call>' + hermes({"actions": ["do"]})[11:],
            1,
            ["do"],
        ),
        ('{"name": "interact_many", "arguments": {"actions": ["do"', 1, []),  # bare, cut
        ('{"name": "interact_many", "arguments": {"actions": ["do"]}} {"name": oops', 1, ["do"]),
        ('{"name": "interact_many", "arguments": [1]}', 1, []),  # arguments not an object
    ],
)
def test_malformed_calls_are_counted_and_nothing_raises(text, malformed, actions):
    parsed, found = parse_text(text), find_calls(text)
    assert parsed.malformed_json == malformed and parsed.actions == actions
    assert parsed.tool_calls == found.malformed + len(found.calls)


def test_more_than_eight_actions_are_cut_to_eight():
    parsed = parse_text("ACTIONS: " + ", ".join(["noop"] * (MAX_ACTIONS + 3)))
    assert parsed.actions == ["noop"] * MAX_ACTIONS and parsed.too_many_actions == 1


# -- adversarial text --------------------------------------------------------------------


def test_braces_and_tags_inside_json_strings_do_not_confuse_it():
    text = (
        'Note {"note": "a } and a { and \\" and </tool_call>"} then '
        '{"name": "interact_many", "arguments": {"actions": ["do"], "why": "{[}]\\"}"}}'
    )
    assert parse_text(text).actions == ["do"]
    tagged = hermes({"actions": ["do"], "why": "<b>{}</b> ]]"})
    assert parse_text(tagged).actions == ["do"]


def test_deep_nesting_is_no_crash():
    deep = "[" * 100_000 + "]" * 100_000
    assert not parse_text(deep).ok
    nested_call = {"name": "interact_many", "arguments": {"actions": ["do"]}}
    for _ in range(30):
        nested_call = {"wrapper": nested_call}
    assert parse_text(json.dumps(nested_call)).actions == []  # deeper than looked for


@pytest.mark.parametrize(
    "noise",
    [
        "word " * 200_000,  # 1 MB of prose
        "{" * 300_000,  # unclosed braces
        '{"a" ' * 200_000,  # each brace a JSON start that fails at once
        '{"a": [' * 50_000,  # deep, never closed
        '{"name": ' * 100_000,  # call-shaped, never valid
        "[1," * 300_000,  # one long, unclosed list
    ],
)
def test_huge_text_is_no_crash_and_a_tag_after_it_is_found(noise):
    assert parse_text(noise + "\n" + hermes({"actions": ["do"]})).actions == ["do"]
    parse_text(noise + '{"actions": ["do"]}')  # bounded by the scan budget


def test_failed_json_parses_stop_when_their_budget_is_spent(monkeypatch):
    text = '{"a" ' * 100 + '{"actions": ["do"]}'
    assert parse_text(text).actions == ["do"]
    monkeypatch.setattr(answers, "SCAN_BUDGET", 1_000)  # 15 failed parses
    assert parse_text(text).tool_calls == 0
    assert parse_text('{"a" ' * 10 + '{"actions": ["do"]}').actions == ["do"]


def test_actions_line_writes_what_the_parser_reads():
    line = actions_line(["move_left", "do"])
    assert line == "ACTIONS: move_left, do"
    assert parse_text("Going left.\n" + line).actions == ["move_left", "do"]
