"""answers: tool calls and actions written as text, found and counted (pure)."""

import json

import pytest

from pytest_crafter_eval.wire import answers
from pytest_crafter_eval.wire.answers import (
    JSON,
    LINE,
    REACT,
    TAG,
    TextCall,
    actions_line,
    find_calls,
    parse_calls,
    parse_text,
)
from pytest_crafter_eval.wire.conversation import Reply, ToolCall
from pytest_crafter_eval.wire.tools import INVALID_CALL, MAX_ACTIONS, diagnose


def hermes(arguments, name="interact_many", key="arguments"):
    return "<tool_call>\n" + json.dumps({"name": name, key: arguments}) + "\n</tool_call>"


def call(*actions):
    return TextCall("interact_many", json.dumps({"actions": list(actions)}))


# -- real answer shapes, one table ---------------------------------------------------------
#
# Each row: an answer as models write it, where the shape comes from, and what it yields
# (form, actions, malformed pieces). Sources: vLLM's tool parsers (hermes: Qwen2.5/Qwen3
# and Hermes; llama3_json: Llama 3.1-3.2; mistral), ReAct agents (LangChain's
# `Action:` / `Action Input:`), chat models answering in markdown without tools (GPT,
# Gemini, Claude: fenced JSON, `**Action:**` headings), reasoning models (`<think>`),
# and the documented `ACTIONS:` line.

SHAPES = [
    # (id, text, form, actions, malformed)
    # -- Hermes tags: Qwen / Hermes served without --tool-call-parser
    ("hermes", hermes({"actions": ["move_left", "do"]}), TAG, ["move_left", "do"], 0),
    ("hermes-after-prose", "A tree is left.\n\n" + hermes({"actions": ["do"]}), TAG, ["do"], 0),
    (
        "hermes-parallel",
        hermes({"actions": ["do"]}) + "\n" + hermes({"actions": ["sleep"]}),
        TAG,
        ["do", "sleep"],
        0,
    ),
    (
        "hermes-draft-then-final",
        hermes({"actions": ["noop"]}) + "\nNo, left first.\n" + hermes({"actions": ["move_left"]}),
        TAG,
        ["move_left"],
        0,
    ),
    (
        "hermes-fenced-body",
        '<tool_call>\n```json\n{"name": "interact_many", "arguments": {"actions": ["do"]}}\n```\n</tool_call>',
        TAG,
        ["do"],
        0,
    ),
    ("hermes-arguments-string", hermes(json.dumps({"actions": ["noop"]})), TAG, ["noop"], 0),
    (
        "hermes-unclosed",
        '<tool_call>\n{"name": "interact_many", "arguments": {"actions": ["do"]}}',
        TAG,
        ["do"],
        0,
    ),
    (
        "hermes-cut",
        '<tool_call>\n{"name": "interact_many", "arguments": {"actions": ["do"',
        TAG,
        [],
        1,
    ),
    ("hermes-empty-tag", "<tool_call></tool_call>", TAG, [], 1),
    ("hermes-unknown-tool", hermes({"actions": ["do"]}, name="move"), TAG, [], 0),
    (
        "qwen3-think-then-tag",
        '<think>\nnoop? {"actions": ["noop"]}\n</think>\n\n' + hermes({"actions": ["do"]}),
        TAG,
        ["do"],
        0,
    ),
    (
        "qwen3-tag-inside-think",
        "<think>I could " + hermes({"actions": ["noop"]}) + "</think>\nACTIONS: do",
        LINE,
        ["do"],
        0,
    ),
    ("think-closed-only", 'wood first</think>{"actions": ["do"]}', JSON, ["do"], 0),
    # -- Llama 3.x JSON (vLLM llama3_json)
    (
        "llama-parameters",
        '{"name": "interact_many", "parameters": {"actions": ["move_up", "do"]}}',
        JSON,
        ["move_up", "do"],
        0,
    ),
    (
        "llama-python-tag",
        '<|python_tag|>{"name": "interact_many", "parameters": {"actions": ["do"]}}',
        JSON,
        ["do"],
        0,
    ),
    (
        "llama-semicolons",
        '{"name": "interact_many", "parameters": {"actions": ["do"]}}; {"name": "interact_many", "parameters": {"actions": ["noop"]}}',
        JSON,
        ["do", "noop"],
        0,
    ),
    (
        "llama-parameters-string",
        '{"name": "interact_many", "parameters": "{\\"actions\\": [\\"do\\"]}"}',
        JSON,
        ["do"],
        0,
    ),
    # -- Mistral and OpenAI-shaped JSON
    (
        "mistral-tool-calls",
        '[TOOL_CALLS][{"name": "interact_many", "arguments": {"actions": ["place_table"]}}]',
        JSON,
        ["place_table"],
        0,
    ),
    (
        "openai-function-object",
        '{"type": "function", "function": {"name": "interact_many", "arguments": "{\\"actions\\": [\\"do\\"]}"}}',
        JSON,
        ["do"],
        0,
    ),
    (
        "list-of-calls",
        '[{"name": "interact_many", "arguments": {"actions": ["do"]}}, {"name": "interact_many", "arguments": {"actions": ["noop"]}}]',
        JSON,
        ["do", "noop"],
        0,
    ),
    # -- chat models answering in markdown / prose
    (
        "fenced-arguments",
        'A tree to my left.\n```json\n{"actions": ["move_left", "do"]}\n```',
        JSON,
        ["move_left", "do"],
        0,
    ),
    (
        "fenced-call",
        '```json\n{"name": "interact_many", "arguments": {"actions": ["do", "do"]}}\n```',
        JSON,
        ["do", "do"],
        0,
    ),
    (
        "arguments-with-reason",
        '{"actions": ["move_left", "do"], "reason": "a tree"}',
        JSON,
        ["move_left", "do"],
        0,
    ),
    (
        "name-without-arguments",
        '{"name": "interact_many", "actions": ["move_up"]}',
        JSON,
        ["move_up"],
        0,
    ),
    (
        "draft-in-prose",
        'I could do {"actions": ["noop"]} but better is {"actions": ["move_left", "do"]}',
        JSON,
        ["move_left", "do"],
        0,
    ),
    (
        "two-fenced-blocks",
        'Option A:\n```json\n{"actions": ["noop"]}\n```\nOn reflection:\n```json\n{"actions": ["do"]}\n```',
        JSON,
        ["do"],
        0,
    ),
    ("list-of-actions", 'Plan: ["move_left", "do"]', JSON, ["move_left", "do"], 0),
    ("list-with-a-wrong-action", '["move_left", "jump"]', JSON, ["move_left"], 0),
    ("prose-list-then-call", 'I can see ["tree", "water"].\n{"actions": ["do"]}', JSON, ["do"], 0),
    (
        "complete-then-cut",
        '{"name": "interact_many", "arguments": {"actions": ["do"]}} {"name": oops',
        JSON,
        ["do"],
        1,
    ),
    ("cut-bare-call", '{"name": "interact_many", "arguments": {"actions": ["do"', JSON, [], 1),
    # -- the documented ACTIONS line, and headings followed by JSON
    ("actions-line", "ACTIONS: move_left, do", LINE, ["move_left", "do"], 0),
    (
        "actions-line-after-reasoning",
        "I see a tree to the left.\nACTIONS: move_left; do\n",
        LINE,
        ["move_left", "do"],
        0,
    ),
    (
        "markdown-actions-line",
        "**Actions:** Move Left, PLACE-TABLE.",
        LINE,
        ["move_left", "place_table"],
        0,
    ),
    ("bullet-backticks", "- **ACTIONS**: `do`, `noop`", LINE, ["do", "noop"], 0),
    ("action-line-json-list", 'ACTION: ["move_left", "do"]', LINE, ["move_left", "do"], 0),
    ("last-actions-line", "ACTIONS: noop\nthinking again...\n  ACTIONS: do", LINE, ["do"], 0),
    (
        "bold-action-then-json-block",
        '**Action:**\n```json\n{"actions": ["move_left", "do"]}\n```',
        JSON,
        ["move_left", "do"],
        0,
    ),
    (
        "heading-action-then-call",
        '### Action:\n{"name": "interact_many", "arguments": {"actions": ["do"]}}',
        JSON,
        ["do"],
        0,
    ),
    ("action-tool-name-then-json", 'Action: interact_many\n{"actions": ["do"]}', JSON, ["do"], 0),
    # -- ReAct
    (
        "react",
        'Thought: a tree is left of me.\nAction: interact_many\nAction Input: {"actions": ["move_left", "do"]}',
        REACT,
        ["move_left", "do"],
        0,
    ),
    (
        "react-markdown",
        '**Thought:** wood first\n**Action:** interact_many\n**Action Input:** ```json\n{"actions": ["do"]}\n```',
        REACT,
        ["do"],
        0,
    ),
    (
        "react-last-step",
        'Action: interact_many\nAction Input: {"actions": ["noop"]}\nObservation: nothing\nAction: interact_many\nAction Input: {"actions": ["do"]}',
        REACT,
        ["do"],
        0,
    ),
    (
        "react-names",
        "Action: interact_many\nAction Input: move_left, do",
        REACT,
        ["move_left", "do"],
        0,
    ),
    ("react-cut", 'Action: interact_many\nAction Input: {"actions": ["do"', REACT, [], 1),
    ("react-unknown-tool", 'Action: craft\nAction Input: {"item": "table"}', REACT, [], 0),
]

NO_CALL = [
    ("prose", "I will move left to find a tree, then collect wood."),
    ("prose-list", 'I can see ["tree", "water"] and a cow.'),
    ("json-not-a-call", 'The cow said {"moo": true} and [1, 2, 3] and {"name": "Steve"}.'),
    ("inventory", '{"inventory": ["wood", "sapling"]}'),
    ("python-repr", "['move_left', 'do']"),
    ("cut-inside-think", "<think>I will call " + hermes({"actions": ["do"]})[:30]),
    ("action-mid-sentence", "My action: do it"),
]


EXTRA = [  # more spellings of the same forms
    (
        "hermes-prose-around-no-newlines",
        (
            'Let me get wood.\n<tool_call>```json\n{"name": "interact_many", '
            '"arguments": {"actions": ["do"]}}\n```</tool_call> Done.'
        ),
        TAG,
        ["do"],
        0,
    ),
    ("actions-line-blanks", "actions: move_left do", LINE, ["move_left", "do"], 0),
    (
        "fenced-call-arguments-string",
        (
            'I face a tree.\n```json\n{"name": "interact_many", "arguments": '
            '"{\\"actions\\": [\\"do\\", \\"do\\"]}"}\n```'
        ),
        JSON,
        ["do", "do"],
        0,
    ),
]


@pytest.mark.parametrize(
    "text, form, actions, malformed",
    [pytest.param(*row[1:], id=row[0]) for row in SHAPES + EXTRA],
)
def test_real_answer_shapes(text, form, actions, malformed):
    parsed = parse_text(text)
    assert (parsed.form, parsed.actions, parsed.malformed_json) == (form, actions, malformed)


def test_the_table_holds_forty_shapes_of_every_form():
    assert len(SHAPES) + len(NO_CALL) >= 40
    assert {row[2] for row in SHAPES} == set(answers.FORMS)


@pytest.mark.parametrize("text", [pytest.param(t, id=i) for i, t in NO_CALL])
def test_shapes_without_a_call(text):
    parsed = parse_text(text)
    assert parsed.tool_calls == 0 and parsed.form is None and not parsed.ok


def test_the_last_complete_call_wins_and_calls_made_together_all_run():
    draft = 'I could do {"actions": ["noop"]} but better: {"actions": ["do"]}'
    assert parse_text(draft).actions == ["do"]  # was noop, then do
    together = '{"actions": ["do"]}; {"actions": ["noop"]}\n```json\n{"actions": ["sleep"]}\n```'
    assert parse_text(together).actions == ["do", "noop", "sleep"]
    cut = '{"actions": ["do"]} Then: {"name": "interact_many", "arguments": {"actions": ['
    assert (parse_text(cut).actions, parse_text(cut).malformed_json) == (["do"], 0)


def test_a_prose_list_is_no_call_and_an_action_list_is_one():
    assert parse_text('I can see ["tree", "water"]').tool_calls == 0  # was 2 invalid actions
    parsed = parse_text('Plan: ["move_left", "jump"]')
    assert parsed.actions == ["move_left"] and parsed.invalid_names == ["jump"]


def test_react_names_its_tool_and_reads_its_input():
    parsed = parse_text('Action: interact_many\nAction Input: {"actions": ["do"]}')
    assert parsed.actions == ["do"] and parsed.invalid_actions == 0  # was 'interact_many'
    other = parse_text('Action: craft\nAction Input: {"item": "table"}')
    assert other.unknown_tool_names == ["craft"] and other.form == answers.REACT


def test_a_heading_then_json_is_the_json_and_an_empty_call_says_so():
    text = '**Action:**\n```json\n{"actions": ["move_left", "do"]}\n```'
    assert parse_text(text).actions == ["move_left", "do"]  # was a call with no actions
    empty = parse_text("ACTIONS:")
    assert (empty.tool_calls, empty.empty_calls, empty.ok) == (1, 1, False)
    reply = Reply(text="ACTIONS:")
    kind, message = diagnose(reply, empty, finish="finish_reason=stop", budget="", empty="")
    assert kind == INVALID_CALL
    assert message == "1 tool call(s) but no valid action: 1 with no actions"
    assert parse_calls([ToolCall("c", "interact_many", '{"actions": []}')]).empty_calls == 1


def test_reasoning_is_not_read():
    assert parse_text('<think>{"actions": ["noop"]}</think>{"actions": ["do"]}').actions == ["do"]
    assert parse_text('<think>I will send {"actions": ["do"]} and').tool_calls == 0


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
