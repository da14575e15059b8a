"""crafter-eval compare, regression gates and `compare: {baseline: MODEL}`, on real runs:
local/heuristic and local/fumble on the same 30 seeds (run 1), and local/heuristic
again in a second run judged against the first (`--baseline`). Short episodes; the runs
are made once per test session."""

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from pytest_crafter_eval import cli
from pytest_crafter_eval.config import spec
from pytest_crafter_eval.report import compare, compare_html, plan
from pytest_crafter_eval.report.compare import METRICS

FUMBLE = "local/fumble?rate=0.5"
PAIR = f"""\
name: pair
models:
  - local/heuristic: {{gate: {{mean_achievements: 1}}}}
  - {FUMBLE}
compare: {{baseline: local/heuristic}}
seeds: 0-29
steps: 4
expect: {{min_achievements: 0, min_tool_call_rate: 0, tool_call_at_first_step: false}}
gate:
  regression: {{metric: progression, max_drop: 1}}
"""


@pytest.fixture(scope="session")
def runs(tmp_path_factory, worker_id):
    """The directory holding evals/pair.yaml, run1/ (both models) and run2/
    (local/heuristic, --baseline run1), made once per session."""
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent
    tmp = shared / "compare-runs"
    with open(shared / "compare-runs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (tmp / "done").exists():
            (tmp / "evals").mkdir(parents=True, exist_ok=True)
            (tmp / "evals" / "pair.yaml").write_text(PAIR)
            first = _pytest(tmp, "--report-dir", "run1")
            assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
            second = _pytest(
                tmp, "--report-dir", "run2", "--model", "local/heuristic", "--baseline", "run1"
            )
            assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
            (tmp / "done").touch()
    return tmp


def _pytest(cwd, *args):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENAI_API_KEY", "PYTEST_ADDOPTS", "GITHUB_STEP_SUMMARY")
        and not k.startswith("PYTEST_XDIST")
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q"]
        + ["-m", "not crafter_payload", "evals", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _compare(runs, capsys, *args):
    cwd = os.getcwd()
    os.chdir(runs)
    try:
        code = cli.main(["compare", *args])
    finally:
        os.chdir(cwd)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_heuristic_against_fumble_prints_the_table_writes_three_files_and_fails_the_gate(
    runs, capsys
):
    code, out, err = _compare(
        runs, capsys, "run1", "--models", f"local/heuristic,{FUMBLE}", "--out", "cmp"
    )
    assert code == 1, out + err  # the eval file's regression gate (max_drop 1) fails
    assert f"pair: local/heuristic (base) vs {FUMBLE} (candidate), 30 seeds paired" in out
    header = next(line for line in out.splitlines() if "difference (95% CI)" in line)
    assert header.split() == ["metric", "base", "candidate", "difference", "(95%", "CI)", "p"] + [
        "worse",
        "p",
        "better",
        "n",
        "verdict",
    ]
    row = next(line for line in out.splitlines() if line.strip().startswith("progression %"))
    assert row.split()[-2:] == ["30", "worse"]
    assert "regression gate (progression drop at most 1, alpha 0.025): FAILED" in out
    assert re.search(r"power \d\.\d\d to detect a drop of 1", out)
    written = {p.name for p in (runs / "cmp").iterdir()}
    assert written == {"compare.json", "compare.md", "compare.html"}
    data = json.loads((runs / "cmp" / "compare.json").read_text())
    (item,) = data["comparisons"]
    assert item["pairs"] == 30 and item["metrics"]["progression"]["verdict"] == "worse"
    diff = item["metrics"]["progression"]["difference"]
    assert diff["method"] == "signflip (Monte Carlo, 20000 signs, seed 0)"
    assert diff["low"] <= diff["value"] <= diff["high"] < 0 and diff["p_worse"] < 0.001
    assert item["gate"]["status"] == "failed" and data["failed_gates"]
    assert "approximate" in item["score"]["method"]
    assert len(item["achievements"]) == 22
    md = (runs / "cmp" / "compare.md").read_text()
    assert "| progression % |" in md and "| achievement | base % |" in md
    # the same comparison without the file's gate but with one on the command line
    code, out, _ = _compare(
        runs, capsys, "run1", "--models", f"local/heuristic,{FUMBLE}", "--max-drop", "60"
    )
    assert code == 0 and "drop at most 60, alpha 0.025): passed" in out


def test_the_same_model_in_two_runs_passes(runs, capsys):
    code, out, err = _compare(runs, capsys, "run1", "run2", "--max-drop", "0")
    assert code == 0, out + err
    assert "pair: local/heuristic: run1 vs run2, 30 seeds paired" in out
    assert FUMBLE not in out  # only in run 1: nothing to pair it with
    assert "drop at most 0, alpha 0.025): passed: difference +0.0 [+0.0, +0.0]" in out
    verdicts = [line.split()[-1] for line in out.splitlines() if line.strip().startswith("reward")]
    assert verdicts == ["shown"]  # "no difference shown"


def test_the_run_judges_its_regression_gate_against_the_baseline(runs):
    first = json.loads((runs / "run1" / "summary.json").read_text())
    gate = first["evals"]["pair"]["models"][FUMBLE]["gate"]
    assert gate["status"] == "not_judged"  # run 1 had no baseline
    assert "no baseline" in gate["checks"][0]["note"]
    gate = first["evals"]["pair"]["models"]["local/heuristic"]["gate"]
    assert gate["status"] == "passed"  # its absolute threshold; the regression not judged
    assert [c["judged"] for c in gate["checks"] if c["on"] == "regression"] == [False]
    second = json.loads((runs / "run2" / "summary.json").read_text())
    gate = second["evals"]["pair"]["models"]["local/heuristic"]["gate"]
    (check,) = [c for c in gate["checks"] if c["on"] == "regression"]
    assert (
        gate["status"] == "passed"
        and check["judged"]
        and check["metric"] == "regression.progression"
    )
    assert check["regression"]["n"] == 30 and check["value"] == 0.0 and check["compared"] == 1.0
    assert "summary.md" and "regression.progression" in (runs / "run2" / "summary.md").read_text()


def test_compare_baseline_in_the_eval_file_adds_paired_comparisons_to_the_reports(runs):
    summary = json.loads((runs / "run1" / "summary.json").read_text())
    (item,) = summary["evals"]["pair"]["comparisons"]
    assert (item["base_model"], item["cand_model"]) == ("local/heuristic", FUMBLE)
    assert item["metrics"]["progression"]["verdict"] == "worse" and item["pairs"] == 30
    md = (runs / "run1" / "summary.md").read_text()
    assert "Paired by seed" in md and f"| {FUMBLE} | local/heuristic | progression % |" in md
    page = (runs / "run1" / "index.html").read_text()
    assert "Paired by seed" in page and "progression %" in page


def test_settings_that_differ_are_refused_and_named(runs, tmp_path, capsys):
    records = [
        json.loads(line) for line in (runs / "run2" / "results.jsonl").read_text().splitlines()
    ]
    for r in records:
        r["settings"]["steps"] = 50
        r["fingerprint"] = "0" * 16
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    code, _, err = _compare(runs, capsys, "run1", str(tmp_path))
    assert code == 4
    assert "settings differ: steps: 4 vs 50 (pass --allow-different-settings" in err
    code, out, _ = _compare(runs, capsys, "run1", str(tmp_path), "--allow-different-settings")
    assert code == 0 and "settings differ (allowed): steps: 4 vs 50" in out


def test_bad_arguments_are_one_line_errors(runs, capsys):
    code, _, err = _compare(runs, capsys, "run1")
    assert code == 4 and err.strip() == (
        "crafter-eval compare: error: give BASE and CAND, or one run and --models A,B"
    )
    code, _, err = _compare(runs, capsys, "run1", "nowhere")
    assert code == 4 and "nowhere: no results.jsonl there" in err
    code, _, err = _compare(runs, capsys, "run1", "--models", "local/heuristic,local/nothing")
    assert code == 4 and "no episode of one side has a partner" in err


def test_pairing_needs_models_named_when_the_sides_share_none():
    def rec(model, seed):
        return {"eval": "e", "model": model, "seed": seed, "outcome": "passed"}

    base = [rec("a", 0), rec("b", 0)]
    cand = [rec("c", 0), rec("d", 0)]
    with pytest.raises(compare.CompareError, match="--models BASE_MODEL,CANDIDATE_MODEL"):
        compare.compare(base, cand)
    one = compare.compare([rec("a", 0)], [rec("c", 0)])
    assert [(c["base_model"], c["cand_model"]) for c in one["comparisons"]] == [("a", "c")]


def test_regression_gates_parse_and_bad_ones_name_file_line_and_key(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("models: [local/heuristic]\ngate:\n  regression: {max_drop: 3, baseline: r}\n")
    gate = spec.load(path).runs[0].gate
    assert gate.regression == spec.Regression("progression", 3.0, 0.025, "r") and not gate.empty
    assert set(spec.REGRESSION_METRICS) == set(METRICS)
    for text, message in [
        (
            "  regression: {metric: score, max_drop: 3}",
            ":3: gate.regression.metric: must be one of",
        ),
        ("  regression: {metric: progression}", ":3: gate.regression: missing key 'max_drop'"),
        ("  regression: {max_drop: 3, alpha: 0.7}", ":3: gate.regression.alpha: must be from 0"),
        ("  regression: {max_drop: 3, basline: r}", "gate.regression.basline: unknown key"),
    ]:
        path.write_text(f"models: [local/heuristic]\ngate:\n{text}\n")
        with pytest.raises(spec.SpecError, match=re.escape(message)):
            spec.load(path)
    path.write_text("models: [local/heuristic]\ncompare: {baseline: local/random}\n")
    with pytest.raises(spec.SpecError, match=r":2: compare.baseline: must be one of the file's"):
        spec.load(path)


def test_the_comparison_page_plots_every_seed_and_renders_in_headless_chromium(
    runs, capsys, tmp_path, chromium
):
    _compare(runs, capsys, "run1", "--models", f"local/heuristic,{FUMBLE}", "--out", "page")
    data = json.loads((runs / "page" / "compare.json").read_text())
    page = (runs / "page" / "compare.html").read_text()
    assert page == compare_html.render(data)
    assert page.count("<circle class=seed") == 30 and "<rect class=band" in page
    assert not re.search(r"(?:src|href)=['\"]?(?:https?:)?//", page)
    browser = chromium()
    try:
        browser.get((runs / "page" / "compare.html").as_uri())
        dots = browser.execute_script("return document.querySelectorAll('circle.seed').length")
        bars = browser.execute_script("return document.querySelectorAll('tr.ach .bar').length")
        box = browser.execute_script(
            "const r = document.querySelector('svg.seeds').getBoundingClientRect();"
            "return [r.width, r.height]"
        )
        assert dots == 30 and bars >= 1 and box[0] > 500 and box[1] > 150
        drawn = browser.execute_script(  # each dot in the plot itself, with a size
            "return [...document.querySelectorAll('circle.seed')].filter(c => "
            "c.parentElement.tagName === 'svg' && c.getBoundingClientRect().width > 0).length"
        )
        labels = browser.execute_script("return document.querySelectorAll('svg.seeds text').length")
        assert drawn == 30 and labels >= 3  # the axis' ends, 0 and the seeds
        shot = tmp_path / "compare.png"
        assert browser.get_screenshot_as_file(str(shot)) and shot.stat().st_size > 5_000
        if os.environ.get("CRAFTER_COMPARE_SCREENSHOT"):
            shutil.copy(shot, os.environ["CRAFTER_COMPARE_SCREENSHOT"])
    finally:
        browser.quit()


def test_plan_gives_the_seeds_a_drop_needs_and_each_gates_chances(runs, capsys):
    cwd = os.getcwd()
    os.chdir(runs)
    try:
        assert cli.main(["plan", "run1"]) == 0
        paired_out = capsys.readouterr().out
        assert cli.main(["plan", "run2", "--drop", "2"]) == 0
        alone = capsys.readouterr().out
    finally:
        os.chdir(cwd)
    line = next(x for x in paired_out.splitlines() if x.strip().startswith(FUMBLE))
    assert "vs local/heuristic (paired, 30 pilot seeds)" in line
    n = int(re.search(r"-> (\d+) seeds to detect a drop of 3 in progression %", line)[1])
    sd = float(re.search(r"spread (\d+\.\d+)", line)[1])
    assert (
        n == plan.seeds_for_drop([c - b for _, b, c in _per_seed(runs)], 3.0, 0.8)["n"] and sd > 0
    )
    gate = next(x for x in paired_out.splitlines() if "its gate passes in" in x)
    shares = dict(re.findall(r"n=(\d+): (\d\.\d\d)", gate))
    assert set(shares) == {"10", "30", "100", str(n)} and float(shares["100"]) >= 0.9
    assert "local/heuristic (unpaired, no second model" in alone and "drop of 2" in alone


def _per_seed(runs):
    data = json.loads((runs / "run1" / "summary.json").read_text())
    return data["evals"]["pair"]["comparisons"][0]["per_seed"]["seeds"]
