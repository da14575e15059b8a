"""Stage: agent (protocol `balrog`). BALROG's Crafter protocol, re-implemented: the requests its naive agent
sends, its answer parsing and feedback, its episode limit and its progression.

BALROG (github.com/balrog-ai/BALROG, read at commit af7d1f17e0deec3a7a0e334beae5f11b7a21371b)
is the benchmark behind the LLM/VLM leaderboard that reports Crafter "progression". This
module implements what its Crafter path does, from these files at that commit:

* balrog/environments/crafter/__init__.py: the action descriptions and the instruction
  prompt (`instruction_prompt`), sent as the first message, with role user.
* balrog/environments/crafter/env.py: the language wrapper's observation text
  (`describe`: long-term context = status and the 9x7 view's nearest thing of each kind
  with its walking distance and direction, and what the player faces; short-term
  context = vitals and inventory), and one noop step after reset (`CrafterLanguageWrapper.reset`).
* balrog/prompt_builder/history.py: the history (`History`): 16 observations of text
  and, in vision mode, the image of the last one only, within the last 32 events
  (observations and answers); "Current Observation:" with the short-term context for the
  last one, "Observation:" before the others, "Image observation provided." where an
  image is attached.
* balrog/agents/naive.py: the instruction appended to the last message, and the answer
  filter (letters, whitespace and colons kept); an answer filtered to "" is not
  remembered.
* balrog/evaluator.py: one action per step; an answer that is not exactly one of the 17
  action names plays Noop and the next observation starts with the feedback line; the
  history remembers the (filtered) answer, not the action played; 2,000 steps per episode
  (config.yaml `crafter_kwargs.max_episode_steps`).
* balrog/client.py (`OpenAIWrapper`) and balrog/config/config.yaml: the request body,
  `messages` (content as a list of parts; the image a PNG data URI without `detail`),
  `model`, `max_tokens` 8192 and `temperature` 1.0, nothing else.
* balrog/utils.py (`collect_and_summarize_results`): progression per episode is the share
  of the 22 achievements unlocked; the standard error is the population standard
  deviation / sqrt(n) (`standard_error`).

The words and numbers are data in `config.balrog`. tests/test_balrog.py checks, for 3
seeds x 50 steps in text and vision modes, that the bodies built here equal those
BALROG's own code built for the same observations (tests/data/balrog_reference.json,
made by scripts/balrog_reference.py, which runs BALROG's code).

What differs from BALROG, on purpose: the world. BALROG's `crafter.Env(seed=None)` draws
its world seed from numpy's global RNG, so its worlds do not follow a seed; here the
world is this project's deterministic one for the episode's seed (`agent.env`). Requests
go through this project's client (retries, rate limits, budgets), and an answer is any
chat completion's text.

    result = run_episode(run, seed, client, eval_name="balrog")   # run.protocol.name == "balrog"
"""

from __future__ import annotations

import base64
import io
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..config import balrog as facts
from ..config import profiles, spec
from ..config.game import ACTIONS as CRAFTER_ACTIONS
from ..wire import adapters
from .env import CrafterEnv
from .episode import (
    ANSWER_WITH,
    Cut,
    EpisodeResult,
    StepNotReached,
    _clip,
    _count_retries,
    _count_usage,
    _event,
)

if TYPE_CHECKING:
    from ..wire.client import ModelClient

_NOT_ANSWER = re.compile(r"[^a-zA-Z\s:]")
API = "chat"  # BALROG's OpenAI client speaks chat completions only
PAYLOAD_STEPS = (0, facts.TEXT_HISTORY + 1)  # the first request, and one with a full history


def instruction_prompt() -> str:
    """BALROG's instruction prompt for Crafter (sent first, as a user message)."""
    actions = ",\n".join(f"{name}: {facts.ACTION_HELP[name]}" for name in facts.ACTIONS)
    titles = "\n".join(f"{i}. {t}" for i, t in enumerate(facts.ACHIEVEMENT_TITLES, 1))
    return facts.INSTRUCTION.format(actions=actions, achievements=titles)


def read_answer(text: str | None) -> tuple[str, str | None]:
    """An answer as BALROG reads it: (the filtered completion, which the history
    remembers; the crafter action it names, or None when it is none of the 17 names)."""
    filtered = _NOT_ANSWER.sub("", (text or "").strip())
    if filtered in facts.ACTIONS:
        return filtered, CRAFTER_ACTIONS[facts.ACTIONS.index(filtered)]
    return filtered, None


# ---- the observation text (the language wrapper) ---------------------------------------


def _item_names(material_ids: dict, object_ids: dict) -> list[str]:
    """Semantic id -> name: material names, and crafter's object classes lower-cased."""
    names = [""] * (max([*material_ids.values(), *object_ids.values()]) + 1)
    for material, index in material_ids.items():
        names[index] = str(material)
    for cls, index in object_ids.items():
        names[index] = cls.__name__.lower()
    return names


def _where(dx: int, dy: int) -> str:
    parts = []
    if dy < 0:
        parts.append("north")
    elif dy > 0:
        parts.append("south")
    if dx < 0:
        parts.append("west")
    elif dx > 0:
        parts.append("east")
    distance = abs(dx) + abs(dy)
    return f"{distance} step{'s' if distance > 1 else ''} to your {'-'.join(parts)}"


@dataclass(frozen=True)
class State:
    """What BALROG's language wrapper reads of a Crafter state (its `info`)."""

    semantic: np.ndarray  # the whole world's semantic map, indexed [x, y]
    names: tuple[str, ...]  # semantic id -> name
    position: tuple[int, int]
    facing: tuple[int, int]
    view: tuple[int, int]  # crafter's view, (9, 9)
    inventory: dict[str, int]
    sleeping: bool
    health: int


def state_of(env: CrafterEnv) -> State:
    """The state of a `CrafterEnv` as BALROG's wrapper sees it."""
    raw = env._env  # the crafter.Env inside
    player = raw._player
    return State(
        semantic=raw._sem_view(),
        names=tuple(_item_names(raw._world._mat_ids, raw._sem_view._obj_ids)),
        position=(int(player.pos[0]), int(player.pos[1])),
        facing=(int(player.facing[0]), int(player.facing[1])),
        view=(int(raw._view[0]), int(raw._view[1])),
        inventory=dict(player.inventory),
        sleeping=bool(player.sleeping),
        health=int(player.health),
    )


def describe(state: State) -> tuple[str, str]:
    """(long-term context, short-term context) of a state, as BALROG words them."""
    short = describe_inventory(state.inventory)
    status = facts.SLEEPING if state.sleeping else facts.DIED if state.health <= 0 else ""
    seen = _describe_view(state)
    if seen is None:
        return facts.OUT_OF_MAP, short
    return (status + "\n\n" + seen + "\n\n").strip(), short


def describe_inventory(inventory: dict[str, int]) -> str:
    vitals = "\n".join(f"- {name}: {inventory[name]}/9" for name in facts.VITALS)
    items = "\n".join(
        f"- {name}: {n}" for name, n in inventory.items() if name not in facts.VITALS and n != 0
    )
    held = f"Your inventory:\n{items}" if items else "You have nothing in your inventory."
    return f"Your status:\n{vitals}\n\n{held}".strip()


def _describe_view(state: State) -> str | None:
    """What the player sees and faces; None where BALROG's wrapper fails (the player's
    tile does not hold the player)."""
    x, y = state.position
    names = state.names
    if names[state.semantic[x, y]] != "player":
        return None
    wx, wy = state.view
    # the same slice as BALROG's: negative starts near the map's edge wrap as Python's do
    view = state.semantic[x - wx // 2 : x + wx // 2 + 1, y - wy // 2 + 1 : y + wy // 2]
    cx, cy = wx // 2, wy // 2 - 1
    rows, cols = view.shape
    tx, ty = cx + state.facing[0], cy + state.facing[1]
    front = names[view[tx, ty]] if 0 <= tx < rows and 0 <= ty < cols else "nothing"
    nearest: dict[str, tuple[int, str]] = {}
    for i in range(rows):
        for j in range(cols):
            name = names[view[i, j]]
            if name == "player":
                continue
            dx, dy = i - cx, j - cy
            distance = abs(dx) + abs(dy)
            if name not in nearest or distance < nearest[name][0]:
                nearest[name] = (distance, _where(dx, dy))
    if nearest:
        seen = "You see:\n" + "\n".join(f"- {n} {where}" for n, (_, where) in nearest.items())
    else:
        seen = "You see nothing away from you."
    return f"{seen}\n\nYou face {front} at your front."


def png_data_uri(frame: np.ndarray) -> str:
    """A frame as BALROG attaches it: PIL RGB, PNG with Pillow's default settings."""
    buffer = io.BytesIO()
    Image.fromarray(frame).convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# ---- the history (the prompt builder) --------------------------------------------------


@dataclass
class _Event:
    text: str | None = None  # an observation's long-term context
    image: str | None = None  # an observation's image (a data URI)
    action: str | None = None  # an answer


class History:
    """BALROG's history of one episode: the last `2 * max(text, images)` events."""

    def __init__(self, text: int = facts.TEXT_HISTORY, images: int = 0):
        self.text, self.images = text, images
        self._events: deque[_Event] = deque(maxlen=max(text, images) * 2)
        self._short = ""

    def observe(self, long_term: str, short_term: str, image: str | None = None) -> None:
        self._short = short_term
        self._events.append(_Event(text=long_term, image=image))

    def answer(self, filtered: str) -> None:
        """Remember an answer, as the agent does with the previous one: only if non-empty."""
        if filtered:
            self._events.append(_Event(action=filtered))

    def messages(self, instructions: str) -> list[dict[str, Any]]:
        """The request's messages, as BALROG's OpenAI client sends them."""
        observations = [e for e in self._events if e.action is None]
        with_text = {
            id(e) for e in [e for e in observations if e.text is not None][::-1][: self.text]
        }
        with_image = {
            id(e) for e in [e for e in observations if e.image is not None][::-1][: self.images]
        }
        out = [_message("user", instructions)]
        last = len(self._events) - 1
        for index, event in enumerate(self._events):
            if event.action is not None:
                out.append(_message("assistant", event.action))
                continue
            parts = ["Current Observation:"] if index == last else ["Observation:"]
            if index == last and self._short:
                parts.append(self._short)
            if id(event) in with_text:
                parts.append(event.text or "")
            image = None
            if id(event) in with_image:
                image = event.image
                parts.append("Image observation provided.")
            text = "\n".join(parts)
            if index == last:
                text += "\n\n" + facts.NAIVE_INSTRUCTION
            out.append(_message("user", text, image))
        return out


def _message(role: str, text: str, image: str | None = None) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if image is not None:
        content.append({"type": "image_url", "image_url": {"url": image}})
    return {"role": role, "content": content}


def body(model: str, messages: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    """A request body with BALROG's keys, in its order: messages, model, then settings."""
    return {"messages": messages, "model": model, **settings}


# ---- the episode ---------------------------------------------------------------------------

NOT_AN_ACTION = "not_an_action"  # the class of an answer BALROG plays Noop for


def unsupported(run: spec.Run, profile: profiles.Profile) -> str | None:
    """Why `run` cannot be played under protocol balrog with this model, or None."""
    if run.protocol.vision and not profile.image_input:
        return (
            f"{run.model} does not take image input (profile {profile.entry!r}, "
            f"{profile.match}): use protocol balrog without vision"
        )
    if run.request.api not in (None, API):
        return (
            f"protocol balrog sends chat completions only (BALROG's OpenAI client), not "
            f"request.api {run.request.api!r}"
        )
    return None


def run_episode(
    run: spec.Run,
    seed: int,
    client: ModelClient,
    *,
    eval_name: str,
    instructions: str | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> EpisodeResult:
    """Play one episode as BALROG's naive agent does: one action per request, at most
    `run.steps` (2,000 unless changed) requests. `instructions` must be None (BALROG's
    prompt is part of the protocol; the eval file rejects them). `on_step` as for
    `episode.run_episode`, once per request; `actions` is the one action played."""
    from ..wire.client import ModelCallError

    started = time.perf_counter()
    vision = run.protocol.vision
    result = EpisodeResult(eval=eval_name, model=run.model, seed=seed, protocol=run.protocol.label)
    profile = profiles.for_run(run)
    why = unsupported(run, profile)
    if why:
        result.end, result.error, result.infra_error = "unsupported", why, False
        result.duration_s = time.perf_counter() - started
        return result
    adapter = adapters.get(API)
    result.api = adapter.name
    settings, _ = facts.settings(run)
    prompt = instruction_prompt()
    env = CrafterEnv(seed, size=facts.IMAGE_SIZE if vision else 64)
    env.reset()
    env.step("noop")  # BALROG's language wrapper steps once before the first observation
    history = History(facts.TEXT_HISTORY, 1 if vision else 0)
    remembered, feedback = "", False
    for step in range(run.steps):
        long_term, short_term = describe(state_of(env))
        if feedback:
            long_term = facts.FEEDBACK.format(action=facts.DEFAULT_ACTION) + long_term
        frame = env.frame() if vision or on_step is not None else None
        if remembered:  # the agent adds the previous answer first, if it is not empty
            history.answer(remembered)
        image = png_data_uri(frame) if frame is not None and vision else None
        history.observe(long_term, short_term, image)
        request = body(run.model, history.messages(prompt), settings)
        result.steps += 1
        try:
            response = client.complete(request, adapter)
        except Cut as exc:  # the run's budget is spent
            result.steps -= 1
            result.end, result.error = "cut", f"{exc}: episode cut before step {step}"
            break
        except ModelCallError as exc:
            _count_retries(result, exc.retries)
            result.end, result.error = "error", f"step {step}: {exc}"
            result.infra_error = exc.infra
            break
        _count_retries(result, response.retries)
        result.latencies_s.append(response.latency_s)
        reply = adapter.parse(response.body)
        _count_usage(result, reply.usage)
        cost = profile.cost(reply.usage.input, reply.usage.output)
        priced = {
            "tokens_in": reply.usage.input,
            "tokens_out": reply.usage.output,
            "cost_usd": cost,
        }
        result.cost_usd = (
            None if cost is None or result.cost_usd is None else result.cost_usd + cost
        )
        remembered, action = read_answer(reply.text)
        missed = None
        if action is None:
            missed = {
                "step": step,
                "class": NOT_AN_ACTION,
                "message": f"answer {_clip(reply.text or '')} is none of BALROG's 17 action names; "
                f"{facts.DEFAULT_ACTION} played",
                "finish_reason": reply.finish,
            }
            result.invalid_answers[NOT_AN_ACTION] = result.invalid_answers.get(NOT_AN_ACTION, 0) + 1
            result.noops += 1
            if result.first_invalid is None:
                result.first_invalid = missed
        else:
            result.tool_calls += 1  # answers naming a valid action (the tool-call rate's count)
            result.valid_actions += 1
        played = action or "noop"
        result.reward += env.step(played)
        feedback = action is None
        if on_step is not None:
            event = _event(step, 0, frame, request, response.body, adapter, reply, [played], env)
            on_step({**event, "no_tool_call": missed, **priced})
        if env.done:
            result.end = "done"
            break
    result.env_steps = env.step_count
    result.achievements = {name: env.achievements[name] for name in env.unlocked}
    result.duration_s = time.perf_counter() - started
    return result


def request_at(
    run: spec.Run,
    seed: int,
    step: int,
    instructions: str | None = None,
    answer_with: str = ANSWER_WITH,
    eval_name: str = "payload",
) -> dict[str, Any]:
    """The body of step `step`'s request, steps 0 to `step`-1 answered in-process by the
    local model `answer_with` (in BALROG's format). Raises `StepNotReached` when the
    episode ends earlier, `profiles.Unsupported` when the model cannot play it."""
    from ..wire.local.inprocess import InProcess

    why = unsupported(run, profiles.for_run(run))
    if why:
        raise profiles.Unsupported(why)
    bodies: dict[int, dict[str, Any]] = {}
    result = run_episode(
        replace(run, steps=step + 1),
        seed,
        InProcess(answer_with),  # type: ignore[arg-type]  # duck-typed: complete(body, adapter)
        eval_name=eval_name,
        on_step=lambda event: bodies.update({event["step"]: event["request"]}),
    )
    if step not in bodies:
        raise StepNotReached(
            f"the episode of {run.model} answered by {answer_with} ended at step "
            f"{result.steps - 1} ({result.end}: {result.error or result.end}), before step {step}"
        )
    return bodies[step]
