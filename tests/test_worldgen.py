"""agent.worldgen builds stock crafter's worlds: every tile, creature and random draw.

tests/data/stock_worlds.json holds digests of stock worlds, written once by
tests/data/stock_worlds.py (which says what each digest covers) with the crafter and
opensimplex versions it names. Seeds 0-999 take about 5 s of CPU in all.
"""

from __future__ import annotations

import concurrent.futures
import importlib.metadata
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import opensimplex
import pytest
from crafter import engine

from pytest_crafter_eval.agent import worldgen
from pytest_crafter_eval.agent.env import CrafterEnv

DATA = Path(__file__).parent / "data"
STORED = json.loads((DATA / "stock_worlds.json").read_text())
_spec = importlib.util.spec_from_file_location("stock_worlds", DATA / "stock_worlds.py")
assert _spec is not None and _spec.loader is not None
stock_worlds = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stock_worlds)


def test_the_digests_were_made_with_the_installed_crafter_and_opensimplex():
    installed = {name: importlib.metadata.version(name) for name in STORED["versions"]}
    assert installed == STORED["versions"] == {"crafter": "1.8.3", "opensimplex": "0.3"}
    assert len(STORED["worlds"]) == 1000 and len(STORED["frames"]) == 20


@pytest.mark.parametrize("first", range(0, 1000, 250))
def test_every_world_of_seeds_0_to_999_is_stock_crafters(first):
    differ = []
    for seed in range(first, first + 250):
        env = CrafterEnv(seed)
        env.reset()
        if stock_worlds.world_digest(env._env._world) != STORED["worlds"][str(seed)]:
            differ.append(seed)
    assert not differ, f"{len(differ)} worlds differ from stock crafter's: seeds {differ[:10]}"


def test_frames_of_100_steps_are_those_of_stock_worlds():
    differ = [
        seed
        for seed, digest in STORED["frames"].items()
        if stock_worlds.frames_digest(CrafterEnv(int(seed)), int(seed)) != digest
    ]
    assert not differ, f"frames differ from those of stock worlds for seeds {differ}"


def test_noise_is_bit_for_bit_opensimplex_03():
    rng = np.random.default_rng(0)
    x, y, z = rng.uniform(-40, 90, 3000), rng.uniform(-40, 90, 3000), rng.integers(-3, 10, 3000)
    for seed in (0, 1, 2**31 - 2):
        reference = opensimplex.OpenSimplex(seed)
        assert worldgen.permutation(seed) == reference._perm
        want = [reference.noise3d(a, b, c) for a, b, c in zip(x.tolist(), y.tolist(), z.tolist())]
        assert worldgen.noise3d(seed, x, y, z).tobytes() == np.array(want).tobytes()


def test_the_world_digest_sees_one_tile_one_creature_and_one_random_draw():
    def digest(change=None) -> str:
        env = CrafterEnv(7)
        env.reset()
        world: engine.World = env._env._world
        if change:
            change(world)
        return stock_worlds.world_digest(world)

    cow = lambda w: next(o for o in w.objects if type(o).__name__ == "Cow")  # noqa: E731
    same = digest()
    assert same == STORED["worlds"]["7"]
    assert digest(lambda w: w.__setitem__((0, 0), "lava")) != same
    assert digest(lambda w: w.move(cow(w), cow(w).pos + (0, 1))) != same
    assert digest(lambda w: w.random.uniform()) != same


def test_episodes_starting_at_once_on_threads_share_one_plan(monkeypatch):
    """The in-flight pool resets dozens of envs at once; each building the set-up (15 MB,
    more while it is made) multiplied a worker's peak memory."""
    monkeypatch.setattr(worldgen, "_PLANS", {})
    made = []
    real = worldgen._Plan
    monkeypatch.setattr(worldgen, "_Plan", lambda area: made.append(area) or real(area))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda seed: CrafterEnv(seed).reset(), range(8)))
    assert made == [(64, 64)]


def test_envs_made_at_once_on_threads_load_crafters_textures_once(monkeypatch):
    """crafter.Env reads 56 texture PNGs (~70 ms of CPU); 64 episodes starting at once on
    a worker's threads each read them before the first had stored its copy."""
    from crafter import engine

    from pytest_crafter_eval.agent import env as env_module

    monkeypatch.setattr(env_module, "_TEMPLATES", {})
    loads = []
    real = engine.Textures.__init__

    def counted(self, directory):
        loads.append(directory)
        time.sleep(0.05)  # the window in which the other threads arrive
        real(self, directory)

    monkeypatch.setattr(engine.Textures, "__init__", counted)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        envs = list(pool.map(lambda seed: CrafterEnv(seed), range(8)))
    assert len(loads) == 1
    assert len({id(e._env._textures) for e in envs}) == 1  # one copy, shared
    assert len({id(e._env._world) for e in envs}) == 8  # each its own world
