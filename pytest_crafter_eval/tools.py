"""Stage: tools. The one function tool the model calls, and parsing of its answers.

Pure: no I/O. `TOOL` is what goes into the request; `parse_tool_calls` turns the
assistant message of a response into actions plus counts of everything that was wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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

    @property
    def ok(self) -> bool:
        return bool(self.actions)


def parse_tool_calls(message: Mapping[str, Any] | None) -> ParsedCalls:
    """Collect the valid actions of every `interact_many` call in an assistant message.

    `message` is the response's `choices[0].message` as a plain dict. Several calls are
    run in order; arguments may be a JSON string or already a mapping. Nothing raises.
    """
    parsed = ParsedCalls()
    calls = (message.get("tool_calls") if isinstance(message, Mapping) else None) or []
    if not isinstance(calls, list):
        calls = []
    for call in calls:
        parsed.tool_calls += 1
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or function.get("name") != TOOL_NAME:
            parsed.unknown_tools += 1
            continue
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except (ValueError, RecursionError):
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


def first_choice(response: Mapping[str, Any]) -> Mapping[str, Any]:
    """`choices[0]` of a response body, or {} when it has none (never raises)."""
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        return choices[0]
    return {}


def diagnose_no_tool_call(
    response: Mapping[str, Any], request: Mapping[str, Any], parsed: ParsedCalls | None = None
) -> tuple[str, str]:
    """Classify a response without a valid tool call; return (class, one-line reason
    with the fix). `request` is the body that was sent, for the token budget."""
    choices = response.get("choices") or []
    choice = first_choice(response)
    message = choice.get("message")
    message = message if isinstance(message, Mapping) else {}
    finish = choice.get("finish_reason")
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    refusal = message.get("refusal")
    usage = response.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    details = usage.get("completion_tokens_details") or {}
    reasoning = details.get("reasoning_tokens") if isinstance(details, Mapping) else None

    if refusal:
        return REFUSAL, (
            f"refusal: {_clip(refusal)}; the model declined: reword the eval's instructions"
        )
    if finish == "content_filter":
        return CONTENT_FILTER, (
            "finish_reason=content_filter: the provider filtered the answer; "
            "check the prompt and image"
        )
    if finish == "length":
        param = next((p for p in ("max_completion_tokens", "max_tokens") if p in request), None)
        budget = request.get(param) if param else None
        if reasoning:
            return BUDGET_EXHAUSTED, (
                f"reasoning used {reasoning} of {param}={budget}; raise request.max_output_tokens "
                "or lower reasoning_effort"
            )
        return BUDGET_EXHAUSTED, (
            f"finish_reason=length: the answer was cut at {param}={budget} before a tool call; "
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
    if text.strip():
        return TEXT_ANSWER, (
            f"finish_reason={finish}, text answer: {_clip(text)}; the model "
            "answered in text: set request.tool_choice: required, or check the instructions"
        )
    if not choices:
        return EMPTY_RESPONSE, "empty response: no choices; check the server"
    return EMPTY_RESPONSE, (
        f"finish_reason={finish}, empty response: no text and no tool call; "
        "set request.tool_choice: required, or check the server"
    )


def _clip(text: str, limit: int = 60) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
