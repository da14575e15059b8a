"""Stage: data (export). Traces written by `--trace-dir` -> fine-tuning files.

    crafter-eval export TRACE_DIR [TRACE_DIR ...] --out DIR [options]

Reads trace directories (`<eval>/<model>/seed-<n>/steps.jsonl` + frames, format in
`trace`) and, optionally, the runs' `results.jsonl` (for outcomes and fingerprints,
which traces do not hold). Never writes to them. Writes only under DIR: `train.jsonl`,
`val.jsonl`, `manifest.json`, and for `--format hf` the PNGs under `images/`.

The pipeline, one pure function per step over episodes loaded once:

    load (reads and checks every line and file: the only place bad input is found)
    -> select_episodes -> select_steps -> split -> limit (-> shuffle)
    -> EXAMPLES[format] (openai_example, hf_example) -> write (temporary names, then renames)

A format is one function from a step to a JSON line and one line in `EXAMPLES`, or
from an episode to a line and one line in `EPISODES` (`rollouts`, in `data/rollouts.py`).

An episode keeps only what the filters need (about 1.5 kB a step); `openai_example`
and `hf_example` read the step's line again (`Episode.line`), so memory does not grow
with the size of the traces or of the files written.

Rules kept here and nowhere else:

* A step becomes an example only when its answer was a valid call: `no_tool_call`
  null, and every call parses (`adapters.chat.parse_message`: traces are in chat form;
  a call written in the text, with `answer.format` text or auto, by `answers.parse_text`)
  with no malformed JSON, unknown tool, invalid or surplus action. Its answer is written
  as `--calls` says: by default the native tool call (a call written in the text becomes
  the call it was parsed to), so every example ends in an assistant `tool_calls` message.
* hf has no per-message weight: an hf example whose history holds an invalid answer is
  dropped (`invalid_history`) unless `--keep-invalid-history`.
* An episode's reward is the sum of the per-step `reward`s, never `reward_total` (a
  running total); `reward_total` and the results record are only checked against it,
  and any mismatch is listed in the manifest.
* The split is by world, never by step or episode: a seed is the same map for every
  eval and model, so all the episodes of a seed go to one split.
* The same inputs and options give byte-identical files, however TRACE_DIR is spelled and
  wherever export runs: no clocks, no paths (an episode is named by its TRACE_DIR's
  position and `<eval>/<model>/seed-<n>`, a TRACE_DIR by its last component), every
  random choice a hash of `--split-seed` and the example's identity.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import io
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config.game import ACHIEVEMENTS
from ..wire.adapters.chat import parse_message
from ..wire.answers import find_calls, parse_text
from . import rollouts, trace

MANIFEST_SCHEMA = 1
FORMATS = ("openai", "hf", "rollouts")  # the keys of EXAMPLES and EPISODES
CALLS = ("native", "hermes", "llama3_json", "as-written")
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed")
EPISODE_FILTERS = (
    "test_seeds",
    "evals",
    "models",
    "outcome",
    "min_achievements",
    "require",
    "min_reward",
)
STEP_FILTERS = (
    "no_tool_call",
    "invalid_tool_call",
    "invalid_history",
    "only_new_achievement",
    "drop_loops",
    "dedupe",
)
_SEED_DIR = re.compile(r"seed-(\d+)")
_IMAGE_NAME = re.compile(r"[0-9a-f]{16}\.[a-z]+")
_TEMPORARY = re.compile(r"\.[^/]+\.\d+\.tmp")  # `temp()` in `write`
_REWARD_TOLERANCE = 1e-6
_SUFFIXES = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}


class ExportError(Exception):
    """Bad input: one line naming the file (and line) and what is wrong."""


@dataclass(frozen=True)
class Options:
    """What to export. Every filter is off by default: all episodes, every step with a
    valid tool call, 10% of the episodes in val."""

    format: str = "openai"  # or "hf", "rollouts" (`rollouts`: one line per episode)
    include_test_seeds: bool = False  # episodes of an eval's test split (seeds.test)
    evals: tuple[str, ...] = ()  # names or fnmatch patterns; empty: all
    models: tuple[str, ...] = ()
    outcome: tuple[str, ...] = ()  # needs results.jsonl; empty: any
    min_achievements: int = 0
    require: tuple[str, ...] = ()  # achievements every kept episode unlocked
    min_reward: float | None = None
    only_new_achievement: bool = False
    window: int = 0  # with only_new_achievement: also the K steps before
    drop_loops: int = 0  # 0: off
    dedupe: bool = False
    val_fraction: float = 0.1
    seed: int = 0
    max_examples: int | None = None
    shuffle: bool = False
    calls: str = "native"  # how the answer is written: one of CALLS
    system_as_user: bool = False  # the instructions as the first user message
    keep_invalid_history: bool = False  # hf: keep examples with an invalid earlier answer

    def problems(self, have_results: bool) -> list[str]:
        """Usage errors in these options (empty when fine)."""
        out = []
        if self.format not in FORMATS:
            out.append(f"--format: expected one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.calls not in CALLS:
            out.append(f"--calls: expected one of {', '.join(CALLS)}, got {self.calls!r}")
        if not 0 <= self.val_fraction < 1:
            out.append(f"--val-fraction: expected 0 <= F < 1, got {self.val_fraction}")
        if self.window < 0 or self.drop_loops < 0 or self.min_achievements < 0:
            out.append("--window, --drop-loops and --min-achievements take N >= 0")
        if self.window and not self.only_new_achievement:
            out.append("--window K needs --only-new-achievement")
        if self.max_examples is not None and self.max_examples < 1:
            out.append(f"--max-examples: expected N >= 1, got {self.max_examples}")
        unknown = [a for a in self.require if a not in ACHIEVEMENTS]
        if unknown:
            out.append(f"--require: unknown achievement(s) {', '.join(unknown)}")
        wrong = [o for o in self.outcome if o not in OUTCOMES]
        if wrong:
            out.append(f"--outcome: expected some of {', '.join(OUTCOMES)}, got {', '.join(wrong)}")
        if self.outcome and not have_results:
            out.append(
                "--outcome needs --results FILE (the run's results.jsonl): traces hold no outcomes"
            )
        return out


@dataclass
class Step:
    """One line of steps.jsonl, with what the filters need."""

    index: int  # position in the episode (0-based)
    line: int  # line number in steps.jsonl (1-based)
    step: int  # the episode step it answers (a step asked again has a line per attempt)
    offset: int  # where the line starts in steps.jsonl, to read it again when writing
    problem: str | None  # None, or the first of STEP_FILTERS that drops it always
    reward: float  # the step's own reward
    new_achievements: tuple[str, ...]
    actions: tuple[str, ...]
    frame_key: str | None  # digest of the pixels of the step's frame
    observation_key: str  # digest of what the model was shown this step
    invalid_history: bool = False  # an earlier answer in its request was invalid
    data: dict[str, Any] | None = None  # the line itself, when given instead of `offset`


@dataclass
class Episode:
    """One trace directory `<eval>/<model>/seed-<n>`, checked."""

    source: int  # index of its TRACE_DIR argument
    trace: str  # its directory under its TRACE_DIR: `<eval>/<model>/seed-<n>`
    directory: Path
    eval: str
    model: str
    seed: int
    steps: list[Step]
    achievements: list[str]  # unlocked by the end, in order
    reward: float  # the sum of the per-step rewards
    reward_total: float | None  # the last line's running total, as written
    record: dict[str, Any] | None = None  # its results.jsonl record, when given
    seed_split: str | None = None  # train or test in its eval file; None: no split
    checks: list[str] = field(default_factory=list)  # mismatches found

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.eval, self.model, self.seed)

    @property
    def outcome(self) -> str | None:
        return self.record.get("outcome") if self.record else None

    def line(self, step: Step) -> dict[str, Any]:
        """The step's line of steps.jsonl, read again (episodes keep only what the
        filters need, so memory does not grow with the traces' size)."""
        if step.data is not None:
            return step.data
        path = self.directory / "steps.jsonl"
        with open(path, "rb") as file:
            file.seek(step.offset)
            raw = file.readline()
        try:
            line = json.loads(raw)
        except ValueError:
            line = None
        if not isinstance(line, dict) or _shape_problem(line):
            raise ExportError(f"{path}:{step.line}: changed while the export ran")
        return line


# ---------------------------------------------------------------- loading (reads files)


def load(sources: Iterable[Path], results: Iterable[Path] = ()) -> list[Episode]:
    """Every episode under the trace directories, sorted by (eval, model, seed, source),
    each line checked; `ExportError` on the first bad input."""
    records = load_results(results)
    episodes = []
    for number, source in enumerate(sources):
        for directory in find_episodes(Path(source)):
            episodes.append(load_episode(number, directory, records))
    episodes.sort(key=lambda e: (e.eval, e.model, e.seed, e.source, e.trace))
    return episodes


def find_episodes(source: Path) -> list[Path]:
    """The episode directories (holding steps.jsonl) under `source`, sorted."""
    if not source.is_dir():
        raise ExportError(f"{source}: not a directory")
    found = sorted(p.parent for p in source.rglob("steps.jsonl"))
    if not found:
        raise ExportError(
            f"{source}: not a trace directory: no <eval>/<model>/seed-<n>/steps.jsonl "
            "under it (pytest --trace-dir writes them)"
        )
    for directory in found:
        if not _SEED_DIR.fullmatch(directory.name):
            raise ExportError(
                f"{directory / 'steps.jsonl'}: not in a <eval>/<model>/seed-<n> directory"
            )
    return found


def load_results(paths: Iterable[Path]) -> dict[str, list[dict[str, Any]]]:
    """results.jsonl records by their trace path `<eval>/<model>/seed-<n>`, in file order."""
    keyed: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ExportError(f"{path}: cannot read: {exc}") from None
        for number, raw in enumerate(text.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                where = trace.episode_path(record["eval"], record["model"], int(record["seed"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise ExportError(
                    f"{path}:{number}: not a results record ({type(exc).__name__}: {exc})"
                ) from None
            keyed.setdefault(where.as_posix(), []).append(record)
    return keyed


def load_episode(source: int, directory: Path, records: dict[str, list[dict[str, Any]]]) -> Episode:
    """Read and check one episode's steps.jsonl and the image files it names."""
    path = directory / "steps.jsonl"
    lines = _lines(path)
    digests: dict[str, str] = {}  # image file -> pixel digest, for this episode

    def digest(name: str, number: int, where: str) -> str:
        if name not in digests:
            file = directory / name
            try:
                digests[name] = _pixel_digest(file.read_bytes())
            except OSError:
                raise ExportError(f"{path}:{number}: {where}: missing frame {name}") from None
        return digests[name]

    steps: list[Step] = []
    reward = 0.0
    reward_total = None
    checks: list[str] = []
    unlocked: list[str] = []
    sent = None  # the model name in the first request
    seed_split = None
    for index, (number, offset, line) in enumerate(lines):
        messages = line["messages"]
        if index == 0:
            sent = line.get("params", {}).get("model")
            seed_split = line.get("seed_split")
        for i, message in enumerate(messages):
            for name in trace.image_files(message):
                digest(name, number, f"messages[{i}]")
        frame_key = None
        if line.get("frame"):
            frame_key = digest(line["frame"], number, "frame")
        reward += line["reward"]
        if line.get("reward_total") is not None:
            reward_total = float(line["reward_total"])
            if abs(reward_total - reward) > _REWARD_TOLERANCE and not checks:
                checks.append(
                    f"line {number}: reward_total {reward_total:g} is not the sum of the "
                    f"per-step rewards so far, {reward:g}"
                )
        achievements = line["achievements"]
        new = line.get("new_achievements")
        if new is None:
            new = [a for a in achievements if a not in unlocked]
        unlocked = list(achievements)
        steps.append(
            Step(
                index=index,
                line=number,
                step=line["step"] if isinstance(line.get("step"), int) else index,
                offset=offset,
                problem=_problem(messages, line.get("no_tool_call")),
                invalid_history=any(
                    m.get("role") == "assistant" and _answer_problem(m) for m in messages[:-1]
                ),
                reward=float(line["reward"]),
                new_achievements=tuple(new),
                actions=tuple(str(a) for a in line.get("actions") or ()),
                frame_key=frame_key,
                observation_key=_observation_key(messages, digests),
            )
        )
    eval_name, model = directory.parent.parent.name, directory.parent.name
    seed = int(directory.name.removeprefix("seed-"))  # find_episodes checked the name
    if isinstance(sent, str) and trace.episode_path("x", sent, 0).parts[1] == model:
        model = sent  # the model name as sent, when it matches the directory
    episode = Episode(
        source=source,
        trace="/".join(directory.parts[-3:]),  # the same however TRACE_DIR is spelled
        directory=directory,
        eval=eval_name,
        model=model,
        seed=seed,
        steps=steps,
        achievements=unlocked,
        reward=round(reward, 6),
        reward_total=reward_total,
        checks=checks,
        seed_split=seed_split,
    )
    _join_record(episode, records)
    return episode


def _lines(path: Path) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(line number, byte offset, parsed line) of a steps.jsonl, each line checked for
    the keys export reads."""
    try:
        raws = path.read_bytes().split(b"\n")
    except OSError as exc:
        raise ExportError(f"{path}: cannot read: {exc}") from None
    if raws[-1]:
        raise ExportError(
            f"{path}:{len(raws)}: truncated: the last line has no end (the run stopped "
            "while writing it); delete that line or the episode"
        )
    offset = 0
    for number, raw in enumerate(raws[:-1], 1):
        try:
            line = json.loads(raw)
        except UnicodeDecodeError:
            raise ExportError(f"{path}:{number}: not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise ExportError(
                f"{path}:{number}: not a JSON line ({exc.msg} at column {exc.colno})"
            ) from None
        problem = _shape_problem(line)
        if problem:
            raise ExportError(f"{path}:{number}: {problem}")
        yield number, offset, line
        offset += len(raw) + 1


def _shape_problem(line: Any) -> str | None:
    if not isinstance(line, dict):
        return "not a JSON object"
    messages = line.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return "messages: expected a list of messages"
    if not isinstance(line.get("tools"), list):
        return "tools: expected a list"
    reward = line.get("reward")
    if isinstance(reward, bool) or not isinstance(reward, int | float):
        return "reward: expected a number (the step's own reward)"
    total = line.get("reward_total")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int | float)):
        return "reward_total: expected a number"
    for key in ("achievements", "new_achievements", "actions"):
        value = line.get(key, [] if key != "achievements" else None)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"{key}: expected a list of names"
    if line.get("frame") is not None and not isinstance(line["frame"], str):
        return "frame: expected a file name"
    if line.get("seed_split") not in (None, "train", "test"):
        return "seed_split: expected train, test or null"
    if not isinstance(line.get("params", {}), dict):
        return "params: expected an object"
    return None


def _problem(messages: list[dict[str, Any]], no_tool_call: Any) -> str | None:
    """Why a step is no example: None, "no_tool_call" or "invalid_tool_call". An answer
    with no native call is an example when its text holds a clean call (the eval's
    `answer.format` was text or auto: the answer is trained as it was written)."""
    answer = messages[-1] if messages else {}
    if no_tool_call or answer.get("role") != "assistant":
        return "no_tool_call"
    return _answer_problem(answer)


def _answer_problem(answer: dict[str, Any]) -> str | None:
    """None when an assistant message holds a clean call (native, or written in its
    text), else "no_tool_call" or "invalid_tool_call"."""
    if answer.get("tool_calls"):
        parsed = parse_message(answer)
    else:
        parsed = parse_text(answer.get("content"))
        if not parsed.tool_calls:
            return "no_tool_call"
    clean = (
        parsed.ok
        and parsed.valid_calls == parsed.tool_calls
        and not (
            parsed.invalid_actions
            or parsed.malformed_json
            or parsed.unknown_tools
            or parsed.too_many_actions
        )
    )
    return None if clean else "invalid_tool_call"


def _observation_key(messages: list[dict[str, Any]], digests: dict[str, str]) -> str:
    """A digest of the last user message, each image file as the digest of its pixels."""
    shown: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get("type") == "image_url" and isinstance(value.get("image_url"), dict):
                url = value["image_url"].get("url", "")
                return {"image": digests.get(url, url)}
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    text = json.dumps(plain(shown.get("content")), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _pixel_digest(png: bytes) -> str:
    """A digest of the decoded pixels (the PNG bytes vary with the zlib build)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(png)) as image:
            image.load()
            pixels = f"{image.mode}:{image.width}x{image.height}:".encode() + image.tobytes()
    except Exception:  # not an image PIL reads: its bytes stand for it
        pixels = png
    return hashlib.sha256(pixels).hexdigest()[:16]


def _join_record(episode: Episode, records: dict[str, list[dict[str, Any]]]) -> None:
    """Attach the episode's results record (the last with its number of steps: the
    trace's lines, one more when an error stopped it), and check its reward and
    achievements against the trace's."""
    where = "/".join(Path(episode.trace).parts[-3:])
    candidates = records.get(where, [])
    # steps, not lines (a step asked again has several); an error stops after one more
    n = len({s.step for s in episode.steps})
    matching = [
        r
        for r in candidates
        if r.get("steps") == n or (r.get("end") == "error" and r.get("steps") == n + 1)
    ]
    if not matching:
        if candidates:
            episode.checks.append(
                f"results: {len(candidates)} record(s) for this episode, none with its "
                f"{n} steps (from another run?); not used"
            )
        return
    record = episode.record = matching[-1]
    episode.eval, episode.model = str(record["eval"]), str(record["model"])
    reward = record.get("reward")
    if isinstance(reward, int | float) and abs(reward - episode.reward) > _REWARD_TOLERANCE:
        episode.checks.append(
            f"results: reward {reward:g} is not the sum of the per-step rewards, {episode.reward:g}"
        )
    achieved = record.get("achievements")
    if isinstance(achieved, dict) and sorted(achieved) != sorted(episode.achievements):
        episode.checks.append(
            f"results: achievements {sorted(achieved)} differ from the trace's "
            f"{sorted(episode.achievements)}"
        )


# ---------------------------------------------------------------- selection (pure)


def select_episodes(
    episodes: list[Episode], options: Options
) -> tuple[list[Episode], list[tuple[Episode, str]]]:
    """(kept, [(dropped, the first filter that dropped it)]), filters in EPISODE_FILTERS order."""
    tests: list[tuple[str, Callable[[Episode], bool]]] = [
        ("test_seeds", lambda e: options.include_test_seeds or e.seed_split != "test"),
        ("evals", lambda e: not options.evals or _matches(e.eval, options.evals)),
        ("models", lambda e: not options.models or _matches(e.model, options.models)),
        ("outcome", lambda e: not options.outcome or e.outcome in options.outcome),
        ("min_achievements", lambda e: len(e.achievements) >= options.min_achievements),
        ("require", lambda e: all(a in e.achievements for a in options.require)),
        (
            "min_reward",
            lambda e: options.min_reward is None or e.reward >= options.min_reward,
        ),
    ]
    kept, dropped = [], []
    for episode in episodes:
        failed = next((name for name, test in tests if not test(episode)), None)
        if failed is None:
            kept.append(episode)
        else:
            dropped.append((episode, failed))
    return kept, dropped


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    slug = trace.episode_path("x", name, 0).parts[1]
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(slug, p) for p in patterns)


def select_steps(
    episodes: list[Episode], options: Options
) -> tuple[list[list[Step]], Counter[str]]:
    """The steps kept of each episode, and how many each filter dropped (the first that
    applies, in STEP_FILTERS order). `--dedupe` compares with the steps kept before, in
    episode order, across all episodes."""
    dropped: Counter[str] = Counter()
    seen: set[tuple[str, tuple[str, ...]]] = set()
    kept_all = []
    for episode in episodes:
        steps = episode.steps
        near: set[int] = set()
        for step in steps:
            if step.new_achievements:
                near.update(range(max(0, step.index - options.window), step.index + 1))
        kept = []
        for step in steps:
            reason = step.problem
            if reason is None and step.invalid_history and _drops_invalid_history(options):
                reason = "invalid_history"
            if reason is None and options.only_new_achievement and step.index not in near:
                reason = "only_new_achievement"
            if reason is None and _loops(steps, step.index, options.drop_loops):
                reason = "drop_loops"
            seen_key = (step.observation_key, step.actions)
            if reason is None and options.dedupe and seen_key in seen:
                reason = "dedupe"
            if reason is None:
                kept.append(step)
                seen.add(seen_key)
            else:
                dropped[reason] += 1
        kept_all.append(kept)
    return kept_all, dropped


def _drops_invalid_history(options: Options) -> bool:
    """hf has no per-message weight: an example whose history holds an invalid answer
    would train it, so it is dropped unless --keep-invalid-history (OpenAI's format
    gives earlier answers weight 0)."""
    return options.format == "hf" and not options.keep_invalid_history


def _loops(steps: list[Step], index: int, n: int) -> bool:
    """Whether the step repeats each of the `n` steps before it: same frame, same actions."""
    if n <= 0 or index < n or steps[index].frame_key is None:
        return False
    here = (steps[index].frame_key, steps[index].actions)
    return all((s.frame_key, s.actions) == here for s in steps[index - n : index])


def split(episodes: list[Episode], fraction: float, seed: int) -> list[str]:
    """ "train" or "val" for each episode. By world: an episode's seed is its map, the
    same for every eval and model, so all the episodes of a seed go to one split. Seeds
    are stratified by the mean number of achievements of their episodes (rounded): val
    gets round(fraction x seeds) seeds (never all of them), spread over the strata by
    largest remainder, each stratum's seeds drawn in an order given by a hash of `seed`
    and the world's seed."""
    counts: dict[int, list[int]] = {}
    for episode in episodes:
        counts.setdefault(episode.seed, []).append(len(episode.achievements))
    strata: dict[int, list[int]] = {}
    for world, achieved in sorted(counts.items()):
        strata.setdefault(round(sum(achieved) / len(achieved)), []).append(world)
    total = len(counts)
    wanted = min(math.floor(fraction * total + 0.5), max(total - 1, 0))
    quota = {s: fraction * len(g) for s, g in strata.items()}
    take = {s: math.floor(q) for s, q in quota.items()}
    for s in sorted(quota, key=lambda s: (-(quota[s] - take[s]), s)):
        if sum(take.values()) >= wanted:
            break
        take[s] += 1
    while sum(take.values()) > wanted:  # only when flooring overshoots (never in practice)
        take[max(s for s in take if take[s])] -= 1
    val: set[int] = set()
    for s, worlds in strata.items():
        ranked = sorted(worlds, key=lambda w: _rank(seed, "split", w))
        val.update(ranked[: take[s]])
    return ["val" if e.seed in val else "train" for e in episodes]


def limit(
    splits: dict[str, list[tuple[Episode, Step]]], max_examples: int | None, seed: int
) -> dict[str, list[tuple[Episode, Step]]]:
    """At most `max_examples` examples in all, shared between the splits in proportion
    to their sizes, each split's drawn by a hash of `seed` and the example (order kept)."""
    total = sum(len(v) for v in splits.values())
    if max_examples is None or total <= max_examples:
        return splits
    n_val = math.floor(max_examples * len(splits["val"]) / total + 0.5)
    keep = {"train": max_examples - n_val, "val": n_val}
    out = {}
    for name, examples in splits.items():
        chosen = sorted(
            range(len(examples)), key=lambda i: _rank(seed, "max", *_example_id(examples[i]))
        )[: keep[name]]
        out[name] = [examples[i] for i in sorted(chosen)]
    return out


def shuffled(examples: list[tuple[Episode, Step]], seed: int) -> list[tuple[Episode, Step]]:
    return sorted(examples, key=lambda x: _rank(seed, "shuffle", *_example_id(x)))


def _example_id(example: tuple[Episode, Step]) -> tuple[Any, ...]:
    episode, step = example
    return (*episode.key, episode.source, episode.trace, step.index)


def _rank(seed: int, *parts: Any) -> str:
    return hashlib.sha256(json.dumps([seed, *parts]).encode()).hexdigest()


# ---------------------------------------------------------------- examples (pure + reads)

_MESSAGE_KEYS = {
    "system": ("role", "content", "name"),
    "user": ("role", "content", "name"),
    "assistant": ("role", "content", "name", "refusal", "tool_calls"),
    "tool": ("role", "content", "tool_call_id"),
}


def openai_example(
    episode: Episode,
    step: Step,
    read: Callable[[Path], bytes] = Path.read_bytes,
    options: Options = Options(),
) -> dict[str, Any]:
    """One line of an OpenAI chat fine-tuning file: `messages` as they were sent (images
    inlined, a `developer` message as `system`, keys the format does not take left out),
    the answer last; earlier assistant turns carry `weight: 0`, so only the step's own
    answer is trained; `tools`; `parallel_tool_calls` when the request set it."""
    line = episode.line(step)
    example = trace.sft_example(line, episode.directory, read)
    messages = _messages(example["messages"], step.index, options)
    for message in messages[:-1]:
        if message["role"] == "assistant":
            message["weight"] = 0
    out: dict[str, Any] = {"messages": messages, "tools": example["tools"]}
    parallel = line.get("params", {}).get("parallel_tool_calls")
    if isinstance(parallel, bool):
        out["parallel_tool_calls"] = parallel
    return out


def _messages(sent: list[dict[str, Any]], step: int, options: Options) -> list[dict[str, Any]]:
    """The request's messages in the chat format (see `_chat_message`), the answer last,
    written as `options.calls` says; with `system_as_user` the instructions are a user
    message (Llama 3.2 Vision's template refuses a system message next to images)."""
    messages = [_chat_message(m, step) for m in sent]
    if options.system_as_user and messages and messages[0]["role"] == "system":
        messages[0] = {"role": "user", "content": messages[0].get("content")}
    if messages and messages[-1]["role"] == "assistant":
        messages[-1] = written_as(messages[-1], options.calls, step)
    return messages


def answer_calls(answer: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, arguments as JSON text) of each call of an assistant message: its native
    calls, else the calls written in its text (`answers.find_calls`)."""
    if answer.get("tool_calls"):
        return [
            (str(c["function"]["name"]), str(c["function"]["arguments"]))
            for c in answer["tool_calls"]
        ]
    content = answer.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return [(c.name, c.arguments) for c in find_calls(content).calls]


def written_as(answer: dict[str, Any], calls: str, step: int) -> dict[str, Any]:
    """An assistant answer written as `calls` says (one of CALLS): `native` tool calls
    (a call written in the text becomes the native call it was parsed to; native calls
    stay as sent), the text form a vLLM tool parser reads back (`hermes`: `<tool_call>`
    tags, as Qwen writes them; `llama3_json`: `{"name", "parameters"}` objects joined by
    `; `), or `as-written`."""
    if calls == "as-written":
        return answer
    if calls == "native" and answer.get("tool_calls"):
        return answer
    found = answer_calls(answer)
    if calls == "native":
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{step}_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
                for i, (name, arguments) in enumerate(found)
            ],
        }
    parsed = [(name, json.loads(arguments)) for name, arguments in found]
    if calls == "hermes":
        text = "\n".join(
            f"<tool_call>\n{_json_text({'name': n, 'arguments': a})}\n</tool_call>"
            for n, a in parsed
        )
    else:
        text = "; ".join(_json_text({"name": n, "parameters": a}) for n, a in parsed)
    return {"role": "assistant", "content": text}


def _json_text(value: Any) -> str:
    """JSON as chat templates write it (`tojson`: blanks after `,` and `:`)."""
    return json.dumps(value, ensure_ascii=False)


def _chat_message(message: dict[str, Any], step: int) -> dict[str, Any]:
    role = "system" if message.get("role") == "developer" else message.get("role")
    keys = _MESSAGE_KEYS.get(str(role), ("role", "content", "name"))
    out = {k: message[k] for k in keys if k in message and k != "role"}
    out = {"role": role, **out}
    if isinstance(out.get("content"), list):
        out["content"] = [_part(p) for p in out["content"]]
    if role == "assistant":
        if not out.get("refusal"):
            out.pop("refusal", None)
        if "tool_calls" in out:
            out["tool_calls"] = [_tool_call(c, step, i) for i, c in enumerate(out["tool_calls"])]
    return out


def _part(part: Any) -> Any:
    if not isinstance(part, dict):
        return part
    if part.get("type") == "text":
        return {"type": "text", "text": part.get("text", "")}
    if part.get("type") == "image_url" and isinstance(part.get("image_url"), dict):
        image = {k: part["image_url"][k] for k in ("url", "detail") if k in part["image_url"]}
        return {"type": "image_url", "image_url": image}
    return part


def _tool_call(call: Any, step: int, i: int) -> Any:
    if not isinstance(call, dict):
        return call
    function = call["function"] if isinstance(call.get("function"), dict) else {}
    return {
        "id": call.get("id") or f"call_{step}_{i}",
        "type": call.get("type") or "function",
        "function": {"name": function.get("name"), "arguments": function.get("arguments")},
    }


def hf_example(
    episode: Episode,
    step: Step,
    image: Callable[[Path, str], str],
    options: Options = Options(),
) -> dict[str, Any]:
    """One line for Hugging Face `datasets` / TRL vision SFT: `messages` with every
    content a list of parts (`{"type": "text", "text"}`, `{"type": "image"}`), tool-call
    arguments as objects, and `images`, the paths (relative to DIR) that
    `image(episode directory, url)` gives for the image parts, in order; then `tools`."""
    messages, images = [], []
    line = episode.line(step)
    for message in _messages(line["messages"], step.index, options):
        content = message.get("content")
        if content is None:
            parts: list[Any] = []
        elif isinstance(content, str):
            parts = [{"type": "text", "text": content}]
        else:
            parts = []
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    parts.append({"type": "image"})
                    images.append(image(episode.directory, part["image_url"]["url"]))
                else:
                    parts.append(part)
        message["content"] = parts
        for call in message.get("tool_calls", []):
            try:
                arguments = json.loads(call["function"]["arguments"])
            except (TypeError, ValueError):
                continue  # kept as the string sent (only in earlier turns: see README)
            if isinstance(arguments, dict):
                call["function"]["arguments"] = arguments
        messages.append(message)
    return {"messages": messages, "images": images, "tools": line["tools"]}


@dataclass(frozen=True)
class Media:
    """How an example gets at the trace's images while `write` runs: `read(path)` the
    bytes of a file (cached), `image(episode directory, url)` the path under DIR of an
    image it writes (content-addressed, each once)."""

    read: Callable[[Path], bytes]
    image: Callable[[Path, str], str]


# format -> one example (a JSON line) of a step; a format is one function and a line here
EXAMPLES: dict[str, Callable[[Episode, Step, Media, Options], dict[str, Any]]] = {
    "openai": lambda episode, step, media, options: openai_example(
        episode, step, media.read, options
    ),
    "hf": lambda episode, step, media, options: hf_example(episode, step, media.image, options),
}

# format -> one line of an episode, all its steps (the step filters do not apply)
EPISODES: dict[str, Callable[[Episode, Media, Options], dict[str, Any]]] = {
    "rollouts": lambda episode, media, options: rollouts.rollout(
        episode, media.image, episode.line
    ),
}


# ---------------------------------------------------------------- the whole export


@dataclass
class Plan:
    """Everything decided before a file is written."""

    episodes: list[Episode]  # all found
    kept: list[Episode]
    dropped: list[tuple[Episode, str]]
    steps_dropped: Counter[str]
    split_of: dict[int, str]  # id(episode) -> split
    splits: dict[str, list[tuple[Episode, Step]]]
    before_limit: int


def plan(episodes: list[Episode], options: Options) -> Plan:
    """Filters, split, limit and order: which step goes to which file, and why not."""
    kept, dropped = select_episodes(episodes, options)
    steps, steps_dropped = select_steps(kept, options)
    names = split(kept, options.val_fraction, options.seed)
    splits: dict[str, list[tuple[Episode, Step]]] = {"train": [], "val": []}
    for episode, name, chosen in zip(kept, names, steps):
        splits[name].extend((episode, s) for s in chosen)
    before = sum(len(v) for v in splits.values())
    splits = limit(splits, options.max_examples, options.seed)
    if options.shuffle:
        splits = {k: shuffled(v, options.seed) for k, v in splits.items()}
    return Plan(
        episodes=episodes,
        kept=kept,
        dropped=dropped,
        steps_dropped=steps_dropped,
        split_of={id(e): n for e, n in zip(kept, names)},
        splits=splits,
        before_limit=before,
    )


def manifest(
    the_plan: Plan,
    options: Options,
    sources: list[str],
    results: list[str],
) -> dict[str, Any]:
    """What went in, what each filter dropped, the runs, options, splits, and every
    episode kept with its split, reward and achievements. Counts add up:
    found = kept + dropped (episodes); steps = kept + dropped; kept steps = train + val
    + dropped by --max-examples."""
    p = the_plan
    examples = Counter(id(e) for v in p.splits.values() for e, _ in v)
    runs: dict[tuple[str, str, str | None], int] = Counter(
        (e.eval, e.model, (e.record or {}).get("fingerprint")) for e in p.episodes
    )
    steps_total = sum(len(e.steps) for e in p.kept)
    steps_kept = p.before_limit
    train, val = (len(p.splits["train"]), len(p.splits["val"]))
    return {
        "manifest": MANIFEST_SCHEMA,
        "format": options.format,
        "files": {"train": "train.jsonl", "val": "val.jsonl"},
        "sources": [
            {"trace_dir": s, "episodes": sum(1 for e in p.episodes if e.source == i)}
            for i, s in enumerate(sources)
        ],
        "warnings": warnings(p, options),
        "results": results,
        "runs": [
            {"eval": ev, "model": m, "fingerprint": fp, "episodes": n}
            for (ev, m, fp), n in sorted(
                runs.items(), key=lambda kv: (kv[0][0], kv[0][1], str(kv[0][2]))
            )
        ],
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(options).items()},
        "counts": {
            "episodes": {
                "found": len(p.episodes),
                "dropped": {f: sum(1 for _, r in p.dropped if r == f) for f in EPISODE_FILTERS},
                "kept": len(p.kept),
            },
            "steps": {
                "in_kept_episodes": steps_total,
                "dropped": {f: p.steps_dropped.get(f, 0) for f in STEP_FILTERS},
                "kept": steps_kept,
            },
            "examples": {
                "dropped_by_max_examples": steps_kept - train - val,
                "train": train,
                "val": val,
            },
        },
        "splits": {
            name: {
                "episodes": sum(1 for e in p.kept if p.split_of[id(e)] == name),
                "examples": len(p.splits[name]),
            }
            for name in ("train", "val")
        },
        "mismatches": [
            {"source": e.source, "trace": e.trace, "problems": e.checks}
            for e in p.episodes
            if e.checks
        ],
        "episodes": [
            {
                "eval": e.eval,
                "model": e.model,
                "seed": e.seed,
                "source": e.source,
                "trace": e.trace,
                "outcome": e.outcome,
                "fingerprint": (e.record or {}).get("fingerprint"),
                "achievements": e.achievements,
                "reward": e.reward,
                "reward_total": None if e.reward_total is None else round(e.reward_total, 6),
                "steps": len(e.steps),
                "seed_split": e.seed_split,
                "split": p.split_of[id(e)],
                "examples": examples[id(e)],
            }
            for e in p.kept
        ],
        "dropped_episodes": [
            {
                "eval": e.eval,
                "model": e.model,
                "seed": e.seed,
                "source": e.source,
                "trace": e.trace,
                "filter": r,
            }
            for e, r in p.dropped
        ],
    }


def warnings(the_plan: Plan, options: Options) -> list[str]:
    """What a user should know before training on the files: an empty split."""
    out = []
    seeds = len({e.seed for e in the_plan.kept})
    for name in ("train", "val"):
        if the_plan.splits[name] or (name == "val" and options.val_fraction == 0):
            continue
        episodes = sum(1 for e in the_plan.kept if the_plan.split_of[id(e)] == name)
        out.append(
            f"{name}.jsonl is empty: {episodes} of the {len(the_plan.kept)} episodes kept "
            f"({seeds} seed(s); all the episodes of a seed go to one split); trace more "
            "seeds, or change --val-fraction or the filters"
        )
    return out


def source_name(path: str | Path) -> str:
    """A TRACE_DIR or results file as the manifest names it: its last component, the
    same however it is spelled (`t1`, `./t1`, `/abs/t1`) and wherever export runs."""
    return Path(os.path.abspath(path)).name


def export(
    sources: Iterable[str | Path],
    out: str | Path,
    options: Options,
    results: Iterable[str | Path] = (),
) -> dict[str, Any]:
    """Read, check, select and write; returns the manifest. `ExportError` on bad input,
    before anything is written."""
    roots, records = [Path(s) for s in sources], [Path(r) for r in results]
    problems = options.problems(bool(records))
    if problems:
        raise ValueError(problems[0])
    the_plan = plan(load(roots, records), options)
    data = manifest(
        the_plan, options, [source_name(s) for s in roots], [source_name(r) for r in records]
    )
    write(Path(out), the_plan, data, options)
    return data


# ---------------------------------------------------------------- writing (the edge)


def write(out: Path, the_plan: Plan, data: dict[str, Any], options: Options) -> None:
    """Write train.jsonl, val.jsonl (and images/) under temporary names, then rename
    them into place, manifest.json last; on any failure remove the temporary files.
    DIR must be new, empty or an earlier export (it holds manifest.json)."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: not a directory")
    ours = [p for p in out.iterdir() if not _TEMPORARY.fullmatch(p.name)] if out.is_dir() else []
    if ours and not (out / "manifest.json").is_file():
        raise ExportError(
            f"{out}: not empty and not an earlier export (no manifest.json); "
            "give a new or empty directory"
        )
    out.mkdir(parents=True, exist_ok=True)
    temporary: list[Path] = []
    renames: list[tuple[Path, Path]] = []
    images: dict[str, Path | bytes] = {}  # name under DIR -> the trace file or the bytes

    def temp(name: str) -> Path:  # beside its final name, so that renaming is atomic
        path = out / Path(name).parent / f".{Path(name).name}.{os.getpid()}.tmp"
        temporary.append(path)
        renames.append((path, out / name))
        return path

    cache: dict[Path, bytes] = {}

    def read(path: Path) -> bytes:
        if path not in cache:
            if len(cache) > 512:
                cache.clear()
            cache[path] = path.read_bytes()
        return cache[path]

    def image(base: Path, url: str) -> str:  # content-addressed: each image written once
        source: Path | bytes
        if url.startswith("data:"):  # left inline in the trace (not a PNG)
            head, _, data = url.partition(",")
            source = raw = base64.b64decode(data)
            suffix = _SUFFIXES.get(head[5:].split(";")[0], ".bin")
        else:
            source, suffix = base / url, Path(url).suffix or ".png"
            raw = read(source)
        name = f"images/{hashlib.sha256(raw).hexdigest()[:16]}{suffix}"
        images.setdefault(name, source)
        return name

    try:
        for split_name in ("train", "val"):
            with open(temp(f"{split_name}.jsonl"), "w", encoding="utf-8", newline="\n") as file:
                for line in _lines_of(the_plan, split_name, options, Media(read, image)):
                    file.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")))
                    file.write("\n")
        if images:
            (out / "images").mkdir(exist_ok=True)
        for name, source in sorted(images.items()):
            if (out / name).is_file():
                continue  # content-addressed: written by an earlier export
            temp(name).write_bytes(source if isinstance(source, bytes) else read(source))
        with open(temp("manifest.json"), "w", encoding="utf-8", newline="\n") as file:
            file.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        for src, dst in renames:  # manifest.json last: it marks a whole export
            os.replace(src, dst)
    except BaseException:
        for leftover in temporary:
            leftover.unlink(missing_ok=True)
        raise
    _remove_stale(out, set(images))


def _lines_of(
    the_plan: Plan, split_name: str, options: Options, media: Media
) -> Iterator[dict[str, Any]]:
    """The lines of one split's file: an example per kept step (`EXAMPLES`), or for an
    episode format (`EPISODES`) a line per kept episode, all its steps."""
    by_episode = EPISODES.get(options.format)
    if by_episode is not None:
        for episode in the_plan.kept:
            if the_plan.split_of[id(episode)] == split_name:
                yield by_episode(episode, media, options)
        return
    for episode, step in the_plan.splits[split_name]:
        yield EXAMPLES[options.format](episode, step, media, options)


def _remove_stale(out: Path, keep: set[str]) -> None:
    """Images an earlier export wrote that this one does not use, and temporary files
    an export that was killed left behind."""
    for path in out.iterdir():
        if _TEMPORARY.fullmatch(path.name):
            path.unlink()
    folder = out / "images"
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if _TEMPORARY.fullmatch(path.name) or (
            _IMAGE_NAME.fullmatch(path.name) and f"images/{path.name}" not in keep
        ):
            path.unlink()
    if not any(folder.iterdir()):
        folder.rmdir()
