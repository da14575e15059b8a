"""Stage: profiles. What each model accepts, and the request body built from it (pure).

`resolve(model)` finds a model's `Profile`; `build_request(run, profile, messages)` turns
model-independent settings into the body that model accepts. No I/O here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import spec
from .tools import TOOL


@dataclass(frozen=True)
class Profile:
    name: str
    token_param: str = "max_tokens"          # or "max_completion_tokens"
    temperature: bool = True                 # accepts a non-default temperature
    reasoning: bool = False


def resolve(model: str) -> Profile:
    """The profile of `model`: reasoning families (gpt-5*, o*) take
    max_completion_tokens and no temperature; others are chat models."""
    base = model.split("?")[0].split("/")[-1]
    if base.startswith("gpt-5") or (base[:1] == "o" and base[1:2].isdigit()):
        return Profile(model, token_param="max_completion_tokens", temperature=False, reasoning=True)
    return Profile(model)


def build_request(run: spec.Run, profile: Profile, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat-completions body for one step of `run` on a model with `profile`."""
    body: dict[str, Any] = {"model": run.model, "messages": messages, "tools": [TOOL],
                            "tool_choice": "auto"}
    req = run.request
    if req.max_output_tokens is not None:
        body[profile.token_param] = req.max_output_tokens
    if profile.temperature:
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.top_p is not None:
            body["top_p"] = req.top_p
    if profile.reasoning and req.reasoning_effort is not None:
        body["reasoning_effort"] = req.reasoning_effort
    return body
