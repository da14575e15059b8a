"""Stage: rl (Gymnasium). `CrafterGymEnv`, the Gymnasium env `crafter_eval/Crafter-v0` (needs `[rl]`).

    env = gymnasium.make("crafter_eval/Crafter-v0", eval="evals/x.yaml")
    observation, info = env.reset(seed=1234)
    observation, reward, terminated, truncated, info = env.step(5)   # "do"

One step is one model call of the harness: an action (`Discrete(17)`, an index into
`CrafterEnv`'s ACTIONS), or with `actions="sequence"` a sequence of up to 8 of them
(longer ones are cut at 8, as the harness cuts a tool call; an empty one plays noop).
The observation is a Dict of `image` (the frame, HxWx3 uint8) and `text` (the text
observation; it says `turn: k of steps`, as the harness's does), each present as the
eval's `observation:` says or as `image=`/`text=` override it. `info` holds
`achievements` ({name: count} unlocked), `unlocked` (new this step), `actions`
(played), `seed`, `split`, `steps` and `env_steps`. The episode
terminates when the game ends (the player died, or Crafter's 10000 steps ran out) and
is truncated after the eval's `steps` steps.

Seeds: `reset(seed=n)` plays world n; `reset()` draws a training seed from the env's
`np_random` (so it follows the last seeded reset). Test seeds of the eval are refused
unless `include_test_seeds=True`. The same seed and actions give the same episode, in
any process, as the harness's episode with those answers.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from ..agent import episode
from ..agent.env import ACTIONS, CrafterEnv
from ..config import spec
from ..wire import tools
from .source import Source

TEXT_MAX = 8192  # characters of a text observation (a full view writes about 600)
CHARSET = frozenset(string.printable)


class CrafterGymEnv(gymnasium.Env):
    """Crafter as the harness plays it, behind Gymnasium's reset/step contract."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}  # noqa: RUF012 (gymnasium.Env's)

    def __init__(
        self,
        eval: str | Path | None = None,
        model: str | None = None,
        *,
        image: bool | None = None,
        text: bool | None = None,
        size: int | None = None,
        actions: str = "discrete",
        max_steps: int | None = None,
        include_test_seeds: bool = False,
        render_mode: str | None = None,
    ) -> None:
        self.source = (
            Source.from_eval(eval, model, include_test_seeds) if eval else Source.default()
        )
        shown = self.source.run.observation
        self.image = shown.image is not None if image is None else image
        self.text = shown.text if text is None else text
        if not (self.image or self.text):
            raise ValueError("image and text are both off: the observation would be empty")
        self.size = size or (shown.image.size if shown.image else 64)
        if actions not in ("discrete", "sequence"):
            raise ValueError(f"actions must be 'discrete' or 'sequence', got {actions!r}")
        self.sequence = actions == "sequence"
        self.max_steps = max_steps or self.source.run.steps
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        parts: dict[str, spaces.Space] = {}
        if self.image:
            parts["image"] = spaces.Box(0, 255, (self.size, self.size, 3), np.uint8)
        if self.text:
            parts["text"] = spaces.Text(TEXT_MAX, min_length=1, charset=CHARSET)
        self.observation_space = spaces.Dict(parts)
        self.action_space = (
            spaces.Sequence(spaces.Discrete(len(ACTIONS)), stack=True)
            if self.sequence
            else spaces.Discrete(len(ACTIONS))
        )
        self.game: CrafterEnv | None = None
        self.seed: int | None = None
        self.steps = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        self.seed = (
            self.source.draw_seed(self.np_random) if seed is None else self.source.check_seed(seed)
        )
        self.game = episode.new_env(self.seed, self._shown())
        self.steps = 0
        return self._observation(), self._info([], [])

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self.game is None:
            raise RuntimeError("call reset() first")
        if self.game.done or self.steps >= self.max_steps:
            raise RuntimeError("the episode is over; call reset() to start again")
        names = self._names(action)
        before = len(self.game.unlocked)
        reward, played = 0.0, []
        for name in names:
            reward += self.game.step(name)
            played.append(name)
            if self.game.done:
                break
        self.steps += 1
        terminated = self.game.done
        truncated = not terminated and self.steps >= self.max_steps
        info = self._info(played, self.game.unlocked[before:])
        return self._observation(), float(reward), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self.game is None:
            return None
        return self.game.frame()

    def _names(self, action: Any) -> list[str]:
        if not self.sequence:
            return [ACTIONS[int(action)]]
        indices = [int(a) for a in np.asarray(action).reshape(-1)][: tools.MAX_ACTIONS]
        return [ACTIONS[i] for i in indices] or ["noop"]

    def _shown(self) -> spec.Observation:
        run = self.source.run.observation
        image = (run.image or spec.Image()) if self.image else None
        if image is not None and image.size != self.size:
            image = spec.Image(self.size, image.detail)
        return spec.Observation(image=image, text=True)

    def _observation(self) -> dict[str, Any]:
        assert self.game is not None
        out: dict[str, Any] = {}
        if self.image:
            out["image"] = self.game.frame()
        if self.text:
            out["text"] = self.game.text((self.steps, self.source.run.steps))
        return out

    def _info(self, played: list[str], unlocked: list[str]) -> dict[str, Any]:
        assert self.game is not None and self.seed is not None
        return {
            "achievements": {n: self.game.achievements[n] for n in self.game.unlocked},
            "unlocked": list(unlocked),
            "actions": list(played),
            "seed": self.seed,
            "split": self.source.split_of(self.seed),
            "steps": self.steps,
            "env_steps": self.game.step_count,
        }
