"""Stage: rl (settings). The settings and seeds an RL environment takes from an eval file.

`Source.from_eval(path)` reads the file once (`spec.load`): the settings of one of its
models (the first, or `model`), its instructions, and its seed splits. RL plays the
`train` split by default: the file's `seeds: {train: ...}`, or, when the file declares
none, any seed outside its test seeds (`seeds: {test: ...}`, or a plain `seeds:` value,
which is the set pytest plays). A test seed is refused unless `include_test_seeds`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..config import spec

MAX_SEED = 2**31  # seeds are whole numbers from 0 to 2**31-1 (spec.parse_seeds)


class SplitError(ValueError):
    """A test seed asked for without `include_test_seeds`."""


@dataclass(frozen=True)
class Source:
    """What an RL environment plays: one run's settings, the instructions, the eval's
    name, and its seed splits."""

    run: spec.Run
    instructions: str | None = None
    eval_name: str = "rl"
    test_seeds: frozenset[int] = frozenset()
    train_seeds: tuple[int, ...] = ()  # empty: any seed outside test_seeds
    include_test_seeds: bool = False

    @classmethod
    def default(cls) -> Source:
        """The built-in settings, and no test seeds (no eval file)."""
        loaded = spec.load("rl.yaml", "models: [local/heuristic]\n")
        return cls(run=loaded.runs[0], eval_name="rl")

    @classmethod
    def from_eval(
        cls, path: str | Path, model: str | None = None, include_test_seeds: bool = False
    ) -> Source:
        """The settings of `model` in the eval file at `path` (its first model when
        None; a model it does not name gets the file's settings). Raises `spec.SpecError`."""
        return cls._of(spec.load(path), model, include_test_seeds)

    @classmethod
    def _of(cls, loaded: spec.EvalSpec, model: str | None, include_test_seeds: bool) -> Source:
        runs = {run.model: run for run in loaded.runs}
        run = (
            loaded.runs[0]
            if model is None
            else runs.get(model) or replace(loaded.defaults, model=model)
        )
        return cls(
            run=run,
            instructions=loaded.instructions,
            eval_name=loaded.name,
            test_seeds=frozenset(loaded.test_seeds or loaded.seeds),
            train_seeds=loaded.train_seeds,
            include_test_seeds=include_test_seeds,
        )

    def split_of(self, seed: int) -> str:
        return "test" if seed in self.test_seeds else "train"

    def check_seed(self, seed: int) -> int:
        """`seed`, if this source may play it; `SplitError` for a test seed."""
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise TypeError(f"a seed is a whole number, got {seed!r}")
        seed = int(seed)
        if not 0 <= seed < MAX_SEED:
            raise ValueError(f"a seed must be from 0 to 2**31-1, got {seed}")
        if seed in self.test_seeds and not self.include_test_seeds:
            raise SplitError(
                f"seed {seed} is a test seed of eval {self.eval_name!r} (seeds.test): "
                "RL plays its train split; pass include_test_seeds=True to play it anyway"
            )
        return seed

    def draw_seed(self, rng: np.random.Generator) -> int:
        """A training seed drawn with `rng`."""
        if self.train_seeds:
            return int(self.train_seeds[int(rng.integers(len(self.train_seeds)))])
        while True:
            seed = int(rng.integers(MAX_SEED))
            if seed not in self.test_seeds:
                return seed
