"""Sequential gates: judged after every round of seeds on confidence sequences, and a
model's remaining episodes skipped once its gate is decided (report.sequential,
run.decisions, `gate: {sequential: ...}`, --until-decided).

The statistical claim (a gate at its threshold passes wrongly at most 2.5% of the time,
however often it is re-judged) is checked by the seeded simulation of
benchmarks/sequential.py, smaller; the run-level behaviour through real pytest runs
against the local models.
"""

import importlib.util
import json
import math
from pathlib import Path

import pytest

from pytest_crafter_eval.config import spec
from pytest_crafter_eval.report import metrics, sequential

ROOT = Path(__file__).resolve().parents[1]
_bench = importlib.util.spec_from_file_location(
    "sequential_bench", ROOT / "benchmarks" / "sequential.py"
)
assert _bench and _bench.loader
bench = importlib.util.module_from_spec(_bench)
_bench.loader.exec_module(bench)

REPS = 2000


@pytest.mark.parametrize("setting", sorted(bench.settings()))
def test_a_gate_at_its_threshold_rechecked_every_10_seeds_passes_wrongly_at_most_2_5_percent(
    setting,
):
    kind, population, truth = bench.settings()[setting]
    shares = bench.false_passes(kind, population, truth, REPS, seed=7)
    assert shares["sequence"] <= 0.025
    if kind == "rate":  # the fixed-n exact interval, re-checked, does not hold its level
        assert shares["Clopper-Pearson, re-checked"] > 0.025 + 3 * math.sqrt(0.025 * 0.975 / REPS)


def test_an_easy_gate_is_decided_early_and_a_close_one_late():
    import numpy as np

    rng = np.random.default_rng(3)
    easy = bench.seeds_to_decide(bench.draw("rate", 0.9, 500, 100, rng), 50.0)
    close = bench.seeds_to_decide(bench.draw("rate", 0.55, 500, 100, rng), 50.0)
    assert easy <= 30 < 80 <= close


def test_the_sequence_costs_width_against_the_fixed_n_interval():
    import random

    for n, most in ((10, 1.5), (30, 1.6), (100, 1.8)):
        rng = random.Random(n)
        values = [float(rng.random() < 0.3) for _ in range(n)]
        fixed = metrics.bounded_mean_interval(values, (0.0, 1.0))
        seq = metrics.confidence_sequence(values, (0.0, 1.0))
        assert seq[0] <= 0.3 <= seq[1]
        assert 1.0 < (seq[1] - seq[0]) / (fixed[1] - fixed[0]) < most
    with pytest.raises(ValueError, match="outside the bounds"):
        metrics.confidence_sequence([2.0], (0.0, 1.0))


def _records(rates):
    """Records with the tool-call rates given, one per seed."""
    return [
        {
            "seed": i,
            "outcome": "passed",
            "steps": 10,
            "tool_calls": round(10 * r),
            "achievements": {},
        }
        for i, r in enumerate(rates)
    ]


def test_judge_passes_fails_and_waits():
    gate = spec.Gate(min_tool_call_rate=0.3, sequential=5)
    assert sequential.judge(gate, _records([1.0] * 5)).status == "passed"
    assert sequential.judge(gate, _records([0.0] * 20)).status == "failed"
    assert sequential.judge(gate, _records([0.3, 0.4] * 3)).status == "undecided"
    verdict = sequential.judge(gate, _records([1.0] * 5))
    assert verdict.reason().startswith("decided after 5 seeds: gate passed (tool_call_rate >= 0.3")
    two = spec.Gate(min_tool_call_rate=0.3, max_error_rate=0.05, sequential=5)
    assert sequential.judge(two, _records([1.0] * 5)).status == "undecided"  # errors unsure
    assert sequential.judge(two, _records([0.0] * 20)).status == "failed"  # one fails: decided


def test_prefix_takes_whole_rounds_in_seed_list_order():
    records = {s: {"seed": s} for s in (0, 1, 2, 4, 5)}
    assert sequential.prefix(records, (0, 1, 2, 3, 4, 5), 2) == [records[0], records[1]]
    assert sequential.prefix(records, (0, 1, 2, 3, 4, 5), 5) == []  # seed 3 still running
    records[3] = {"seed": 3}
    assert [r["seed"] for r in sequential.prefix(records, (0, 1, 2, 3, 4, 5), 4)] == [
        0,
        1,
        2,
        3,
        4,
        5,
    ]
    with pytest.raises(ValueError):
        sequential.prefix(records, (0,), 0)


@pytest.mark.parametrize(
    ("value", "expected"), [("true", spec.SEQUENTIAL_ROUND), ("false", 0), ("5", 5)]
)
def test_sequential_key(tmp_path, value, expected):
    path = tmp_path / "e.yaml"
    path.write_text(f"models: [local/random]\ngate:\n  progression: 5\n  sequential: {value}\n")
    assert spec.load(path).runs[0].gate.sequential == expected


def test_a_bad_sequential_value_names_file_line_and_key(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("models: [local/random]\ngate:\n  progression: 5\n  sequential: 0.5\n")
    with pytest.raises(
        spec.SpecError, match=r"e.yaml:4: gate.sequential: must be true, false or a round size"
    ):
        spec.load(path)


EVAL = """\
models:
  - local/heuristic:
      gate: {min_tool_call_rate: 0.3, sequential: 5}
  - local/random:
      gate: {min_tool_call_rate: 0.9}
seeds: 0-9
steps: 3
"""


def _run(pytester, *args):
    pytester.makefile(".yaml", **{"evals/seq": EVAL})
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-m", "not crafter_payload", "evals", "-rs", *args
    )
    summary = json.loads((pytester.path / "reports" / "summary.json").read_text())
    return result, summary["evals"]["seq"]["models"]


def test_until_decided_stops_an_easy_gate_early_and_plays_every_seed_of_a_close_one(pytester):
    result, models = _run(pytester, "--until-decided")
    heuristic, random = models["local/heuristic"], models["local/random"]
    # rounds of 5 (the file's): decided on seeds 0-4, seeds 5-9 skipped with the reason
    assert heuristic["outcomes"]["passed"] == 5 and heuristic["outcomes"]["skipped"] == 5
    assert heuristic["gate"]["status"] == "passed"
    assert heuristic["gate"]["sequential"] == {"round": 5, "decided": True, "episodes": 5}
    result.stdout.re_match_lines(
        [r".*SKIPPED \[5\] .*decided after 5 seeds: gate passed \(tool_call_rate >= 0\.3: .*"]
    )
    # --until-decided made it sequential (rounds of 10): undecided, every seed played,
    # judged on the mean as its `on` says
    assert random["outcomes"]["passed"] == 10 and random["outcomes"]["skipped"] == 0
    assert random["gate"]["sequential"]["decided"] is False
    assert random["gate"]["status"] == "passed"


@pytest.mark.slow
def test_sequential_gates_under_xdist_and_episodes_in_flight(pytester):
    _, models = _run(pytester, "-n", "2", "--concurrency", "2")
    heuristic, random = models["local/heuristic"], models["local/random"]
    assert heuristic["gate"]["status"] == "passed" and heuristic["gate"]["sequential"]["decided"]
    played, skipped = heuristic["outcomes"]["passed"], heuristic["outcomes"]["skipped"]
    assert played + skipped == 10 and played >= 5
    assert random["outcomes"]["passed"] == 10  # not sequential without --until-decided
    assert "sequential" not in random["gate"]
