"""Stage: episode. Runs one Crafter episode against one model and returns its result.

Knows no pytest, and no wire format. The loop: observe -> add a turn to the
conversation -> the run's wire adapter (`adapters/`) renders the request for the
model's profile -> call the model -> the adapter parses the reply -> step the env with
each action of its tool calls -> record what happened in the turn. A response with no
usable tool call ends the episode and says why; a failed request ends it as an error.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from . import adapters, metrics, profiles, spec, tools
from .adapters import Adapter
from .conversation import Conversation, Observation, Outcome, Usage
from .env import ACTIONS, CrafterEnv, data_uri

SYSTEM_PROMPT = """You are playing Crafter, a 2D survival game seen from above. \
Unlock as many achievements as you can: collect wood, place a table, make tools, \
find water and food, survive the night.
Each turn you see the game frame and a text description of your state. Answer by \
calling the tool interact_many with 1 to 8 actions, run in order.
Actions: {actions}.
Moving toward a blocked tile turns you to face it; 'do' collects, attacks or drinks \
whatever you face. Crafting needs a nearby table (and a furnace for iron tools)."""

if TYPE_CHECKING:  # the openai SDK takes 0.5 s to import; payload items need no client
    from .client import ModelClient

IMAGE_ONLY_PROMPT = "What do you do next? Call interact_many."


@dataclass
class EpisodeResult:
    """Everything one episode produced. `outcome` is set by whoever judges it."""

    eval: str
    model: str
    seed: int
    steps: int = 0  # model calls made
    env_steps: int = 0  # Crafter steps taken
    achievements: dict[str, int] = field(default_factory=dict)  # unlocked -> count
    reward: float = 0.0  # sum of Crafter's per-step rewards
    tool_calls: int = 0  # steps whose answer had a valid tool call
    valid_actions: int = 0
    invalid_actions: int = 0
    malformed_calls: int = 0
    unknown_tools: int = 0
    too_many_actions: int = 0  # calls with more than 8 actions (cut to 8)
    no_tool_call: dict[str, Any] | None = None  # {step, class, message, finish_reason}
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_reasoning: int = 0
    latencies_s: list[float] = field(default_factory=list)
    retries: dict[str, int] = field(default_factory=dict)  # cause ("429", "timeout", ...) -> count
    retry_wait_s: float = 0.0  # time spent waiting between attempts
    duration_s: float = 0.0
    end: str = "steps"  # steps | done | no_tool_call | error | unsupported
    error: str | None = None
    infra_error: bool = False
    outcome: str | None = None  # passed | failed | error | skipped | xfailed
    gif: str | None = None  # the episode's animated frames, relative to the report dir

    @property
    def tool_call_rate(self) -> float:
        return self.tool_calls / self.steps if self.steps else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The fields, plus tool_call_rate, latency p50/p95 and the no-tool-call class
        (the record format is documented in `results`)."""
        data = asdict(self)
        data["tool_call_rate"] = self.tool_call_rate
        data["latency_p50_s"] = metrics.percentile(self.latencies_s, 50)
        data["latency_p95_s"] = metrics.percentile(self.latencies_s, 95)
        data["no_tool_call_class"] = self.no_tool_call["class"] if self.no_tool_call else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpisodeResult:
        """The result a `to_dict` (or a results.jsonl record) describes; other keys are
        ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def system_prompt(instructions: str | None = None) -> str:
    return instructions or SYSTEM_PROMPT.format(actions=", ".join(ACTIONS))


def observe(
    env: CrafterEnv, observation: spec.Observation, frame: np.ndarray | None = None
) -> Observation:
    """What the model is shown of the current state: the text (or a short prompt for
    image-only evals) and the frame as a data URI (`frame` if given, so that a caller
    who already rendered it does not render twice)."""
    text = env.text() if observation.text else IMAGE_ONLY_PROMPT
    if observation.image is None:
        return Observation(text)
    image = data_uri(env.frame() if frame is None else frame)
    return Observation(text, image, observation.image.detail)


def first_request(run: spec.Run, seed: int, instructions: str | None = None) -> dict[str, Any]:
    """The body of an episode's first request, without calling anything. The first
    observation is computed once per (seed, observation) in a process: every model of an
    eval file sees the same one."""
    profile = profiles.for_run(run)
    profiles.check_capabilities(run, profile)  # before resetting an env for nothing
    adapter = adapters.for_run(run, profile)
    prompt = system_prompt(instructions)
    prepared = adapters.prepare(adapter, run, profile, prompt)
    conversation = Conversation(prompt)
    conversation.observe(_first_observation(seed, run.observation))
    return adapter.body(prepared.template, conversation.window())


def api_name(run: spec.Run) -> str:
    """The name of the wire API a run's requests use (`request.api`, else the profile's)."""
    return adapters.for_run(run, profiles.for_run(run)).name


@functools.lru_cache(maxsize=16)
def _first_observation(seed: int, observation: spec.Observation) -> Observation:
    return observe(_new_env(seed, observation), observation)


def _new_env(seed: int, observation: spec.Observation) -> CrafterEnv:
    """A reset env whose frames have the observation's image size (64 when text-only)."""
    env = CrafterEnv(seed, size=observation.image.size if observation.image else 64)
    env.reset()
    return env


def run_episode(
    run: spec.Run,
    seed: int,
    client: ModelClient,
    *,
    eval_name: str,
    instructions: str | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> EpisodeResult:
    """Play one episode of `run.model` on `seed` for at most `run.steps` model calls.

    `on_step`, if given, is called after every answered model call with a dict: `step`,
    `frame` (the HxWx3 frame of the state the model saw, rendered even for text-only
    observations), `request`, `response` (the bodies sent and received), `adapter` (the
    wire adapter that made and parsed them), `reply` (the parsed `conversation.Reply`),
    `actions` (the valid actions played), `reward` (the total so far), `achievements`
    (unlocked so far, in order) and `no_tool_call` (None, or why the answer had no
    usable tool call).
    """
    from .client import ModelCallError

    started = time.perf_counter()
    result = EpisodeResult(eval=eval_name, model=run.model, seed=seed)
    profile = profiles.for_run(run)
    try:
        profiles.check_capabilities(run, profile)
    except profiles.Unsupported as exc:  # before any env work or request: a verdict
        result.end, result.error, result.infra_error = "unsupported", str(exc), False
        result.duration_s = time.perf_counter() - started
        return result
    env = _new_env(seed, run.observation)
    adapter = adapters.for_run(run, profile)
    prompt = system_prompt(instructions)
    # The settings part of the body is built once per episode; each step renders turns.
    template = adapters.prepare(adapter, run, profile, prompt).template
    # History: earlier turns sent with each request, and how many keep their frame.
    # Today every request holds only the current turn (issue "Agent protocol" sets these).
    history_steps, history_images = 0, 0
    conversation = Conversation(prompt, keep=history_steps + 1)
    wants_frame = run.observation.image is not None or on_step is not None
    for step in range(run.steps):
        frame = env.frame() if wants_frame else None  # one render per step, shared
        turn = conversation.observe(observe(env, run.observation, frame))
        body = adapter.body(template, conversation.window(history_steps), history_images)
        result.steps += 1
        try:
            response = client.complete(body, adapter)
        except ModelCallError as exc:
            _count_retries(result, exc.retries)
            message = f"step {step}: {exc}"
            if exc.status == 400 and exc.param:
                message += f" [{profile_rule(profile, exc.param, adapter)}]"
            result.end, result.error, result.infra_error = "error", message, exc.infra
            break
        _count_retries(result, response.retries)
        result.latencies_s.append(response.latency_s)
        reply = adapter.parse(response.body)
        _count_usage(result, reply.usage)
        parsed = tools.parse_calls(reply.tool_calls)
        result.invalid_actions += parsed.invalid_actions
        result.malformed_calls += parsed.malformed_json
        result.unknown_tools += parsed.unknown_tools
        result.too_many_actions += parsed.too_many_actions
        if not parsed.ok:
            kind, why = adapter.diagnose(reply, body, parsed)
            result.no_tool_call = {
                "step": step,
                "class": kind,
                "message": why,
                "finish_reason": reply.finish,
            }
            result.end = "no_tool_call"
        played: list[str] = []
        unlocked_before, reward_before = len(env.unlocked), env.reward_total
        if parsed.ok:
            result.tool_calls += 1
            for action in parsed.actions:
                result.reward += env.step(action)
                result.valid_actions += 1
                played.append(action)
                if env.done:
                    break
        turn.reply = reply
        turn.outcome = Outcome(
            actions=tuple(played),
            reward=env.reward_total - reward_before,
            new_achievements=tuple(env.unlocked[unlocked_before:]),
            invalid=tuple(parsed.invalid_names),
        )
        if on_step is not None:
            on_step(
                {
                    "step": step,
                    "frame": frame,
                    "request": body,
                    "response": response.body,
                    "adapter": adapter,
                    "reply": reply,
                    "actions": played,
                    "reward": env.reward_total,
                    "achievements": list(env.unlocked),
                    "no_tool_call": result.no_tool_call if not parsed.ok else None,
                }
            )
        if not parsed.ok:
            break
        if env.done:
            result.end = "done"
            break
    result.env_steps = env.step_count
    result.achievements = {name: env.achievements[name] for name in env.unlocked}
    result.duration_s = time.perf_counter() - started
    return result


def _count_retries(result: EpisodeResult, retries) -> None:
    for retry in retries:
        result.retries[retry.cause] = result.retries.get(retry.cause, 0) + 1
        result.retry_wait_s += retry.wait_s


def profile_rule(profile: profiles.Profile, param: str, adapter: Adapter | None = None) -> str:
    """The profile rule behind request parameter `param`, for a 400 that names it."""
    base = param.split(".")[0].split("[")[0]
    names = (adapter or adapters.get(adapters.DEFAULT)).profile_fields(base)
    settings = ", ".join(f"{n}={getattr(profile, n)!r}" for n in names if hasattr(profile, n))
    entry = getattr(profile, "entry", profile.name)
    match = getattr(profile, "match", "")
    where = f"profile {entry!r}" + (f" ({match} match)" if match else "")
    return (
        f"request parameter {param!r}; {where}"
        + (f": {settings}" if settings else "")
        + "; fix the profile (--profiles, or profiles: in the eval file) or the request settings"
    )


def _count_usage(result: EpisodeResult, usage: Usage) -> None:
    result.tokens_in += usage.input
    result.tokens_out += usage.output
    result.tokens_reasoning += usage.reasoning


def check(result: EpisodeResult, expect: spec.Expect) -> list[str]:
    """The expectations `result` misses, each as a readable sentence. A model that lacks
    a capability the eval needs (image input, tool calls) misses them all: that reason."""
    if result.end == "unsupported":
        return [result.error or "the model lacks a capability the eval needs"]
    if result.error:
        return []  # an error is not a verdict on the model
    problems: list[str] = []
    missed = result.no_tool_call
    if missed and expect.tool_call_at_first_step and missed["step"] == 0:
        problems.append(f"no tool call at step 0: {missed['message']}")
    elif result.tool_call_rate < expect.min_tool_call_rate:
        why = f" (no tool call at step {missed['step']}: {missed['message']})" if missed else ""
        problems.append(
            f"tool-call rate {result.tool_call_rate:.2f} is below "
            f"expect.min_tool_call_rate={expect.min_tool_call_rate}{why}"
        )
    got = len(result.achievements)
    if got < expect.min_achievements:
        names = ", ".join(result.achievements) or "none"
        problems.append(
            f"{got} achievement(s) ({names}), expected at least "
            f"expect.min_achievements={expect.min_achievements}"
        )
    return problems
