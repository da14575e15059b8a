"""Stage: report (merge). The records of several runs (the shards of one run, say) -> one
report directory: results.jsonl, summary.json, summary.md, index.html and the GIFs.

    crafter-eval report shard-1/ shard-2/ shard-3/ shard-4/ --out reports/

`load(sources)` reads each source's results.jsonl (its last record of each episode, as
--resume does) and refuses an episode recorded by two sources. `gate_runs` reads the eval
files the records name, for their gates and xfails (the plugin uses it too, so that a
merged run and a single run are judged alike). The summary and gates are `report`'s.
Touches the files it reads and the output directory; nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..config import spec
from . import results


class MergeError(Exception):
    """A source that cannot be merged: missing, or an episode recorded twice."""


def results_path(source: str | Path) -> Path:
    """A report directory's results.jsonl, or the file itself."""
    source = Path(source)
    return source / results.RESULTS if source.is_dir() else source


def load(sources: Iterable[str | Path]) -> tuple[list[Mapping[str, Any]], dict[str, Path]]:
    """The records of every source, the last one of each episode per source, in order,
    and node id -> the results.jsonl it came from. An episode (node id) recorded by two
    sources is an error naming it and both."""
    merged: dict[str, dict[str, Any]] = {}
    origin: dict[str, Path] = {}
    for source in sources:
        path = results_path(source)
        if not path.is_file():
            raise MergeError(f"{source}: no {results.RESULTS} there")
        for nodeid, record in results.latest(results.read(path)).items():
            if nodeid in merged:
                raise MergeError(
                    f"{nodeid}: recorded by two runs, {origin[nodeid]} and {path}; "
                    "shards must be disjoint (the same --shard N on each, K from 1 to N)"
                )
            merged[nodeid], origin[nodeid] = record, path
    return list(merged.values()), origin


def gate_runs(
    root: str | Path, records: Iterable[Mapping[str, Any]]
) -> tuple[dict[tuple[str, str], spec.Run], list[str]]:
    """(eval, model) -> Run for the gates and xfails, from the eval files the records
    name (relative to `root`, the rootdir of the runs), with the models the records
    played; and a note per file that could not be read (its models go ungated)."""
    models: dict[str, list[str]] = {}
    for r in records:
        if r.get("path"):
            listed = models.setdefault(r["path"], [])
            if r.get("model") not in listed:
                listed.append(r["model"])
    runs: dict[tuple[str, str], spec.Run] = {}
    notes = []
    for path in sorted(models):
        try:
            loaded = spec.load(Path(root) / path).with_overrides(models=models[path])
        except (spec.SpecError, OSError) as exc:
            notes.append(f"{path}: {exc}; its models are reported without gates")
            continue
        for run in loaded.runs:
            runs[(loaded.name, run.model)] = run
    return runs, notes


def baselines(
    runs: Mapping[tuple[str, str], spec.Run], override: str | None, root: str | Path
) -> dict[tuple[str, str], list[Mapping[str, Any]] | str]:
    """(eval, model) -> the records of the baseline its regression gate compares with
    (`--baseline` `override`, else the gate's `baseline`, relative to `root`), or why
    there are none; only models with a regression gate."""
    loaded: dict[str, list[Mapping[str, Any]] | str] = {}
    out: dict[tuple[str, str], list[Mapping[str, Any]] | str] = {}
    for key, run in runs.items():
        regression = run.gate.regression
        if regression is None:
            continue
        path = override or regression.baseline
        if path is None:
            out[key] = "no baseline: set gate.regression.baseline or --baseline"
            continue
        if path not in loaded:
            try:
                records = load([Path(root) / path])[0]
                loaded[path] = records or f"baseline {path}: no records"
            except MergeError as exc:
                loaded[path] = f"baseline {exc}"
        out[key] = loaded[path]
    return out


def write(
    out: str | Path, records: Iterable[Mapping[str, Any]], origin: Mapping[str, Path]
) -> None:
    """results.jsonl of the union into `out`, and each record's GIF copied beside it
    (from the directory of the results.jsonl in `origin`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for record in records:
        source = origin.get(record["nodeid"])
        gif = record.get("gif")
        if source is not None and gif:
            src, dst = source.parent / gif, out / gif
            if src.is_file() and src.resolve() != dst.resolve():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
        lines.append(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")
    tmp = out / f".{results.RESULTS}.{os.getpid()}.tmp"
    tmp.write_text("".join(lines), encoding="utf-8")
    tmp.replace(out / results.RESULTS)
