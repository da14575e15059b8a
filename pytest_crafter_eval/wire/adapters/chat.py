"""Stage: wire (adapters). The chat-completions adapter: POST /chat/completions.

The body: `model`, `messages` (the instructions as a `system` or `developer` message,
then per earlier turn its user message, the assistant message with its `tool_calls` and
one `tool` message per call with the matching `tool_call_id`, then the current user
message: text part, then the frame as an `image_url` part), `tools` (nested function
tool `interact_many`), `tool_choice`, `parallel_tool_calls`, `max_tokens` or
`max_completion_tokens` (the profile's `token_param`), `temperature`, `top_p` and a
top-level `reasoning_effort`, and the episode's `prompt_cache_key` where the profile
says the API takes it. A response is `choices[0].message` with `finish_reason`
and `usage`. Chat is also the canonical trace form, so its translations are identities.
Pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ...config import profiles, spec
from .. import tools
from ..conversation import Observation, Reply, ToolCall, Turn, Usage
from ..images import describe_image
from . import Prepared, read_usage

TOKEN_PARAMS = ("max_completion_tokens", "max_tokens")

# request parameter the API may name in a 400 -> the profile fields that decide it
PARAM_FIELDS = {
    "max_tokens": ("token_param", "max_output_tokens"),
    "max_completion_tokens": ("token_param", "max_output_tokens"),
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "reasoning_effort": ("reasoning_efforts", "reasoning_effort"),
    "tool_choice": ("tool_choice",),
    "parallel_tool_calls": ("parallel_tool_calls",),
    "tools": ("tool_call",),
    "messages": ("system_role", "image_input"),
    "logprobs": ("logprobs",),
    "return_token_ids": ("token_ids",),
}


class Chat:
    name = "chat"
    endpoint = "/chat/completions"

    # -- request ------------------------------------------------------------------------

    def prepare(self, run: spec.Run, profile: profiles.Profile, instructions: str) -> Prepared:
        settings, notes = profiles.normalise_settings(run, profile)
        body: dict[str, Any] = {
            "model": run.model,
            "messages": [{"role": settings.instructions_role, "content": instructions}],
        }
        if run.answer.sends_tools:  # answer.format: text sends no tools (nor their settings)
            body["tools"] = [tools.TOOL]
            if settings.tool_choice is not None:
                body["tool_choice"] = settings.tool_choice
            if settings.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = settings.parallel_tool_calls
        if settings.max_output_tokens is not None:
            body[profile.token_param] = settings.max_output_tokens
        for key in ("temperature", "top_p"):
            if getattr(settings, key) is not None:
                body[key] = getattr(settings, key)
        if settings.reasoning_effort is not None:
            body["reasoning_effort"] = settings.reasoning_effort
        if settings.logprobs:
            body["logprobs"] = True
            if settings.token_ids:
                body["return_token_ids"] = True  # vLLM's: prompt_token_ids, choice token_ids
        cache_key = "prompt_cache_key" if settings.prompt_cache_key else None
        return Prepared(body, tuple(notes), cache_key)

    def body(
        self, template: dict[str, Any], turns: Sequence[Turn], keep_images: int = 0
    ) -> dict[str, Any]:
        return {**template, "messages": [template["messages"][0], *render(turns, keep_images)]}

    def headers(self, api_key: str | None) -> dict[str, str]:
        return {}  # the SDK's Authorization header is all it takes

    # -- response -----------------------------------------------------------------------

    def parse(self, response: dict[str, Any]) -> Reply:
        choice = first_choice(response)
        message = choice.get("message")
        message = message if isinstance(message, Mapping) else {}
        finish = choice.get("finish_reason")
        content = message.get("content")
        refusal = message.get("refusal")
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        return Reply(
            tool_calls=message_calls(message),
            text=content if isinstance(content, str) else None,
            refusal=str(refusal) if refusal else None,
            reasoning_summary=reasoning if isinstance(reasoning, str) and reasoning else None,
            usage=self.usage(response),
            finish=finish if isinstance(finish, str) else None,
            incomplete={"length": "max_output_tokens", "content_filter": "content_filter"}.get(
                finish if isinstance(finish, str) else ""
            ),
            empty=not response.get("choices"),
            logprobs=token_logprobs(choice),
            token_ids=_ints(choice.get("token_ids")),
            prompt_token_ids=_ints(response.get("prompt_token_ids")),
        )

    def usage(self, response: dict[str, Any]) -> Usage:
        return read_usage(
            response,
            ("prompt_tokens", "completion_tokens"),
            ("prompt_tokens_details", "completion_tokens_details"),
        )

    def diagnose(
        self, reply: Reply, request: dict[str, Any], parsed: tools.ParsedCalls | None
    ) -> tuple[str, str]:
        param = next((p for p in TOKEN_PARAMS if p in request), None)
        budget = request.get(param) if param else None
        return tools.diagnose(
            reply,
            parsed,
            finish=f"finish_reason={reply.finish}",
            budget=f"{param}={budget}",
            empty="no choices",
        )

    # -- display and translation -------------------------------------------------------

    def redact(self, body: dict[str, Any], byte_count: bool = True) -> dict[str, Any]:
        return _redact(body, byte_count)

    def chat_form(self, request: dict[str, Any]) -> dict[str, Any]:
        return {
            "messages": request.get("messages", []),
            "tools": request.get("tools", []),
            "params": {k: v for k, v in request.items() if k not in ("messages", "tools")},
        }

    def chat_response(self, response: dict[str, Any]) -> dict[str, Any]:
        return response

    def from_chat_response(self, chat: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        return chat

    def profile_fields(self, param: str) -> tuple[str, ...]:
        return PARAM_FIELDS.get(param, ())


ADAPTER = Chat()


# -- rendering (also used by other adapters for the chat form) --------------------------


def user_message(observation: Observation, with_image: bool = True) -> dict[str, Any]:
    """The user message of an observation: text part, then the frame (if any and kept)."""
    parts: list[dict[str, Any]] = [{"type": "text", "text": observation.text}]
    if observation.image is not None and with_image:
        parts.append(
            {
                "type": "image_url",
                "image_url": {"url": observation.image, "detail": observation.detail},
            }
        )
    return {"role": "user", "content": parts}


def assistant_message(reply: Reply) -> dict[str, Any]:
    """A reply as the assistant message of a history: text, refusal, tool calls."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text if reply.text is not None else (None if reply.tool_calls else ""),
    }
    if reply.refusal:
        message["refusal"] = reply.refusal
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in reply.tool_calls
        ]
    return message


def render(turns: Sequence[Turn], keep_images: int = 0) -> list[dict[str, Any]]:
    """Messages for `turns`: each earlier turn as user, assistant and tool messages
    (only the last `keep_images` earlier turns with their frame), then the last turn's
    observation."""
    if not turns:
        return []
    *earlier, current = turns
    messages: list[dict[str, Any]] = []
    first_with_image = len(earlier) - max(0, keep_images)
    for index, turn in enumerate(earlier):
        messages.append(user_message(turn.observation, index >= first_with_image))
        if turn.reply is None:
            continue
        messages.append(assistant_message(turn.reply))
        for i, call in enumerate(turn.reply.tool_calls):
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call.id,
                    "content": turn.outcome.call_text(i) if turn.outcome else "not played",
                }
            )
    messages.append(user_message(current.observation))
    return messages


def message_calls(message: Mapping[str, Any] | None) -> tuple[ToolCall, ...]:
    """The tool calls of a chat assistant message; a malformed call becomes a call to
    no tool (name ""), arguments that are not text become JSON text, a missing id
    `call_<index>` (so that a history can answer each call)."""
    calls = message.get("tool_calls") if isinstance(message, Mapping) else None
    if not isinstance(calls, list):
        return ()
    out = []
    for index, call in enumerate(calls):
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping):
            out.append(ToolCall(f"call_{index}", "", ""))
            continue
        name, arguments = function.get("name"), function.get("arguments")
        if not isinstance(arguments, str):
            try:
                arguments = json.dumps(arguments)
            except (TypeError, ValueError):
                arguments = ""
        ident = call.get("id")
        out.append(
            ToolCall(
                ident if isinstance(ident, str) and ident else f"call_{index}",
                name if isinstance(name, str) else "",
                arguments,
            )
        )
    return tuple(out)


def parse_message(message: Mapping[str, Any] | None) -> tools.ParsedCalls:
    """The actions of a chat assistant message (`choices[0].message` as a dict)."""
    return tools.parse_calls(message_calls(message))


def token_logprobs(choice: Mapping[str, Any]) -> tuple[float, ...] | None:
    """The log-probabilities of a choice's tokens (`logprobs.content[*].logprob`), or
    None when it has none."""
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
    if not isinstance(content, list) or not content:
        return None
    values = [t.get("logprob") if isinstance(t, Mapping) else None for t in content]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    return tuple(float(v) for v in values)  # type: ignore[arg-type]  # numbers: checked


def _ints(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return tuple(value)
    return None


def first_choice(response: Mapping[str, Any]) -> Mapping[str, Any]:
    """`choices[0]` of a response body, or {} when it has none (never raises)."""
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        return choices[0]
    return {}


def _redact(value: Any, byte_count: bool) -> Any:
    if isinstance(value, dict):
        out = {k: _redact(v, byte_count) for k, v in value.items()}
        if out.get("type") == "image_url" and isinstance(value.get("image_url"), dict):
            url = value["image_url"].get("url")
            if isinstance(url, str):
                out["image_url"] = dict(out["image_url"], url=describe_image(url, byte_count))
        return out
    if isinstance(value, list):
        return [_redact(v, byte_count) for v in value]
    return value
