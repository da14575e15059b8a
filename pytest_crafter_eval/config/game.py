"""Stage: config (game facts). The words every stage shares: Crafter's actions and
achievements, and the one tool the model calls.

Facts as data, in one place: `agent.env` checks ACTIONS and ACHIEVEMENTS against the
installed `crafter` package when it is imported. Pure constants; imports nothing.
"""

from __future__ import annotations

# The 17 actions of Crafter 1.8, in crafter.constants order (the action index is the
# position here).
ACTIONS: tuple[str, ...] = (
    "noop",
    "move_left",
    "move_right",
    "move_up",
    "move_down",
    "do",
    "sleep",
    "place_stone",
    "place_table",
    "place_furnace",
    "place_plant",
    "make_wood_pickaxe",
    "make_stone_pickaxe",
    "make_iron_pickaxe",
    "make_wood_sword",
    "make_stone_sword",
    "make_iron_sword",
)

# The 22 achievements of Crafter 1.8, in crafter.constants order.
ACHIEVEMENTS: tuple[str, ...] = (
    "collect_coal",
    "collect_diamond",
    "collect_drink",
    "collect_iron",
    "collect_sapling",
    "collect_stone",
    "collect_wood",
    "defeat_skeleton",
    "defeat_zombie",
    "eat_cow",
    "eat_plant",
    "make_iron_pickaxe",
    "make_iron_sword",
    "make_stone_pickaxe",
    "make_stone_sword",
    "make_wood_pickaxe",
    "make_wood_sword",
    "place_furnace",
    "place_plant",
    "place_stone",
    "place_table",
    "wake_up",
)

# The one function tool the model calls, and how many actions one call may play.
TOOL_NAME = "interact_many"
MAX_ACTIONS = 8

# Frame sizes an eval may ask for, in pixels. Crafter draws a 9x9 grid of tiles, the
# inventory's counts at 0.6 of a tile: below 18 px (2 px tiles) that is 0 px, and
# crafter's renderer raises on the first frame.
IMAGE_SIZES: tuple[int, int] = (18, 1024)
