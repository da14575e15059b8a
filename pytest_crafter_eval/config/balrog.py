"""Stage: config (BALROG protocol facts). The words and numbers of BALROG's Crafter
protocol, shared by the agent that speaks it (`agent.balrog`) and the local model that
answers it (`wire.local.balrog_player`).

Taken from github.com/balrog-ai/BALROG at commit
af7d1f17e0deec3a7a0e334beae5f11b7a21371b: the action names and descriptions and the
achievement list from balrog/environments/crafter/__init__.py, the observation wording from
balrog/environments/crafter/env.py, the naive agent's instruction from
balrog/agents/naive.py, the feedback line from balrog/evaluator.py, the settings from
balrog/config/config.yaml (agent.max_text_history, crafter_kwargs.size and
max_episode_steps, client.generate_kwargs). Pure: constants, and `settings(run)` (a
run's body settings and what it changed of BALROG's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .spec import Run

COMMIT = "af7d1f17e0deec3a7a0e334beae5f11b7a21371b"

# The 17 actions as BALROG names them, in crafter's action order (index = crafter index).
ACTIONS: tuple[str, ...] = (
    "Noop",
    "Move West",
    "Move East",
    "Move North",
    "Move South",
    "Do",
    "Sleep",
    "Place Stone",
    "Place Table",
    "Place Furnace",
    "Place Plant",
    "Make Wood Pickaxe",
    "Make Stone Pickaxe",
    "Make Iron Pickaxe",
    "Make Wood Sword",
    "Make Stone Sword",
    "Make Iron Sword",
)
ACTION_HELP: dict[str, str] = {
    "Noop": "do nothing",
    "Move West": "move west on flat ground",
    "Move East": "move east on flat ground",
    "Move North": "move north on flat ground",
    "Move South": "move south on flat ground",
    "Do": "Multiuse action to collect material, drink from lake and hit creature in front",
    "Sleep": "sleep when energy level is below maximum",
    "Place Stone": "place a stone in front",
    "Place Table": "place a table",
    "Place Furnace": "place a furnace",
    "Place Plant": "place a plant",
    "Make Wood Pickaxe": "craft a wood pickaxe with a nearby table and wood in inventory",
    "Make Stone Pickaxe": "craft a stone pickaxe with a nearby table, wood, and stone in inventory",
    "Make Iron Pickaxe": "craft an iron pickaxe with a nearby table and furnace, wood, coal, and iron in inventory",
    "Make Wood Sword": "craft a wood sword with a nearby table and wood in inventory",
    "Make Stone Sword": "craft a stone sword with a nearby table, wood, and stone in inventory",
    "Make Iron Sword": "craft an iron sword with a nearby table and furnace, wood, coal, and iron in inventory",
}
# The achievements in the order the instruction prompt lists them.
ACHIEVEMENT_TITLES: tuple[str, ...] = (
    "Collect Wood",
    "Place Table",
    "Eat Cow",
    "Collect Sapling",
    "Collect Drink",
    "Make Wood Pickaxe",
    "Make Wood Sword",
    "Place Plant",
    "Defeat Zombie",
    "Collect Stone",
    "Place Stone",
    "Eat Plant",
    "Defeat Skeleton",
    "Make Stone Pickaxe",
    "Make Stone Sword",
    "Wake Up",
    "Place Furnace",
    "Collect Coal",
    "Collect Iron",
    "Make Iron Pickaxe",
    "Make Iron Sword",
    "Collect Diamond",
)
INSTRUCTION = (
    "You are an agent playing Crafter. The following are the only valid actions you can "
    "take in the game, followed by a short description of each action:\n\n{actions}.\n\n"
    "These are the game achievements you can get:\n{achievements}\n\n"
    "In a moment I will present a history of actions and observations from the game.\n"
    "Your goal is to get as far as possible by completing all the achievements.\n\nPLAY!"
)
NAIVE_INSTRUCTION = (
    "You always have to output one of the above actions at a time and no other text. "
    "You always have to output an action until the episode terminates."
)
FEEDBACK = (
    "\n\nYour previous output did not contain a valid action. Defaulted to action: {action}"
    "\n\nObservation:\n"
)
DEFAULT_ACTION = "Noop"
MAX_STEPS = 2000  # config.yaml envs.crafter_kwargs.max_episode_steps
TEXT_HISTORY = 16  # agent.max_text_history
IMAGE_SIZE = 256  # envs.crafter_kwargs.size
# generate_kwargs of config.yaml, as the body keys OpenAIWrapper sends (in its order)
SETTINGS: dict[str, Any] = {"max_tokens": 8192, "temperature": 1.0}
VITALS = ("health", "food", "drink", "energy")
OUT_OF_MAP = "Error, you are out of the map."
SLEEPING = "You are sleeping, and will not be able take actions until energy is full.\n\n"
DIED = "You died.\n\n"

# request setting (spec.Request field) -> the body key it sets; BALROG sends the first two
BODY_KEYS = {
    "max_output_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "reasoning_effort": "reasoning_effort",
}
# request settings BALROG's requests have no place for (no tools; chat completions only)
UNUSED_KEYS = (
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_budget",
    "api",
    "prompt_cache_key",
)


def settings(run: Run) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A run's body settings under `protocol: balrog` (BALROG's, with the eval file's
    request settings and steps over them) and what differs from BALROG's, in words
    (`temperature 0.2 (BALROG: 1.0)`). A request setting counts when the eval file sets
    it or it differs from the default."""
    body = dict(SETTINGS)
    given = {key for key, _ in run.lines}
    defaults = type(run.request)()
    for field, key in BODY_KEYS.items():
        value = getattr(run.request, field)
        if f"request.{field}" in given or value != getattr(defaults, field):
            if value is None:
                body.pop(key, None)
            else:
                body[key] = value
    changed = [
        f"{key} {body.get(key, 'not sent')} (BALROG: {SETTINGS.get(key, 'not sent')})"
        for key in dict.fromkeys([*SETTINGS, *body])
        if body.get(key) != SETTINGS.get(key)
    ]
    if run.steps != MAX_STEPS:
        changed.insert(0, f"steps {run.steps} (BALROG: {MAX_STEPS})")
    return body, tuple(changed)
