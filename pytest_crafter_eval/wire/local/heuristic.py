"""Stage: wire (local models). A scripted Crafter player that reads only the text observation.

    actions = choose_actions(env.text(), random.Random(0))

It keeps no memory between calls: each call parses the text observation (the format
documented in `CrafterEnv.text`) and returns 1-8 actions for the most urgent goal:

1. sleep on while asleep; fight a zombie next to the player;
2. drink or eat when low, or when that achievement is still missing;
3. sleep when tired (the first time as soon as energy drops, for `wake_up`);
4. the crafting ladder: wood, table, wood tools, sapling and plant, stone, stone
   tools, coal, furnace;
5. otherwise explore: keep walking the way the player faces, turning at random.

Text it cannot parse gets random moves, so it never fails.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from crafter import constants

MAX_ACTIONS = 8
MOVES = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
WALKABLE = {"grass", "sand", "path"}
PLACEABLE = {"grass", "sand", "path"}  # where a table or furnace may go
TABLE_WOOD = constants.place["table"]["uses"]["wood"]
FURNACE_STONE = constants.place["furnace"]["uses"]["stone"]
# (achievement, the recipe's item costs); all need a table nearby.
RECIPES = [
    ("make_wood_pickaxe", constants.make["wood_pickaxe"]["uses"]),
    ("make_wood_sword", constants.make["wood_sword"]["uses"]),
    ("make_stone_pickaxe", constants.make["stone_pickaxe"]["uses"]),
    ("make_stone_sword", constants.make["stone_sword"]["uses"]),
]

_OFFSET = re.compile(r"(\d+) (left|right|up|down)")
_NEARBY = re.compile(r"^- (\w+): (.*?) \[(\d+)\]$")


@dataclass
class Observation:
    """The parts of the text observation the policy uses."""

    vitals: dict[str, int] = field(default_factory=dict)
    inventory: dict[str, int] = field(default_factory=dict)
    achievements: set[str] = field(default_factory=set)
    facing: str = ""
    facing_dir: str = "down"
    adjacent: dict[str, str] = field(default_factory=dict)
    nearby: dict[str, tuple[int, int]] = field(default_factory=dict)
    sleeping: bool = False
    night: bool = False

    def has(self, item: str, amount: int = 1) -> bool:
        return self.inventory.get(item, 0) >= amount


def parse(text: str) -> Observation | None:
    """Parse a text observation; None if it does not look like one."""
    try:
        obs = _parse(text)
    except ValueError:
        return None
    if not obs.vitals or len(obs.adjacent) != 4 or obs.facing_dir not in MOVES:
        return None
    return obs


def _parse(text: str) -> Observation:
    obs = Observation()
    for line in text.splitlines():
        key, _, value = line.partition(": ")
        if key == "time":
            obs.night = value == "night"
        elif key == "sleeping":
            obs.sleeping = value == "yes"
        elif key in ("vitals", "inventory"):
            counts = dict(_pairs(value))
            setattr(obs, key, {k: int(v) for k, v in counts.items()})
        elif key == "achievements":
            obs.achievements = set() if value == "none" else set(value.split(", "))
        elif key == "facing":
            obs.facing, _, direction = value.partition(" (")
            obs.facing_dir = direction.rstrip(")")
        elif key == "adjacent":
            obs.adjacent = dict(_pairs(value))
        elif match := _NEARBY.match(line):
            obs.nearby[match[1]] = _offset(match[2])
    return obs


def _pairs(value: str) -> list[tuple[str, str]]:
    return [(a, b) for a, _, b in (p.partition(" ") for p in value.split(", ") if " " in p)]


def _offset(text: str) -> tuple[int, int]:
    dx = dy = 0
    for amount, direction in _OFFSET.findall(text):
        ux, uy = MOVES[direction]
        dx, dy = dx + ux * int(amount), dy + uy * int(amount)
    return dx, dy


def choose_actions(text: str, rng: random.Random) -> list[str]:
    """Return 1-8 action names for the state described by `text`."""
    obs = parse(text)
    if obs is None:
        return [
            rng.choice(["move_left", "move_right", "move_up", "move_down"])
            for _ in range(rng.randint(1, 4))
        ]
    actions = _plan(obs, rng)
    return actions[:MAX_ACTIONS] or ["noop"]


def _plan(obs: Observation, rng: random.Random) -> list[str]:
    done, vitals, near = obs.achievements, obs.vitals, obs.nearby
    if obs.sleeping:
        return ["sleep"] * MAX_ACTIONS
    zombie = near.get("zombie")
    if zombie and _dist(zombie) <= 1:
        return _go_do(obs, zombie, 5)
    if vitals.get("drink", 9) <= 4 and "water" in near:
        return _go_do(obs, near["water"], 9 - vitals["drink"])
    if vitals.get("food", 9) <= 4 and "cow" in near:
        return _go_do(obs, near["cow"], 5)
    tired = vitals.get("energy", 9) <= 2 or (
        vitals.get("energy", 9) < 9 and "wake_up" not in done and not obs.night
    )
    if tired and "zombie" not in near:
        return ["sleep"] * MAX_ACTIONS
    if "collect_drink" not in done and "water" in near:
        return _go_do(obs, near["water"], 2)
    if "eat_cow" not in done and "cow" in near:
        return _go_do(obs, near["cow"], 5)
    if "ripe_plant" in near:
        return _go_do(obs, near["ripe_plant"], 2)
    if vitals.get("drink", 9) <= 3 or vitals.get("food", 9) <= 3:
        return _explore(obs, rng)  # find water or a cow before anything else
    return _craft(obs, rng) or _top_up(obs) or _explore(obs, rng)


def _craft(obs: Observation, rng: random.Random) -> list[str]:
    """The next step up the crafting ladder, or [] if nothing is in reach."""
    done, near = obs.achievements, obs.nearby
    todo = [(name, uses) for name, uses in RECIPES if name not in done]
    makeable = [name for name, uses in todo if all(obs.has(item, n) for item, n in uses.items())]
    table = near.get("table")
    if table and makeable:
        if max(abs(table[0]), abs(table[1])) <= 1:  # crafting reaches the 8 tiles around
            return makeable
        return _go_do(obs, table, 0) + makeable
    if obs.facing in PLACEABLE:
        if obs.has("stone", FURNACE_STONE) and "place_furnace" not in done:
            return ["place_furnace"]
        if obs.has("stone") and "place_stone" not in done:
            return ["place_stone"]
        if obs.has("sapling") and "place_plant" not in done and obs.facing == "grass":
            return ["place_plant"]
    wood_needed = sum(uses.get("wood", 0) for _, uses in todo)
    if todo and not table:
        wood_needed += TABLE_WOOD
        if obs.has("wood", wood_needed) or (obs.has("wood", TABLE_WOOD + 1) and "tree" not in near):
            return _place(obs, "place_table", rng)
    if not obs.has("wood", wood_needed) and "tree" in near:
        return _go_do(obs, near["tree"], 3)
    if obs.has("wood_pickaxe"):
        stone_needed = sum(uses.get("stone", 0) for _, uses in todo)
        stone_needed += ("place_stone" not in done) + FURNACE_STONE * ("place_furnace" not in done)
        if not obs.has("stone", stone_needed) and "stone" in near:
            return _go_do(obs, near["stone"], 1)
        if "collect_coal" not in done and "coal" in near:
            return _go_do(obs, near["coal"], 1)
    if "collect_sapling" not in done and obs.facing == "grass":
        return ["do"] * 6 + ["place_plant"]
    if obs.has("wood_sword") and "defeat_zombie" not in done and "zombie" in near:
        return _go_do(obs, near["zombie"], 4)
    return []


def _top_up(obs: Observation) -> list[str]:
    if obs.vitals.get("drink", 9) < 8 and "water" in obs.nearby:
        return _go_do(obs, obs.nearby["water"], 9 - obs.vitals["drink"])
    if obs.vitals.get("food", 9) < 7 and "cow" in obs.nearby:
        return _go_do(obs, obs.nearby["cow"], 5)
    return []


def _place(obs: Observation, action: str, rng: random.Random) -> list[str]:
    """Place something on the faced tile, stepping first if it is not free."""
    if obs.facing in PLACEABLE:
        return [action]
    free = [d for d, thing in obs.adjacent.items() if thing in WALKABLE]
    return [f"move_{rng.choice(free)}", action] if free else _explore(obs, rng)


def _go_do(obs: Observation, target: tuple[int, int], times: int) -> list[str]:
    """Walk next to `target`, face it, then `do` it `times` times.

    The last move bumps into the target, which only turns the player to face it.
    Near lava only the first, checked, move is made.
    """
    dx, dy = target
    horizontal = ["move_right" if dx > 0 else "move_left"] * abs(dx)
    vertical = ["move_down" if dy > 0 else "move_up"] * abs(dy)
    moves = horizontal + vertical
    if horizontal and vertical and not _free(obs, horizontal[0]):
        moves = vertical + horizontal
    if moves and not _free(obs, moves[0]) and _dist(target) > 1:
        sideways = [d for d in MOVES if _free(obs, f"move_{d}")]
        moves = [f"move_{sideways[0]}"] if sideways else []
        times = 0
    if len(moves) > 1 and _lava_within(obs, 3):
        moves, times = moves[:1], 0
    return moves + ["do"] * times


def _free(obs: Observation, move: str) -> bool:
    return obs.adjacent.get(move.removeprefix("move_")) in WALKABLE


def _explore(obs: Observation, rng: random.Random) -> list[str]:
    """Keep going the way the player faces; turn at random or when blocked."""
    ahead = obs.facing
    if ahead == "tree" or (ahead == "water" and obs.vitals.get("drink", 9) < 9):
        return ["do", "do"]
    direction = obs.facing_dir
    if not _free(obs, direction) or rng.random() < 0.15:
        free = [d for d in MOVES if _free(obs, f"move_{d}")]
        direction = rng.choice(free or list(MOVES))
    steps = 1 if _lava_within(obs, 4) else rng.randint(4, 8)
    return [f"move_{direction}"] * steps


def _lava_within(obs: Observation, distance: int) -> bool:
    return "lava" in obs.nearby and _dist(obs.nearby["lava"]) <= distance


def _dist(offset: tuple[int, int]) -> int:
    return abs(offset[0]) + abs(offset[1])
