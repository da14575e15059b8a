"""Stage: agent (episode). Runs one Crafter episode against one model and returns its result.

Knows no pytest, and no wire format. The loop: observe -> add a turn to the
conversation -> the run's wire adapter (`adapters/`) renders the request for the
model's profile -> call the model -> the adapter parses the reply -> step the env with
each action of its tool calls -> record what happened in the turn. A response with no
usable tool call ends the episode and says why; a failed request ends it as an error;
a client that raises `Cut` instead of calling the model ends it where it is.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import profiles, spec
from ..report import metrics
from ..wire import adapters, tools
from ..wire.adapters import Adapter
from ..wire.answers import parse_text
from ..wire.conversation import Conversation, Observation, Outcome, Reply, Usage, turns_kept
from . import protocols
from .env import ACTIONS, CrafterEnv, data_uri

SYSTEM_PROMPT = """You are playing Crafter, a 2D survival game seen from above. \
Unlock as many achievements as you can: collect wood, place a table, make tools, \
find water and food, survive the night.
Each turn you see the game frame and a text description of your state. Answer by \
{how}
Actions: {actions}.
Moving toward a blocked tile turns you to face it; 'do' collects, attacks or drinks \
whatever you face. Crafting needs a nearby table (and a furnace for iron tools)."""

# how to answer, per answer.format (auto offers the tool: it says the same as tool)
HOW_TO_ANSWER = {
    "tool": "calling the tool interact_many with 1 to 8 actions, run in order.",
    "text": (
        "ending your answer with one line that starts with ACTIONS: followed by 1 "
        "to 8 actions, run in order, separated by commas, for example:\n"
        "ACTIONS: move_left, move_left, do\n"
        "No tool is available: only that line is read."
    ),
}

if TYPE_CHECKING:  # the openai SDK takes 0.5 s to import; payload items need no client
    from ..wire.client import ModelClient

IMAGE_ONLY_PROMPT = "What do you do next? Call interact_many."
IMAGE_ONLY_TEXT_PROMPT = "What do you do next? End with a line ACTIONS: followed by the actions."


class Cut(Exception):
    """Raised by a model client's `complete` instead of calling the model: the episode
    ends there, before that call, with `end: cut` and this message as its `error` (the
    run's budget is spent)."""


@dataclass
class EpisodeResult:
    """Everything one episode produced. `outcome` is set by whoever judges it."""

    eval: str
    model: str
    seed: int
    steps: int = 0  # steps asked (model calls made, re-asks apart)
    env_steps: int = 0  # Crafter steps taken
    achievements: dict[str, int] = field(default_factory=dict)  # unlocked -> count
    reward: float = 0.0  # sum of Crafter's per-step rewards
    tool_calls: int = 0  # steps whose answer had a valid tool call
    valid_actions: int = 0
    invalid_actions: int = 0
    malformed_calls: int = 0
    unknown_tools: int = 0
    too_many_actions: int = 0  # calls with more than 8 actions (cut to 8)
    text_tool_calls: int = 0  # of tool_calls, steps whose call was written in the text
    invalid_answers: dict[str, int] = field(default_factory=dict)  # class -> answers
    invalid_names: list[str] = field(default_factory=list)  # unknown tools/actions, a few
    noops: int = 0  # noops played for invalid answers (answer.on_invalid: noop or retry)
    reasks: int = 0  # model calls that asked a step again (answer.on_invalid: retry)
    no_tool_call: dict[str, Any] | None = None  # {step, class, message, finish_reason}
    # with on_invalid noop or retry: the first answer without a valid action (same keys)
    first_invalid: dict[str, Any] | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_reasoning: int = 0
    tokens_cached: int = 0  # of tokens_in, those the provider's prompt cache served
    reasoning_summaries: int = 0  # steps whose answer carried a reasoning summary
    api: str = ""  # the wire API used (a config.apis.REGISTRY name)
    # USD from the run's profile prices, summed per response; None once one is unpriced
    cost_usd: float | None = 0.0
    latencies_s: list[float] = field(default_factory=list)
    retries: dict[str, int] = field(default_factory=dict)  # cause ("429", "timeout", ...) -> count
    retry_wait_s: float = 0.0  # time spent waiting between attempts
    duration_s: float = 0.0
    end: str = "steps"  # steps | done | no_tool_call | error | unsupported | cut
    error: str | None = None  # with end cut: why it was cut
    infra_error: bool = False
    outcome: str | None = None  # passed | failed | error | skipped | xfailed
    gif: str | None = None  # the episode's animated frames, relative to the report dir
    protocol: str = "default"  # spec.Protocol.label: default, balrog or balrog-vision

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


def system_prompt(instructions: str | None = None, format: str = "tool") -> str:
    """The eval's instructions, else the built-in prompt for `answer.format`."""
    how = HOW_TO_ANSWER.get(format, HOW_TO_ANSWER["tool"])
    return instructions or SYSTEM_PROMPT.format(actions=", ".join(ACTIONS), how=how)


def observe(
    env: CrafterEnv,
    observation: spec.Observation,
    frame: np.ndarray | None = None,
    format: str = "tool",
    turn: tuple[int, int] | None = None,
) -> Observation:
    """What the model is shown of the current state: the text (or a short prompt for
    image-only evals) and the frame as a data URI (`frame` if given, so that a caller
    who already rendered it does not render twice). `turn` = (step, run.steps) makes
    the text say `turn: step+1 of steps` (see `CrafterEnv.text`)."""
    prompt = IMAGE_ONLY_TEXT_PROMPT if format == "text" else IMAGE_ONLY_PROMPT
    text = env.text(turn) if observation.text else prompt
    if observation.image is None:
        return Observation(text)
    image = data_uri(env.frame() if frame is None else frame)
    return Observation(text, image, observation.image.detail)


def cache_key(eval_name: str, model: str, seed: int) -> str:
    """An episode's `prompt_cache_key`: stable per eval, model and seed, so that a
    provider routes its requests, which share their prefixes, together; a hash, so that
    it names nothing."""
    digest = hashlib.sha256(f"{eval_name}\0{model}\0{seed}".encode()).hexdigest()
    return f"crafter-eval-{digest[:24]}"


def first_request(
    run: spec.Run, seed: int, instructions: str | None = None, eval_name: str = "payload"
) -> dict[str, Any]:
    """The body of an episode's first request, without calling anything. The first
    observation is computed once per (seed, observation) in a process: every model of an
    eval file sees the same one."""
    if run.protocol.name != protocols.DEFAULT:
        return request_at(run, seed, 0, instructions, eval_name=eval_name)
    profile = profiles.for_run(run)
    profiles.check_capabilities(run, profile)  # before resetting an env for nothing
    adapter = adapters.for_run(run, profile)
    prompt = system_prompt(instructions, run.answer.format)
    key = cache_key(eval_name, run.model, seed)
    prepared = adapters.prepare(adapter, run, profile, prompt, cache_key=key)
    conversation = Conversation(prompt)
    conversation.observe(_first_observation(seed, run.observation, run.answer.format, run.steps))
    return adapter.body(prepared.template, conversation.window())


ANSWER_WITH = "local/heuristic"


class StepNotReached(Exception):
    """The episode ended before the step whose request was asked for."""


def request_at(
    run: spec.Run,
    seed: int,
    step: int,
    instructions: str | None = None,
    answer_with: str = ANSWER_WITH,
    eval_name: str = "payload",
) -> dict[str, Any]:
    """The body of step `step`'s request (its first attempt) in eval `eval_name`, steps 0
    to `step`-1 answered in-process by the local model `answer_with` (no network, no
    server). Step 0 is `first_request`. Raises `StepNotReached` when the episode ends
    earlier, and `local.ModelError` when `answer_with` is no local model."""
    if run.protocol.name != protocols.DEFAULT:
        loop = protocols.get(run.protocol.name)
        return loop.request_at(run, seed, step, instructions, answer_with, eval_name)
    if step == 0:
        return first_request(run, seed, instructions, eval_name)
    from ..wire.local.inprocess import InProcess

    client = InProcess(answer_with)
    bodies: dict[int, dict[str, Any]] = {}

    def keep(event: dict[str, Any]) -> None:
        if event["attempt"] == 0:
            bodies.setdefault(event["step"], event["request"])

    result = run_episode(
        replace(run, steps=step + 1),
        seed,
        client,  # type: ignore[arg-type]  # duck-typed: complete(body, adapter)
        eval_name=eval_name,
        instructions=instructions,
        on_step=keep,
    )
    if step not in bodies:
        why = result.error or (result.no_tool_call or {}).get("message") or result.end
        raise StepNotReached(
            f"the episode of {run.model} answered by {answer_with} ended at step "
            f"{result.steps - 1} ({result.end}: {why}), before step {step}"
        )
    return bodies[step]


def api_name(run: spec.Run) -> str:
    """The name of the wire API a run's requests use (the protocol's, else `request.api`,
    else the profile's)."""
    fixed = protocols.APIS.get(run.protocol.name)
    if fixed is not None:
        return fixed
    return adapters.for_run(run, profiles.for_run(run)).name


@functools.lru_cache(maxsize=16)
def _first_observation(
    seed: int, observation: spec.Observation, format: str, steps: int
) -> Observation:
    return observe(new_env(seed, observation), observation, format=format, turn=(0, steps))


def new_env(seed: int, observation: spec.Observation) -> CrafterEnv:
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
    """Play one episode of `run.model` on `seed` for at most `run.steps` steps.

    Each request holds the answered steps `run.history` keeps in its layout (window:
    the last `steps`; blocks: `steps` to `2 * steps - 1`, cut in blocks; only the last
    `images` of them with their frame), the current observation and, where the profile
    takes one, the episode's `prompt_cache_key` (`cache_key`); the
    answer is read as `run.answer.format` says, and an answer without a valid action
    ends the episode, plays noop, or is asked again (`run.answer.on_invalid`).

    `on_step`, if given, is called after every answered model call with a dict: `step`,
    `attempt` (0, or the number of the re-ask with `on_invalid: retry`), `frame` (the
    HxWx3 frame of the state the model saw, rendered even for text-only observations),
    `request`, `response` (the bodies sent and received), `adapter` (the wire adapter
    that made and parsed them), `reply` (the parsed `conversation.Reply`), `actions`
    (the actions played: the valid ones, or noop), `reward` (the total so far),
    `achievements` (unlocked so far, in order), `no_tool_call` (None, or why the
    answer had no usable tool call), and the response's `tokens_in`, `tokens_out` and
    `cost_usd` (from the run's profile prices; None when unknown), which
    `--max-tokens` and `--max-cost` add up.
    """
    from ..wire.client import ModelCallError

    if run.protocol.name != protocols.DEFAULT:  # another loop plays it (agent.protocols)
        loop = protocols.get(run.protocol.name)
        return loop.run_episode(
            run, seed, client, eval_name=eval_name, instructions=instructions, on_step=on_step
        )
    started = time.perf_counter()
    result = EpisodeResult(eval=eval_name, model=run.model, seed=seed)
    profile = profiles.for_run(run)
    try:
        profiles.check_capabilities(run, profile)
    except profiles.Unsupported as exc:  # before any env work or request: a verdict
        result.end, result.error, result.infra_error = "unsupported", str(exc), False
        result.duration_s = time.perf_counter() - started
        return result
    env = new_env(seed, run.observation)
    adapter = adapters.for_run(run, profile)
    result.api = adapter.name
    prompt = system_prompt(instructions, run.answer.format)
    # The settings part of the body is built once per episode; each step renders turns.
    key = cache_key(eval_name, run.model, seed)
    template = adapters.prepare(adapter, run, profile, prompt, cache_key=key).template
    history, answer = run.history, run.answer
    conversation = Conversation(prompt, keep=turns_kept(history.steps, history.layout))
    wants_frame = run.observation.image is not None or on_step is not None
    notice: str | None = None  # what the next request says about the last answer
    for step in range(run.steps):
        frame = env.frame() if wants_frame else None  # one render per step, shared
        shown = observe(env, run.observation, frame, answer.format, (step, run.steps))
        turn = conversation.observe(with_notice(shown, notice))
        result.steps += 1
        attempt = 0
        while True:
            turns = conversation.window(history.steps, history.layout)
            body = adapter.body(template, turns, history.images)
            try:
                response = client.complete(body, adapter)
            except Cut as exc:
                if attempt == 0:
                    result.steps -= 1  # this step was not asked
                result.end, result.error = "cut", f"{exc}: episode cut before step {step}"
                break
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
            result.reasoning_summaries += reply.reasoning_summary is not None
            usage = reply.usage  # priced with the run's profile, cached input at its price
            cost = profile.cost(usage.input, usage.output, usage.cached)
            result.cost_usd = (
                None if cost is None or result.cost_usd is None else result.cost_usd + cost
            )
            priced = {  # what --max-tokens and --max-cost add up, as the record does
                "tokens_in": reply.usage.input,
                "tokens_out": reply.usage.output,
                "cost_usd": cost,
            }
            parsed, from_text = read_answer(reply, answer.format)
            _count_parsed(result, parsed, reply)
            missed = None
            if not parsed.ok:
                kind, why = adapter.diagnose(reply, body, parsed)
                kind, why = _diagnose_text(kind, why, reply, answer.format)
                result.invalid_answers[kind] = result.invalid_answers.get(kind, 0) + 1
                missed = {
                    "step": step,
                    "class": kind,
                    "message": why,
                    "finish_reason": reply.finish,
                }
                if reply.reasoning_summary:
                    missed["reasoning"] = reply.reasoning_summary[:500]
                if answer.on_invalid == "end":  # the episode ends: why
                    result.no_tool_call = missed
                elif result.first_invalid is None:  # it goes on: the first one, for check
                    result.first_invalid = missed
            if missed is None or answer.on_invalid != "retry" or attempt >= answer.retries:
                break
            # re-ask the same step, saying what was wrong
            if on_step is not None:
                event = _event(step, attempt, frame, body, response.body, adapter, reply, [], env)
                on_step({**event, "no_tool_call": missed, **priced})
            attempt += 1
            result.reasks += 1
            problem = answer_problem(parsed, answer.format, reply)
            turn.observation = with_notice(
                shown, f"Your answer was invalid: {problem}. {_ask_again(answer.format)}"
            )
        if result.end in ("error", "cut"):
            break
        if parsed.ok:
            result.tool_calls += 1
            result.text_tool_calls += from_text
        turn_played = play_answer(env, parsed, reply, answer, history.steps)
        played = list(turn_played.actions)
        for reward in turn_played.rewards:
            result.reward += reward
        if parsed.ok:
            result.valid_actions += len(played)
        elif turn_played.ended:
            result.end = "no_tool_call"
        else:
            result.noops += 1
        turn.reply, turn.outcome = reply, turn_played.outcome
        notice = turn_played.notice
        if on_step is not None:
            on_step(
                {
                    **_event(
                        step,
                        attempt,
                        frame,
                        body,
                        response.body,
                        adapter,
                        reply,
                        played,
                        env,
                        missed,
                    ),
                    **priced,
                }
            )
        if result.end == "no_tool_call":
            break
        if env.done:
            result.end = "done"
            break
    result.env_steps = env.step_count
    result.achievements = {name: env.achievements[name] for name in env.unlocked}
    result.duration_s = time.perf_counter() - started
    return result


@dataclass(frozen=True)
class Played:
    """What one answer did to the game: the actions played (its valid actions, up to
    the end of the game; or noop), Crafter's reward of each, the `Outcome` the history
    holds, the `notice` the next observation starts with (None: none), and `ended`: the
    answer had no valid action and `answer.on_invalid` is end."""

    actions: tuple[str, ...]
    rewards: tuple[float, ...]
    outcome: Outcome
    notice: str | None
    ended: bool


def play_answer(
    env: CrafterEnv,
    parsed: tools.ParsedCalls,
    reply: Reply,
    answer: spec.Answer,
    history_steps: int = 0,
) -> Played:
    """Play a parsed answer on `env` as an episode does: its valid actions in order
    (stopping when the game ends); an answer without one plays noop unless
    `answer.on_invalid` is end; with `answer.feedback`, what was wrong goes into the
    tool results (`Outcome.calls`) and, when the history does not carry it (no history,
    or no tool call to answer), into the notice at the top of the next observation."""
    played: list[str] = []
    rewards: list[float] = []
    unlocked_before, reward_before = len(env.unlocked), env.reward_total
    if parsed.ok:
        for action in parsed.actions:
            rewards.append(env.step(action))
            played.append(action)
            if env.done:
                break
    elif answer.on_invalid != "end":
        rewards.append(env.step("noop"))
        played.append("noop")
    tell = answer.feedback and answer.on_invalid != "end"
    problem = answer_problem(parsed, answer.format, reply) if tell else ""
    outcome = Outcome(
        actions=tuple(played),
        reward=env.reward_total - reward_before,
        new_achievements=tuple(env.unlocked[unlocked_before:]),
        invalid=tuple(parsed.invalid_names) if answer.feedback else (),
    )
    if problem and reply.tool_calls:
        outcome = replace(
            outcome, calls=(f"{outcome.text}; error: {problem}",) * len(reply.tool_calls)
        )
    notice = None
    if problem and (history_steps == 0 or not reply.tool_calls):
        notice = (
            f"Your last answer was invalid: {problem}; noop was played."
            if not parsed.ok
            else f"In your last answer: {problem}; the valid actions were played."
        )
    return Played(
        tuple(played), tuple(rewards), outcome, notice, not parsed.ok and answer.on_invalid == "end"
    )


def _event(
    step: int,
    attempt: int,
    frame: np.ndarray | None,
    request: dict[str, Any],
    response: dict[str, Any],
    adapter: Adapter,
    reply: Reply,
    played: list[str],
    env: CrafterEnv,
    missed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "step": step,
        "attempt": attempt,
        "frame": frame,
        "request": request,
        "response": response,
        "adapter": adapter,
        "reply": reply,
        "actions": played,
        "reward": env.reward_total,
        "achievements": list(env.unlocked),
        "no_tool_call": missed,
    }


def read_answer(reply: Reply, format: str = "tool") -> tuple[tools.ParsedCalls, bool]:
    """The actions of a reply as `answer.format` reads it, and whether they were
    written in the text: `tool` native calls only; `text` calls in the text only;
    `auto` native calls, else (when there are none) calls written in the text."""
    if format == "tool" or (format == "auto" and reply.tool_calls):
        return tools.parse_calls(reply.tool_calls), False
    parsed = parse_text(reply.text)
    return parsed, parsed.ok


def unknown_tools(parsed: tools.ParsedCalls, reply: Reply | None = None) -> list[str]:
    """The unknown tools an answer called (from `parsed`, else the reply's native calls)."""
    names = list(parsed.unknown_tool_names)
    if not names and reply is not None and parsed.unknown_tools:
        for call in reply.tool_calls:
            if call.name != tools.TOOL_NAME and call.name not in names:
                names.append(call.name[:40])
    return names[: tools_max_names()]


def answer_problem(
    parsed: tools.ParsedCalls, format: str = "tool", reply: Reply | None = None
) -> str:
    """What was wrong with an answer, said to the model ("" when nothing was)."""
    problems = []
    unknown = unknown_tools(parsed, reply)
    if parsed.unknown_tools:
        names = ", ".join(repr(n) for n in unknown)
        problems.append(f"unknown tool {names}".rstrip() + f" (call {tools.TOOL_NAME})")
    if parsed.malformed_json:
        problems.append('malformed arguments (expected JSON like {"actions": ["do"]})')
    if parsed.invalid_names:
        names = ", ".join(repr(n) for n in parsed.invalid_names[: tools_max_names()])
        problems.append(f"unknown action(s) {names}")
    elif parsed.invalid_actions:
        problems.append(f"{parsed.invalid_actions} invalid action(s)")
    if parsed.empty_calls:
        problems.append("no actions in the call (give 1 to 8)")
    if not problems and not parsed.ok:
        problems.append(
            "no line 'ACTIONS: ...'"
            if format == "text"
            else f"no call of {tools.TOOL_NAME}"
            + (" (native or written as text)" if format == "auto" else "")
        )
    return "; ".join(problems)


def tools_max_names() -> int:
    return tools.MAX_NAMES


def _ask_again(format: str) -> str:
    if format == "text":
        return "Answer again, ending with a line ACTIONS: followed by 1 to 8 valid actions."
    return f"Call {tools.TOOL_NAME} again with 1 to 8 valid actions."


def with_notice(observation: Observation, notice: str | None) -> Observation:
    if not notice:
        return observation
    return replace(observation, text=f"{notice}\n\n{observation.text}")


def _diagnose_text(kind: str, why: str, reply: Reply, format: str) -> tuple[str, str]:
    """A text answer without a call, in the words of a text or auto `answer.format`
    (the adapter's advice of tool_choice: required is for native calls)."""
    if format == "tool" or kind != tools.TEXT_ANSWER:
        return kind, why
    where = "in the text" if format == "text" else "native or in the text"
    return kind, (
        f"no tool call {where}: {_clip(reply.text or '')}; the model must end its "
        "answer with a line 'ACTIONS: move_left, do' (or a <tool_call>): check the instructions"
    )


def _clip(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _count_parsed(result: EpisodeResult, parsed: tools.ParsedCalls, reply: Reply) -> None:
    result.invalid_actions += parsed.invalid_actions
    result.malformed_calls += parsed.malformed_json
    result.unknown_tools += parsed.unknown_tools
    result.too_many_actions += parsed.too_many_actions
    for name in [*unknown_tools(parsed, reply), *parsed.invalid_names]:
        if name not in result.invalid_names and len(result.invalid_names) < tools_max_names():
            result.invalid_names.append(name)


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
    result.tokens_cached += usage.cached


def check(result: EpisodeResult, expect: spec.Expect) -> list[str]:
    """The expectations `result` misses, each as a readable sentence. A model that lacks
    a capability the eval needs (image input, tool calls) misses them all: that reason."""
    if result.end == "unsupported":
        return [result.error or "the model lacks a capability the eval needs"]
    if result.error:
        return []  # an error is not a verdict on the model
    problems: list[str] = []
    missed = result.no_tool_call or result.first_invalid
    if missed and expect.tool_call_at_first_step and missed["step"] == 0:
        problems.append(f"no tool call at step 0: {missed['message']}{invalid_summary(result)}")
    elif result.tool_call_rate < expect.min_tool_call_rate:
        why = f" (no tool call at step {missed['step']}: {missed['message']})" if missed else ""
        problems.append(
            f"tool-call rate {result.tool_call_rate:.2f} is below "
            f"expect.min_tool_call_rate={expect.min_tool_call_rate}{why}{invalid_summary(result)}"
        )
    got = len(result.achievements)
    if got < expect.min_achievements:
        names = ", ".join(result.achievements) or "none"
        problems.append(
            f"{got} achievement(s) ({names}), expected at least "
            f"expect.min_achievements={expect.min_achievements}"
        )
    return problems


def invalid_summary(result: EpisodeResult) -> str:
    """`; invalid answers: 3 invalid_tool_call, 1 text_answer (unknown: 'jump')` when the
    episode went on after invalid answers (noop or retry), else ""."""
    if result.end == "no_tool_call" or not result.invalid_answers:
        return ""
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(result.invalid_answers.items()))
    names = ", ".join(repr(n) for n in result.invalid_names)
    return f"; invalid answers: {counts}" + (f" (unknown: {names})" if names else "")
