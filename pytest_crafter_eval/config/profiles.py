"""Stage: config (profiles). What each model accepts, and the request settings it takes.

A `Profile` says what one model takes: the wire API (`api`: chat or responses), the
token parameter, temperature and top_p, reasoning effort, images, tools, tool_choice,
parallel_tool_calls, the role of the instructions, its output limit and its prices. The built-in registry is the package data
file `profiles.yaml` (facts from models.dev); users add or override entries in an eval
file (`profiles:`) or a file named by `--profiles`.

    profile = resolve("gpt-4o-mini-2024-07-18")         # -> entry gpt-4o-mini (dated snapshot)
    settings, notes = normalise_settings(run, profile)  # pure: what the model takes, and what changed

The wire adapters (`adapters/`) turn `Settings` into a request body and warn once per
note (`warn_once`). Nothing here does I/O except reading the packaged data file once,
and `warn_once`.
"""

from __future__ import annotations

import fnmatch
import functools
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from .apis import names as api_names
from .errors import type_name

if TYPE_CHECKING:
    from . import spec

DEFAULT = "*"
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")  # lowest first
DEFAULT_EFFORT = "low"
DEFAULT_REASONING_BUDGET = 4096  # tokens to reason in, on top of request.max_output_tokens
TOKEN_PARAMS = ("max_tokens", "max_completion_tokens")
TOOL_CHOICES = ("none", "auto", "required")
ROLES = ("system", "developer")
# A dated or numbered snapshot of an entry: gpt-4o-2024-08-06, gpt-4-0613,
# claude-sonnet-4-5-20250929, gemini-2.0-flash-001, gemini-2.5-flash-preview-05-20
_DATED = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|\d{3,4}|(?:preview|exp)-\d{2}-\d{2,4})$")
# How routers and servers spell the same model: OpenRouter's variant tags (:free) and
# quantised builds served by vLLM (-FP8, -AWQ) take what the model takes
_VARIANT = re.compile(
    r"(:(free|beta|nitro|floor|thinking|extended|online)|-(fp8|fp8-dynamic|awq|gptq-int4|gptq-int8|int4|int8|bnb-4bit))$"
)


class CrafterEvalWarning(UserWarning):
    """A request setting changed for a model, or a model profile that was assumed."""


class Unsupported(ValueError):
    """The eval needs something the model does not take (image input, tool calls)."""


@dataclass(frozen=True)
class Prices:
    """USD per million tokens."""

    input: float
    output: float
    cached: float | None = None  # None: cached input tokens cost as much as input


@dataclass(frozen=True)
class Profile:
    """What one model accepts. `entry` is the registry entry used, `match` how it was
    found: exact, snapshot, family or default. `assumed` says what was guessed."""

    name: str
    entry: str = DEFAULT
    match: str = "default"
    api: str = "chat"  # the wire API: a name in config.apis.REGISTRY
    token_param: str = "max_tokens"
    temperature: tuple[float, float] | None = (0.0, 2.0)  # None: only the default
    top_p: tuple[float, float] | None = (0.0, 1.0)
    reasoning: bool = False
    reasoning_efforts: tuple[str, ...] = ()
    reasoning_effort: str | None = None  # the default effort
    reasoning_budget: int = 0
    image_input: bool = True
    tool_call: bool = True
    tool_choice: tuple[str, ...] = ("none", "auto")
    parallel_tool_calls: bool = False
    prompt_cache_key: bool = False  # whether its API takes a prompt_cache_key
    system_role: str = "system"
    max_output_tokens: int | None = None
    context_tokens: int | None = None
    # whether the model returns token logprobs (None: yes unless it reasons: OpenAI's
    # reasoning models return none); `token_ids`: the server also returns token ids when
    # asked with `return_token_ids` (vLLM does; OpenAI rejects the parameter)
    logprobs: bool | None = None
    token_ids: bool = False
    prices: Prices | None = None
    assumed: str | None = None

    def cost(self, tokens_in: int, tokens_out: int, cached: int = 0) -> float | None:
        """USD for `tokens_in` prompt tokens (of which `cached` were cached) and
        `tokens_out` completion tokens (reasoning included); None if prices are unknown."""
        if self.prices is None:
            return None
        p = self.prices
        cached = min(max(cached, 0), tokens_in)
        cached_price = p.input if p.cached is None else p.cached
        return (
            (tokens_in - cached) * p.input + cached * cached_price + tokens_out * p.output
        ) / 1e6

    def describe(self) -> str:
        """The rules of this profile in a few words, for warnings and errors."""
        temp = (
            "temperature " + "-".join(f"{v:g}" for v in self.temperature)
            if self.temperature
            else "no temperature"
        )
        parts = [self.token_param, temp, f"{self.system_role} role"]
        if self.reasoning:
            parts.append(
                f"reasoning_effort {'/'.join(self.reasoning_efforts) or 'not taken'}"
                f" (default {self.reasoning_effort}), reasoning budget {self.reasoning_budget}"
            )
        parts.append("image input" if self.image_input else "no image input")
        parts.append("tool calls" if self.tool_call else "no tool calls")
        parts.append("prices known" if self.prices else "prices unknown")
        return ", ".join(parts)


# -- the registry ----------------------------------------------------------------------

FIELDS = {
    "like",
    "api",
    "token_param",
    "temperature",
    "top_p",
    "reasoning",
    "reasoning_efforts",
    "reasoning_effort",
    "reasoning_budget",
    "image_input",
    "tool_call",
    "tool_choice",
    "parallel_tool_calls",
    "prompt_cache_key",
    "system_role",
    "max_output_tokens",
    "context_tokens",
    "logprobs",
    "token_ids",
    "price",
}
PRICE_KEYS = {"input", "output", "cached"}

Entries = tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]  # hashable: (name, fields)


def check_entries(data: Any, error: Callable[[str, str], Exception]) -> Entries:
    """Validate a `profiles:` mapping (name -> fields); return it in hashable form.
    `error(key, message)` makes the exception to raise, `key` relative to the mapping."""
    if not isinstance(data, Mapping):
        raise error(
            "", f"must be a mapping of model names to profile fields, got {type_name(data)}"
        )
    entries = []
    for name, fields in data.items():
        if not isinstance(name, str) or not name:
            raise error(str(name), "a profile name must be a model name or a pattern like 'gpt-5*'")
        fields = {} if fields is None else fields
        if not isinstance(fields, Mapping):
            raise error(name, f"must be a mapping of profile fields, got {type_name(fields)}")
        entries.append(
            (name, tuple((k, _check_field(name, k, v, error)) for k, v in fields.items()))
        )
    return tuple(entries)


def _check_field(name: str, key: str, value: Any, error) -> Any:
    where = f"{name}.{key}"
    if key not in FIELDS:
        import difflib

        hint = difflib.get_close_matches(str(key), sorted(FIELDS), n=1)
        raise error(
            where,
            "unknown key"
            + (
                f" (did you mean '{hint[0]}'?)"
                if hint
                else f"; known keys: {', '.join(sorted(FIELDS))}"
            ),
        )
    if key == "like":
        if not isinstance(value, str):
            raise error(where, f"must name another profile, got {type_name(value)}")
    elif key == "api":
        _choice(value, api_names(), where, error)
    elif key == "token_param":
        _choice(value, TOKEN_PARAMS, where, error)
    elif key == "system_role":
        _choice(value, ROLES, where, error)
    elif key in ("temperature", "top_p"):
        top = 2.0 if key == "temperature" else 1.0
        if isinstance(value, bool):
            return (0.0, top) if value else None
        if (
            isinstance(value, (list, tuple))
            and len(value) == 2
            and all(_number(v) for v in value)
            and 0 <= value[0] <= value[1] <= top
        ):
            return (float(value[0]), float(value[1]))
        raise error(
            where, f"must be true, false or a range [min, max] within 0..{top:g}, got {value!r}"
        )
    elif key in (
        "reasoning",
        "image_input",
        "tool_call",
        "parallel_tool_calls",
        "logprobs",
        "token_ids",
        "prompt_cache_key",
    ):
        if not isinstance(value, bool):
            raise error(where, f"must be true or false, got {type_name(value)}")
    elif key in ("reasoning_efforts", "tool_choice"):
        allowed = EFFORTS if key == "reasoning_efforts" else TOOL_CHOICES
        if not isinstance(value, (list, tuple)):
            raise error(where, f"must be a list of {', '.join(allowed)}, got {type_name(value)}")
        for v in value:
            _choice(v, allowed, where, error)
        return tuple(value)
    elif key == "reasoning_effort":
        _choice(value, EFFORTS, where, error)
    elif key in ("reasoning_budget", "max_output_tokens", "context_tokens"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise error(where, f"must be a whole number of tokens, got {type_name(value)}")
    elif key == "price":
        if (
            not isinstance(value, Mapping)
            or not {"input", "output"} <= set(value)
            or not set(value) <= PRICE_KEYS
        ):
            raise error(
                where,
                f"must be a mapping {{input: X, output: Y, cached: Z}} of USD per "
                f"million tokens (cached optional), got {value!r}",
            )
        for k, v in value.items():
            if not _number(v) or v < 0:
                raise error(f"{where}.{k}", f"must be a price of 0 or more, got {type_name(v)}")
        return Prices(
            float(value["input"]),
            float(value["output"]),
            None if value.get("cached") is None else float(value["cached"]),
        )
    return value


def _choice(value: Any, allowed: Iterable[str], where: str, error) -> None:
    if value not in allowed:
        raise error(where, f"must be one of {', '.join(allowed)}, got {value!r}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def builtin() -> Entries:
    """The packaged registry, read once per process, though many episode threads ask
    at once (64 in flight each read it: 0.17 s of a worker's start in py-spy's samples)."""
    with _BUILTIN_LOCK:
        return _read_builtin()


_BUILTIN_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _read_builtin() -> Entries:
    import yaml

    text = resources.files(__package__).joinpath("profiles.yaml").read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(text, Loader=loader)

    def error(key: str, message: str) -> Exception:
        return RuntimeError(f"pytest_crafter_eval/profiles.yaml: profiles.{key}: {message}")

    return check_entries(data["profiles"], error)


def _is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")


def _specificity(pattern: str) -> tuple[int, int]:
    literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    return len(literal), len(pattern)


class Registry:
    """Profile entries by name, the later ones overriding the earlier field by field."""

    def __init__(self, layers: Iterable[Entries]):
        self.entries: dict[str, dict[str, Any]] = {}
        for layer in layers:
            for name, fields in layer:
                self.entries.setdefault(name, {}).update(fields)
        self.exact = {n for n in self.entries if not _is_pattern(n)}
        self.patterns = sorted(
            (n for n in self.entries if _is_pattern(n) and n != DEFAULT),
            key=_specificity,
            reverse=True,
        )

    def family(self, name: str) -> str:
        """The most specific pattern matching `name`, else the default."""
        return next((p for p in self.patterns if fnmatch.fnmatchcase(name, p)), DEFAULT)

    def fields(self, entry: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
        """The fields of `entry` with everything it inherits: `like`, else its family,
        else the default."""
        if entry in seen:
            raise ValueError(
                f"profile {entry!r}: `like` loops back: {' -> '.join(seen + (entry,))}"
            )
        own = self.entries.get(entry, {})
        if entry == DEFAULT:
            return dict(own)
        base = own.get("like")
        if base is not None and base not in self.entries:
            raise ValueError(f"profile {entry!r}: like: no profile named {base!r}")
        parent = base or (self.family(entry) if not _is_pattern(entry) else DEFAULT)
        merged = self.fields(parent, seen + (entry,))
        if "temperature" in own and "top_p" not in own:
            merged.pop("top_p", None)  # top_p follows temperature unless given
        merged.update(own)
        merged.pop("like", None)
        return merged

    def lookup(self, model: str) -> tuple[str, str]:
        """(entry, how) for a model name: exact, snapshot, family or default."""
        names = candidates(model)
        for candidate in names:
            if candidate in self.exact:
                return candidate, "exact"
        for candidate in names:
            undated = _DATED.sub("", candidate)
            if undated != candidate and undated in self.exact:
                return undated, "snapshot"
        for candidate in names:  # an alias: claude-3-5-sonnet(-latest) -> its newest snapshot
            base = candidate.removesuffix("-latest")
            if base != candidate and base in self.exact:
                return base, "snapshot"
            dated = [e for e in self.exact if e != base and _DATED.sub("", e) == base]
            if dated:
                return max(dated), "snapshot"
        families = [self.family(c) for c in names]
        best = max(families, key=_specificity)
        return best, "default" if best == DEFAULT else "family"


def candidates(model: str) -> list[str]:
    """The spellings of `model` to look up, most literal first: the name itself; without
    a provider prefix (anthropic/claude-sonnet-4-5, Qwen/Qwen2.5-VL-7B-Instruct); lower
    case; without an OpenRouter variant tag or a quantisation suffix; and Claude versions
    with dots as OpenRouter writes them (claude-sonnet-4.5 -> claude-sonnet-4-5)."""
    name = model.split("?", 1)[0]
    names = [name]
    if "/" in name and not name.startswith("local/"):
        names.append(name.rsplit("/", 1)[1])  # openai/gpt-4o -> gpt-4o
    for n in list(names):
        low = n.lower()
        for variant in (low, _VARIANT.sub("", low)):
            if variant.startswith("claude-"):
                variant = re.sub(r"(\d)\.(\d)", r"\1-\2", variant)
            if variant not in names:
                names.append(variant)
    return names


@functools.lru_cache(maxsize=1024)
def resolve(model: str, user: Entries = ()) -> Profile:
    """The profile of `model`, from the packaged registry and the `user` entries.

    Kept per (model, entries), as profiles are immutable: every episode resolves its
    run's (0.2 ms; 3 ms with 64 episodes in flight a process)."""
    registry = Registry((builtin(), user))
    entry, how = registry.lookup(model)
    fields = registry.fields(entry)
    prices = fields.pop("price", None)
    temperature = fields.pop("temperature", (0.0, 2.0))
    top_p = fields.pop("top_p", (0.0, 1.0) if temperature else None)
    efforts = fields.pop("reasoning_efforts", ())
    effort = fields.pop("reasoning_effort", None)
    reasoning = fields.get("reasoning", False)
    if reasoning:
        fields.setdefault("reasoning_budget", DEFAULT_REASONING_BUDGET)
    if reasoning and efforts and effort not in efforts:
        effort = nearest_effort(effort or DEFAULT_EFFORT, efforts)
    profile = Profile(
        name=model,
        entry=entry,
        match=how,
        temperature=temperature,
        top_p=top_p,
        reasoning_efforts=efforts if reasoning else (),
        reasoning_effort=effort if reasoning and efforts else None,
        prices=prices,
        **fields,
    )
    if how in ("family", "default"):
        what = f"family {entry!r}" if how == "family" else "the default OpenAI-compatible profile"
        profile = _replace(
            profile,
            assumed=(
                f"{model}: no profile of its own; assumed {what}: {profile.describe()}. "
                "Add it under `profiles:` in the eval file or in --profiles FILE"
            ),
        )
    return profile


def _replace(profile: Profile, **changes) -> Profile:
    from dataclasses import replace

    return replace(profile, **changes)


def nearest_effort(wanted: str, accepted: tuple[str, ...]) -> str:
    """The lowest accepted effort at or above `wanted`, else the highest accepted."""
    rank = EFFORTS.index(wanted)
    above = [e for e in accepted if EFFORTS.index(e) >= rank]
    return min(above, key=EFFORTS.index) if above else max(accepted, key=EFFORTS.index)


# -- normalisation ---------------------------------------------------------------------


@dataclass(frozen=True)
class Note:
    """One setting changed for a model: `rule` names the profile field behind it."""

    model: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.model}: {self.message} (profile rule {self.rule!r})"


def check_capabilities(run: spec.Run, profile: Profile) -> None:
    """Raise `Unsupported` if the eval needs what the model does not take."""
    why = f"(profile {profile.entry!r}, {profile.match})"
    if not profile.tool_call:
        raise Unsupported(
            f"{run.model} does not take tool calls {why}: the agent acts only "
            "through the tool interact_many"
        )
    if run.observation.image is not None and not profile.image_input:
        raise Unsupported(
            f"{run.model} does not take image input {why}: use a text-only eval "
            "(observation: {image: false})"
        )


@dataclass(frozen=True)
class Settings:
    """A run's request settings as one model takes them, in no wire format: what an
    adapter (`adapters/`) puts into a body. None: not sent."""

    instructions_role: str = "system"
    tool_choice: str | None = "auto"
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    reasoning_effort: str | None = None
    reasoning: bool = False  # a reasoning model
    logprobs: bool = False  # ask for the answer's token logprobs
    token_ids: bool = False  # and the token ids of the prompt and the answer
    prompt_cache_key: bool = False  # send the episode's prompt_cache_key


def normalise_settings(
    run: spec.Run, profile: Profile, token_param: str | None = None
) -> tuple[Settings, list[Note]]:
    """The settings of `run` that a model with `profile` takes, and a note for every
    setting that was renamed, dropped or changed. `token_param` is the name the wire
    API gives the output budget (default: the profile's). Pure."""
    check_capabilities(run, profile)
    notes: list[Note] = []
    token_param = token_param or profile.token_param

    def note(rule: str, message: str) -> None:
        notes.append(Note(run.model, rule, message))

    req = run.request
    choice: str | None = req.tool_choice or "auto"
    if choice not in profile.tool_choice:
        fallback = "auto" if "auto" in profile.tool_choice else None
        note(
            "tool_choice",
            f"request.tool_choice={choice!r} is not taken; "
            + (f"sent {fallback!r}" if fallback else "left out"),
        )
        choice = fallback
    parallel: bool | None = None
    if req.parallel_tool_calls is not None:
        if profile.parallel_tool_calls:
            parallel = req.parallel_tool_calls
        else:
            note("parallel_tool_calls", "request.parallel_tool_calls dropped: not taken")

    # the episode's cache key: asked for, or by default with a history (a prompt without
    # one is shorter than the 1,024 tokens a provider caches)
    wanted = run.history.steps > 0 if req.prompt_cache_key is None else req.prompt_cache_key
    if req.prompt_cache_key and not profile.prompt_cache_key:
        note(
            "prompt_cache_key",
            "request.prompt_cache_key dropped: the model's API does not take it "
            "(profile prompt_cache_key: false)",
        )

    budget: int | None = None
    if req.max_output_tokens is not None:
        budget = req.max_output_tokens
        if profile.reasoning:
            extra = (
                profile.reasoning_budget if req.reasoning_budget is None else req.reasoning_budget
            )
            budget += extra
        limit = profile.max_output_tokens
        if limit and budget > limit:
            note(
                "max_output_tokens",
                f"{token_param}={budget} lowered to the model's output limit {limit}",
            )
            budget = limit
    elif req.reasoning_budget is not None and profile.reasoning:
        note(
            "reasoning_budget",
            "request.reasoning_budget ignored: request.max_output_tokens is null",
        )

    sampling: dict[str, float | None] = {"temperature": None, "top_p": None}
    for key in ("temperature", "top_p"):
        value = getattr(req, key)
        accepted = getattr(profile, key)
        if value is None:
            continue
        if accepted is None:
            note(key, f"request.{key}={value:g} dropped: the model takes only the default {key}")
        elif not accepted[0] <= value <= accepted[1]:
            clamped = min(max(value, accepted[0]), accepted[1])
            note(
                key,
                f"request.{key}={value:g} changed to {clamped:g}: the model takes "
                f"{accepted[0]:g} to {accepted[1]:g}",
            )
            sampling[key] = clamped
        else:
            sampling[key] = value

    effort = req.reasoning_effort
    chosen: str | None = None
    if profile.reasoning_efforts:
        chosen = effort or profile.reasoning_effort or DEFAULT_EFFORT
        if chosen not in profile.reasoning_efforts:
            near = nearest_effort(chosen or "low", profile.reasoning_efforts)
            note(
                "reasoning_efforts",
                f"request.reasoning_effort={chosen!r} changed to {near!r}: the "
                f"model takes {', '.join(profile.reasoning_efforts)}",
            )
            chosen = near
    elif effort is not None:
        note(
            "reasoning",
            f"request.reasoning_effort={effort!r} dropped: "
            + (
                "not a reasoning model"
                if not profile.reasoning
                else "the model takes no reasoning_effort"
            ),
        )
    logprobs = token_ids = False
    if req.logprobs:
        takes = profile.logprobs if profile.logprobs is not None else not profile.reasoning
        if takes:
            logprobs, token_ids = True, profile.token_ids
        else:
            note("logprobs", "request.logprobs dropped: the model returns no token logprobs")
    settings = Settings(
        instructions_role=profile.system_role,
        tool_choice=choice,
        parallel_tool_calls=parallel,
        max_output_tokens=budget,
        temperature=sampling["temperature"],
        top_p=sampling["top_p"],
        reasoning_effort=chosen,
        reasoning=profile.reasoning,
        logprobs=logprobs,
        token_ids=token_ids,
        prompt_cache_key=wanted and profile.prompt_cache_key,
    )
    return settings, notes


_WARNED: set[str] = set()


def warn_once(message: str, where: tuple[str | None, int | None] = (None, None)) -> None:
    """A `CrafterEvalWarning`, once per process for each message, located at `where`
    (the eval file and line that asked for the setting) when known."""
    if message in _WARNED:
        return
    _WARNED.add(message)
    filename, line = where
    if filename and line:
        warnings.warn_explicit(CrafterEvalWarning(message), CrafterEvalWarning, filename, line)
    else:
        warnings.warn(CrafterEvalWarning(message), stacklevel=3)


def warn_note(run: spec.Run, message: str) -> None:
    """`warn_once` a note about `run` at the eval file's line that set what it names
    (`request.temperature=...`), else at the model's entry."""
    key = re.search(r"\brequest\.(\w+)", message)
    line = run.line_of(f"request.{key[1]}") if key else run.line
    warn_once(message, (getattr(run, "source", None), line))


def for_run(run: spec.Run) -> Profile:
    """The profile of a run's model, with the run's user profile entries."""
    return resolve(run.model, getattr(run, "profiles", ()))
