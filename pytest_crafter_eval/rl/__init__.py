"""Stage: rl. The eval as an environment for RL trainers (the optional extra `[rl]`).

    from pytest_crafter_eval.rl import CrafterTools         # TRL's environment_factory
    trainer = GRPOTrainer(..., environment_factory=CrafterTools.from_eval("evals/x.yaml"))

    import gymnasium, pytest_crafter_eval.rl                 # registers the Gymnasium env
    env = gymnasium.make("crafter_eval/Crafter-v0", eval="evals/x.yaml")

Both play the episode of `agent.episode`: the same world (`CrafterEnv`, deterministic
per seed), instructions, observation, answer rules and messages, on the eval file's
train seeds unless told otherwise (`source`). Importing this package registers
`crafter_eval/Crafter-v0` with gymnasium when gymnasium is installed, and loads neither
crafter nor the openai SDK: the names below are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

ENV_ID = "crafter_eval/Crafter-v0"
ENTRY_POINT = "pytest_crafter_eval.rl.gym_env:CrafterGymEnv"

_EXPORTS = {
    "CrafterTools": "crafter_tools",
    "CrafterGymEnv": "gym_env",
    "Source": "source",
    "SplitError": "source",
}

__all__ = ["ENV_ID", "CrafterGymEnv", "CrafterTools", "Source", "SplitError", "register"]

if TYPE_CHECKING:
    from .crafter_tools import CrafterTools
    from .gym_env import CrafterGymEnv
    from .source import Source, SplitError


def register() -> bool:
    """Register `crafter_eval/Crafter-v0` (entry point `CrafterGymEnv`) with gymnasium;
    False when gymnasium is not installed."""
    try:
        import gymnasium
    except ImportError:
        return False
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point=ENTRY_POINT)
    return True


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


register()
