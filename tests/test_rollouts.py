"""`crafter-eval export --format rollouts`, and seed splits in export: the traces are
real (the offline evals' local models over loopback HTTP, and a real `pytest
--trace-dir` run of an eval file with a seed split)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from pytest_crafter_eval import cli
from pytest_crafter_eval.agent.episode import run_episode
from pytest_crafter_eval.config import spec
from pytest_crafter_eval.data import export, trace
from pytest_crafter_eval.report.results import fingerprint, make_record
from pytest_crafter_eval.wire.client import Connections

ROOT = Path(__file__).parent.parent
SCHEMA = json.loads((Path(__file__).parent / "data" / "rollout.schema.json").read_text())
STEPS = 6  # model calls per episode: enough for history, re-asks and noops to show


@pytest.fixture(scope="module")
def offline(tmp_path_factory) -> tuple[Path, Path, list[dict]]:
    """Every local model of the offline evals (evals/*.yaml), its first seed, traced;
    and the results records of those episodes."""
    root = tmp_path_factory.mktemp("rollouts")
    traces, records = root / "traces", []
    with Connections() as connections:
        for path in sorted((ROOT / "evals").glob("*.yaml")):
            loaded = spec.load(path)
            for run in loaded.runs:
                if not spec.is_local(run.model):
                    continue
                run, seed = replace(run, steps=STEPS), loaded.seeds[0]
                where = trace.episode_path(loaded.name, run.model, seed)
                with trace.TraceWriter(traces / where, loaded.split_of(seed)) as writer:
                    result = run_episode(
                        run,
                        seed,
                        connections.for_model(run.model),
                        eval_name=loaded.name,
                        instructions=loaded.instructions,
                        on_step=writer,
                    )
                records.append(
                    make_record(
                        result,
                        outcome="passed",
                        message=None,
                        nodeid=f"{path.name}::{run.model}[seed={seed}]",
                        path=f"evals/{path.name}",
                        fingerprint=fingerprint(run, loaded.name, loaded.instructions),
                    )
                )
    results = root / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in records))
    return traces, results, records


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rollouts_of_the_offline_evals_validate_and_sum_to_the_recorded_rewards(offline, tmp_path):
    traces, results, records = offline
    local = [
        run.model
        for path in (ROOT / "evals").glob("*.yaml")
        for run in spec.load(path).runs
        if spec.is_local(run.model)
    ]
    assert len(records) == len(local) >= 8  # balrog 3, smoke 3, heuristic 2, ...
    options = export.Options(format="rollouts", val_fraction=0.25)
    manifest = export.export([traces], tmp_path / "out", options, [results])
    lines = _lines(tmp_path / "out" / "train.jsonl") + _lines(tmp_path / "out" / "val.jsonl")
    assert len(lines) == len(records) == manifest["counts"]["episodes"]["kept"]
    validator = jsonschema.Draft202012Validator(SCHEMA)
    by_key = {(r["eval"], r["model"], r["seed"]): r for r in records}
    for line in lines:
        assert not list(validator.iter_errors(line)), line["trace"]
        record = by_key[(line["eval"], line["model"], line["seed"])]
        rewards = [step["reward"] for step in line["steps"]]
        assert sum(rewards) == pytest.approx(record["reward"], abs=1e-6)
        assert line["return"] == pytest.approx(record["reward"], abs=1e-6)
        assert line["fingerprint"] == record["fingerprint"] and line["end"] == record["end"]
        assert line["achievements"] == list(record["achievements"])
        steps_jsonl = traces / line["trace"] / "steps.jsonl"
        assert len(line["steps"]) == len(steps_jsonl.read_text().splitlines())
        assert [s["done"] for s in line["steps"]] == [False] * (len(line["steps"]) - 1) + [True]
        assert {s["step"] for s in line["steps"]} == set(range(record["steps"]))
        for step in line["steps"]:
            for message in step["messages"]:
                for name in trace.image_files(message):
                    assert (tmp_path / "out" / name).is_file()
    kinds = {(s["no_tool_call"] is None, s["attempt"] > 0) for ln in lines for s in ln["steps"]}
    assert (False, False) in kinds  # local/silent's and local/fumble's invalid answers are there
    # the same traces give byte-identical files
    export.export([traces], tmp_path / "again", options, [results])
    for name in ("train.jsonl", "val.jsonl", "manifest.json"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


SPLIT_EVAL = """\
models: [local/heuristic]
seeds: {train: 5-6, test: 0-1}
steps: 2
"""


def test_a_seed_split_keeps_test_seeds_out_of_export_by_default(pytester, monkeypatch, capsys):
    """pytest plays the test seeds (and, with --seeds, any); each trace says its seed's
    split; export leaves the test seeds out unless --include-test-seeds."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pytester.makefile(".yaml", **{"evals/split": SPLIT_EVAL})
    plays = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-m", "not crafter_payload", "evals", "--collect-only", "-q"
    )
    assert "seed=0" in plays.stdout.str() and "seed=5" not in plays.stdout.str()
    run = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-m", "not crafter_payload", "evals", "--trace-dir", "t",
        "--seeds", "0,5",
    )  # fmt: skip
    assert run.ret == 0
    root = Path(pytester.path)
    monkeypatch.chdir(root)
    assert cli.main(["export", "t", "--out", "a", "--val-fraction", "0"]) == 0
    manifest = json.loads((root / "a" / "manifest.json").read_text())
    assert [(e["seed"], e["seed_split"]) for e in manifest["episodes"]] == [(5, "train")]
    assert manifest["counts"]["episodes"]["dropped"]["test_seeds"] == 1
    assert [e["seed"] for e in manifest["dropped_episodes"]] == [0]
    command = ["export", "t", "--out", "b", "--format", "rollouts", "--include-test-seeds"]
    assert cli.main([*command, "--val-fraction", "0"]) == 0
    lines = _lines(root / "b" / "train.jsonl")
    assert sorted((ln["seed"], ln["seed_split"]) for ln in lines) == [(0, "test"), (5, "train")]
    capsys.readouterr()
