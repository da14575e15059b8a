"""Stage: run (decisions). Sequential gates across the processes of one run: which
models' gates are already decided, so that their remaining episodes are skipped.

Every process notes each episode record of a model with a sequential gate in the run
directory (`decisions/<digest>.jsonl`, one JSON line per record, appended whole), so
that the controller and every xdist worker judge on the same episodes. Before an
episode starts, `decided(item)` reads them, takes the longest run of whole rounds of
seeds in seed-list order (`report.sequential.prefix`) and judges the gate on it
(`report.sequential.judge`); once decided, the model's later episodes are skipped with
the verdict as the reason ("decided after 20 seeds: gate passed (...)"). A decision
never changes: the confidence sequences only narrow. Episodes already in flight finish
and are reported. With --shard each shard decides on its own episodes (its own run
directory).

Touches only files under the run directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..report import sequential

if TYPE_CHECKING:
    from ..config import spec

__all__ = ["decided", "note"]

_LOCK = threading.Lock()
_DECIDED: dict[tuple[str, str, str], str] = {}  # (run dir, eval, model) -> skip reason


def _store(run_dir: Path, eval_name: str, model: str) -> Path:
    digest = hashlib.sha256(f"{eval_name}\0{model}".encode()).hexdigest()[:20]
    return run_dir / "decisions" / f"{digest}.jsonl"


def note(run_dir: Path, run: spec.Run, record: dict[str, Any]) -> None:
    """Keep `record` (an episode record) for its model's sequential gate, if it has one."""
    if not run.gate.sequential or run.gate.empty:
        return
    path = _store(run_dir, record["eval"], record["model"])
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write of a whole line: O_APPEND keeps lines whole
    finally:
        os.close(fd)


def decided(run_dir: Path, eval_name: str, run: spec.Run, seeds: tuple[int, ...]) -> str | None:
    """Why the model's next episode is not played (its gate is decided), or None."""
    gate = run.gate
    if not gate.sequential or gate.empty:
        return None
    key = (str(run_dir), eval_name, run.model)
    with _LOCK:
        if key in _DECIDED:
            return _DECIDED[key]
    by_seed: dict[int, dict[str, Any]] = {}
    path = _store(run_dir, eval_name, run.model)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # a line being written
            continue
        if record.get("outcome") != "skipped":
            by_seed[int(record["seed"])] = record
    played = sequential.prefix(by_seed, seeds, gate.sequential)
    if not played:
        return None
    verdict = sequential.judge(gate, played)
    if not verdict.decided:
        return None
    with _LOCK:
        _DECIDED.setdefault(key, verdict.reason())
        return _DECIDED[key]
