"""Stage: config (spec). Parses and validates eval YAML into frozen dataclasses.

Nothing else in the project reads YAML. Every problem is a `SpecError` whose `str()` is
one line naming the file, the line and the key, for example::

    evals/smoke.yaml:7: models[2]: duplicate model 'local/random'

A file's settings (`steps`, `observation`, `history`, `answer`, `request`, `expect`) are defaults; a model
given as a mapping overrides them key by key. `load(path)` returns an `EvalSpec` whose
`runs` hold the fully resolved settings of each model.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from . import apis
from .errors import SpecError, type_name
from .game import ACHIEVEMENTS, IMAGE_SIZES

MAX_SEEDS = 100_000
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+/-]*(\?[A-Za-z0-9_=&.,-]*)?$")


@dataclass(frozen=True)
class Image:
    size: int = 64
    detail: str = "low"


@dataclass(frozen=True)
class Observation:
    image: Image | None = Image()
    text: bool = True


@dataclass(frozen=True)
class Request:
    """Model-independent request settings; `profiles` maps them onto each model's API."""

    max_output_tokens: int | None = 512
    temperature: float | None = None
    top_p: float | None = None
    reasoning_effort: str | None = None  # None: the profile's default (low)
    reasoning_budget: int | None = None  # tokens added for reasoning; None: the profile's
    tool_choice: str | None = None  # None: auto
    parallel_tool_calls: bool | None = None  # None: not sent
    api: str | None = None  # the wire API (apis.REGISTRY); None: the profile's (chat)
    # keep the answer's token log-probabilities (and token ids, where the profile says the
    # server returns them) in the trace; None: not asked
    logprobs: bool | None = None
    # send the episode's prompt_cache_key where the profile takes it; None: with a history
    prompt_cache_key: bool | None = None


@dataclass(frozen=True)
class History:
    """Earlier steps sent with each request: `steps` of them (0: only the current one),
    the last `images` of those with their frame, the rest as text only. `layout`:
    window (the last `steps`, sliding by one each step) or blocks (append-only, the
    oldest `steps` cut at once when the history reaches twice `steps`: `steps` to
    `2 * steps - 1` sent, a prompt cache holding all but the newest turns)."""

    steps: int = 0
    images: int = 0
    layout: str = "blocks"


@dataclass(frozen=True)
class Answer:
    """How the model answers and what an invalid answer does.

    `format`: tool (native tool calls), text (no tools sent; actions parsed from the
    text, `answers`), auto (native tool calls, else a call written in the text).
    `on_invalid`: end (the episode ends), noop (play noop and go on), retry (ask the
    same step again up to `retries` times with the reason, then noop).
    `feedback`: with noop/retry, the next request says what was wrong."""

    format: str = "tool"
    on_invalid: str = "end"
    retries: int = 2
    feedback: bool = True

    @property
    def sends_tools(self) -> bool:
        """Whether requests offer the tool (every format but text)."""
        return self.format != "text"


PROTOCOLS = ("default", "balrog")


@dataclass(frozen=True)
class Protocol:
    """Which loop plays the episodes (`agent.protocols`): `default`, this project's (tool
    calls, the sections above), or `balrog`, BALROG's naive agent for Crafter (one action
    per request parsed from text, its prompt, history and settings; `vision` adds its one
    256x256 frame)."""

    name: str = "default"
    vision: bool = False

    @property
    def label(self) -> str:
        """`default`, `balrog` or `balrog-vision`: what records and reports show."""
        return f"{self.name}-vision" if self.vision else self.name


@dataclass(frozen=True)
class Expect:
    """Per-episode assertions."""

    tool_call_at_first_step: bool = True
    min_tool_call_rate: float = 0.0
    min_achievements: int = 0


@dataclass(frozen=True)
class Regression:
    """`gate: regression:`: fail when the candidate (this run) is shown lower than the
    baseline's episodes of the same model and seeds by more than `max_drop` (in the
    metric's units; for error_rate, higher), by a one-sided paired test at `alpha`.
    `baseline`: a report directory or results.jsonl, relative to the rootdir (--baseline
    sets or overrides it)."""

    metric: str = "progression"
    max_drop: float = 0.0
    alpha: float = 0.025
    baseline: str | None = None


# metric -> (lowest, highest) max_drop: the per-episode metrics a comparison pairs
# (report.compare.METRICS has one entry for each)
REGRESSION_METRICS = {
    "progression": (0, 100),
    "achievements": (0, 22),
    "reward": (0, 23),
    "tool_call_rate": (0, 1),
    "error_rate": (0, 1),
}
REGRESSION_KEYS = {"baseline", "metric", "max_drop", "alpha"}


@dataclass(frozen=True)
class Gate:
    """Thresholds over all of a model's episodes, checked once after the run (`report`).

    None means no threshold. `success_rate` maps achievement -> percent, as sorted pairs
    (frozen). `on` is "mean" (the estimate) or "lower_bound" (the conservative end of its
    95% interval: the lower end for "at least" thresholds, the upper for max_error_rate).
    `sequential` (`sequential: true` is rounds of SEQUENTIAL_ROUND seeds) judges on
    confidence sequences instead (`report.sequential`).
    """

    mean_achievements: float | None = None
    mean_reward: float | None = None
    crafter_score: float | None = None
    progression: float | None = None  # percent of the 22 achievements per episode (BALROG)
    success_rate: tuple[tuple[str, float], ...] = ()
    min_tool_call_rate: float | None = None
    max_error_rate: float | None = None
    on: str = "mean"
    # 0: judged once, after the run. N: judged again after every round of N seeds on
    # confidence sequences, and the model's remaining episodes skipped once decided.
    sequential: int = 0
    regression: Regression | None = None

    @property
    def empty(self) -> bool:
        return (
            not self.success_rate
            and self.regression is None
            and all(getattr(self, name) is None for name in GATE_THRESHOLDS)
        )


@dataclass(frozen=True)
class Run:
    """One model of an eval file with its settings resolved."""

    model: str
    steps: int
    observation: Observation
    request: Request
    expect: Expect
    xfail: str | None = None
    line: int | None = None
    profiles: tuple = ()  # user profile entries (profiles.Entries): the file's, then --profiles
    gate: Gate = Gate()
    history: History = History()
    answer: Answer = Answer()
    source: str | None = None  # the eval file, for warnings that point at its lines
    compare: str | None = None  # the eval's `compare: {baseline: MODEL}`: the others vs it
    lines: tuple[tuple[str, int], ...] = ()  # ("request.temperature", line) where each is set
    protocol: Protocol = Protocol()

    def line_of(self, key: str) -> int | None:
        """The eval file's line that sets `key` (`request.temperature`), else the model's."""
        return dict(self.lines).get(key, self.line)


@dataclass(frozen=True)
class EvalSpec:
    name: str
    path: str
    seeds: tuple[int, ...]
    runs: tuple[Run, ...]
    defaults: Run  # the file-level settings, for models named only on the command line
    instructions: str | None = None
    name_line: int | None = None  # the line of `name:`; None: the name is the file's stem
    # `seeds: {train: ..., test: ...}`: the two splits, () when the file declares none.
    # `seeds` is what pytest plays: the test split (or the plain `seeds:`), or --seeds.
    train_seeds: tuple[int, ...] = ()
    test_seeds: tuple[int, ...] = ()

    def split_of(self, seed: int) -> str | None:
        """`test` for a seed of the file's test split, `train` for any other (only the
        test split is held out), None when the file declares no split."""
        if not self.train_seeds:
            return None
        return "test" if seed in self.test_seeds else "train"

    def with_overrides(
        self,
        models: list[str] | None = None,
        seeds: tuple[int, ...] | None = None,
        steps: int | None = None,
        profiles: tuple = (),
        api: str | None = None,
        until_decided: bool = False,
    ) -> EvalSpec:
        """Apply command-line overrides: `models` replaces the model list, keeping the
        file's settings for a model it already names; `profiles` (the entries of a
        --profiles file) override the file's; `api` (--api) replaces every model's
        request.api; `until_decided` (--until-decided) makes every gate sequential."""
        runs, defaults = self.runs, self.defaults
        if profiles:
            runs = tuple(replace(run, profiles=run.profiles + profiles) for run in runs)
            defaults = replace(defaults, profiles=defaults.profiles + profiles)
        if models:
            runs = tuple(_named(runs, m) or replace(defaults, model=m) for m in models)
        if steps is not None:
            runs = tuple(replace(run, steps=steps) for run in runs)
        if api is not None:
            runs = tuple(replace(run, request=replace(run.request, api=api)) for run in runs)
            defaults = replace(defaults, request=replace(defaults.request, api=api))
        if until_decided:
            runs = tuple(until_decided_run(run) for run in runs)
        return replace(
            self, runs=runs, defaults=defaults, seeds=seeds if seeds is not None else self.seeds
        )


def _named(runs: tuple[Run, ...], model: str) -> Run | None:
    """The file's run of `model` (from --model): the one it names exactly, else the one of
    the same model without parameters, or with other ones: a query string
    (`local/random?latency_ms=400`) is a parameter of the same model, which keeps the
    file's settings for it."""
    base = model.split("?", 1)[0]
    for candidates in (
        [r for r in runs if r.model == model],
        [r for r in runs if r.model == base],
        [r for r in runs if r.model.split("?", 1)[0] == base],
    ):
        if candidates:
            return replace(candidates[0], model=model)
    return None


def until_decided_run(run: Run) -> Run:
    """`run` with its gate made sequential (--until-decided), in rounds of
    SEQUENTIAL_ROUND seeds unless the file sets its own; a run without a gate as it is."""
    if run.gate.empty or run.gate.sequential:
        return run
    return replace(run, gate=replace(run.gate, sequential=SEQUENTIAL_ROUND))


# -- parsing -------------------------------------------------------------------------

TOP_KEYS = {
    "name",
    "description",
    "instructions",
    "models",
    "seeds",
    "steps",
    "observation",
    "history",
    "answer",
    "request",
    "expect",
    "profiles",
    "gate",
    "compare",
    "protocol",
}
MODEL_KEYS = {
    "steps",
    "observation",
    "history",
    "answer",
    "request",
    "expect",
    "xfail",
    "gate",
    "protocol",
}
PROTOCOL_KEYS = {"name", "vision"}
HISTORY_KEYS = {"steps", "images", "layout"}
LAYOUTS = ("window", "blocks")  # history.layout
ANSWER_KEYS = {"format", "on_invalid", "retries", "feedback"}
OBSERVATION_KEYS = {"image", "text"}
IMAGE_KEYS = {"size", "detail"}
REQUEST_KEYS = {
    "max_output_tokens",
    "temperature",
    "top_p",
    "reasoning_effort",
    "reasoning_budget",
    "tool_choice",
    "parallel_tool_calls",
    "api",
    "logprobs",
    "prompt_cache_key",
}
EXPECT_KEYS = {"tool_call_at_first_step", "min_tool_call_rate", "min_achievements"}
# gate key -> (lowest, highest) accepted threshold
GATE_THRESHOLDS = {
    "mean_achievements": (0, 22),
    "mean_reward": (-1e9, 1e9),
    "crafter_score": (0, 100),
    "progression": (0, 100),
    "min_tool_call_rate": (0, 1),
    "max_error_rate": (0, 1),
}
# gate key -> (the metric it holds in the summary, "at least" (>=) or "at most" (<=))
GATE_METRICS = {
    "mean_achievements": ("mean_achievements", ">="),
    "mean_reward": ("mean_reward", ">="),
    "crafter_score": ("crafter_score", ">="),
    "progression": ("progression", ">="),
    "min_tool_call_rate": ("tool_call_rate", ">="),
    "max_error_rate": ("error_rate", "<="),
}
GATE_KEYS = set(GATE_THRESHOLDS) | {"success_rate", "on", "sequential", "regression"}
SEQUENTIAL_ROUND = 10  # seeds per round of `gate: {sequential: true}` and --until-decided


# libyaml's parser when PyYAML has it: about 4x faster on long seed lists. A file it
# rejects is parsed again by the pure-Python parser, whose messages say more.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_VALUES = MAX_SEEDS + 10_000  # values in one file, aliases expanded (stops "billion laughs")


class _Doc:
    """A YAML document as plain values, with the line of every key path."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.lines: dict[str, int] = {}
        self._values = 0
        try:
            try:
                node = yaml.compose(text, Loader=_FAST_LOADER)
            except yaml.YAMLError as fast_error:
                if "nesting depth" in str(fast_error):
                    raise  # the pure-Python parser would take seconds to say so
                node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else None
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise SpecError(path, line, "", f"invalid YAML: {problem}") from None
        except RecursionError:
            raise SpecError(path, None, "", "invalid YAML: nested too deeply") from None
        self._scalars = yaml.SafeLoader("")
        try:
            self.value = None if node is None else self._convert(node, "")
        except RecursionError:
            raise SpecError(path, None, "", "invalid YAML: nested too deeply") from None
        finally:
            self._scalars.dispose()

    def _convert(self, node: yaml.Node, key: str) -> Any:
        self._values += 1
        if self._values > MAX_VALUES:
            raise SpecError(
                self.path,
                node.start_mark.line + 1,
                key,
                f"more than {MAX_VALUES} values (do YAML aliases expand too far?)",
            )
        self.lines.setdefault(key, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for knode, vnode in node.value:
                if not isinstance(knode, yaml.ScalarNode):
                    raise SpecError(
                        self.path,
                        knode.start_mark.line + 1,
                        key,
                        "a key must be a plain name, not a list or mapping",
                    )
                name = self._convert(knode, key)
                child = f"{key}.{name}" if key else str(name)
                if name in out:
                    raise SpecError(self.path, knode.start_mark.line + 1, child, "key given twice")
                self.lines[child] = knode.start_mark.line + 1
                out[name] = self._convert(vnode, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(v, f"{key}[{i}]") for i, v in enumerate(node.value)]
        try:
            return self._scalars.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
            raise SpecError(
                self.path, node.start_mark.line + 1, key, f"invalid value: {problem}"
            ) from None

    def error(self, key: str, message: str) -> SpecError:
        line = self.lines.get(key)
        probe = key
        while line is None and probe:
            shorter = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", probe)
            probe = shorter if shorter != probe else ""  # a top-level key: the file's line
            line = self.lines.get(probe)
        return SpecError(self.path, line, key, message)


def load(path: str | Path, text: str | None = None) -> EvalSpec:
    """Read and validate one eval file. Raises `SpecError`."""
    path = Path(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(path, None, "", f"cannot read: {exc}") from None
    doc = _Doc(path, text)
    data = doc.value
    if data is None:
        raise SpecError(path, None, "", "empty eval file: expected a mapping with a 'models' key")
    if not isinstance(data, dict):
        raise doc.error("", f"expected a mapping at the top, got {type_name(data)}")
    _check_keys(doc, data, TOP_KEYS, "")

    name = data.get("name", path.stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise doc.error(
            "name", f"must be a short name of letters, digits, '.', '_' or '-', got {name!r}"
        )
    instructions = data.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise doc.error("instructions", f"must be a string, got {type_name(instructions)}")
    if "models" not in data:
        raise doc.error("", "missing key 'models'")
    user_profiles = _profiles(doc, data["profiles"], "profiles") if "profiles" in data else ()
    base = Run(
        model="",
        profiles=user_profiles,
        steps=_steps(doc, data.get("steps", 50), "steps"),
        observation=_observation(doc, data.get("observation", {}), "observation", Observation()),
        history=_history(doc, data.get("history", {}), "history", History()),
        answer=_section(doc, data.get("answer", {}), "answer", Answer(), ANSWER_KEYS),
        request=_section(doc, data.get("request", {}), "request", Request(), REQUEST_KEYS),
        expect=_section(doc, data.get("expect", {}), "expect", Expect(), EXPECT_KEYS),
        gate=_gate(doc, data.get("gate", {}), "gate", Gate()),
        protocol=_protocol(doc, data.get("protocol"), "protocol", Protocol()),
        source=str(path),
        # a model named only by --model gets these settings: its warnings point at the
        # file's model list, which --model replaces
        line=doc.lines.get("models"),
        lines=tuple(
            (f"request.{k}", doc.lines[f"request.{k}"])
            for k in sorted(REQUEST_KEYS)
            if f"request.{k}" in doc.lines
        ),
    )
    seeds, train_seeds = _seed_splits(doc, data.get("seeds", 1), "seeds")
    runs = _models(doc, data["models"], base)
    if "compare" in data:
        baseline = _compare(doc, data["compare"], runs)
        runs = tuple(replace(run, compare=baseline) for run in runs)
        base = replace(base, compare=baseline)
    if instructions is not None and any(run.protocol.name == "balrog" for run in runs):
        raise doc.error("instructions", "not used with protocol: balrog (its prompt is BALROG's)")
    return EvalSpec(
        name=name,
        path=str(path),
        seeds=seeds,
        runs=runs,
        defaults=base,
        instructions=instructions,
        train_seeds=train_seeds,
        test_seeds=seeds if train_seeds else (),
        name_line=doc.lines.get("name"),
    )


def _models(doc: _Doc, value: Any, base: Run) -> tuple[Run, ...]:
    if not isinstance(value, list):
        raise doc.error("models", f"must be a list of model names, got {type_name(value)}")
    if not value:
        raise doc.error("models", "the model list is empty")
    runs: list[Run] = []
    seen: set[str] = set()
    for i, entry in enumerate(value):
        key = f"models[{i}]"
        overrides: Any = {}
        if isinstance(entry, dict):
            if len(entry) != 1:
                raise doc.error(key, "a model given as a mapping has one key, its name")
            ((name, overrides),) = entry.items()
            overrides = {} if overrides is None else overrides
            if not isinstance(overrides, dict):
                raise doc.error(
                    key, f"overrides of {name!r} must be a mapping, got {type_name(overrides)}"
                )
        else:
            name = entry
        check_model_name(name, lambda msg, key=key: doc.error(key, msg))
        if name in seen:
            raise doc.error(key, f"duplicate model {name!r}")
        seen.add(name)
        sub = f"{key}.{name}"
        _check_keys(doc, overrides, MODEL_KEYS, sub)
        xfail = overrides.get("xfail")
        if xfail is not None and not (isinstance(xfail, str) and xfail.strip()):
            raise doc.error(f"{sub}.xfail", "must be a reason, a non-empty string")
        runs.append(
            Run(
                model=name,
                steps=_steps(doc, overrides["steps"], f"{sub}.steps")
                if "steps" in overrides
                else base.steps,
                observation=_observation(
                    doc, overrides.get("observation", {}), f"{sub}.observation", base.observation
                ),
                request=_section(
                    doc, overrides.get("request", {}), f"{sub}.request", base.request, REQUEST_KEYS
                ),
                expect=_section(
                    doc, overrides.get("expect", {}), f"{sub}.expect", base.expect, EXPECT_KEYS
                ),
                xfail=xfail,
                line=doc.lines.get(key),
                source=base.source,
                lines=tuple(
                    {
                        **dict(base.lines),
                        **{
                            f"request.{k}": doc.lines[f"{sub}.request.{k}"]
                            for k in sorted(REQUEST_KEYS)
                            if f"{sub}.request.{k}" in doc.lines
                        },
                    }.items()
                ),
                profiles=base.profiles,
                gate=_gate(doc, overrides.get("gate", {}), f"{sub}.gate", base.gate),
                history=_history(doc, overrides.get("history", {}), f"{sub}.history", base.history),
                answer=_section(
                    doc, overrides.get("answer", {}), f"{sub}.answer", base.answer, ANSWER_KEYS
                ),
                protocol=_protocol(
                    doc, overrides.get("protocol"), f"{sub}.protocol", base.protocol
                ),
            )
        )
        if runs[-1].protocol.name == "balrog":
            runs[-1] = _balrog(doc, runs[-1], sub)
    return tuple(runs)


def _protocol(doc: _Doc, value: Any, key: str, base: Protocol) -> Protocol:
    """`balrog`, or `{name: balrog, vision: true}`; a mapping without `name` keeps the
    file's protocol."""
    if value is None:
        return base
    fields = {"name": value} if isinstance(value, str) else value
    if not isinstance(fields, dict):
        raise doc.error(key, f"must be a protocol name or a mapping, got {type_name(value)}")
    _check_keys(doc, fields, PROTOCOL_KEYS, key)
    name = fields.get("name", base.name)
    if name not in PROTOCOLS:
        raise doc.error(key, f"unknown protocol {name!r}; expected one of {', '.join(PROTOCOLS)}")
    vision = fields.get("vision", base.vision if name == base.name else False)
    if not isinstance(vision, bool):
        raise doc.error(f"{key}.vision", f"must be true or false, got {vision!r}")
    if vision and name != "balrog":
        raise doc.error(f"{key}.vision", "only protocol balrog has a vision mode")
    return Protocol(name, vision)


def _balrog(doc: _Doc, run: Run, sub: str) -> Run:
    """A run of protocol balrog: BALROG's history (16 steps, 1 frame with vision) and its
    2,000 steps unless the file sets `steps`; the sections BALROG has no place for are
    refused."""
    from . import balrog

    for section in ("observation", "history", "answer"):
        for key in (section, f"{sub}.{section}"):
            if key in doc.lines:
                raise doc.error(key, "not used with protocol: balrog (BALROG's own applies)")
    for name in balrog.UNUSED_KEYS:
        for key in (f"request.{name}", f"{sub}.request.{name}"):
            if key in doc.lines:
                raise doc.error(key, "not used with protocol: balrog (no tools; chat completions)")
    given = "steps" in doc.lines or f"{sub}.steps" in doc.lines
    return replace(
        run,
        steps=run.steps if given else balrog.MAX_STEPS,
        history=History(balrog.TEXT_HISTORY, 1 if run.protocol.vision else 0, "window"),
    )


LOCAL_PREFIX = "local/"


def is_local(model: str) -> bool:
    """A built-in model, answered by the loopback server in `local/` with no key."""
    return model.startswith(LOCAL_PREFIX)


def _profiles(doc: _Doc, value: Any, key: str) -> tuple:
    from .profiles import check_entries  # profiles imports spec only for types

    return check_entries(value, lambda sub, msg: doc.error(f"{key}.{sub}" if sub else key, msg))


def load_profiles(path: str | Path) -> tuple:
    """Read a --profiles file: a mapping `profiles:` of model names (or patterns like
    'gpt-5*') to profile fields. Raises `SpecError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(path, None, "", f"cannot read: {exc}") from None
    doc = _Doc(path, text)
    if not isinstance(doc.value, dict) or "profiles" not in doc.value:
        raise doc.error(
            "", "expected a mapping with a 'profiles' key (model name -> profile fields)"
        )
    _check_keys(doc, doc.value, {"profiles"}, "")
    return _profiles(doc, doc.value["profiles"], "profiles")


def check_model_name(name: Any, error) -> str:
    """Model names end up in node ids and file names: keep them plain."""
    if not isinstance(name, str) or not name:
        raise error(f"a model name must be a non-empty string, got {type_name(name)}")
    if not _MODEL_NAME.match(name) or ".." in name.split("?")[0] or "//" in name:
        raise error(
            f"invalid model name {name!r}: use letters, digits and . _ - : @ + /, "
            "like 'gpt-4o-mini' or 'local/random'"
        )
    return name


def _steps(doc: _Doc, value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise doc.error(key, f"must be a whole number of model calls, got {type_name(value)}")
    if value < 1:
        raise doc.error(key, f"must be at least 1, got {value}")
    if value > 10_000:
        raise doc.error(key, f"at most 10000 (a Crafter episode's length), got {value}")
    return value


def parse_seeds(value: Any) -> tuple[int, ...]:
    """`10` -> 0..9; `"0-99"`; `"3,5,8"`; `[3, 5, 8]`; a trailing comma makes a list, so
    `"3,"` (like `[3]`) is the one seed 3. Raises ValueError with a reason."""
    if isinstance(value, bool):
        raise ValueError(f"expected a count, a range 'a-b' or a list, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            hint = " (for the one seed 0, write 0, or [0])" if value == 0 else ""
            raise ValueError(f"a seed count must be at least 1, got {value}{hint}")
        if value > MAX_SEEDS:
            raise ValueError(f"at most {MAX_SEEDS} seeds, got {value}")
        return tuple(range(value))
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+", text):
            return parse_seeds(int(text))
        match = re.fullmatch(r"(\d+)\s*-\s*(\d+)", text)
        if match:
            lo, hi = int(match[1]), int(match[2])
            if hi < lo:
                raise ValueError(f"range {text!r} ends before it starts")
            if hi >= 2**31:
                raise ValueError(f"a seed must be a whole number from 0 to 2**31-1, got {hi}")
            if hi - lo + 1 > MAX_SEEDS:
                raise ValueError(f"at most {MAX_SEEDS} seeds, got {hi - lo + 1}")
            return tuple(range(lo, hi + 1))
        if re.fullmatch(r"\d+(\s*,\s*\d+)*\s*,|\d+(\s*,\s*\d+)+", text):
            return parse_seeds([int(x) for x in text.split(",") if x.strip()])
        raise ValueError(f"expected a count, a range 'a-b' or a list 'a,b,c', got {value!r}")
    if isinstance(value, list):
        if not value:
            raise ValueError("the seed list is empty")
        if len(value) > MAX_SEEDS:
            raise ValueError(f"at most {MAX_SEEDS} seeds, got {len(value)}")
        for seed in value:
            if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
                raise ValueError(f"a seed must be a whole number from 0 to 2**31-1, got {seed!r}")
        if len(set(value)) != len(value):
            dup = next(s for s in value if value.count(s) > 1)
            raise ValueError(f"seed {dup} is listed twice")
        return tuple(value)
    raise ValueError(f"expected a count, a range 'a-b' or a list, got {type_name(value)}")


def _seeds(doc: _Doc, value: Any, key: str) -> tuple[int, ...]:
    try:
        return parse_seeds(value)
    except ValueError as exc:
        raise doc.error(key, str(exc)) from None


SPLITS = ("train", "test")


def _seed_splits(doc: _Doc, value: Any, key: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(test seeds, train seeds) of a `seeds:` value: a plain value is the test set and
    no train set; a mapping `{train: ..., test: ...}` gives both (each required), and a
    seed in both is an error."""
    if not isinstance(value, dict):
        return _seeds(doc, value, key), ()
    _check_keys(doc, value, set(SPLITS), key)
    for split in SPLITS:
        if split not in value:
            raise doc.error(
                key,
                f"missing key '{split}': a seed split gives both, like {{train: 1000-9999, test: 0-99}}",
            )
    test = _seeds(doc, value["test"], f"{key}.test")
    train = _seeds(doc, value["train"], f"{key}.train")
    both = set(test).intersection(train)
    if both:
        first = min(both)
        raise doc.error(
            f"{key}.train",
            f"seed {first} is also in {key}.test (line {doc.lines.get(f'{key}.test')})"
            + (f" with {len(both) - 1} more" if len(both) > 1 else "")
            + ": a seed belongs to one split",
        )
    return test, train


def _observation(doc: _Doc, value: Any, key: str, base: Observation) -> Observation:
    if not isinstance(value, dict):
        raise doc.error(key, f"must be a mapping, got {type_name(value)}")
    _check_keys(doc, value, OBSERVATION_KEYS, key)
    image = base.image
    if "image" in value:
        raw = value["image"]
        if raw is False:
            image = None
        elif raw is True:
            image = base.image or Image()
        elif isinstance(raw, dict):
            _check_keys(doc, raw, IMAGE_KEYS, f"{key}.image")
            image = _section(doc, raw, f"{key}.image", base.image or Image(), IMAGE_KEYS)
            low, high = IMAGE_SIZES
            if not low <= image.size <= high:
                raise doc.error(
                    f"{key}.image.size",
                    f"must be from {low} to {high} pixels, got {image.size}",
                )
            if image.detail not in ("low", "high", "auto"):
                raise doc.error(
                    f"{key}.image.detail", f"must be low, high or auto, got {image.detail!r}"
                )
        else:
            raise doc.error(
                f"{key}.image",
                f"must be false or a mapping like {{size: 64}}, got {type_name(raw)}",
            )
    text = value.get("text", base.text)
    if not isinstance(text, bool):
        raise doc.error(f"{key}.text", f"must be true or false, got {type_name(text)}")
    if image is None and not text:
        raise doc.error(key, "image and text are both off: the model would see nothing")
    return Observation(image=image, text=text)


def _history(doc: _Doc, value: Any, key: str, base: History) -> History:
    history = _section(doc, value, key, base, HISTORY_KEYS)
    if history.images > history.steps:
        where = f"{key}.images" if "images" in (value or {}) else f"{key}.steps"
        raise doc.error(
            where,
            f"images ({history.images}) cannot exceed steps ({history.steps}): "
            "only earlier steps sent can keep their frame",
        )
    return history


_FIELD_TYPES = {
    "size": int,
    "detail": str,
    "max_output_tokens": int,
    "temperature": float,
    "top_p": float,
    "reasoning_effort": str,
    "reasoning_budget": int,
    "tool_choice": str,
    "parallel_tool_calls": bool,
    "api": str,
    "logprobs": bool,
    "tool_call_at_first_step": bool,
    "min_tool_call_rate": float,
    "min_achievements": int,
    "steps": int,
    "images": int,
    "layout": str,
    "prompt_cache_key": bool,
    "format": str,
    "on_invalid": str,
    "retries": int,
    "feedback": bool,
}
_RANGES: dict[str, tuple[float, float]] = {
    "max_output_tokens": (1, 1_000_000),
    "temperature": (0, 2),
    "top_p": (0, 1),
    "min_tool_call_rate": (0, 1),
    "min_achievements": (0, 22),
    "reasoning_budget": (0, 1_000_000),
    "steps": (0, 100),  # history.steps (the top-level steps has its own check)
    "images": (0, 100),
    "retries": (1, 10),
}
_CHOICES = {
    "format": ("tool", "text", "auto"),
    "on_invalid": ("end", "noop", "retry"),
    "layout": LAYOUTS,
    "reasoning_effort": ("none", "minimal", "low", "medium", "high", "xhigh", "max"),
    "tool_choice": ("auto", "required", "none"),
}
_NULLABLE = REQUEST_KEYS  # null: leave the setting to the model's default


def _section(doc: _Doc, value: Any, key: str, base, allowed: set[str]):
    if not isinstance(value, dict):
        raise doc.error(key, f"must be a mapping, got {type_name(value)}")
    _check_keys(doc, value, allowed, key)
    changes: dict[str, Any] = {}
    for name, raw in value.items():
        sub = f"{key}.{name}"
        kind = _FIELD_TYPES[name]
        nullable = name in _NULLABLE
        if raw is None and nullable:
            changes[name] = None
            continue
        if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
            raw = float(raw)
        if not isinstance(raw, kind) or (kind is int and isinstance(raw, bool)):
            raise doc.error(sub, f"must be {_KIND_NAMES[kind]}, got {type_name(raw)}")
        choices = apis.names() if name == "api" else _CHOICES.get(name)  # registered APIs
        if choices and raw not in choices:
            raise doc.error(sub, f"must be one of {', '.join(choices)}, got {raw!r}")
        if name in _RANGES:
            lo, hi = _RANGES[name]
            if not lo <= float(raw) <= hi:  # type: ignore[arg-type]  # numeric: checked above
                raise doc.error(sub, f"must be from {lo} to {hi}, got {raw}")
        changes[name] = raw
    return replace(base, **changes)


def _gate(doc: _Doc, value: Any, key: str, base: Gate) -> Gate:
    """A `gate:` mapping over `base`, key by key; a key set to null drops that threshold,
    and `gate: null` drops them all."""
    if value is None:
        return Gate()
    if not isinstance(value, dict):
        raise doc.error(key, f"must be a mapping of thresholds, got {type_name(value)}")
    if True in value:  # YAML 1.1 reads a bare `on:` key as true
        if f"{key}.True" in doc.lines:
            doc.lines.setdefault(f"{key}.on", doc.lines[f"{key}.True"])
        value = {("on" if k is True else k): v for k, v in value.items()}
    _check_keys(doc, value, GATE_KEYS, key)
    changes: dict[str, Any] = {}
    for name, raw in value.items():
        sub = f"{key}.{name}"
        if name == "on":
            if raw not in ("mean", "lower_bound"):
                raise doc.error(sub, f"must be mean or lower_bound, got {type_name(raw)}")
            changes[name] = raw
        elif name == "sequential":
            if raw is None or raw is False:
                changes[name] = 0
            elif raw is True:
                changes[name] = SEQUENTIAL_ROUND
            elif isinstance(raw, int) and 1 <= raw <= MAX_SEEDS:
                changes[name] = raw
            else:
                raise doc.error(
                    sub,
                    "must be true, false or a round size in seeds (a whole number from 1), "
                    f"got {type_name(raw)}",
                )
        elif name == "regression":
            changes[name] = None if raw is None else _regression(doc, raw, sub)
        elif name == "success_rate":
            if raw is None:
                changes[name] = ()
                continue
            if not isinstance(raw, dict) or not raw:
                raise doc.error(
                    sub, "must be a mapping of achievement -> percent, like {collect_wood: 50}"
                )
            rates = []
            for achievement, percent in raw.items():
                where = f"{sub}.{achievement}"
                if achievement not in ACHIEVEMENTS:
                    hint = difflib.get_close_matches(str(achievement), ACHIEVEMENTS, n=1)
                    raise doc.error(
                        where,
                        "unknown achievement"
                        + (
                            f" (did you mean '{hint[0]}'?)"
                            if hint
                            else "; Crafter's 22 are collect_*, defeat_*, eat_*, make_*, place_*, wake_up"
                        ),
                    )
                rates.append((achievement, _number(doc, percent, where, 0, 100)))
            changes[name] = tuple(sorted(rates))
        else:
            lo, hi = GATE_THRESHOLDS[name]
            changes[name] = None if raw is None else _number(doc, raw, sub, lo, hi)
    return replace(base, **changes)


def _regression(doc: _Doc, value: Any, key: str) -> Regression:
    if not isinstance(value, dict):
        raise doc.error(
            key,
            "must be a mapping like {baseline: reports/main, metric: progression, "
            f"max_drop: 3}}, got {type_name(value)}",
        )
    _check_keys(doc, value, REGRESSION_KEYS, key)
    metric = value.get("metric", "progression")
    if metric not in REGRESSION_METRICS:
        raise doc.error(
            f"{key}.metric", f"must be one of {', '.join(REGRESSION_METRICS)}, got {metric!r}"
        )
    if "max_drop" not in value:
        raise doc.error(
            key, "missing key 'max_drop' (the drop it tolerates, in the metric's units)"
        )
    lo, hi = REGRESSION_METRICS[metric]
    max_drop = _number(doc, value["max_drop"], f"{key}.max_drop", lo, hi)
    alpha = _number(doc, value.get("alpha", 0.025), f"{key}.alpha", 0, 0.5)
    if not 0 < alpha < 0.5:
        raise doc.error(f"{key}.alpha", f"must be between 0 and 0.5, got {alpha:g}")
    baseline = value.get("baseline")
    if baseline is not None and not (isinstance(baseline, str) and baseline.strip()):
        raise doc.error(
            f"{key}.baseline",
            f"must be a path (a report directory or results.jsonl), got {type_name(baseline)}",
        )
    return Regression(metric=metric, max_drop=max_drop, alpha=alpha, baseline=baseline)


def _compare(doc: _Doc, value: Any, models: tuple[Run, ...]) -> str:
    if not isinstance(value, dict) or set(value) != {"baseline"}:
        if isinstance(value, dict):
            _check_keys(doc, value, {"baseline"}, "compare")
        raise doc.error("compare", "must be a mapping {baseline: MODEL}, one of the file's models")
    name = value["baseline"]
    listed = [run.model for run in models]
    if name not in listed:
        raise doc.error(
            "compare.baseline",
            f"must be one of the file's models ({', '.join(listed)}), got {name!r}",
        )
    return name


def _number(doc: _Doc, raw: Any, key: str, lo: float, hi: float) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw != raw:
        raise doc.error(key, f"must be a number, got {type_name(raw)}")
    if not lo <= raw <= hi:
        raise doc.error(key, f"must be from {lo:g} to {hi:g}, got {raw}")
    return float(raw)


_KIND_NAMES = {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}


def _check_keys(doc: _Doc, value: dict, allowed: set[str], key: str) -> None:
    for name in value:
        if name not in allowed:
            sub = f"{key}.{name}" if key else str(name)
            hint = difflib.get_close_matches(str(name), sorted(allowed), n=1)
            extra = (
                f" (did you mean '{hint[0]}'?)"
                if hint
                else f"; known keys: {', '.join(sorted(allowed))}"
            )
            raise doc.error(sub, f"unknown key{extra}")
