"""Stage: wire (local models). Built-in fake chat models behind the loopback server.

Pure apart from `time.sleep` for the `latency_ms` option and the per-process token
buckets of the `rpm` option: `complete(body)` takes a
chat-completions request body (a dict) and returns the response body (a dict) that the
official API would send. A request's `model` names a registered model plus options:

    local/random
    local/random?seed=1&latency_ms=200
    local/silent?mode=refusal

Answers are deterministic: each model gets a `random.Random` seeded from a hash of the
request's messages, the `seed` option and the request's own `seed` field, so identical
requests give identical answers (record/replay relies on this). A model registered with
`reads_history=False` (local/heuristic and the models playing like it) hashes only the
instructions and the last user message: what it reads, so that its play does not
depend on the history a request carries.

Usage counts the prompt token by token (`prompt_tokens`); `complete(body, cache=...,
scope=...)` reports as `cached_tokens` the prefix an earlier prompt of the same scope
began with, as OpenAI's prompt cache does (`prompt_cache`).

Add a model with `@register("local/name", "help", option=Option(...))` on a function
`(body, rng, options) -> Answer`. A model that should fail the request raises `ModelError`
(an error status), `RawBody` (a body that is not JSON) or `DropConnection` (close the
socket without answering). A model registered with `per_attempt=True` also gets the
attempt number: how many times the server has already seen this exact request, so that
`local/chaos` can fail a request and let its retry through, reproducibly.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from ...config import balrog
from ...config.game import ACTIONS
from ..answers import actions_line
from ..tools import MAX_ACTIONS, TOOL_NAME
from .prompt_cache import PromptCache

IMAGE_TOKENS = {"low": 85, "high": 765, "auto": 765}  # 765 = 512x512 at detail high
DEFAULT_MAX_TOKENS = 512


class ModelError(Exception):
    """A request the server answers with an OpenAI-style error body and `status`."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = (
            status,
            message,
            type,
            param,
            code,
        )
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class RawBody(Exception):
    """Answer with this text as the body, not JSON (a broken gateway, say)."""

    def __init__(self, text: str, status: int = 200, content_type: str = "text/html"):
        super().__init__(text)
        self.text, self.status, self.content_type = text, status, content_type


class DropConnection(Exception):
    """Close the connection without sending a response."""


@dataclass(frozen=True)
class Option:
    kind: type  # int, float or str
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
    completion_tokens: int | None = None  # estimated from the answer if None
    reasoning_tokens: int = 0
    reasoning: str | None = None  # sent as message.reasoning_content (vLLM, DeepSeek style)
    no_choices: bool = False  # answer with `choices: []`


@dataclass(frozen=True)
class Model:
    name: str
    help: str
    answer: Callable[..., Answer]
    options: dict[str, Option]
    per_attempt: bool = False  # answer(body, rng, options, attempt)
    reads_history: bool = True  # False: the RNG hashes the instructions and last user message


COMMON_OPTIONS = {
    "latency_ms": Option(
        float,
        0.0,
        help="answer this long after the request came (its own work included, as a "
        "remote model's latency is; 429s and bad requests at once)",
    ),
    "rpm": Option(
        float,
        0.0,
        help="requests per minute it takes (0: any); beyond that 429 with retry-after-ms "
        "and Retry-After, like a provider's rate limit (counted per server process)",
    ),
    "seed": Option(int, 0, help="mixed into the hash that seeds the model's RNG"),
}

MODELS: dict[str, Model] = {}


def register(
    name: str, help: str, per_attempt: bool = False, reads_history: bool = True, **options: Option
):
    def decorator(function):
        MODELS[name] = Model(
            name, help, function, {**COMMON_OPTIONS, **options}, per_attempt, reads_history
        )
        return function

    return decorator


def list_models() -> list[str]:
    return sorted(MODELS)


def describe_models() -> str:
    lines = []
    for model in MODELS.values():
        opts = ", ".join(
            f"{k}={'|'.join(o.choices) or o.kind.__name__}" for k, o in model.options.items()
        )
        lines.append(f"{model.name}: {model.help} (options: {opts})")
    return "\n".join(lines)


def parse_model(spec: Any) -> tuple[Model, dict[str, Any]]:
    """Split `local/name?key=value&...` into the registered model and its typed options."""
    if not isinstance(spec, str) or not spec:
        raise ModelError(400, "`model` must be a non-empty string.", param="model")
    name, _, query = spec.partition("?")
    model = MODELS.get(name)
    if model is None:
        raise ModelError(
            404,
            f"The model `{name}` does not exist. Known local models: {', '.join(list_models())}.",
            param="model",
            code="model_not_found",
        )
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True) if query else []
    except ValueError:
        raise ModelError(
            400,
            f"Cannot parse options `{query}` of model `{name}`: "
            "expected key=value pairs joined by '&'.",
            param="model",
        ) from None
    options = {key: option.default for key, option in model.options.items()}
    for key, raw in pairs:
        option = model.options.get(key)
        if option is None:
            raise ModelError(
                400,
                f"Unknown option `{key}` for model `{name}`. "
                f"Known options: {', '.join(model.options)}.",
                param="model",
            )
        try:
            value = option.kind(raw)
        except ValueError:
            raise ModelError(
                400,
                f"Option `{key}` of model `{name}` must be {option.kind.__name__}, got `{raw}`.",
                param="model",
            ) from None
        if option.choices and value not in option.choices:
            raise ModelError(
                400,
                f"Option `{key}` of model `{name}` must be one of "
                f"{', '.join(option.choices)}, got `{raw}`.",
                param="model",
            )
        if isinstance(value, float) and not 0 <= value < float("inf"):
            raise ModelError(
                400, f"Option `{key}` of model `{name}` must be >= 0, got `{raw}`.", param="model"
            )
        options[key] = value
    return model, options


class _Bucket:
    """A token bucket: `rpm` requests per minute, at most one second's worth at once."""

    def __init__(self, rpm: float):
        self.rate = rpm / 60.0
        self.capacity = max(1.0, self.rate)
        self.tokens = self.capacity
        self.at = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> float:
        """0 if a request may go now (and counts it), else the seconds until it may."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.rate


_BUCKETS: dict[str, _Bucket] = {}
_BUCKETS_LOCK = threading.Lock()


def _rate_limit(name: str, rpm: float) -> None:
    """Raise the 429 a provider sends past its rate limit, telling when to retry."""
    with _BUCKETS_LOCK:
        bucket = _BUCKETS.setdefault(name, _Bucket(rpm))
    wait = bucket.take()
    if wait > 0:
        ms = max(1, math.ceil(wait * 1000))
        raise ModelError(
            429,
            f"Rate limit reached for {name}: limit {rpm:g} requests per minute. "
            f"Please try again in {ms}ms.",
            type="requests",
            code="rate_limit_exceeded",
            headers={"retry-after-ms": str(ms), "retry-after": f"{math.ceil(wait)}"},
        )


def complete(
    body: Any, attempt: int = 0, cache: PromptCache | None = None, scope: str = ""
) -> dict[str, Any]:
    """Answer one chat-completions request body like the official API would. `attempt`
    counts earlier identical requests (0 for the first). With a `cache`, the usage's
    `cached_tokens` is the prefix of the prompt that an earlier prompt of `scope` (the
    server's: the requested model and the `prompt_cache_key`) began with."""
    started = time.monotonic()
    if not isinstance(body, dict):
        raise ModelError(400, "The request body must be a JSON object.")
    model, options = parse_model(body.get("model"))
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ModelError(400, "`messages` must be a non-empty array.", param="messages")
    if body.get("stream"):
        raise ModelError(400, "Local models do not support `stream`.", param="stream")
    if body.get("prompt_cache_key") is not None and not isinstance(body["prompt_cache_key"], str):
        raise ModelError(400, "`prompt_cache_key` must be a string.", param="prompt_cache_key")
    if options["rpm"]:
        _rate_limit(str(body.get("model")), options["rpm"])
    if options["latency_ms"]:  # the answer goes latency_ms after the request came
        answer_at = started + options["latency_ms"] / 1000
        try:
            return _answer(body, model, options, messages, attempt, cache, scope)
        finally:
            time.sleep(max(0.0, answer_at - time.monotonic()))
    return _answer(body, model, options, messages, attempt, cache, scope)


def _answer(
    body: dict[str, Any],
    model: Model,
    options: dict[str, Any],
    messages: list[Any],
    attempt: int,
    cache: PromptCache | None,
    scope: str,
) -> dict[str, Any]:
    read = messages if model.reads_history else _instructions_and_last_user(messages)
    digest = hashlib.sha256(
        json.dumps([read, options["seed"], body.get("seed")], sort_keys=True, default=str).encode()
    ).hexdigest()
    rng = random.Random(int(digest[:16], 16))
    answer = (
        model.answer(body, rng, options, attempt)
        if model.per_attempt
        else model.answer(body, rng, options)
    )
    for i, call in enumerate(answer.tool_calls):
        call.setdefault("id", f"call_{digest[:20]}{i}")
    message: dict[str, Any] = {
        "role": "assistant",
        "content": answer.content,
        "refusal": answer.refusal,
        "annotations": [],
    }
    if answer.tool_calls:
        message["tool_calls"] = answer.tool_calls
    if answer.reasoning:
        message["reasoning_content"] = answer.reasoning
    tokens = prompt_tokens(body)
    cached = cache.cached(scope, tokens) if cache is not None else 0
    completion_tokens = answer.completion_tokens
    text = (answer.content or "") + (answer.refusal or "") + json.dumps(answer.tool_calls)
    count = len(text) // 4 + 1  # the answer's tokens: about 4 characters each
    pieces = [text[i * len(text) // count : (i + 1) * len(text) // count] for i in range(count)]
    if completion_tokens is None:
        completion_tokens = count + answer.reasoning_tokens
    choice: dict[str, Any] = {
        "index": 0,
        "message": message,
        "finish_reason": answer.finish_reason,
        "logprobs": _logprobs(pieces, digest) if body.get("logprobs") is True else None,
    }
    extra: dict[str, Any] = {}
    if body.get("return_token_ids") is True:  # vLLM's extension
        choice["token_ids"] = [token_id(p) for p in pieces]
        extra["prompt_token_ids"] = [token_id(t) for t in tokens]
    return {
        "id": f"chatcmpl-local-{digest[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [] if answer.no_choices else [choice],
        **extra,
        "usage": {
            "prompt_tokens": len(tokens),
            "completion_tokens": completion_tokens,
            "total_tokens": len(tokens) + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": answer.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_local",
    }


def token_id(token: str) -> int:
    """The id the local models give a token (of `prompt_tokens`, or a piece of an answer):
    a hash below 2**17, like a tokenizer's vocabulary."""
    return int(hashlib.sha256(token.encode()).hexdigest()[:8], 16) % (1 << 17)


def _logprobs(pieces: list[str], digest: str) -> dict[str, Any]:
    """Chat-completions `logprobs` of an answer's tokens (`logprobs: true`): one entry per
    piece, each log-probability drawn from the request's digest (the same request, the
    same numbers), in [-2, 0)."""
    rng = random.Random(f"logprobs {digest}")
    return {
        "content": [
            {
                "token": piece,
                "logprob": round(-2 * rng.random(), 6) or -1e-6,
                "bytes": list(piece.encode()),
                "top_logprobs": [],
            }
            for piece in pieces
        ],
        "refusal": None,
    }


def prompt_tokens(body: dict[str, Any]) -> list[str]:
    """A chat request's prompt as the local models count it, token by token: the tools,
    then per message 4 tokens naming its role, one token per 4 characters of each text
    part (and of its tool calls), and per image a fixed count by detail (85 at low), each
    naming the image's digest. Its length is `usage.prompt_tokens`; two prompts share a
    cached prefix as far as their tokens are equal (`prompt_cache`)."""
    tokens: list[str] = []

    def text(value: str) -> None:
        tokens.extend(value[i : i + 4] for i in range(0, len(value), 4))

    if body.get("tools"):
        text(json.dumps(body["tools"]))
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        tokens.extend([f"<|{message.get('role')}|>"] * 4)
        content = message.get("content")
        for part in content if isinstance(content, list) else [content]:
            if isinstance(part, str):
                text(part)
            elif isinstance(part, dict) and part.get("type") == "image_url":
                image = part.get("image_url") or {}
                count = IMAGE_TOKENS.get(image.get("detail", "auto"), IMAGE_TOKENS["auto"])
                digest = hashlib.sha256(str(image.get("url")).encode()).hexdigest()[:16]
                tokens.extend(f"<image {digest} {i}>" for i in range(count))
            elif isinstance(part, dict):
                text(str(part.get("text", "")))
        if message.get("tool_calls"):
            text(json.dumps(message["tool_calls"]))
    return tokens


def _instructions_and_last_user(messages: list[Any]) -> list[Any]:
    """The first message (the instructions) and the last user message: what a model
    that reads only the current observation sees of a request (the whole list when it
    has no more than those two)."""
    last = next(
        (m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), None
    )
    return messages if last is None or len(messages) <= 2 else [messages[0], last]


def last_user_text(body: dict[str, Any]) -> str:
    """The text parts of the last user message, joined by newlines ("" if none)."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(
                    str(p.get("text", ""))
                    for p in content
                    if isinstance(p, dict) and p.get("type") == "text"
                )
            return ""
    return ""


def tool_call(actions: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": TOOL_NAME, "arguments": json.dumps({"actions": actions})},
    }


def offers_tools(body: dict[str, Any]) -> bool:
    """Whether the request lets the model call a tool (tools sent, tool_choice not none)."""
    return bool(body.get("tools")) and body.get("tool_choice") != "none"


def asks_balrog(body: dict[str, Any]) -> bool:
    """Whether the request is one of protocol balrog (its last message ends with BALROG's
    instruction to answer with one action name)."""
    return last_user_text(body).endswith(balrog.NAIVE_INSTRUCTION)


def play(body: dict[str, Any], actions: list[str]) -> Answer:
    """Answer with `actions`: a call of interact_many when the request offers tools; the
    first action's BALROG name (`Move West`) for a request of protocol balrog; else the
    documented text format, a line `ACTIONS: move_left, do`."""
    if asks_balrog(body):
        return Answer(content=balrog.ACTIONS[ACTIONS.index(actions[0])])
    if offers_tools(body):
        return Answer(tool_calls=[tool_call(actions)], finish_reason="tool_calls")
    return Answer(content=actions_line(actions))


def random_actions(rng: random.Random, most: int = MAX_ACTIONS) -> list[str]:
    return [rng.choice(ACTIONS) for _ in range(rng.randint(1, most))]


@register(
    "local/random",
    "1-8 uniformly random actions per call via interact_many",
    max_actions=Option(
        int,
        MAX_ACTIONS,
        help="at most this many actions per call, 1 to 8 "
        "(1 gives episodes of fixed length for benchmarks)",
    ),
)
def random_model(body, rng, options):
    most = options.get("max_actions", MAX_ACTIONS)
    if not 1 <= most <= MAX_ACTIONS:
        raise ModelError(
            400,
            f"Option `max_actions` of model `local/random` must be from 1 to "
            f"{MAX_ACTIONS}, got `{most}`.",
            param="model",
        )
    return play(body, random_actions(rng, most))


def heuristic_actions(body: dict[str, Any], rng: random.Random) -> list[str]:
    """local/heuristic's actions for a request: its scripted policy on the last user
    text, or random actions for an image-only request."""
    text = last_user_text(body)
    if not text.strip():
        return random_actions(rng)
    if asks_balrog(body):  # one action, read from BALROG's observation text
        from .balrog_player import choose_action

        return [ACTIONS[balrog.ACTIONS.index(choose_action(text, rng))]]
    try:
        from .heuristic import choose_actions
    except ImportError as error:
        raise ModelError(
            500, f"local/heuristic is not available: {error}", type="server_error"
        ) from None
    return list(choose_actions(text, rng))


@register(
    "local/heuristic",
    "scripted agent reading the text observation (BALROG's under protocol balrog, one action; "
    "random actions for image-only requests)",
    reads_history=False,
)
def heuristic_model(body, rng, options):
    return play(body, heuristic_actions(body, rng))


@register(
    "local/hermes",
    "local/heuristic's play, its tool call written as Hermes text in the content "
    "(what vLLM returns when started without a tool parser)",
    reads_history=False,
)
def hermes_model(body, rng, options):
    call = json.dumps({"name": TOOL_NAME, "arguments": {"actions": heuristic_actions(body, rng)}})
    return Answer(content=f"<tool_call>\n{call}\n</tool_call>", finish_reason="stop")


FUMBLES = ("action", "partial", "tool", "json")
UNKNOWN_ACTIONS = ("jump", "craft_sword", "attack", "move_forward", "mine")
UNKNOWN_TOOLS = ("craft", "move")


@register(
    "local/fumble",
    "local/heuristic's play, but a share `rate` of its answers fumble the tool call: "
    "only unknown actions (action), one unknown action among valid ones (partial), "
    "an unknown tool (tool) or malformed JSON arguments (json); without tools offered, "
    "unknown names in its ACTIONS line, or a text without one",
    rate=Option(float, 0.2, help="share of answers that fumble, 0 to 1"),
    fumble=Option(str, "mixed", ("mixed",) + FUMBLES, help="which fumble"),
    reads_history=False,
)
def fumble_model(body, rng, options):
    """Plays exactly like local/heuristic (the same draws come first); whether and how
    an answer fumbles is drawn next from the same request-seeded RNG."""
    if not 0 <= options["rate"] <= 1:
        raise ModelError(
            400,
            f"Option `rate` of model `local/fumble` must be from 0 to 1, got `{options['rate']:g}`.",
            param="model",
        )
    actions = heuristic_actions(body, rng)
    if rng.random() >= options["rate"]:
        return play(body, actions)
    kind = rng.choice(FUMBLES) if options["fumble"] == "mixed" else options["fumble"]
    if kind == "action":
        return play(body, rng.sample(UNKNOWN_ACTIONS, rng.randint(1, 2)))
    if kind == "partial":
        actions[rng.randrange(len(actions))] = rng.choice(UNKNOWN_ACTIONS)
        return play(body, actions)
    if not offers_tools(body):  # no call to get wrong: a text answer without actions
        return Answer(content="I am not sure what to do here.")
    arguments = json.dumps({"actions": actions})
    if kind == "tool":
        call = {
            "type": "function",
            "function": {"name": rng.choice(UNKNOWN_TOOLS), "arguments": arguments},
        }
    else:
        call = {"type": "function", "function": {"name": TOOL_NAME, "arguments": arguments[:-2]}}
    return Answer(tool_calls=[call], finish_reason="tool_calls")


SILENT_ANSWERS = {
    "text": Answer(content="I will move left to find a tree, then collect wood."),
    "refusal": Answer(refusal="I'm sorry, but I can't help with that request."),
    "content_filter": Answer(finish_reason="content_filter"),
    "empty": Answer(content=""),
}


@register(
    "local/silent",
    "never calls the tool; mode picks plain text, a refusal, "
    "a content filter stop or an empty message",
    mode=Option(str, "text", tuple(SILENT_ANSWERS), "what to say instead of calling the tool"),
)
def silent_model(body, rng, options):
    answer = SILENT_ANSWERS[options["mode"]]
    return Answer(
        content=answer.content, refusal=answer.refusal, finish_reason=answer.finish_reason
    )


@register("local/exhaust", "a reasoning model that spends its whole token budget thinking")
def exhaust_model(body, rng, options):
    budget = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise ModelError(
            400,
            "`max_completion_tokens` must be a positive integer.",
            param="max_completion_tokens",
        )
    return Answer(
        content=None,
        finish_reason="length",
        completion_tokens=budget,
        reasoning_tokens=budget,
        reasoning="Thinking about where the nearest tree is, and whether night is near...",
    )


# -- local/chaos: fault injection for the client's retries and the episode's parsing --

CHAOS_ERRORS = {  # error option -> (status, type, code, message)
    "400": (
        400,
        "invalid_request_error",
        "unsupported_value",
        "Unsupported value: 'temperature' does not support this value with this model.",
    ),
    "401": (401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    "403": (
        403,
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported.",
    ),
    "404": (404, "invalid_request_error", "model_not_found", "The model does not exist."),
    "408": (408, "server_error", None, "Request timed out."),
    "409": (409, "server_error", None, "A conflicting request is in progress."),
    "429": (429, "requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    "quota": (
        429,
        "insufficient_quota",
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    "500": (500, "server_error", None, "The server had an error while processing your request."),
    "502": (502, "server_error", None, "Bad gateway."),
    "503": (503, "server_error", None, "The engine is currently overloaded."),
}
MALFORMED = ("json", "tool", "action", "many", "empty")
_RATES = ("rate_429", "rate_500", "rate_drop", "rate_notjson", "rate_slow")


def _chaos_error(kind: str, options: dict[str, Any]) -> ModelError:
    status, type_, code, message = CHAOS_ERRORS[kind]
    headers = {}
    if kind == "429":
        if options["retry_after"]:
            headers["retry-after"] = options["retry_after"]
        if options["retry_after_ms"]:
            headers["retry-after-ms"] = f"{options['retry_after_ms']:g}"
    param = "temperature" if kind == "400" else None
    return ModelError(status, message, type_, param=param, code=code, headers=headers)


def malformed_answer(kind: str, rng: random.Random) -> Answer:
    """An answer that is wrong in one way; `many` still carries valid actions."""
    if kind == "json":
        return Answer(
            tool_calls=[
                {
                    "type": "function",
                    "function": {"name": TOOL_NAME, "arguments": '{"actions": ["move_left", '},
                }
            ],
            finish_reason="tool_calls",
        )
    if kind == "tool":
        return Answer(
            tool_calls=[
                {
                    "type": "function",
                    "function": {"name": "interact_once", "arguments": '{"actions": ["noop"]}'},
                }
            ],
            finish_reason="tool_calls",
        )
    if kind == "action":
        return Answer(tool_calls=[tool_call(["fly", "teleport"])], finish_reason="tool_calls")
    if kind == "many":
        return Answer(
            tool_calls=[tool_call([rng.choice(ACTIONS) for _ in range(MAX_ACTIONS + 4)])],
            finish_reason="tool_calls",
        )
    return Answer(no_choices=True)


@register(
    "local/chaos",
    "random actions plus injected faults: per attempt, 429s with "
    "Retry-After, 500s, dropped connections, non-JSON bodies and slow "
    "answers; per request, malformed tool calls",
    per_attempt=True,
    rate_429=Option(float, 0.0, help="share of attempts answered 429 with Retry-After"),
    retry_after=Option(
        str, "0.2", help="Retry-After header of those 429s, sent as written (empty: none)"
    ),
    retry_after_ms=Option(float, 0.0, help="retry-after-ms of those 429s (0: none)"),
    rate_500=Option(float, 0.0, help="share of attempts answered 500"),
    rate_drop=Option(float, 0.0, help="share of attempts whose connection is closed unanswered"),
    rate_notjson=Option(float, 0.0, help="share of attempts answered 200 with an HTML body"),
    rate_slow=Option(float, 0.0, help="share of attempts answered after slow_ms"),
    slow_ms=Option(float, 2000.0, help="delay of slow answers"),
    rate_malformed=Option(float, 0.0, help="share of requests answered with a bad tool call"),
    malformed=Option(str, "mixed", ("mixed",) + MALFORMED, help="which bad tool call"),
    error=Option(str, "", ("",) + tuple(CHAOS_ERRORS), help="answer attempts with this error"),
    error_attempts=Option(
        int, 0, help="only the first N attempts of each request get `error` (0: all)"
    ),
)
def chaos_model(body, rng, options, attempt):
    """Faults are drawn per attempt from the request's hash, the seed option and the
    attempt number, so a run is reproducible and a retry can succeed; the answer (and
    whether it is malformed) is drawn per request, so it is the same on every retry."""
    rates = [options[name] for name in _RATES]
    if any(not 0 <= r <= 1 for r in rates + [options["rate_malformed"]]) or sum(rates) > 1:
        raise ModelError(
            400,
            "local/chaos rates must be from 0 to 1, and rate_429 + rate_500 + "
            "rate_drop + rate_notjson + rate_slow at most 1.",
            param="model",
        )
    request_draw = rng.random()
    if options["error"] and (options["error_attempts"] <= 0 or attempt < options["error_attempts"]):
        raise _chaos_error(options["error"], options)
    u = random.Random(f"chaos:{request_draw!r}:{attempt}").random()
    for name, rate in zip(_RATES, rates):
        if u < rate:
            if name == "rate_429":
                raise _chaos_error("429", options)
            if name == "rate_500":
                raise _chaos_error("500", options)
            if name == "rate_drop":
                raise DropConnection()
            if name == "rate_notjson":
                raise RawBody("<html><body><h1>502 Bad Gateway</h1></body></html>")
            time.sleep(options["slow_ms"] / 1000)
            break
        u -= rate
    if rng.random() < options["rate_malformed"]:
        kind = options["malformed"]
        return malformed_answer(rng.choice(MALFORMED) if kind == "mixed" else kind, rng)
    return Answer(tool_calls=[tool_call(random_actions(rng))], finish_reason="tool_calls")
