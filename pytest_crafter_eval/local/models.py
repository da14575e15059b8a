"""Stage: local models. Built-in fake chat models behind the loopback server.

Pure apart from `time.sleep` for the `latency_ms` option: `complete(body)` takes a
chat-completions request body (a dict) and returns the response body (a dict) that the
official API would send. A request's `model` names a registered model plus options:

    local/random
    local/random?seed=1&latency_ms=200
    local/silent?mode=refusal

Answers are deterministic: each model gets a `random.Random` seeded from a hash of the
request's messages, the `seed` option and the request's own `seed` field, so identical
requests give identical answers (record/replay relies on this).

Add a model with `@register("local/name", "help", option=Option(...))` on a function
`(body, rng, options) -> Answer`. A model that should fail the request raises `ModelError`.
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl

from ..env import ACTIONS
from ..tools import MAX_ACTIONS, TOOL_NAME

IMAGE_TOKENS = {"low": 85, "high": 765, "auto": 765}  # 765 = 512x512 at detail high
DEFAULT_MAX_TOKENS = 512


class ModelError(Exception):
    """A request the server answers with an OpenAI-style error body and `status`."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type,
                          "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class Option:
    kind: type                       # int, float or str
    default: Any
    choices: tuple[str, ...] = ()
    help: str = ""


@dataclass
class Answer:
    """What a model says; `complete` turns it into a full response body."""

    content: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str = "stop"
    refusal: str | None = None
    completion_tokens: int | None = None   # estimated from the answer if None
    reasoning_tokens: int = 0


@dataclass(frozen=True)
class Model:
    name: str
    help: str
    answer: Callable[[dict[str, Any], random.Random, dict[str, Any]], Answer]
    options: dict[str, Option]


COMMON_OPTIONS = {
    "latency_ms": Option(float, 0.0, help="sleep this long before answering"),
    "seed": Option(int, 0, help="mixed into the hash that seeds the model's RNG"),
}

MODELS: dict[str, Model] = {}


def register(name: str, help: str, **options: Option):
    def decorator(function):
        MODELS[name] = Model(name, help, function, {**COMMON_OPTIONS, **options})
        return function
    return decorator


def list_models() -> list[str]:
    return sorted(MODELS)


def describe_models() -> str:
    lines = []
    for model in MODELS.values():
        opts = ", ".join(f"{k}={'|'.join(o.choices) or o.kind.__name__}" for k, o in model.options.items())
        lines.append(f"{model.name}: {model.help} (options: {opts})")
    return "\n".join(lines)


def parse_model(spec: str) -> tuple[Model, dict[str, Any]]:
    """Split `local/name?key=value&...` into the registered model and its typed options."""
    if not isinstance(spec, str) or not spec:
        raise ModelError(400, "`model` must be a non-empty string.", param="model")
    name, _, query = spec.partition("?")
    model = MODELS.get(name)
    if model is None:
        raise ModelError(
            404, f"The model `{name}` does not exist. Known local models: {', '.join(list_models())}.",
            param="model", code="model_not_found")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True) if query else []
    except ValueError:
        raise ModelError(400, f"Cannot parse options `{query}` of model `{name}`: "
                              "expected key=value pairs joined by '&'.", param="model") from None
    options = {key: option.default for key, option in model.options.items()}
    for key, raw in pairs:
        option = model.options.get(key)
        if option is None:
            raise ModelError(400, f"Unknown option `{key}` for model `{name}`. "
                                  f"Known options: {', '.join(model.options)}.", param="model")
        try:
            value = option.kind(raw)
        except ValueError:
            raise ModelError(400, f"Option `{key}` of model `{name}` must be {option.kind.__name__}, "
                                  f"got `{raw}`.", param="model") from None
        if option.choices and value not in option.choices:
            raise ModelError(400, f"Option `{key}` of model `{name}` must be one of "
                                  f"{', '.join(option.choices)}, got `{raw}`.", param="model")
        if isinstance(value, float) and not 0 <= value < float("inf"):
            raise ModelError(400, f"Option `{key}` of model `{name}` must be >= 0, got `{raw}`.",
                             param="model")
        options[key] = value
    return model, options


def complete(body: Any) -> dict[str, Any]:
    """Answer one chat-completions request body like the official API would."""
    if not isinstance(body, dict):
        raise ModelError(400, "The request body must be a JSON object.")
    model, options = parse_model(body.get("model"))
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ModelError(400, "`messages` must be a non-empty array.", param="messages")
    if body.get("stream"):
        raise ModelError(400, "Local models do not support `stream`.", param="stream")
    if options["latency_ms"]:
        time.sleep(options["latency_ms"] / 1000)
    digest = hashlib.sha256(json.dumps(
        [messages, options["seed"], body.get("seed")], sort_keys=True, default=str).encode()).hexdigest()
    rng = random.Random(int(digest[:16], 16))
    answer = model.answer(body, rng, options)
    for i, call in enumerate(answer.tool_calls):
        call.setdefault("id", f"call_{digest[:20]}{i}")
    message: dict[str, Any] = {"role": "assistant", "content": answer.content,
                               "refusal": answer.refusal, "annotations": []}
    if answer.tool_calls:
        message["tool_calls"] = answer.tool_calls
    prompt_tokens = estimate_prompt_tokens(body)
    completion_tokens = answer.completion_tokens
    if completion_tokens is None:
        text = (answer.content or "") + (answer.refusal or "") + json.dumps(answer.tool_calls)
        completion_tokens = len(text) // 4 + 1 + answer.reasoning_tokens
    return {
        "id": f"chatcmpl-local-{digest[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [{"index": 0, "message": message,
                     "finish_reason": answer.finish_reason, "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": answer.reasoning_tokens,
                                          "audio_tokens": 0, "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_local",
    }


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """About 4 characters per token, a fixed count per image, 4 per message."""
    chars, tokens = 0, 0
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        tokens += 4
        content = message.get("content")
        parts = content if isinstance(content, list) else [content]
        for part in parts:
            if isinstance(part, str):
                chars += len(part)
            elif isinstance(part, dict) and part.get("type") == "image_url":
                detail = (part.get("image_url") or {}).get("detail", "auto")
                tokens += IMAGE_TOKENS.get(detail, IMAGE_TOKENS["auto"])
            elif isinstance(part, dict):
                chars += len(str(part.get("text", "")))
        if message.get("tool_calls"):
            chars += len(json.dumps(message["tool_calls"]))
    if body.get("tools"):
        chars += len(json.dumps(body["tools"]))
    return tokens + chars // 4


def last_user_text(body: dict[str, Any]) -> str:
    """The text parts of the last user message, joined by newlines ("" if none)."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(str(p.get("text", "")) for p in content
                                 if isinstance(p, dict) and p.get("type") == "text")
            return ""
    return ""


def tool_call(actions: list[str]) -> dict[str, Any]:
    return {"type": "function",
            "function": {"name": TOOL_NAME, "arguments": json.dumps({"actions": actions})}}


def random_actions(rng: random.Random, most: int = MAX_ACTIONS) -> list[str]:
    return [rng.choice(ACTIONS) for _ in range(rng.randint(1, most))]


@register("local/random", "1-8 uniformly random actions per call via interact_many",
          max_actions=Option(int, MAX_ACTIONS, help="at most this many actions per call, 1 to 8 "
                                                    "(1 gives episodes of fixed length for benchmarks)"))
def random_model(body, rng, options):
    most = options.get("max_actions", MAX_ACTIONS)
    if not 1 <= most <= MAX_ACTIONS:
        raise ModelError(400, f"Option `max_actions` of model `local/random` must be from 1 to "
                              f"{MAX_ACTIONS}, got `{most}`.", param="model")
    return Answer(tool_calls=[tool_call(random_actions(rng, most))], finish_reason="tool_calls")


@register("local/heuristic", "scripted agent reading the text observation "
                             "(random actions for image-only requests)")
def heuristic_model(body, rng, options):
    text = last_user_text(body)
    if not text.strip():
        return random_model(body, rng, options)
    try:
        from .heuristic import choose_actions
    except ImportError as error:
        raise ModelError(500, f"local/heuristic is not available: {error}", type="server_error") from None
    return Answer(tool_calls=[tool_call(list(choose_actions(text, rng)))], finish_reason="tool_calls")


SILENT_ANSWERS = {
    "text": Answer(content="I will move left to find a tree, then collect wood."),
    "refusal": Answer(refusal="I'm sorry, but I can't help with that request."),
    "content_filter": Answer(finish_reason="content_filter"),
    "empty": Answer(content=""),
}


@register("local/silent", "never calls the tool; mode picks plain text, a refusal, "
                          "a content filter stop or an empty message",
          mode=Option(str, "text", tuple(SILENT_ANSWERS), "what to say instead of calling the tool"))
def silent_model(body, rng, options):
    answer = SILENT_ANSWERS[options["mode"]]
    return Answer(content=answer.content, refusal=answer.refusal, finish_reason=answer.finish_reason)


@register("local/exhaust", "a reasoning model that spends its whole token budget thinking")
def exhaust_model(body, rng, options):
    budget = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise ModelError(400, "`max_completion_tokens` must be a positive integer.",
                         param="max_completion_tokens")
    return Answer(content=None, finish_reason="length", completion_tokens=budget, reasoning_tokens=budget)
