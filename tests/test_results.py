"""results and reports: records from every xdist worker, results.jsonl, summary files,
gates and --resume, through real pytest subprocesses and the loopback local models."""

import json
import multiprocessing

import pytest

from pytest_crafter_eval.config import spec
from pytest_crafter_eval.report import results
from pytest_crafter_eval.report import summary as report

EVAL = """\
models:
  - local/heuristic
  - local/random:
      expect: {min_achievements: 0}
      gate: {mean_achievements: 5, success_rate: {collect_wood: 100}}
  - local/silent: {xfail: "answers in text"}
  - local/random?nosuch=1
  - gpt-4o-mini-2024-07-18
seeds: 0-1
steps: 3
gate:
  mean_achievements: 0
  max_error_rate: 0
"""


@pytest.fixture
def evals(pytester, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    pytester.makefile(".yaml", **{"evals/gates": EVAL})
    return pytester


def run(pytester, *args):
    # Payload snapshot items are left out: these files have no snapshots.
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-m", "not crafter_payload", *args
    )


def lines(path):
    return list(results.read(path))


def test_every_episode_is_recorded_reported_and_gated_under_xdist(evals, monkeypatch):
    step_summary = evals.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    result = run(evals, "evals", "-n", "2", "--report-dir", "out")
    result.assert_outcomes(passed=4, failed=0, errors=2, xfailed=2, skipped=2)
    # Gate failure: non-zero exit and a table with value, interval and threshold.
    assert result.ret == 1
    out = result.stdout.str()
    assert "Traceback" not in out
    result.stdout.fnmatch_lines(
        [
            "*crafter-eval summary*",
            "gates (evals/gates.yaml)",
            "*model*completed*achievements (95% CI)*score*tool-call rate*cost*",
            "*skipped gates: gpt-4o-mini-2024-07-18 (2 episodes): no API key*",
            "*crafter-eval gates failed for 2 model(s)*",
            "*eval*model*metric*value (95% CI)*threshold*result*",
            "gates*local/random *mean_achievements*[[]*,*[]]*>= 5*FAILED*",
            "gates*local/random *success_rate.collect_wood*>= 100*FAILED*",
            "gates*local/random?nosuch=1*error_rate*1.00 [[]0.16, 1.00[]]*<= 0*FAILED*",
        ]
    )
    assert "local/heuristic  mean_achievements" not in out  # passing gates stay quiet

    records = lines(evals.path / "out" / "results.jsonl")
    assert sorted((r["model"], r["seed"]) for r in records) == sorted(
        (m, s)
        for m in [
            "local/heuristic",
            "local/random",
            "local/silent",
            "local/random?nosuch=1",
            "gpt-4o-mini-2024-07-18",
        ]
        for s in (0, 1)
    )
    by_model = {r["model"]: r for r in records}
    assert by_model["local/heuristic"]["outcome"] == "passed"
    assert by_model["local/silent"]["outcome"] == "xfailed"
    assert (
        by_model["local/silent"]["no_tool_call_class"]
        and "answers in text" in by_model["local/silent"]["message"]
    )
    assert by_model["local/random?nosuch=1"]["outcome"] == "error"
    assert "nosuch" in by_model["local/random?nosuch=1"]["message"]
    assert by_model["gpt-4o-mini-2024-07-18"]["outcome"] == "skipped"
    assert "no API key" in by_model["gpt-4o-mini-2024-07-18"]["message"]
    heuristic = by_model["local/heuristic"]
    assert heuristic["steps"] == 3 and heuristic["tokens_in"] > 0 and heuristic["tool_calls"] == 3
    assert 0 < heuristic["latency_p50_s"] <= heuristic["latency_p95_s"]
    assert heuristic["cost_usd"] == 0.0  # local models are free; unknown prices give None
    assert set(results.FINAL | {"error", "skipped"}) >= {r["outcome"] for r in records}

    summary = json.loads((evals.path / "out" / "summary.json").read_text())
    assert summary["episodes"] == 10
    models = summary["evals"]["gates"]["models"]
    assert models["local/heuristic"]["gate"]["status"] == "passed"
    assert models["local/random"]["gate"]["status"] == "failed"
    assert models["local/silent"]["gate"]["status"] == "xpassed"  # 0 achievements >= 0
    rates = models["local/heuristic"]["metrics"]["success_rates"]
    assert set(rates) == set(spec.ACHIEVEMENTS) and all(
        0 <= r["value"] <= 100 for r in rates.values()
    )
    assert summary["skipped"] == [
        {
            "eval": "gates",
            "model": "gpt-4o-mini-2024-07-18",
            "episodes": 2,
            "reasons": ["no API key for gpt-4o-mini-2024-07-18: set OPENAI_API_KEY to run it"],
        }
    ]
    md = (evals.path / "out" / "summary.md").read_text()
    assert "| local/heuristic | 2 |" in md and "**Skipped models**" in md
    assert step_summary.read_text() == md + "\n"


def test_passing_gates_exit_zero_and_failed_xfail_gates_do_not_fail(evals):
    evals.makefile(
        ".yaml",
        **{
            "evals/gates": "models:\n  - local/heuristic\n"
            "  - local/silent: {xfail: 'no tools', gate: {min_tool_call_rate: 0.5}}\n"
            # 4 episodes: the fewest whose tool-call rates of 1.0 bound the rate above 0.3
            "seeds: 4\nsteps: 2\ngate: {min_tool_call_rate: 0.3, on: lower_bound}\n"
        },
    )
    result = run(evals, "evals")
    assert result.ret == 0
    result.assert_outcomes(passed=4, xfailed=4)
    result.stdout.fnmatch_lines(
        ["*crafter-eval gates*", "*local/silent (xfail)*tool_call_rate*failed (xfail: expected)*"]
    )
    assert (evals.path / "reports" / "summary.json").exists()


@pytest.mark.slow
def test_resume_reuses_final_records_and_reruns_the_rest(evals):
    evals.makefile(
        ".yaml",
        **{
            "evals/gates": "models:\n  - local/random:\n      expect: {min_achievements: 0}\n"
            "seeds: 0-3\nsteps: 2\n"
        },
    )
    assert run(evals, "evals").ret == 0
    path = evals.path / "reports" / "results.jsonl"
    first = lines(path)
    assert len(first) == 4
    # Seed 3 errored (say, its worker crashed), seed 2 is missing, and a crash cut the
    # last line short: seeds 2 and 3 run again, and the cut line stays unreadable.
    first[3]["outcome"] = "error"
    path.write_text("".join(json.dumps(r) + "\n" for r in first[:2] + first[3:]) + '{"trunc')
    result = run(evals, "evals", "--resume", "-n", "2")
    assert result.ret == 0
    summary = json.loads((evals.path / "reports" / "summary.json").read_text())
    (model,) = summary["evals"]["gates"]["models"].values()
    assert model["outcomes"]["passed"] == 4 and model["resumed"] == 2
    again = lines(path)
    assert len(again) == 3 + 2  # two kept lines, the error line, and two new runs
    assert {r["seed"] for r in again[3:]} == {2, 3} and not any(r["resumed"] for r in again)
    # Other settings do not resume.
    run(evals, "evals", "--resume", "--steps", "1")
    assert [(r["resumed"], r["steps"]) for r in lines(path)[5:]] == [(False, 1)] * 4


def test_a_run_without_resume_keeps_the_old_results_aside(tmp_path):
    results.append(tmp_path, {"nodeid": "a"})
    results.start(tmp_path, resume=True)
    assert len(list(results.read(tmp_path / results.RESULTS))) == 1
    assert results.start(tmp_path, resume=False)
    assert not (tmp_path / results.RESULTS).exists()
    assert [r["nodeid"] for r in results.read(tmp_path / results.PREVIOUS)] == ["a"]
    results.unstart(tmp_path)  # a run without episodes puts them back
    assert [r["nodeid"] for r in results.read(tmp_path / results.RESULTS)] == ["a"]


def test_a_run_without_episodes_leaves_results_jsonl_alone(evals):
    evals.makefile(".yaml", **{"evals/gates": "models: [local/random]\nseeds: 1\nsteps: 1\n"})
    evals.makepyfile(test_plain="def test_ok(): pass\n")
    assert run(evals, "evals").ret == 0
    before = (evals.path / "reports" / "results.jsonl").read_text()
    assert run(evals, "test_plain.py").ret == 0
    assert (evals.path / "reports" / "results.jsonl").read_text() == before


def _append_many(args):
    directory, worker = args
    for i in range(50):
        results.append(directory, {"nodeid": f"w{worker}-{i}", "pad": "x" * (1000 * worker)})


def test_concurrent_appends_never_interleave(tmp_path):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_append_many, [(tmp_path, w) for w in range(4)])
    records = list(results.read(tmp_path / results.RESULTS))
    assert len(records) == 200
    assert {r["nodeid"] for r in records} == {f"w{w}-{i}" for w in range(4) for i in range(50)}


def test_cost_comes_from_the_profile_prices():
    from pytest_crafter_eval.config import profiles

    assert profiles.resolve("gpt-4o-mini").cost(1_000_000, 1_000_000) == pytest.approx(0.15 + 0.6)
    assert profiles.resolve("acme-unknown-model").cost(10, 10) is None


def test_read_passes_over_partial_lines(tmp_path):
    (tmp_path / "r.jsonl").write_text('{"nodeid": "a"}\nnot json\n{"nodeid": "b"}\n{"nodeid": "c"')
    assert [r["nodeid"] for r in results.read(tmp_path / "r.jsonl")] == ["a", "b"]
    assert list(results.read(tmp_path / "missing.jsonl")) == []


def _records(model, achievements_per_episode, outcome="passed"):
    return [
        {
            "eval": "e",
            "model": model,
            "seed": i,
            "outcome": outcome,
            "achievements": a,
            "reward": float(len(a)),
            "steps": 10,
            "tool_calls": 10,
        }
        for i, a in enumerate(achievements_per_episode)
    ]


def _run(**gate):
    return spec.Run(
        model="m",
        steps=1,
        observation=spec.Observation(),
        request=spec.Request(),
        expect=spec.Expect(),
        gate=spec.Gate(**gate),
    )


def test_gate_on_lower_bound_is_stricter_than_on_mean():
    recs = _records("m", [{"collect_wood": 1}, {}, {"collect_wood": 1, "place_table": 1}, {}])
    on_mean = report.summarize(recs, {("e", "m"): _run(mean_achievements=0.5)})
    on_low = report.summarize(recs, {("e", "m"): _run(mean_achievements=0.5, on="lower_bound")})
    assert on_mean["evals"]["e"]["models"]["m"]["gate"]["status"] == "passed"
    check = on_low["evals"]["e"]["models"]["m"]["gate"]["checks"][0]
    assert check["compared"] == check["low"] < 0.5 and not check["passed"]
    assert on_low["failed_gates"] == [{"eval": "e", "model": "m"}]


def test_progression_is_in_the_summary_and_gated_in_percent():
    recs = _records("m", [{"collect_wood": 1}, {"collect_wood": 1, "place_table": 1}])
    summary = report.summarize(recs, {("e", "m"): _run(progression=5)})
    item = summary["evals"]["e"]["models"]["m"]
    assert item["metrics"]["progression"]["value"] == pytest.approx(100 * 1.5 / 22)
    (check,) = item["gate"]["checks"]
    assert (check["metric"], check["op"], check["threshold"], check["passed"]) == (
        "progression",
        ">=",
        5,
        True,
    )
    failed = report.summarize(recs, {("e", "m"): _run(progression=10)})
    assert failed["failed_gates"] == [{"eval": "e", "model": "m"}]
    none = report.summarize(_records("m", [{}], outcome="error"), {})
    assert none["evals"]["e"]["models"]["m"]["metrics"]["progression"] is None


def test_gate_without_completed_episodes_fails_with_a_note():
    recs = _records("m", [{}, {}], outcome="error")
    summary = report.summarize(recs, {("e", "m"): _run(crafter_score=1.0, max_error_rate=0.5)})
    checks = summary["evals"]["e"]["models"]["m"]["gate"]["checks"]
    assert [(c["metric"], c["passed"], c["note"]) for c in checks] == [
        ("crafter_score", False, "no completed episodes"),
        ("error_rate", False, None),
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "gate: {mean_achievments: 1}",
            "gate.mean_achievments: unknown key (did you mean 'mean_achievements'?)",
        ),
        (
            "gate: {success_rate: {collect_wod: 50}}",
            "gate.success_rate.collect_wod: unknown achievement (did you mean 'collect_wood'?)",
        ),
        (
            "gate: {success_rate: {collect_wood: 150}}",
            "gate.success_rate.collect_wood: must be from 0 to 100",
        ),
        ("gate:\n  on: median", "gate.on: must be mean or lower_bound"),
        ("gate: {max_error_rate: 2}", "gate.max_error_rate: must be from 0 to 1"),
        ("gate: {crafter_score: high}", "gate.crafter_score: must be a number"),
        ("gate: {progression: 150}", "gate.progression: must be from 0 to 100"),
        ("gate: {progresion: 15}", "gate.progresion: unknown key (did you mean 'progression'?)"),
        ("gate: 3", "gate: must be a mapping of thresholds"),
    ],
)
def test_bad_gates_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(spec.SpecError) as info:
        spec.load(tmp_path / "g.yaml", f"models: [a]\n{text}\n")
    line = 3 if "\n" in text else 2
    assert str(info.value).startswith(f"{tmp_path / 'g.yaml'}:{line}: ") and message in str(
        info.value
    )


def test_model_gates_override_file_gates_key_by_key(tmp_path):
    text = (
        "models:\n  - a: {gate: {mean_reward: 2, crafter_score: null}}\n  - b: {gate: null}\n  - c\n"
        "gate: {crafter_score: 1, mean_reward: 1, success_rate: {collect_wood: 50}}\n"
    )
    a, b, c = spec.load(tmp_path / "g.yaml", text).runs
    assert (a.gate.mean_reward, a.gate.crafter_score, a.gate.success_rate) == (
        2.0,
        None,
        (("collect_wood", 50.0),),
    )
    assert b.gate.empty and not c.gate.empty and c.gate.on == "mean"
