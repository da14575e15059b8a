"""Stage: agent (protocols). Which loop plays a run's episodes, one module per protocol.

A protocol is everything between the game and the wire: the prompt, what each request
holds, how an answer becomes actions, when an episode ends. `default` is this project's
own (`agent.episode`: tool calls of 1-8 actions, the eval file's history and answer
settings); `balrog` is BALROG's naive agent for Crafter (`agent.balrog`). A new protocol
is one module defining `run_episode` and `request_at` (the `Protocol` below) plus one
line in `REGISTRY` and its name in `config.spec.PROTOCOLS`. `episode.run_episode` and
`episode.request_at` hand a run of another protocol to its module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..config import spec
    from ..wire.client import ModelClient
    from .episode import EpisodeResult

DEFAULT = "default"
# name -> module defining the protocol's functions (imported on first use)
REGISTRY: dict[str, str] = {
    DEFAULT: f"{__package__}.episode",
    "balrog": f"{__package__}.balrog",
}
# the wire API each protocol's requests use, where it is fixed (None: the run's)
APIS: dict[str, str | None] = {DEFAULT: None, "balrog": "chat"}


class Loop(Protocol):
    def run_episode(
        self,
        run: spec.Run,
        seed: int,
        client: ModelClient,
        *,
        eval_name: str,
        instructions: str | None = None,
        on_step: Callable[[dict[str, Any]], None] | None = None,
    ) -> EpisodeResult: ...

    def request_at(
        self,
        run: spec.Run,
        seed: int,
        step: int,
        instructions: str | None = None,
        answer_with: str = ...,
        eval_name: str = ...,
    ) -> dict[str, Any]: ...


def get(name: str) -> Loop:
    """The module of protocol `name`; KeyError naming the known ones."""
    try:
        module = REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown protocol {name!r}; known: {', '.join(REGISTRY)}") from None
    return importlib.import_module(module)
