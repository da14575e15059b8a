"""Stage: tools. The one function tool the model calls, and parsing of its answers.

Pure: no I/O, no wire format. `TOOL` is the tool (in chat-completions form; each wire
adapter renders it its own way); `parse_calls` turns the tool calls of a parsed reply
(`conversation.Reply`) into actions plus counts of everything that was wrong, and
`diagnose` says why a reply had no usable tool call.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .conversation import Reply, ToolCall
from .env import ACTIONS

TOOL_NAME = "interact_many"
MAX_ACTIONS = 8

TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": (
            "Perform 1 to 8 Crafter actions in order. Movement faces the player "
            "in that direction; 'do' collects, attacks or drinks what the player faces."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "actions": {
                    "type": "array",
                    "items": {"type": "string", "enum": list(ACTIONS)},
                    "minItems": 1,
                    "maxItems": MAX_ACTIONS,
                }
            },
            "required": ["actions"],
            "additionalProperties": False,
        },
    },
}


@dataclass
class ParsedCalls:
    """What one assistant message asked for, and what was wrong with it."""

    actions: list[str] = field(default_factory=list)
    tool_calls: int = 0  # tool calls in the message, valid or not
    valid_calls: int = 0  # calls that yielded at least one valid action
    invalid_actions: int = 0  # unknown names, non-strings, or beyond MAX_ACTIONS
    malformed_json: int = 0  # arguments that are not a JSON object
    unknown_tools: int = 0  # calls to a function other than TOOL_NAME
    too_many_actions: int = 0  # calls with more than MAX_ACTIONS actions
    invalid_names: list[str] = field(default_factory=list)  # the invalid actions, as given

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
            parsed.invalid_actions += len(actions) - MAX_ACTIONS
            actions = actions[:MAX_ACTIONS]
        valid = [a for a in actions if isinstance(a, str) and a in ACTIONS]
        parsed.invalid_actions += len(actions) - len(valid)
        parsed.invalid_names.extend(
            str(a) for a in actions if not (isinstance(a, str) and a in ACTIONS)
        )
        if valid:
            parsed.valid_calls += 1
            parsed.actions.extend(valid)
    return parsed


# Why a response carried no usable tool call. Episode results carry the class.
BUDGET_EXHAUSTED = "budget_exhausted"
TEXT_ANSWER = "text_answer"
REFUSAL = "refusal"
CONTENT_FILTER = "content_filter"
EMPTY_RESPONSE = "empty_response"
INVALID_CALL = "invalid_tool_call"


def diagnose(
    reply: Reply, parsed: ParsedCalls | None, *, finish: str, budget: str, empty: str
) -> tuple[str, str]:
    """Classify a reply without a valid tool call; return (class, one-line reason with
    the fix). The wire adapter says it in its API's words: `finish` how the answer ended
    (`finish_reason=stop`), `budget` the output budget sent (`max_tokens=512`), `empty`
    what a response without any answer lacks (`no choices`)."""
    if reply.refusal:
        return REFUSAL, (
            f"refusal: {_clip(reply.refusal)}; the model declined: reword the eval's instructions"
        )
    if reply.incomplete == "content_filter":
        return CONTENT_FILTER, (
            f"{finish}: the provider filtered the answer; check the prompt and image"
        )
    if reply.incomplete == "max_output_tokens":
        if reply.usage.reasoning:
            return BUDGET_EXHAUSTED, (
                f"reasoning used {reply.usage.reasoning} of {budget}; raise "
                "request.max_output_tokens or lower reasoning_effort"
            )
        return BUDGET_EXHAUSTED, (
            f"{finish}: the answer was cut at {budget} before a tool call; "
            "raise request.max_output_tokens"
        )
    if parsed is not None and parsed.tool_calls:
        problems = [
            f"{n} {what}"
            for n, what in (
                (parsed.malformed_json, "with malformed JSON arguments"),
                (parsed.unknown_tools, "to an unknown tool"),
                (parsed.invalid_actions, "invalid action name(s)"),
            )
            if n
        ]
        return INVALID_CALL, (
            f"{parsed.tool_calls} tool call(s) but no valid action: " + ", ".join(problems)
        )
    text = reply.text or ""
    if text.strip():
        return TEXT_ANSWER, (
            f"{finish}, text answer: {_clip(text)}; the model "
            "answered in text: set request.tool_choice: required, or check the instructions"
        )
    if reply.empty:
        return EMPTY_RESPONSE, f"empty response: {empty}; check the server"
    return EMPTY_RESPONSE, (
        f"{finish}, empty response: no text and no tool call; "
        "set request.tool_choice: required, or check the server"
    )


def _clip(text: str, limit: int = 60) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
