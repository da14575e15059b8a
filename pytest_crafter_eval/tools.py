"""Stage: tools. The one function tool the model calls, and parsing of its answers.

Pure: no I/O. `TOOL` is what goes into the request; `parse_tool_calls` turns the
assistant message of a response into actions plus counts of everything that was wrong.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

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
    tool_calls: int = 0          # tool calls in the message, valid or not
    valid_calls: int = 0         # calls that yielded at least one valid action
    invalid_actions: int = 0     # unknown names, non-strings, or beyond MAX_ACTIONS
    malformed_json: int = 0      # arguments that are not a JSON object
    unknown_tools: int = 0       # calls to a function other than TOOL_NAME
    too_many_actions: int = 0    # calls with more than MAX_ACTIONS actions

    @property
    def ok(self) -> bool:
        return bool(self.actions)


def parse_tool_calls(message: Mapping[str, Any] | None) -> ParsedCalls:
    """Collect the valid actions of every `interact_many` call in an assistant message.

    `message` is the response's `choices[0].message` as a plain dict. Several calls are
    run in order; arguments may be a JSON string or already a mapping. Nothing raises.
    """
    parsed = ParsedCalls()
    calls = (message or {}).get("tool_calls") or []
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
