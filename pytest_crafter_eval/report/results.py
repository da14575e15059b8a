"""Stage: report (results). One record per episode, and `results.jsonl`, its durable log.

Touches only `<report-dir>/results.jsonl` (and its predecessor `results.prev.jsonl`).
Every xdist worker appends each record as soon as its episode has an outcome, with one
`os.write` of one whole line to a file opened with O_APPEND, so lines of concurrent
workers never interleave and a crash loses nothing that finished. The controller gets the
same records through report `user_properties` (key `plugin.RESULT_KEY`).

Record format (one JSON object per line; `SCHEMA` = 1; new keys may be added, none
removed or renamed while SCHEMA stays 1)::

    schema          1
    nodeid          "evals/smoke.yaml::local/heuristic[seed=3]"  (the resume key)
    path            "evals/smoke.yaml"  the eval file, relative to the rootdir
    eval, model, seed
    settings        the settings the episode was played with (steps, observation,
                    history, answer, request, an instructions digest; `settings`):
                    `crafter-eval compare` names the ones that differ; None in
                    records written by the controller
    fingerprint     hash of everything that shapes the episode (model, steps,
                    observation, history, answer, request, instructions, eval name): --resume reuses a
                    record only when it matches
    outcome         passed | failed | error | skipped | xfailed
    message         why: the failure, error, skip or xfail reason (None when passed)
    resumed         true when this run took the record from an earlier run
    finished_at     ISO 8601 UTC time the record was made
    steps           steps asked (model calls, re-asks apart);  env_steps: Crafter steps
    reasks          model calls that asked a step again (answer.on_invalid: retry)
    achievements    {name: count} of the achievements unlocked (count >= 1)
    reward          sum of Crafter's rewards
    tool_calls      steps answered with a valid tool call; tool_call_rate = / steps
    text_tool_calls of tool_calls, steps whose call was written in the text
                    (answer.format: text or auto)
    valid_actions, invalid_actions, malformed_calls, unknown_tools
    too_many_actions  calls cut to 8 actions (the cut ones are not in invalid_actions)
    invalid_answers {class: count} of the answers without a valid action (re-asked
                    ones included), classes as in no_tool_call
    invalid_names   the unknown tool and action names the model used (a few, distinct)
    noops           noops played for invalid answers (answer.on_invalid: noop, retry)
    no_tool_call    None or {step, class, message, finish_reason}: why the episode
                    ended early; no_tool_call_class repeats its class
    first_invalid   None or the same of the first answer without a valid action, in an
                    episode that went on (answer.on_invalid: noop or retry)
    tokens_in, tokens_out, tokens_reasoning
    tokens_cached   of tokens_in, those the provider's prompt cache served (usage
                    cached_tokens), priced at the profile's cached-input price
    api             the wire API the episode used: chat | responses
    reasoning_summaries  steps whose answer carried a reasoning summary (the summaries
                    are in the traces; no_tool_call.reasoning holds the failing step's)
    cost_usd        estimated cost: the episode's sum over its responses of
                    `Profile.cost` with the run's profile (file and --profiles prices, as
                    --max-cost counts them); None when the model's price is unknown
    latencies_s     seconds per model call; latency_p50_s, latency_p95_s
    duration_s      wall time of the episode
    end             steps | done | no_tool_call | error | unsupported (the model lacks
                    image input or tool calls: a failure) | cut (stopped before a model
                    call because the run's budget was spent: outcome skipped) | not_run
                    (skipped, or an error before the episode started)
    error           the episode's own error (request failures), if any; with end cut,
                    why it was cut
    infra_error     true when the error is not the model's fault
    crashed         (only on such records) true: the xdist worker running the episode
                    died; written by the controller, with an empty fingerprint

Skipped episodes and errors before the episode started carry zeros for the counts.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = 1
RESULTS = "results.jsonl"
PREVIOUS = "results.prev.jsonl"
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed")
# Outcomes that are a verdict on the model: they feed the capability metrics (errors
# feed only the error rate), and --resume keeps them (errors and skips are run again).
COMPLETED = FINAL = frozenset({"passed", "failed", "xfailed"})
MAX_MESSAGE = 2000


def fingerprint(run: Any, eval_name: str, instructions: str | None) -> str:
    """A short hash of the settings that shape an episode, the model's user profile
    entries included (not its verdict: `expect`,
    `xfail` and `gate` only judge it, so changing them re-judges a resumed record)."""
    shape = {
        "eval": eval_name,
        "instructions": instructions,
        "model": run.model,
        "steps": run.steps,
        "observation": asdict(run.observation),
        "request": _request_shape(run.request),
        "profiles": repr(getattr(run, "profiles", ())),
    }
    # history, answer and protocol shape the episode too; left out at their defaults, so
    # that the records of runs made before these keys existed stay resumable
    for key in ("history", "answer", "protocol"):
        value = getattr(run, key, None)
        if value is not None and value != type(value)():
            shape[key] = asdict(value)
    text = json.dumps(shape, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# request keys added after records existed: hashed only when set, so that records made
# before them keep their fingerprints
_LATER_REQUEST_KEYS = ("api", "logprobs", "prompt_cache_key")


def settings(run: Any, instructions: str | None) -> dict[str, Any]:
    """The settings an episode was played with, as its record keeps them (`settings`):
    steps, observation, history, answer, request, a digest of the instructions and the
    protocol unless it is the default; not the model nor its profile. `report.compare`
    pairs only episodes whose settings agree, and names the ones that differ."""
    digest = None
    if instructions is not None:
        digest = hashlib.sha256(instructions.encode()).hexdigest()[:12]
    out = {
        "steps": run.steps,
        "observation": asdict(run.observation),
        "history": asdict(run.history),
        "answer": asdict(run.answer),
        "request": _request_shape(run.request),
        "instructions": digest,
    }
    protocol = getattr(run, "protocol", None)
    if protocol is not None and protocol != type(protocol)():  # kept only when not default
        out["protocol"] = asdict(protocol)
    return out


def _request_shape(request: Any) -> dict[str, Any]:
    """The request settings as fingerprinted (`_LATER_REQUEST_KEYS` only when set)."""
    shape = asdict(request)
    for key in _LATER_REQUEST_KEYS:
        if shape.get(key) is None:
            shape.pop(key, None)
    return shape


def make_record(
    result: Any,
    *,
    outcome: str,
    message: str | None,
    nodeid: str,
    path: str,
    fingerprint: str,
    resumed: bool = False,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The record of an `episode.EpisodeResult` judged `outcome` (its cost is the
    episode's own, priced with the run's profile); `settings` as `settings` gives them."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    record = {
        "schema": SCHEMA,
        "nodeid": nodeid,
        "path": path,
        "eval": result.eval,
        "model": result.model,
        "seed": result.seed,
        "fingerprint": fingerprint,
        "outcome": outcome,
        "message": _clip(message),
        "resumed": resumed,
        "settings": settings,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for key, value in result.to_dict().items():
        record.setdefault(key, value)
    record["outcome"] = outcome
    return record


def _clip(message: str | None) -> str | None:
    if message is None:
        return None
    message = str(message)
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def append(report_dir: str | Path, record: dict[str, Any]) -> None:
    """Append `record` to `<report_dir>/results.jsonl` as one whole line, durably."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()
    fd = os.open(report_dir / RESULTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, line)
        while written < len(line):  # a short write (disk full, signal): finish the line
            written += os.write(fd, line[written:])
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records in a results.jsonl, in order. Lines that are not whole records (a
    crash mid-write, a partial line another process is writing) are passed over."""
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed by the `with` below)
    except FileNotFoundError:
        return
    with f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("nodeid"), str):
                yield record


def latest(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last record of each node id."""
    return {record["nodeid"]: record for record in records}


def start(report_dir: str | Path, resume: bool) -> bool:
    """Begin a run: keep results.jsonl to resume from it, else move it to
    results.prev.jsonl, so that forgetting --resume never deletes finished episodes.
    Returns True when it moved the file (see `unstart`)."""
    current = Path(report_dir) / RESULTS
    if not current.exists():
        return False
    if not resume:
        current.replace(Path(report_dir) / PREVIOUS)
        return True
    with open(current, "rb+") as f:  # end a line a crash cut short, so appends stay whole
        f.seek(0, os.SEEK_END)
        if f.tell():
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
    return False


def unstart(report_dir: str | Path) -> None:
    """Undo `start` after a run that played no episode (a run of ordinary tests, or one
    whose episodes all skipped): the previous results become current again, and the
    records this run wrote (skips) are dropped."""
    current, previous = Path(report_dir) / RESULTS, Path(report_dir) / PREVIOUS
    if previous.exists():
        previous.replace(current)


def played(record: dict[str, Any]) -> bool:
    """Whether `record` is of an episode that was played (or resumed, and judged again):
    not a skip (but an episode the budget cut is played), nor an error before the first
    model call (a missing key)."""
    if record.get("outcome") == "skipped" and record.get("end") != "cut":
        return False
    return bool(
        record.get("resumed")
        or record.get("steps")
        or record.get("outcome") in FINAL
        or record.get("crashed")
    )
