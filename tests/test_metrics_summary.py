"""metrics in the summary: bounded intervals, no zero-width interval a gate can pass on,
completed episodes beside the metrics, and the note on episodes cut short."""

import pytest

from pytest_crafter_eval.config import spec
from pytest_crafter_eval.report import metrics
from pytest_crafter_eval.report import summary as report


def record(
    seed, achievements=(), reward=None, tool_calls=5, steps=5, outcome="passed", end="steps"
):
    return {
        "eval": "e",
        "model": "m",
        "seed": seed,
        "outcome": outcome,
        "achievements": dict.fromkeys(achievements, 1),
        "reward": float(len(achievements)) if reward is None else reward,
        "tool_calls": tool_calls,
        "steps": steps,
        "end": end,
    }


FIVE = ("collect_wood", "place_table", "wake_up", "collect_sapling", "place_plant")


def test_counts_and_rewards_get_intervals_within_their_bounds():
    records = [record(0), record(1), record(2), record(3, FIVE, reward=4.1)]
    # a t interval of the same counts (1.25 per episode) reached below 0
    assert metrics.mean([0, 0, 0, 5]).low < 0
    values = report.model_metrics(records)
    ach = values["mean_achievements"]
    assert ach["value"] == 1.25 and 0 <= ach["low"] < 1.25 < ach["high"] <= 22
    reward = values["mean_reward"]
    assert -0.9 <= reward["low"] < reward["value"] < reward["high"] <= 22
    tool = values["tool_call_rate"]
    assert 0 <= tool["low"] < tool["high"] <= 1
    for name, rate in values["success_rates"].items():
        assert 0 <= rate["low"] <= rate["value"] <= rate["high"] <= 100, name
    score = values["crafter_score"]
    assert score["method"] == "bonferroni" and 0 <= score["low"] < score["value"] < score["high"]


@pytest.mark.parametrize("episodes", [2, 3, 10])
def test_a_lower_bound_gate_cannot_pass_on_equal_episodes(episodes):
    # every episode answered every step with a tool call and unlocked the same 5
    records = [record(seed, FIVE) for seed in range(episodes)]
    values = report.model_metrics(records)
    for name in ("tool_call_rate", "mean_achievements", "mean_reward", "crafter_score"):
        est = values[name]
        assert est["low"] < est["value"], name  # never a zero-width interval
    gate = spec.Gate(min_tool_call_rate=0.9, mean_achievements=4.0, on="lower_bound")
    checks = report.check_gate(gate, values)
    assert [c["passed"] for c in checks] == [False, False]
    # on the mean, the same episodes pass
    assert all(c["passed"] for c in report.check_gate(spec.Gate(min_tool_call_rate=0.9), values))


def test_many_equal_episodes_pass_a_lower_bound_gate():
    values = report.model_metrics([record(seed, FIVE) for seed in range(100)])
    assert values["tool_call_rate"]["low"] > 0.9
    gate = spec.Gate(min_tool_call_rate=0.9, mean_achievements=4.0, on="lower_bound")
    assert all(c["passed"] for c in report.check_gate(gate, values))


def test_summary_shows_completed_episodes_beside_their_metrics_and_the_cut_note():
    records = [
        record(0, FIVE),
        record(1, FIVE, end="done"),
        record(2, outcome="error", steps=0, end="error"),
        record(3, outcome="skipped", steps=0, end="not_run"),
    ]
    summary = report.summarize(records)
    item = summary["evals"]["e"]["models"]["m"]
    values = item["metrics"]
    assert (values["episodes_completed"], values["episodes_cut"], values["errors"]) == (2, 1, 1)
    assert values["crafter_score"]["n"] == values["mean_achievements"]["n"] == 2
    assert item["note"] == report.SCORE_NOTE.format(cut=1, n=2)
    assert "not comparable" in item["note"]
    md = report.markdown(summary)
    assert "| m | 2 |" in md  # completed episodes, not completed + errors
    assert "completed" in md.splitlines()[6] and report.SCORE_NOTE.format(cut=1, n=2) in md
    terminal = "\n".join(report.terminal_lines(summary))
    assert "completed" in terminal and "note: " + report.SCORE_NOTE.format(cut=1, n=2) in terminal


def test_full_length_episodes_carry_no_note():
    summary = report.summarize([record(0, FIVE, end="done"), record(1, end="done")])
    item = summary["evals"]["e"]["models"]["m"]
    assert item["metrics"]["episodes_cut"] == 0 and item["note"] is None
    assert "not comparable" not in report.markdown(summary)
    assert "not comparable" not in "\n".join(report.terminal_lines(summary))


def test_scores_say_when_episodes_were_cut_and_when_the_upper_end_says_nothing():
    from pytest_crafter_eval.report import html, summary

    def rec(seed, end, achievements):
        return {
            "eval": "e",
            "model": "m",
            "seed": seed,
            "outcome": "passed",
            "steps": 50,
            "end": end,
            "tool_calls": 50,
            "achievements": achievements,
            "reward": 1.0,
        }

    weak = [rec(s, "steps", {"collect_wood": 1}) for s in range(10)]
    result = summary.summarize(weak)
    values = result["evals"]["e"]["models"]["m"]["metrics"]
    assert values["crafter_score"]["high"] > 3 * values["crafter_score"]["value"]
    label = "cut at 50 steps; upper end uninformative: 21 achievements never seen"
    assert values["score_label"] == label
    assert f"({label})" in "\n".join(summary.terminal_lines(result))
    assert f"({label})" in summary.markdown(result)
    assert f"<small class=scorenote>({label})</small>" in html.render_html(weak, result)
    # full-length episodes whose every achievement was seen: nothing to say
    strong = [rec(s, "done", dict.fromkeys(metrics.ACHIEVEMENTS, 1)) for s in range(30)]
    assert summary.summarize(strong)["evals"]["e"]["models"]["m"]["metrics"]["score_label"] is None
