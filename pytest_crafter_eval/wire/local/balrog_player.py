"""Stage: wire (local models). A scripted Crafter player for BALROG's text protocol.

    action = choose_action(observation_text, random.Random(0))   # "Move West"

`local/heuristic` answers a request of `protocol: balrog` with this: one of BALROG's 17
action names, read from the last observation BALROG's language wrapper wrote (vitals,
inventory, the nearest thing of each kind with its distance and direction, and what the
player faces). It keeps no memory: drink and eat when low, sleep when tired, fight what
it faces, then the crafting ladder (wood, table, wood tools, sapling, stone, stone
tools), walking toward the nearest thing it needs, else exploring at random.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from crafter import constants

_ITEM = re.compile(r"^- (\w+): (\d+)(?:/9)?$")
_SEEN = re.compile(r"^- (\w+) (\d+) steps? to your ([a-z-]+)$")
_FRONT = re.compile(r"You face (\w+) at your front\.")
MOVE = {"north": "Move North", "south": "Move South", "west": "Move West", "east": "Move East"}
OPEN = {"grass", "sand", "path"}
CREATURES = {"zombie", "skeleton"}
TABLE_WOOD = constants.place["table"]["uses"]["wood"]


@dataclass
class Seen:
    vitals: dict[str, int] = field(default_factory=dict)
    inventory: dict[str, int] = field(default_factory=dict)
    things: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)
    front: str = "nothing"
    sleeping: bool = False

    def has(self, item: str, n: int = 1) -> bool:
        return self.inventory.get(item, 0) >= n

    def near(self, thing: str, distance: int) -> bool:
        return thing in self.things and self.things[thing][0] <= distance


def parse(text: str) -> Seen:
    """The facts of the last observation in a BALROG request's text."""
    start = text.rfind("Current Observation:")
    seen = Seen(sleeping="You are sleeping" in text[start:])
    section = ""
    for line in text[max(start, 0) :].splitlines():
        if line.startswith(("Your status", "Your inventory", "You see")):
            section = line.split(":")[0]
            continue
        item, thing = _ITEM.match(line), _SEEN.match(line)
        if item and section == "Your status":
            seen.vitals[item[1]] = int(item[2])
        elif item and section == "Your inventory":
            seen.inventory[item[1]] = int(item[2])
        elif thing:
            seen.things[thing[1]] = (int(thing[2]), tuple(thing[3].split("-")))
        front = _FRONT.search(line)
        if front:
            seen.front = front[1]
    return seen


def choose_action(text: str, rng: random.Random) -> str:
    """One BALROG action name for the observation `text`."""
    s = parse(text)
    vital = s.vitals.get
    if s.sleeping:
        return "Noop"
    if s.front in CREATURES:
        return "Do"
    for creature in CREATURES:  # one step away: turn to face it (the move is blocked)
        if s.near(creature, 1):
            return MOVE[s.things[creature][1][0]]
    if vital("energy", 9) <= 3:
        return "Sleep"
    if vital("drink", 9) <= 5 and s.front == "water":
        return "Do"
    if vital("food", 9) <= 5 and s.front == "cow":
        return "Do"
    table = s.near("table", 2)
    if table and s.has("wood"):
        for tool, needs in (
            ("wood_pickaxe", {"wood": 1}),
            ("wood_sword", {"wood": 1}),
            ("stone_pickaxe", {"wood": 1, "stone": 1}),
            ("stone_sword", {"wood": 1, "stone": 1}),
        ):
            if not s.has(tool) and all(s.has(k, n) for k, n in needs.items()):
                return "Make " + tool.replace("_", " ").title()
    if s.front in OPEN:
        if s.has("wood", TABLE_WOOD) and not s.near("table", 6):
            return "Place Table"
        if s.has("sapling"):
            return "Place Plant"
        if s.has("stone", 2) and rng.random() < 0.2:
            return "Place Stone"
        if s.front == "grass" and not s.has("sapling") and rng.random() < 0.15:
            return "Do"  # collect a sapling, sometimes
    if s.front == "tree" and not s.has("wood", 5):
        return "Do"
    if s.front in {"stone", "coal"} and s.has("wood_pickaxe"):
        return "Do"
    if s.front in {"water", "cow", "plant"}:
        return "Do"
    goals = [
        ("water", vital("drink", 9) <= 5),
        ("cow", vital("food", 9) <= 5),
        ("tree", not s.has("wood", 5)),
        ("table", s.has("wood") and not s.has("wood_pickaxe")),
        ("stone", s.has("wood_pickaxe") and not s.has("stone", 3)),
        ("coal", s.has("wood_pickaxe") and not s.has("coal")),
        ("water", vital("drink", 9) < 9),
        ("cow", vital("food", 9) < 9),
    ]
    for thing, wanted in goals:
        if wanted and thing in s.things and rng.random() < 0.85:
            return MOVE[rng.choice(s.things[thing][1])]
    return rng.choice(list(MOVE.values()))
