"""Write the digests of stock Crafter worlds that tests/test_worldgen.py compares against.

    python tests/data/stock_worlds.py > tests/data/stock_worlds.json    # about 4 minutes

Worlds: stock `crafter.Env(seed=s).reset()` for seeds 0-999; per seed, the sha256 (first
16 hex digits) of the material map's bytes, the objects as `Type x y` joined by `;`, and
the world RNG's state after the reset (so the order of random draws is pinned too).
Frames: this project's `CrafterEnv` built with crafter's own `worldgen.generate_world`
(stock `crafter.Env` frames differ from run to run, see agent/env.py), 20 seeds, the
frame after reset and after each of 100 steps of a fixed action sequence; per seed, the
sha256 (16 hex digits) of those frames' bytes in order.
The output names the crafter and opensimplex versions it was made with; the test checks
that they are the installed ones. The test imports `world_digest` and `frames_digest`.
"""

import hashlib
import importlib.metadata
import json
import sys

import crafter
import numpy as np

WORLD_SEEDS = range(1000)
FRAME_SEEDS = range(20)
FRAME_STEPS = 100


def action(seed: int, step: int) -> str:
    """The fixed action sequence: the same on every machine and Python version."""
    digest = hashlib.sha256(f"{seed}:{step}".encode()).digest()
    return crafter.constants.actions[digest[0] % len(crafter.constants.actions)]


def world_digest(world) -> str:
    objects = ";".join(f"{type(o).__name__} {o.pos[0]} {o.pos[1]}" for o in world.objects)
    _, keys, pos, has_gauss, gauss = world.random.get_state()
    h = hashlib.sha256(world._mat_map.tobytes())
    h.update(objects.encode())
    h.update(np.asarray(keys, np.uint32).tobytes() + f"{pos} {has_gauss} {gauss!r}".encode())
    return h.hexdigest()[:16]


def frames_digest(env, seed: int) -> str:
    env.reset()
    h = hashlib.sha256(env.frame().tobytes())
    for step in range(FRAME_STEPS):
        if env.done:
            break
        env.step(action(seed, step))
        h.update(env.frame().tobytes())
    return h.hexdigest()[:16]


def main() -> None:
    from pytest_crafter_eval.agent.env import CrafterEnv

    versions = {name: importlib.metadata.version(name) for name in ("crafter", "opensimplex")}
    worlds = {}
    for seed in WORLD_SEEDS:
        env = crafter.Env(seed=seed)
        env.reset()
        worlds[str(seed)] = world_digest(env._world)
        print(seed, file=sys.stderr, end="\r")
    frames = {
        str(seed): frames_digest(CrafterEnv(seed, generate=crafter.worldgen.generate_world), seed)
        for seed in FRAME_SEEDS
    }
    out = {"versions": versions, "frame_steps": FRAME_STEPS, "worlds": worlds, "frames": frames}
    print(json.dumps(out, indent=0))


if __name__ == "__main__":
    main()
