"""Stage: agent (env). A deterministic wrapper around the real `crafter` package (1.8.3).

    env = CrafterEnv(seed=3)
    env.reset()
    reward = env.step("move_left")
    env.frame()    # HxWx3 uint8, a pure function of the game state
    env.text()     # the text observation, see `CrafterEnv.text`

Crafter itself is used unmodified; three things are changed around it:

* Chunk membership is insertion-ordered. `crafter.Env._balance_object` picks
  which creature to despawn from `world._chunks[...]`, a `set` whose order follows
  memory addresses, so the same seed and actions could play out differently in
  another process.
* Night-time render noise comes from its own RNG, seeded from (seed, step).
  Crafter draws it from `world.random`, so every extra render changed the game
  (danijar/crafter issue 31), and frames were not reproducible.
* Stepping does not render. Crafter renders a frame on every step; here a frame
  is only made when `frame()` is called.

Every `reset()` builds the same world: the one stock `crafter.Env(seed=seed)`
builds on its first reset.
"""

from __future__ import annotations

import base64
import collections
import copy
import io
from typing import Any

import crafter
import numpy as np
from crafter import constants, engine, objects
from PIL import Image

from ..config.game import ACHIEVEMENTS, ACTIONS

if (tuple(constants.actions), tuple(constants.achievements)) != (ACTIONS, ACHIEVEMENTS):
    raise ImportError(
        f"crafter {crafter.__version__ if hasattr(crafter, '__version__') else ''} has other "
        "actions or achievements than config.game lists (Crafter 1.8.3)"
    )
VITALS: tuple[str, ...] = ("health", "food", "drink", "energy")

# The map part of crafter's 9x9 view is 9 tiles wide and 7 high, centred on the player.
VIEW_RADIUS_X, VIEW_RADIUS_Y = 4, 3

_DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
_DIRECTION_NAMES = {vector: name for name, vector in _DIRECTIONS.items()}


class _OrderedSet:
    """The part of the `set` interface crafter uses, iterating in insertion order."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict = {}

    def add(self, item) -> None:
        self._items[item] = None

    def remove(self, item) -> None:
        del self._items[item]

    def __contains__(self, item) -> bool:
        return item in self._items

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class _World(engine.World):
    def reset(self, seed=None):
        super().reset(seed)
        self._chunks = collections.defaultdict(_OrderedSet)


class _LocalView(engine.LocalView):
    noise_rng: np.random.Generator

    def _noise(self, canvas, amount, stddev):
        # Crafter's blend of darkness noise, drawn from noise_rng, not world.random.
        noise = self.noise_rng.uniform(32, 127, canvas.shape[:2])[..., None]
        mask = amount * self._vignette(canvas.shape, stddev)[..., None]
        return (1 - mask) * canvas + mask * noise


# The attributes `crafter.Env.__init__` set for each frame size, made once per process.
_TEMPLATES: dict[int, dict] = {}


class _Env(crafter.Env):
    """`crafter.Env` with the fixes listed in the module docstring."""

    # set by crafter.Env.__init__ (crafter has no type information)
    _sem_view: Any
    _world: Any
    _local_view: Any

    def __init__(self, seed: int, size: int, length: int) -> None:
        # crafter.Env.__init__ reads its 56 texture PNGs from disk for every env, about
        # 70 ms (a third of a reset). They never change: later envs share the first
        # one's textures and item view, and get their own world and views.
        template = _TEMPLATES.get(size)
        if template is None:
            super().__init__(size=(size, size), length=length, seed=seed)
            _TEMPLATES[size] = dict(vars(self))
        else:
            self.__dict__.update(template)
            self._seed, self._length = seed, length
            self._sem_view = copy.copy(self._sem_view)
        self._world = _World(self._area, constants.materials, self._world._chunk_size)
        self._local_view = _LocalView(self._world, self._textures, self._local_view._grid)
        self._sem_view._world = self._world

    def reset(self):
        self._episode = 0  # every reset builds the world of crafter's first episode
        return super().reset()

    def render(self, size=None):
        self._local_view.noise_rng = np.random.default_rng((self._seed % 2**32, self._step))
        return super().render(size)

    def _obs(self):
        return None


class CrafterEnv:
    """One Crafter episode, stepped by action name.

    Call `reset()` before anything else; it may be called again to start over in
    the same world.
    """

    def __init__(self, seed: int, size: int = 64, length: int = 10000) -> None:
        self.seed = seed
        self.size = size
        self.length = length
        self._env = _Env(seed, size, length)
        self._started = False
        self.done = False
        self.step_count = 0
        self.reward_total = 0.0
        self.unlocked: list[str] = []

    def reset(self) -> None:
        self._env.reset()
        self._started = True
        self.done = False
        self.step_count = 0
        self.reward_total = 0.0
        self.unlocked = []

    def step(self, action: str) -> float:
        """Play one action and return crafter's reward for this step.

        That reward is +1 on a step that unlocks any new achievement, plus the
        change in health / 10.
        """
        self._check_started()
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; expected one of {ACTIONS}")
        if self.done:
            raise RuntimeError("the episode is over; call reset() to start again")
        _, reward, done, _ = self._env.step(ACTIONS.index(action))
        self.step_count += 1
        self.done = bool(done)
        self.reward_total += reward
        for name in ACHIEVEMENTS:
            if self._player.achievements[name] and name not in self.unlocked:
                self.unlocked.append(name)
        return float(reward)

    @property
    def _player(self) -> objects.Player:
        self._check_started()
        return self._env._player

    def _check_started(self) -> None:
        if not self._started:
            raise RuntimeError("call reset() first")

    @property
    def achievements(self) -> dict[str, int]:
        """How often each of the 22 achievements has been done this episode."""
        return dict(self._player.achievements)

    @property
    def inventory(self) -> dict[str, int]:
        """All 16 inventory counts, the 4 vitals included."""
        return dict(self._player.inventory)

    @property
    def health(self) -> int:
        return self._player.inventory["health"]

    @property
    def position(self) -> tuple[int, int]:
        """(x, y) in the 64x64 world; x grows to the right, y grows downwards."""
        x, y = self._player.pos
        return int(x), int(y)

    @property
    def facing(self) -> str:
        """The direction the player faces: left, right, up or down."""
        return _DIRECTION_NAMES[tuple(self._player.facing)]

    @property
    def daylight(self) -> float:
        """1.0 at noon, 0.0 at midnight."""
        return float(self._env._world.daylight)

    @property
    def sleeping(self) -> bool:
        return bool(self._player.sleeping)

    def frame(self) -> np.ndarray:
        """Render the current state as a `size` x `size` x 3 uint8 image.

        Rendering never changes the game, and the same state gives the same frame.
        """
        self._check_started()
        return self._env.render()

    def text(self) -> str:
        """The text observation: one fact per line, every line `key: value`.

            step: 37 of 10000
            time: day
            vitals: health 9, food 8, drink 7, energy 9
            inventory: wood 2, sapling 1
            achievements: collect_wood, collect_sapling
            facing: tree (up)
            adjacent: left grass, right cow, up tree, down grass
            nearby (nearest of each thing in the 9x7 view, [count]):
            - tree: 1 up [4]
            - cow: 1 right [1]
            - water: 3 right 2 down [6]

        * `time` is `day` or `night` (daylight below 0.5); `sleeping: yes` follows
          it while the player sleeps.
        * `inventory` lists non-zero items except the vitals, or says `none`;
          `achievements` lists those unlocked so far in order, or says `none`.
        * `facing` is what `do` would act on: a creature if one is there, else the
          material; `edge` is outside the world.
        * `adjacent` gives the same for the four neighbouring tiles.
        * `nearby` has one line per material and creature type seen, nearest first
          (ties in a fixed order). Offsets count tiles from the player: x first
          (left/right), then y (up/down); a zero component is left out. Creatures
          are cow, zombie, skeleton, arrow, plant and ripe_plant. The player's own
          tile is not included.
        """
        player = self._player
        inv = player.inventory
        lines = [
            f"step: {self.step_count} of {self.length}",
            f"time: {'day' if self.daylight >= 0.5 else 'night'}",
        ]
        if player.sleeping:
            lines.append("sleeping: yes")
        lines += [
            "vitals: " + ", ".join(f"{name} {inv[name]}" for name in VITALS),
            "inventory: "
            + (
                ", ".join(
                    f"{name} {count}" for name, count in inv.items() if count and name not in VITALS
                )
                or "none"
            ),
            "achievements: " + (", ".join(self.unlocked) or "none"),
            f"facing: {self._thing(player.facing)} ({self.facing})",
            "adjacent: "
            + ", ".join(f"{name} {self._thing(offset)}" for name, offset in _DIRECTIONS.items()),
            "nearby (nearest of each thing in the 9x7 view, [count]):",
        ]
        nearest: dict[str, tuple[int, int]] = {}
        counts: collections.Counter[str] = collections.Counter()
        for dx, dy in _VIEW_OFFSETS:
            for thing in self._things((dx, dy)):
                counts[thing] += 1
                nearest.setdefault(thing, (dx, dy))
        for thing, offset in nearest.items():
            lines.append(f"- {thing}: {offset_text(*offset)} [{counts[thing]}]")
        return "\n".join(lines)

    def _things(self, offset) -> list[str]:
        """Names of the material and the creature (if any) at an offset from the player."""
        x, y = self._player.pos
        material, obj = self._env._world[x + offset[0], y + offset[1]]
        if material is None:
            return []
        names = [material]
        if obj is not None and obj is not self._player:
            names.append(_creature_name(obj))
        return names

    def _thing(self, offset) -> str:
        names = self._things(offset)
        return names[-1] if names else "edge"


def offset_text(dx: int, dy: int) -> str:
    """Describe a tile offset the way the text observation does: `2 left 1 up`."""
    parts = []
    if dx:
        parts.append(f"{abs(dx)} {'right' if dx > 0 else 'left'}")
    if dy:
        parts.append(f"{abs(dy)} {'down' if dy > 0 else 'up'}")
    return " ".join(parts) or "here"


def _creature_name(obj) -> str:
    if isinstance(obj, objects.Plant):
        return "ripe_plant" if obj.ripe else "plant"
    return type(obj).__name__.lower()


# View offsets sorted by walking distance, then row, then column; excludes (0, 0).
_VIEW_OFFSETS = sorted(
    (
        (dx, dy)
        for dx in range(-VIEW_RADIUS_X, VIEW_RADIUS_X + 1)
        for dy in range(-VIEW_RADIUS_Y, VIEW_RADIUS_Y + 1)
        if (dx, dy) != (0, 0)
    ),
    key=lambda o: (abs(o[0]) + abs(o[1]), o[1], o[0]),
)


def png_bytes(frame: np.ndarray) -> bytes:
    """Encode an HxWx3 uint8 frame as PNG (fast, lightly compressed)."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def data_uri(frame: np.ndarray) -> str:
    """Encode a frame as `data:image/png;base64,...` for an image_url content part."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(frame)).decode("ascii")
