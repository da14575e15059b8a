"""Stage: wire (answers). The tool call or actions a model wrote as text, found and counted.

Pure: no I/O, no wire format. `find_calls(text)` finds the calls written in the text of
an assistant answer; `parse_text(text)` also counts them like native tool calls
(`ParsedCalls`: valid actions, malformed calls, unknown tools, invalid and cut
actions, with the names that were wrong). `actions_line(actions)` writes the documented
text format. Nothing here raises on any input.

Three forms are recognised, tried in this order; the first form present in the text is
the only one read:

1. `tool_call_tag`: Hermes-style tags, as Qwen and Hermes models write them (and as
   vLLM returns them when started without a tool parser)::

       <tool_call>
       {"name": "interact_many", "arguments": {"actions": ["move_left", "do"]}}
       </tool_call>

   Every tag counts, in order. A tag runs to the next `</tool_call>`, or to the next
   `<tool_call>` or the end of the text when it is not closed (an answer cut short).
   Its body holds a JSON call (see *JSON* below; code fences around it are fine); a
   body without one is one malformed call.

2. `actions_line`: the documented format for `answer.format: text`, a line::

       ACTIONS: move_left, move_left, do

   - The line starts with the keyword `ACTIONS` (or `ACTION`), in any case, then `:`.
     Blanks and markdown marks (`*`, `_`, `#`, `>`, `-`, backticks) may come before the
     keyword and around the colon: `**Actions:** do` is the same line.
   - The actions follow on the same line, separated by commas or semicolons, or else by
     blanks: `ACTIONS: move_left do`. Each name is lowercased; with commas or semicolons
     inner blanks and hyphens become `_` (`Move Left, place-table` is
     `move_left, place_table`). Quotes, brackets, backticks and a trailing period around
     a name are dropped (`ACTIONS: ["do"]` works).
   - Only the last such line of the text counts (earlier ones are drafts); it is one
     call of `interact_many`. A line with no names is a call with no actions.

3. `json`: JSON written anywhere in the text, with or without code fences, in order:

   - a call object: a string `name` with `arguments` or, as Llama 3 writes it,
     `parameters` (an object, or a JSON string holding one)::

         {"name": "interact_many", "arguments": {"actions": ["do"]}}
         {"name": "interact_many", "parameters": "{\\"actions\\": [\\"do\\"]}"}

     An object whose `name` is `interact_many` is a call even without `arguments`: its
     other keys are the arguments (`{"name": "interact_many", "actions": ["do"]}`).
   - an arguments object: `{"actions": ["move_left", "do"]}`.
   - a list of actions: `["move_left", "do"]` (a list of scalars, at least one a string).
   - call or arguments objects nested in other JSON, such as a list of calls
     `[{"name": ...}, {"name": ...}]` or `{"function": {"name": ..., "arguments": ...}}`
     (a list of strings counts only at the top level, so `{"inventory": ["wood"]}` is
     no call).
   - Llama's `;` between objects and its `<|python_tag|>` prefix need nothing special.
   - A `{"name": "...` that does not parse (cut short, or not JSON) is one malformed
     call; any other text that does not parse is prose. Only JSON counts: single quotes
     (Python reprs) do not.

   Names in JSON are taken as written (case matters), as in native tool calls.

The work is linear in the text's length: failed JSON parses together may examine at
most `SCAN_BUDGET` characters (each counts at least 64), after which the rest of the
text is not searched for JSON (a pathological text, not an answer).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..config.game import ACTIONS, MAX_ACTIONS, TOOL_NAME
from .conversation import ToolCall

MAX_NAMES = 5  # wrong names kept per answer, to say what was wrong

TAG = "tool_call_tag"
LINE = "actions_line"
JSON = "json"
FORMS = (TAG, LINE, JSON)

OPEN, CLOSE = "<tool_call>", "</tool_call>"
SCAN_BUDGET = 250_000  # characters failed JSON parses may examine, in all
_NESTING = 8  # how deep call objects are looked for inside other JSON
_WINDOW = 256  # characters first given to the JSON parser at a candidate start
_TOKEN = 16  # an error this close to a window's end may be a token cut by the window
_DECODER = json.JSONDecoder()
_START = re.compile(r'\{\s*["}]|\[\s*[\]"\d\-\[{tfnNI]')  # what a JSON value can start with
_MIN_COST = 64  # what a failed parse costs at least, so that the budget also caps their count
_NAME_START = re.compile(r'\{\s*"name"\s*:')
_LINE = re.compile(r"^[ \t>*_#`-]*actions?[ \t*_`]*:(?P<rest>.*)$", re.IGNORECASE | re.MULTILINE)
_EDGES = "[](){}\"'`*_.;:, \t"


@dataclass
class ParsedCalls:
    """What one assistant message asked for, and what was wrong with it."""

    actions: list[str] = field(default_factory=list)
    tool_calls: int = 0  # tool calls in the message, valid or not
    valid_calls: int = 0  # calls that yielded at least one valid action
    invalid_actions: int = 0  # unknown names or non-strings (not those cut at MAX_ACTIONS)
    malformed_json: int = 0  # arguments that are not a JSON object
    unknown_tools: int = 0  # calls to a function other than TOOL_NAME
    too_many_actions: int = 0  # calls with more than MAX_ACTIONS actions (cut to MAX_ACTIONS)
    invalid_names: list[str] = field(default_factory=list)  # invalid actions, as given
    unknown_tool_names: list[str] = field(default_factory=list)  # the unknown tools called

    @property
    def ok(self) -> bool:
        return bool(self.actions)


def parse_calls(calls: Iterable[ToolCall]) -> ParsedCalls:
    """Collect the valid actions of every `interact_many` call of a reply.

    Several calls are run in order; `arguments` is JSON text (an adapter turns other
    shapes into text). Nothing raises."""
    parsed = ParsedCalls()
    for call in calls:
        parsed.tool_calls += 1
        if call.name != TOOL_NAME:
            parsed.unknown_tools += 1
            _note(parsed.unknown_tool_names, call.name)
            continue
        try:
            arguments = json.loads(call.arguments)
        except (ValueError, RecursionError, TypeError):
            parsed.malformed_json += 1
            continue
        actions = arguments.get("actions") if isinstance(arguments, Mapping) else None
        if isinstance(actions, str):
            actions = [actions]
        if not isinstance(actions, list):
            parsed.malformed_json += 1
            continue
        if len(actions) > MAX_ACTIONS:
            parsed.too_many_actions += 1
            actions = actions[:MAX_ACTIONS]
        valid = [a for a in actions if isinstance(a, str) and a in ACTIONS]
        parsed.invalid_actions += len(actions) - len(valid)
        for action in actions:
            if not (isinstance(action, str) and action in ACTIONS):
                _note(
                    parsed.invalid_names, action if isinstance(action, str) else json.dumps(action)
                )
        if valid:
            parsed.valid_calls += 1
            parsed.actions.extend(valid)
    return parsed


def _note(names: list[str], name: str) -> None:
    """Keep `name` (clipped to 40 characters) among the first MAX_NAMES distinct ones."""
    name = name if len(name) <= 40 else name[:37] + "..."
    if name not in names and len(names) < MAX_NAMES:
        names.append(name)


@dataclass(frozen=True)
class TextCall:
    """One call found in text: the function's name and its arguments as JSON text."""

    name: str
    arguments: str


@dataclass
class FoundCalls:
    """What `find_calls` found: the form (one of FORMS, None when none), the calls in
    order, and how many call-shaped pieces of text did not parse."""

    form: str | None = None
    calls: list[TextCall] = field(default_factory=list)
    malformed: int = 0

    def __bool__(self) -> bool:
        return bool(self.calls or self.malformed)


@dataclass
class TextParsedCalls(ParsedCalls):
    """`ParsedCalls` of calls written in text, with the form they were written in."""

    form: str | None = None


def find_calls(text: Any) -> FoundCalls:
    """The calls written in `text` (a str; anything else holds none), in the first form
    present: tags, else the last ACTIONS line, else JSON (see the module docstring)."""
    if not isinstance(text, str) or not text:
        return FoundCalls()
    if OPEN in text:
        return _tags(text)
    line = _last_actions_line(text)
    if line is not None:
        return FoundCalls(LINE, [_actions_call(_line_names(line))])
    found = FoundCalls(JSON)
    _scan_json(text, found, SCAN_BUDGET)
    return found if found else FoundCalls()


def parse_text(text: Any) -> TextParsedCalls:
    """`find_calls(text)` counted like native tool calls: each call found is one tool
    call; a malformed piece is one call with malformed JSON."""
    found = find_calls(text)
    counted = parse_calls(
        ToolCall(f"text_{i}", c.name, c.arguments) for i, c in enumerate(found.calls)
    )
    parsed = TextParsedCalls(
        **{f.name: getattr(counted, f.name) for f in fields(counted)},
        form=found.form,
    )
    parsed.tool_calls += found.malformed
    parsed.malformed_json += found.malformed
    return parsed


def actions_line(actions: Iterable[str]) -> str:
    """The documented text answer for `actions`: `ACTIONS: move_left, do`."""
    return "ACTIONS: " + ", ".join(actions)


# -- tags ------------------------------------------------------------------------------


def _tags(text: str) -> FoundCalls:
    found = FoundCalls(TAG)
    budget = SCAN_BUDGET
    start = text.find(OPEN)
    while start != -1:
        body_start = start + len(OPEN)
        close = text.find(CLOSE, body_start)
        following = text.find(OPEN, body_start)
        ends = [i for i in (close, following) if i != -1]
        end = min(ends) if ends else len(text)
        calls_before, malformed_before = len(found.calls), found.malformed
        budget = _scan_json(text[body_start:end], found, budget)
        if len(found.calls) == calls_before and found.malformed == malformed_before:
            found.malformed += 1  # a tag without a call in it
        start = following
    return found


# -- the ACTIONS line ------------------------------------------------------------------


def _last_actions_line(text: str) -> str | None:
    rest = None
    for match in _LINE.finditer(text):
        rest = match.group("rest")
    return rest


def _line_names(rest: str) -> list[str]:
    rest = rest.strip()
    if "," in rest or ";" in rest:
        items = [re.sub(r"[\s-]+", "_", item.strip(_EDGES)) for item in re.split(r"[,;]", rest)]
    else:
        items = [item.strip(_EDGES) for item in rest.split()]
    return [item.lower() for item in items if item]


def _actions_call(actions: list[Any]) -> TextCall:
    return TextCall(TOOL_NAME, _dumps({"actions": actions}))


# -- JSON ------------------------------------------------------------------------------


def _scan_json(text: str, found: FoundCalls, budget: int) -> int:
    """Add the calls of every JSON value in `text` to `found`, left to right, while
    failed parses have examined fewer than `budget` characters; return what is left."""
    pos = 0
    while budget > 0:
        match = _START.search(text, pos)
        if match is None:
            break
        start = match.start()
        decoded, cost = _decode_at(text, start)
        if decoded is None:
            budget -= max(cost, _MIN_COST)
            if text[start] == "{" and _NAME_START.match(text, start):
                found.malformed += 1
            pos = start + 1
            continue
        value, pos = decoded
        if isinstance(value, list) and _is_action_list(value):
            found.calls.append(_actions_call(value))
        else:
            found.calls.extend(_calls_in(value, _NESTING))
    return budget


def _decode_at(text: str, start: int) -> tuple[tuple[Any, int] | None, int]:
    """The JSON value starting at `start` and where it ends, or None; and how many
    characters a failure examined. Parses a window that grows only while the value may
    run past it, so a failure costs what it examined, not the text's length (an error
    built on the whole text would count its lines up to `start`)."""
    size = _WINDOW
    while True:
        piece = text[start : start + size]
        try:
            value, end = _DECODER.raw_decode(piece)
            return (value, start + end), 0
        except json.JSONDecodeError as error:
            ran_out = error.pos >= len(piece) - _TOKEN or error.msg.startswith("Unterminated")
            if not ran_out or start + size >= len(text):
                return None, error.pos + 1 if not ran_out else len(piece)
        except RecursionError:  # absurdly deep nesting: not an answer
            return None, len(piece) + _WINDOW
        size *= 4


def _is_action_list(value: list[Any]) -> bool:
    return any(isinstance(v, str) for v in value) and not any(
        isinstance(v, (list, dict)) for v in value
    )


def _calls_in(value: Any, depth: int) -> Iterator[TextCall]:
    """Call objects and arguments objects in a decoded JSON value, outermost first."""
    if depth <= 0:
        return
    if isinstance(value, Mapping):
        call = _as_call(value)
        if call is not None:
            yield call
            return
        children: Iterable[Any] = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return
    for child in children:
        yield from _calls_in(child, depth - 1)


def _as_call(obj: Mapping[str, Any]) -> TextCall | None:
    name = obj.get("name")
    if isinstance(name, str):
        for key in ("arguments", "parameters"):
            if key in obj:
                arguments = obj[key]
                return TextCall(
                    name, arguments if isinstance(arguments, str) else _dumps(arguments)
                )
        if name == TOOL_NAME:
            return TextCall(name, _dumps({k: v for k, v in obj.items() if k != "name"}))
    if "actions" in obj:
        return TextCall(TOOL_NAME, _dumps(dict(obj)))
    return None


def _dumps(value: Any) -> str:
    """JSON text of a decoded value; "" (malformed arguments) if it is too deep to write."""
    try:
        return json.dumps(value)
    except (ValueError, RecursionError):
        return ""
