"""Stage: rl (TRL). `CrafterTools`, a Crafter episode for TRL's `GRPOTrainer(environment_factory=...)`.

TRL builds instances with no arguments (pass `CrafterTools`, or the factory
`CrafterTools.from_eval(path)`), calls `reset(**row)` at the start of each rollout and
appends what it returns to the prompt, offers every public method but `reset` and
`get_reward` as a tool (its schema from the type hints and the docstring), and sums
`get_reward()` into the rollout's reward; reward functions get the instances as
`environments=`. So the one public method here is the harness's tool, `interact_many`.

An answer is read and played as an episode plays it (`episode.play_answer`: the tool's
argument goes through `tools.parse_calls`, cut at 8 actions, invalid names dropped, an
answer without a valid action ends the episode or plays noop as `answer.on_invalid`
says, with the same feedback), and each observation is the one the harness sends
(`episode.observe`, with the notice of the last answer), the frame as a PIL image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..agent import episode
from ..agent.env import CrafterEnv
from ..wire import tools
from ..wire.conversation import Reply, ToolCall
from .source import Source

OVER = "The episode is over: no action was played."


class CrafterTools:
    """One Crafter episode at a time, played through the tool `interact_many`.

    After `reset`: `reward` (the sum of Crafter's rewards), `achievements`
    ({name: count} unlocked), `done` (the game ended, the eval's `steps` calls were
    made, or an invalid answer ended it), `steps` (tool calls answered), `seed`, `env`
    (the `CrafterEnv`), and `last` (the observation shown last: text and frame)."""

    def __init__(self, source: Source | None = None, *, rng_seed: int | None = None) -> None:
        self.source = source or Source.default()
        run = self.source.run
        if not run.answer.sends_tools:  # TRL only calls tools: a text eval is played by them
            run = replace(run, answer=replace(run.answer, format="auto"))
        self.run = run
        self.instructions = episode.system_prompt(self.source.instructions, "tool")
        self._rng = np.random.default_rng(rng_seed)
        self.env: CrafterEnv | None = None
        self.seed: int | None = None
        self.reward = 0.0
        self.achievements: dict[str, int] = {}
        self.done = False
        self.end: str | None = None  # done | steps | no_tool_call, once done
        self.steps = 0
        self.last: episode.Observation | None = None
        self.frame: np.ndarray | None = None

    @classmethod
    def from_eval(
        cls,
        path: str | Path,
        model: str | None = None,
        *,
        include_test_seeds: bool = False,
        rng_seed: int | None = None,
    ) -> Factory:
        """A factory TRL can call with no arguments: instances with the settings of
        `model` (the file's first when None) in the eval file at `path`, read once now.
        It pickles (AsyncGRPOTrainer sends the factory to its rollout process)."""
        return Factory(Source.from_eval(path, model, include_test_seeds), rng_seed)

    def reset(self, seed: int | None = None, **columns: Any) -> list[dict[str, Any]]:
        """Start an episode on `seed` (a dataset column; a training seed drawn at
        random when None) and return the instructions and first observation as
        content blocks: text, then the frame as `{"type": "image", "image": PIL}`
        when the eval shows images."""
        self.seed = (
            self.source.draw_seed(self._rng) if seed is None else self.source.check_seed(seed)
        )
        observation = self.run.observation
        self.env = episode.new_env(self.seed, observation)
        self.reward, self.achievements = 0.0, {}
        self.done, self.end, self.steps = False, None, 0
        shown = self._show(None)
        return self._blocks(f"{self.instructions}\n\n{shown.text}")

    def get_reward(self) -> float:
        """The episode's reward so far: the sum of Crafter's rewards (TRL adds it to
        the rollout's reward)."""
        return self.reward

    def interact_many(self, actions: list[str]) -> list[dict[str, Any]]:
        """Perform 1 to 8 Crafter actions in order. Movement faces the player in that direction; 'do' collects, attacks or drinks what the player faces.

        Args:
            actions: The actions to play, in order, 1 to 8 of: noop, move_left, move_right, move_up, move_down, do, sleep, place_stone, place_table, place_furnace, place_plant, make_wood_pickaxe, make_stone_pickaxe, make_iron_pickaxe, make_wood_sword, make_stone_sword, make_iron_sword.

        Returns:
            What happened, then the next observation: the state as text and the game frame.
        """
        if self.env is None:
            raise RuntimeError("call reset() first")
        if self.done:
            return [{"type": "text", "text": OVER}]
        call = ToolCall(f"call_{self.steps}", tools.TOOL_NAME, json.dumps({"actions": actions}))
        return self.answer(Reply(tool_calls=(call,)))

    def answer(self, reply: Reply) -> list[dict[str, Any]]:
        """Play a whole parsed reply (any number of tool calls, or none) as one step of
        the episode; return the tool result and next observation as content blocks."""
        assert self.env is not None
        answer = self.run.answer
        parsed, _ = episode.read_answer(reply, answer.format)
        played = episode.play_answer(self.env, parsed, reply, answer, self.run.history.steps)
        for reward in played.rewards:
            self.reward += reward
        self.achievements = {name: self.env.achievements[name] for name in self.env.unlocked}
        self.steps += 1
        result = played.outcome.call_text(0) if reply.tool_calls else played.outcome.text
        if played.ended:
            self.done, self.end = True, "no_tool_call"
        elif self.env.done:
            self.done, self.end = True, "done"
        elif self.steps >= self.run.steps:
            self.done, self.end = True, "steps"
        if self.done:
            return [{"type": "text", "text": f"{result}\n\n{OVER}"}]
        shown = self._show(played.notice)
        return self._blocks(f"{result}\n\n{shown.text}")

    def _show(self, notice: str | None) -> episode.Observation:
        """Render the current state once: the frame, and what a request would show."""
        assert self.env is not None
        self.frame = self.env.frame()
        turn = (self.steps, self.run.steps)
        shown = episode.observe(self.env, self.run.observation, self.frame, "tool", turn)
        self.last = episode.with_notice(shown, notice)
        return self.last

    def _blocks(self, text: str) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": text}]
        if self.run.observation.image is not None and self.frame is not None:
            blocks.append({"type": "image", "image": Image.fromarray(self.frame)})
        return blocks


@dataclass
class Factory:
    """Makes `CrafterTools` of one `Source`; instance n draws its seeds from
    `rng_seed + n` (from fresh entropy when `rng_seed` is None)."""

    source: Source
    rng_seed: int | None = None
    made: int = 0

    def __call__(self) -> CrafterTools:
        salt = None if self.rng_seed is None else self.rng_seed + self.made
        self.made += 1
        return CrafterTools(self.source, rng_seed=salt)
