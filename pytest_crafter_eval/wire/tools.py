"""Stage: wire (tools). The one function tool the model calls, and parsing of its answers.

Pure: no I/O, no wire format. `TOOL` is the tool (in chat-completions form; each wire
adapter renders it its own way) and `diagnose` says why a reply had no usable tool call.
`parse_calls` (defined in `answers`, which reads every form of answer) turns the tool
calls of a parsed reply (`conversation.Reply`) into actions plus counts of everything
that was wrong.
"""

from __future__ import annotations

from typing import Any

from ..config.game import ACTIONS, MAX_ACTIONS, TOOL_NAME
from .answers import MAX_NAMES, ParsedCalls, find_calls, parse_calls
from .conversation import Reply

__all__ = [
    "MAX_ACTIONS",
    "MAX_NAMES",
    "TOOL",
    "TOOL_NAME",
    "ParsedCalls",
    "diagnose",
    "parse_calls",
]

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


# Why a response carried no usable tool call. Episode results carry the class.
BUDGET_EXHAUSTED = "budget_exhausted"
TEXT_ANSWER = "text_answer"
REFUSAL = "refusal"
CONTENT_FILTER = "content_filter"
EMPTY_RESPONSE = "empty_response"
INVALID_CALL = "invalid_tool_call"
TOOL_CALL_IN_TEXT = "tool_call_in_text"

# form of a call written in text (answers.FORMS) -> what to do about it
_TEXT_FIXES = {
    "tool_call_tag": "the server did not parse it: for vLLM start it with "
    "--enable-auto-tool-choice --tool-call-parser hermes, or set answer.format: auto",
    "json": "the server did not parse it: for vLLM start it with --enable-auto-tool-choice "
    "and the model's --tool-call-parser (llama3_json for Llama 3), or set answer.format: auto",
    "react": "the model wrote a ReAct step (Action / Action Input): set answer.format: auto",
    "actions_line": "the model wrote the text answer format: set answer.format: text",
}


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
            f"{n} {what}" + (f" ({', '.join(map(repr, names))})" if names else "")
            for n, what, names in (
                (parsed.malformed_json, "with malformed JSON arguments", []),
                (parsed.unknown_tools, "to an unknown tool", parsed.unknown_tool_names),
                (parsed.invalid_actions, "invalid action name(s)", parsed.invalid_names),
                (parsed.empty_calls, "with no actions", []),
            )
            if n
        ]
        return INVALID_CALL, (
            f"{parsed.tool_calls} tool call(s) but no valid action: " + ", ".join(problems)
        )
    text = reply.text or ""
    if text.strip():
        found = find_calls(text)
        if found.form is not None:
            return TOOL_CALL_IN_TEXT, (
                f"{finish}, a tool call in the text ({TOOL_CALL_IN_TEXT}): {_clip(text)}; "
                + _TEXT_FIXES[found.form]
            )
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
