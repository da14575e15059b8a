"""Stage: wire (adapters). The Responses adapter: POST /responses (OpenAI's API for gpt-5 and o-series).

The body: `model`, `instructions`, `input` (per earlier turn: its user message, the
reasoning items the model returned, its text as an assistant message, a `function_call`
item per tool call and a `function_call_output` item with what happened; then the current
user message: an `input_text` part and the frame as an `input_image` part with its
`detail`), `tools` (the flat function tool `interact_many`), `tool_choice`,
`parallel_tool_calls`, `max_output_tokens` (at least 16), `temperature`, `top_p`, and for
reasoning models `reasoning: {effort, summary: auto}`, and the episode's
`prompt_cache_key` where the profile says the API takes it. Requests are stateless
(`store: false`): reasoning models get `include: ["reasoning.encrypted_content"]` so that
their reasoning items can be sent back, and record/replay and resume work as for chat.

A response is its `output` items (`reasoning` with its summary, `message` with
`output_text` or `refusal` parts, `function_call`), `status` (`incomplete` with
`incomplete_details.reason` `max_output_tokens` is an exhausted budget) and `usage`.
The chat form (traces, fine-tuning examples, the local models) is translated both ways
here. Pure.
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
from .chat import ADAPTER as CHAT
from .chat import _redact as _redact_chat

MIN_OUTPUT_TOKENS = 16  # CreateResponse: max_output_tokens minimum
SUMMARY = "auto"
ENCRYPTED = "reasoning.encrypted_content"
REASONING_KEYS = ("type", "id", "summary", "encrypted_content")  # what is sent back

PARAM_FIELDS = {
    "max_output_tokens": ("max_output_tokens",),
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "reasoning": ("reasoning", "reasoning_efforts", "reasoning_effort"),
    "tool_choice": ("tool_choice",),
    "parallel_tool_calls": ("parallel_tool_calls",),
    "tools": ("tool_call",),
    "input": ("image_input",),
    "include": ("reasoning",),
}


def function_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """A chat-completions function tool in the flat Responses form."""
    function = tool["function"]
    return {
        "type": "function",
        "name": function["name"],
        "description": function.get("description"),
        "parameters": function.get("parameters"),
        "strict": False,
    }


class Responses:
    name = "responses"
    endpoint = "/responses"

    # -- request ------------------------------------------------------------------------

    def prepare(self, run: spec.Run, profile: profiles.Profile, instructions: str) -> Prepared:
        settings, notes = profiles.normalise_settings(run, profile, "max_output_tokens")
        body: dict[str, Any] = {
            "model": run.model,
            "instructions": instructions,
            "input": [],
        }
        if run.answer.sends_tools:  # answer.format: text sends no tools (nor their settings)
            body["tools"] = [function_tool(tools.TOOL)]
            if settings.tool_choice is not None:
                body["tool_choice"] = settings.tool_choice
            if settings.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = settings.parallel_tool_calls
        if settings.max_output_tokens is not None:
            budget = settings.max_output_tokens
            if budget < MIN_OUTPUT_TOKENS:
                notes.append(
                    profiles.Note(
                        run.model,
                        "max_output_tokens",
                        f"max_output_tokens={budget} raised to {MIN_OUTPUT_TOKENS}: the "
                        "Responses API takes no less",
                    )
                )
                budget = MIN_OUTPUT_TOKENS
            body["max_output_tokens"] = budget
        for key in ("temperature", "top_p"):
            if getattr(settings, key) is not None:
                body[key] = getattr(settings, key)
        if settings.reasoning:
            reasoning: dict[str, Any] = {"summary": SUMMARY}
            if settings.reasoning_effort is not None:
                reasoning = {"effort": settings.reasoning_effort, **reasoning}
            body["reasoning"] = reasoning
        body["store"] = False
        if settings.reasoning:
            body["include"] = [ENCRYPTED]
        if settings.logprobs:
            notes.append(
                profiles.Note(
                    run.model,
                    "logprobs",
                    "request.logprobs dropped: the Responses API returns no logprobs of "
                    "function calls (request.api: chat returns them)",
                )
            )
        cache_key = "prompt_cache_key" if settings.prompt_cache_key else None
        return Prepared(body, tuple(notes), cache_key)

    def body(
        self, template: dict[str, Any], turns: Sequence[Turn], keep_images: int = 0
    ) -> dict[str, Any]:
        return {**template, "input": render(turns, keep_images)}

    def headers(self, api_key: str | None) -> dict[str, str]:
        return {}  # the SDK's Authorization header is all it takes

    # -- response -----------------------------------------------------------------------

    def parse(self, response: dict[str, Any]) -> Reply:
        output = response.get("output")
        items = [i for i in output if isinstance(i, Mapping)] if isinstance(output, list) else []
        calls: list[ToolCall] = []
        texts: list[str] = []
        refusals: list[str] = []
        summaries: list[str] = []
        carried: list[dict[str, Any]] = []
        for item in items:
            kind = item.get("type")
            if kind == "function_call":
                calls.append(_call(item, len(calls)))
            elif kind == "message":
                for part in item.get("content") or []:
                    if not isinstance(part, Mapping):
                        continue
                    if part.get("type") == "output_text" and isinstance(part.get("text"), str):
                        texts.append(part["text"])
                    elif part.get("type") == "refusal" and part.get("refusal"):
                        refusals.append(str(part["refusal"]))
            elif kind == "reasoning":
                for part in item.get("summary") or []:
                    if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                        summaries.append(part["text"])
                carried.append({k: item[k] for k in REASONING_KEYS if k in item})
        status = response.get("status")
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, Mapping) else None
        return Reply(
            tool_calls=tuple(calls),
            text="".join(texts) if texts else None,
            refusal=" ".join(refusals) or None,
            reasoning_summary="\n\n".join(summaries) or None,
            reasoning_items=tuple(carried),
            usage=self.usage(response),
            finish=status if isinstance(status, str) else None,
            incomplete=reason
            if status == "incomplete" and reason in ("max_output_tokens", "content_filter")
            else None,
            empty=not items,
        )

    def usage(self, response: dict[str, Any]) -> Usage:
        return read_usage(
            response,
            ("input_tokens", "output_tokens"),
            ("input_tokens_details", "output_tokens_details"),
        )

    def diagnose(
        self, reply: Reply, request: dict[str, Any], parsed: tools.ParsedCalls | None
    ) -> tuple[str, str]:
        finish = f"status={reply.finish}" + (f" ({reply.incomplete})" if reply.incomplete else "")
        return tools.diagnose(
            reply,
            parsed,
            finish=finish,
            budget=f"max_output_tokens={request.get('max_output_tokens')}",
            empty="no output items",
        )

    # -- display and translation -------------------------------------------------------

    def redact(self, body: dict[str, Any], byte_count: bool = True) -> dict[str, Any]:
        def walk(value: Any) -> Any:
            if isinstance(value, dict):
                out = {k: walk(v) for k, v in value.items()}
                if value.get("type") == "input_image" and isinstance(value.get("image_url"), str):
                    out["image_url"] = describe_image(value["image_url"], byte_count)
                return out
            if isinstance(value, list):
                return [walk(v) for v in value]
            return value

        return _redact_chat(walk(body), byte_count)  # chat parts in the chat form, too

    def chat_form(self, request: dict[str, Any]) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        instructions = request.get("instructions")
        if isinstance(instructions, str):
            messages.append({"role": "system", "content": instructions})
        items = request.get("input")
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, Mapping):
                continue
            kind = item.get("type", "message")
            if kind == "message":
                role, content = item.get("role"), item.get("content")
                if role == "assistant":
                    messages.append({"role": "assistant", "content": _text(content)})
                else:
                    messages.append({"role": role, "content": _chat_content(content)})
            elif kind == "function_call":
                call = {
                    "id": item.get("call_id"),
                    "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments")},
                }
                last = messages[-1] if messages else None
                if last is not None and last["role"] == "assistant":
                    last.setdefault("tool_calls", []).append(call)
                else:
                    messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            elif kind == "function_call_output":
                output = item.get("output")
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": item.get("call_id"),
                        "content": output if isinstance(output, str) else _text(output),
                    }
                )
        tools_ = []
        for tool in request.get("tools") or []:
            if isinstance(tool, Mapping) and tool.get("type") == "function":
                function = {k: tool[k] for k in ("name", "description", "parameters") if k in tool}
                tools_.append({"type": "function", "function": function})
        params: dict[str, Any] = {}
        for key, value in request.items():
            if key in ("instructions", "input", "tools", "include"):
                continue
            if key == "max_output_tokens":
                params["max_completion_tokens"] = value
            elif key == "reasoning":
                effort = value.get("effort") if isinstance(value, Mapping) else None
                if effort is not None:
                    params["reasoning_effort"] = effort
            else:
                params[key] = value
        return {"messages": messages, "tools": tools_, "params": params}

    def chat_response(self, response: dict[str, Any]) -> dict[str, Any]:
        reply = self.parse(response)
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
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
        finish = {"max_output_tokens": "length", "content_filter": "content_filter"}.get(
            reply.incomplete or "", "tool_calls" if reply.tool_calls else "stop"
        )
        usage = reply.usage
        return {
            "id": response.get("id"),
            "object": "chat.completion",
            "model": response.get("model"),
            "choices": []
            if reply.empty and not reply.incomplete
            else [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": usage.input,
                "completion_tokens": usage.output,
                "total_tokens": usage.total,
                "prompt_tokens_details": {"cached_tokens": usage.cached},
                "completion_tokens_details": {"reasoning_tokens": usage.reasoning},
            },
        }

    def from_chat_response(self, chat: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        """A Response object for a chat completion answering `request` (for servers that
        answer this API with a chat model, like the local one)."""
        choices = chat.get("choices") or []
        choice: Mapping[str, Any] = (
            choices[0] if choices and isinstance(choices[0], Mapping) else {}
        )
        message = _mapping(choice.get("message"))
        finish = choice.get("finish_reason")
        used = CHAT.usage(chat)
        ident = str(chat.get("id") or "local").rsplit("-", 1)[-1]
        output: list[dict[str, Any]] = []
        wants_reasoning = isinstance(request.get("reasoning"), Mapping)
        summary = message.get("reasoning_content")
        if wants_reasoning and (used.reasoning or summary):
            item: dict[str, Any] = {"type": "reasoning", "id": f"rs_{ident}", "summary": []}
            if isinstance(summary, str) and summary and request["reasoning"].get("summary"):
                item["summary"] = [{"type": "summary_text", "text": summary}]
            if ENCRYPTED in (request.get("include") or []):
                item["encrypted_content"] = "local:" + json.dumps(summary or "")
            output.append(item)
        content = []
        if isinstance(message.get("content"), str) and message["content"]:
            content.append(
                {
                    "type": "output_text",
                    "text": message["content"],
                    "annotations": [],
                    "logprobs": [],
                }
            )
        if message.get("refusal"):
            content.append({"type": "refusal", "refusal": str(message["refusal"])})
        if content:
            output.append(
                {
                    "type": "message",
                    "id": f"msg_{ident}",
                    "status": "completed",
                    "role": "assistant",
                    "content": content,
                }
            )
        for i, call in enumerate(message.get("tool_calls") or []):
            function = call.get("function") if isinstance(call, Mapping) else None
            function = function if isinstance(function, Mapping) else {}
            arguments = function.get("arguments")
            output.append(
                {
                    "type": "function_call",
                    "id": f"fc_{ident}{i}",
                    "call_id": str(call.get("id") or f"call_{i}"),
                    "name": str(function.get("name") or ""),
                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                    "status": "completed",
                }
            )
        reason = {"length": "max_output_tokens", "content_filter": "content_filter"}.get(
            finish if isinstance(finish, str) else ""
        )
        prompt, completion, reasoning_tokens = used.input, used.output, used.reasoning
        text = "".join(p["text"] for p in content if p["type"] == "output_text")
        return {
            "id": f"resp_{ident}",
            "object": "response",
            "created_at": chat.get("created", 0),
            "status": "incomplete" if reason else "completed",
            "error": None,
            "incomplete_details": {"reason": reason} if reason else None,
            "instructions": request.get("instructions"),
            "max_output_tokens": request.get("max_output_tokens"),
            "model": chat.get("model", request.get("model")),
            "output": output,
            "output_text": text or None,
            "parallel_tool_calls": request.get("parallel_tool_calls", True),
            "previous_response_id": None,
            "reasoning": dict(request["reasoning"]) if wants_reasoning else None,
            "store": request.get("store", True),
            "temperature": request.get("temperature", 1.0),
            "text": {"format": {"type": "text"}},
            "tool_choice": request.get("tool_choice", "auto"),
            "tools": request.get("tools") or [],
            "top_p": request.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": {
                "input_tokens": prompt,
                "input_tokens_details": {"cached_tokens": used.cached, "cache_write_tokens": 0},
                "output_tokens": completion,
                "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
                "total_tokens": prompt + completion,
            },
            "metadata": {},
        }

    def profile_fields(self, param: str) -> tuple[str, ...]:
        return PARAM_FIELDS.get(param, ())


ADAPTER = Responses()


# -- rendering --------------------------------------------------------------------------


def user_item(observation: Observation, with_image: bool = True) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "input_text", "text": observation.text}]
    if observation.image is not None and with_image:
        parts.append(
            {"type": "input_image", "image_url": observation.image, "detail": observation.detail}
        )
    return {"role": "user", "content": parts}


def render(turns: Sequence[Turn], keep_images: int = 0) -> list[dict[str, Any]]:
    """Input items for `turns`: each earlier turn as its user message, reasoning items,
    text, function calls and their outputs (only the last `keep_images` earlier turns
    with their frame), then the last turn's observation."""
    if not turns:
        return []
    *earlier, current = turns
    items: list[dict[str, Any]] = []
    first_with_image = len(earlier) - max(0, keep_images)
    for index, turn in enumerate(earlier):
        items.append(user_item(turn.observation, index >= first_with_image))
        reply = turn.reply
        if reply is None:
            continue
        items.extend(dict(item) for item in reply.reasoning_items)
        if reply.text:
            items.append({"role": "assistant", "content": reply.text})
        for call in reply.tool_calls:
            items.append(
                {
                    "type": "function_call",
                    "call_id": call.id,
                    "name": call.name,
                    "arguments": call.arguments,
                }
            )
        for i, call in enumerate(reply.tool_calls):
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": call.id,
                    "output": turn.outcome.call_text(i) if turn.outcome else "not played",
                }
            )
    items.append(user_item(current.observation))
    return items


def _call(item: Mapping[str, Any], index: int) -> ToolCall:
    arguments = item.get("arguments")
    if not isinstance(arguments, str):
        try:
            arguments = json.dumps(arguments)
        except (TypeError, ValueError):
            arguments = ""
    ident = item.get("call_id") or item.get("id")
    name = item.get("name")
    return ToolCall(
        ident if isinstance(ident, str) and ident else f"call_{index}",
        name if isinstance(name, str) else "",
        arguments,
    )


def _chat_content(content: Any) -> Any:
    if not isinstance(content, list):
        return content
    parts = []
    for part in content:
        if not isinstance(part, Mapping):
            continue
        if part.get("type") == "input_text":
            parts.append({"type": "text", "text": part.get("text")})
        elif part.get("type") == "input_image":
            image: dict[str, Any] = {"url": part.get("image_url")}
            if part.get("detail") in ("auto", "low", "high"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
    return parts


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p
        )
    return ""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
