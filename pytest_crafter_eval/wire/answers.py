"""Stage: wire (answers). The tool call or actions a model wrote as text, found and counted.

Pure: no I/O, no wire format. `find_calls(text)` finds the calls written in the text of
an assistant answer; `parse_text(text)` also counts them like native tool calls
(`ParsedCalls`: valid actions, malformed calls, unknown tools, invalid and cut
actions, calls with no actions, with the names that were wrong). `actions_line(actions)`
writes the documented text format. Nothing here raises on any input.

Reasoning is not read: the text before the last `</think>` is left out, and an answer
cut inside `<think>` holds no call. In the rest, four forms are recognised, tried in
this order; the first form present is the only one read:

1. `tool_call_tag`: Hermes-style tags, as Qwen and Hermes models write them (and as
   vLLM returns them when started without a tool parser)::

       <tool_call>
       {"name": "interact_many", "arguments": {"actions": ["move_left", "do"]}}
       </tool_call>

   A tag runs to the next `</tool_call>`, or to the next `<tool_call>` or the end of the
   text when it is not closed (an answer cut short). Its body holds a JSON call (see
   *JSON* below; code fences around it are fine); a body without one is one malformed
   call.

2. `react`: a ReAct step, the last `Action:` line directly followed by `Action Input:`
   (markdown marks allowed around both keywords)::

       Action: interact_many
       Action Input: {"actions": ["move_left", "do"]}

   The input is a JSON object (the arguments, or a whole call), a list of actions, or
   names as on an ACTIONS line; the Action line names the tool. Input that starts as
   JSON and does not parse is one malformed call.

3. `actions_line`: the documented format for `answer.format: text`, a line::

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
     call of `interact_many`.
   - A line that names no action, or only the tool (`**Action:**`, `Action:
     interact_many`), is a heading: the JSON after it is read (form `json`); with none,
     it is one call with no actions.

4. `json`: JSON written anywhere in the text, with or without code fences:

   - a call object: a string `name` with `arguments` or, as Llama 3 writes it,
     `parameters` (an object, or a JSON string holding one)::

         {"name": "interact_many", "arguments": {"actions": ["do"]}}
         {"name": "interact_many", "parameters": "{\\"actions\\": [\\"do\\"]}"}

     An object whose `name` is `interact_many` is a call even without `arguments`: its
     other keys are the arguments (`{"name": "interact_many", "actions": ["do"]}`).
   - an arguments object: `{"actions": ["move_left", "do"]}`.
   - a list of actions: `["move_left", "do"]`, a list of scalars naming at least one
     Crafter action (so `I can see ["tree", "water"]` is prose, not a call).
   - call or arguments objects nested in other JSON, such as a list of calls
     `[{"name": ...}, {"name": ...}]` or `{"function": {"name": ..., "arguments": ...}}`
     (a list of strings counts only at the top level, so `{"inventory": ["wood"]}` is
     no call).
   - A `{"name": "...` that does not parse (cut short, or not JSON) is one malformed
     call; any other text that does not parse is prose. Only JSON counts: single quotes
     (Python reprs) do not.

   Names in JSON are taken as written (case matters), as in native tool calls.

**The last complete call wins.** Calls (tags, JSON values) with nothing but blanks,
`;`, `,`, code fences or Llama's `<|python_tag|>` between them are one group: calls made
together, run in order (Qwen's parallel tags, Llama's `{...}; {...}`). Prose between
two calls starts a new group, and only the last group holding a complete call counts:
`I could do {"actions": ["noop"]} but better {"actions": ["do"]}` plays `do`. The
malformed pieces of that group count; when no group holds a complete call, the last
group's malformed pieces do.

The work is linear in the text's length: tags are found in one pass, and failed JSON
parses together may examine at most `SCAN_BUDGET` characters (each counts at least 64),
after which the rest of the text is not searched for JSON (a pathological text, not an
answer).
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
REACT = "react"
LINE = "actions_line"
JSON = "json"
FORMS = (TAG, REACT, LINE, JSON)

OPEN, CLOSE = "<tool_call>", "</tool_call>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
SCAN_BUDGET = 250_000  # characters failed JSON parses may examine, in all
_NESTING = 8  # how deep call objects are looked for inside other JSON
_WINDOW = 256  # characters first given to the JSON parser at a candidate start
_TOKEN = 16  # an error this close to a window's end may be a token cut by the window
_DECODER = json.JSONDecoder()
_START = re.compile(r'\{\s*["}]|\[\s*[\]"\d\-\[{tfnNI]')  # what a JSON value can start with
_MIN_COST = 64  # what a failed parse costs at least, so that the budget also caps their count
_NAME_START = re.compile(r'\{\s*"name"\s*:')
_MARKS = r"[ \t>*_#`-]*"
_LINE = re.compile(rf"^{_MARKS}actions?[ \t*_`]*:(?P<rest>.*)$", re.IGNORECASE | re.MULTILINE)
_INPUT = re.compile(rf"\s*{_MARKS}action[ \t_]*input[ \t*_`]*:", re.IGNORECASE)
# what may stand between the calls of one answer (parallel calls): blanks, `;` and `,`
# (Llama), code fences, Llama's python tag
_JOINER = re.compile(r"(?:\s|[;,]|```[A-Za-z]*|<\|python_tag\|>)*\Z")
_INPUT_START = re.compile(r"[\s*_]*(?:```[A-Za-z]*\s*)?")  # marks and a fence before the input
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
    empty_calls: int = 0  # calls with an empty list of actions
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
        if not actions:
            parsed.empty_calls += 1
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
    """The calls written in `text` (a str; anything else holds none) after its reasoning,
    in the first form present: tags, else a ReAct step or the last ACTIONS line, else
    JSON; of those, the last complete group (see the module docstring)."""
    if not isinstance(text, str) or not text:
        return FoundCalls()
    text = _answer_part(text)
    if OPEN in text:
        return _tags(text)
    line = _last_actions_line(text)
    if line is not None:
        return _from_line(text, *line)
    return _json(text, JSON)


def parse_text(text: Any) -> TextParsedCalls:
    """`find_calls(text)` counted like native tool calls: each call found is one tool
    call; a malformed piece is one call with malformed JSON."""
    found = find_calls(text)
    counted = parse_calls(
        ToolCall(f"text_{i}", c.name, c.arguments) for i, c in enumerate(found.calls)
    )
    parsed = TextParsedCalls(
        **{f.name: getattr(counted, f.name) for f in fields(counted)}, form=found.form
    )
    parsed.tool_calls += found.malformed
    parsed.malformed_json += found.malformed
    return parsed


def actions_line(actions: Iterable[str]) -> str:
    """The documented text answer for `actions`: `ACTIONS: move_left, do`."""
    return "ACTIONS: " + ", ".join(actions)


def _answer_part(text: str) -> str:
    """The text after the model's reasoning: after the last `</think>`; an answer cut
    inside `<think>` keeps only what came before it."""
    end = text.rfind(THINK_CLOSE)
    if end != -1:
        return text[end + len(THINK_CLOSE) :]
    start = text.find(THINK_OPEN)
    return text if start == -1 else text[:start]


# -- groups: the last complete one wins ------------------------------------------------


class _Groups:
    """Calls found in order, split into groups wherever prose stands between them; the
    result is the last group holding a complete call (or, when none does, the last)."""

    def __init__(self, form: str) -> None:
        self.form = form
        self.groups: list[FoundCalls] = []
        self._end = -1  # where the last item ended

    def add(self, text: str, start: int, end: int, calls: list[TextCall], malformed: int) -> None:
        """One item (a tag, a JSON value) found at `text[start:end]`."""
        if not calls and not malformed:
            return
        if self._end < 0 or not _JOINER.match(text, self._end, start):
            self.groups.append(FoundCalls(self.form))
        group = self.groups[-1]
        group.calls.extend(calls)
        group.malformed += malformed
        self._end = end

    def result(self) -> FoundCalls:
        """The last group holding a complete call, else the last group, else nothing."""
        for group in reversed(self.groups):
            if group.calls:
                return group
        return self.groups[-1] if self.groups else FoundCalls()


# -- tags ------------------------------------------------------------------------------


def _tags(text: str) -> FoundCalls:
    """Each `<tool_call>` runs to its `</tool_call>`, else to the next `<tool_call>` or
    the end. One pass over the positions of the tags: linear in the text's length."""
    opens = [m.start() for m in re.finditer(re.escape(OPEN), text)]
    closes = [m.start() for m in re.finditer(re.escape(CLOSE), text)]
    groups = _Groups(TAG)
    budget = SCAN_BUDGET
    c = 0
    for k, start in enumerate(opens):
        body = start + len(OPEN)
        following = opens[k + 1] if k + 1 < len(opens) else len(text)
        while c < len(closes) and closes[c] < body:
            c += 1
        closed = c < len(closes) and closes[c] < following
        end = closes[c] if closed else following
        inner = FoundCalls(TAG)
        budget = _scan(text[body:end], inner, budget)
        groups.add(
            text,
            start,
            end + len(CLOSE) if closed else end,
            inner.calls,
            inner.malformed + (0 if inner else 1),  # a tag without a call: malformed
        )
    return groups.result()


# -- the ACTIONS line (and ReAct's Action / Action Input) ----------------------------


def _last_actions_line(text: str) -> tuple[str, int] | None:
    """The rest of the last ACTIONS line after its colon, and where the line ends."""
    last = None
    for match in _LINE.finditer(text):
        last = match
    return None if last is None else (last.group("rest"), last.end())


def _from_line(text: str, rest: str, end: int) -> FoundCalls:
    """What the last ACTIONS line (`rest` after its colon, ending at `end`) says: a ReAct
    step when `Action Input:` follows, its actions, or a heading of the JSON after it."""
    react = _INPUT.match(text, end)
    if react is not None:  # ReAct: `Action: interact_many` / `Action Input: {...}`
        name = rest.strip(_EDGES) or TOOL_NAME
        return _react_input(text, react.end(), name)
    names = _line_names(rest)
    if names and names != [TOOL_NAME]:
        return FoundCalls(LINE, [_actions_call(names)])
    # The line names no action (`**Action:**`, `Action: interact_many`): they follow it.
    after = _json(text[end:], JSON)
    return after if after else FoundCalls(LINE, [_actions_call([])])


def _react_input(text: str, start: int, name: str) -> FoundCalls:
    """The call of tool `name` whose input starts at `start` (after `Action Input:`)."""
    match = _INPUT_START.match(text, start)
    at = match.end() if match else start
    if at >= len(text) or text[at] not in "[{":  # names, as on an ACTIONS line
        line_end = text.find("\n", at)
        names = _line_names(text[at : len(text) if line_end == -1 else line_end])
        return FoundCalls(REACT, [TextCall(name, _dumps({"actions": names}))])
    decoded, _ = _decode_at(text, at)
    if decoded is None:
        return FoundCalls(REACT, malformed=1)
    value = decoded[0]
    if isinstance(value, list):
        value = {"actions": value}
    if not isinstance(value, dict):
        return FoundCalls(REACT, malformed=1)
    call = _as_call(value) if "name" in value else None
    return FoundCalls(REACT, [call or TextCall(name, _dumps(value))])


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


def _json(text: str, form: str) -> FoundCalls:
    """The last complete group of the JSON calls in `text`."""
    groups = _Groups(form)
    _scan(text, groups, SCAN_BUDGET)
    return groups.result()


def _scan(text: str, into: FoundCalls | _Groups, budget: int) -> int:
    """Add the calls of every JSON value in `text`, left to right, while failed parses
    have examined fewer than `budget` characters; return what is left."""
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
                _add(into, text, start, start + 1, [], 1)
            pos = start + 1
            continue
        value, pos = decoded
        if isinstance(value, list) and _is_action_list(value):
            calls = [_actions_call(value)]
        else:
            calls = list(_calls_in(value, _NESTING))
        _add(into, text, start, pos, calls, 0)
    return budget


def _add(
    into: FoundCalls | _Groups,
    text: str,
    start: int,
    end: int,
    calls: list[TextCall],
    malformed: int,
) -> None:
    """Add what one JSON value (or a failed one) at `text[start:end]` holds."""
    if isinstance(into, _Groups):
        into.add(text, start, end, calls, malformed)
    else:
        into.calls.extend(calls)
        into.malformed += malformed


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
        except RecursionError:
            return None, len(piece) + _WINDOW
        size *= 4


def _is_action_list(value: list[Any]) -> bool:
    """A list of scalars naming at least one Crafter action: `I see ["tree", "water"]`
    is prose, `["move_left", "jump"]` a call (with one invalid action)."""
    return any(isinstance(v, str) and v in ACTIONS for v in value) and not any(
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
