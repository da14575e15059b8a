"""Stage: report (summary and gates). Episode records -> per-model metrics, gate verdicts, files.

`summarize(records, runs)` is pure: it groups records by eval and model, computes every
metric with its 95% interval (`metrics`), and checks each model's `gate`. `markdown` renders summary.md (`report.files` writes it,
with summary.json and index.html); `terminal_lines` and `gate_failure_lines` are what the
plugin prints.

Which episodes count: passed, failed and xfailed episodes are *completed* and feed the
capability metrics (achievements, reward, score, success and tool-call rates); errors are
not a verdict on the model and only feed `error_rate` (errors / completed + errors);
skipped episodes feed nothing and their models are listed with the skip reasons.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..config import balrog, spec
from . import compare, metrics, sequential
from .results import COMPLETED, OUTCOMES
from .tables import text_table

SCHEMA = 1

# Said beside the metrics of episodes that ended before Crafter's own end.
SCORE_NOTE = (
    "{cut} of {n} episodes ended before Crafter's own end (death or 10,000 steps): cut at"
    " the `steps` limit of model calls, or stopped at a step without a tool call or a"
    " missing capability. The Crafter paper's scores come from full-length episodes;"
    " scores of cut episodes are not comparable with them."
)


def model_metrics(records: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Every metric of one model's records, each estimate as a dict {value, low, high,
    n, method}, or None when no episode it needs exists. Rates of achievements and
    progression are in percent; tool-call and error rates are fractions, as in the YAML thresholds."""
    done = [r for r in records if r.get("outcome") in COMPLETED]
    errors = sum(1 for r in records if r.get("outcome") == "error")
    # `episodes` and `episodes_completed` (the same number) are the episodes behind every
    # capability metric; `episodes_cut` of them ended before Crafter's own end (death or
    # 10,000 steps), which makes the score incomparable with the paper's (SCORE_NOTE).
    out: dict[str, Any] = {
        "episodes": len(done),
        "episodes_completed": len(done),
        "episodes_cut": sum(1 for r in done if r.get("end") != "done"),
        "errors": errors,
    }
    ran = len(done) + errors
    out["error_rate"] = metrics.clopper_pearson(errors, ran).to_dict() if ran else None
    if not done:
        for name in (
            "mean_achievements",
            "mean_reward",
            "crafter_score",
            "progression",
            "progression_se",
            "tool_call_rate",
            "success_rates",
            "mean_steps",
            "score_label",
        ):
            out[name] = None
    else:
        unlocked = [r.get("achievements") or {} for r in done]
        # Bounded quantities get intervals within their bounds, valid for any distribution
        # (metrics.bounded_mean_interval); the score's is the conservative Bonferroni box.
        out["mean_achievements"] = metrics.mean(
            [sum(1 for c in a.values() if c) for a in unlocked],
            bounds=(0, len(metrics.ACHIEVEMENTS)),
        ).to_dict()
        out["mean_reward"] = metrics.mean(
            [float(r.get("reward") or 0.0) for r in done], bounds=metrics.REWARD_RANGE
        ).to_dict()
        out["crafter_score"] = metrics.score_interval(unlocked, method="bonferroni").to_dict()
        out["score_label"] = score_label(out["crafter_score"], unlocked, done)
        out["progression"] = metrics.progression(unlocked).to_dict()
        # BALROG's standard error (percent) beside the interval, as its leaderboard shows it
        out["progression_se"] = metrics.balrog_standard_error(
            metrics.progression_percents(unlocked)
        )
        out["success_rates"] = {
            name: metrics.clopper_pearson(sum(1 for a in unlocked if a.get(name)), len(done))
            .scaled(100)
            .to_dict()
            for name in metrics.ACHIEVEMENTS
        }
        # The mean of per-episode rates: an episode's steps are not independent trials (it
        # stops at its first miss), so pooling them would give an interval too narrow for
        # `on: lower_bound`; and a t interval misses the long tail of episodes that stop
        # early (measured: tests/test_metrics_coverage.py).
        rates = [int(r.get("tool_calls") or 0) / int(r["steps"]) for r in done if r.get("steps")]
        out["tool_call_rate"] = metrics.mean(rates, bounds=(0.0, 1.0)).to_dict() if rates else None
        out["mean_steps"] = metrics.mean([float(r.get("steps") or 0) for r in done]).to_dict()
    ran_records = [r for r in records if r.get("outcome") != "skipped"]
    for key in ("tokens_in", "tokens_out", "tokens_reasoning", "tokens_cached", "duration_s"):
        out[key] = sum(r.get(key) or 0 for r in ran_records)
    # the share of input tokens a provider's prompt cache served (priced at its cached price)
    out["cached_share"] = out["tokens_cached"] / out["tokens_in"] if out["tokens_in"] else None
    costs = [r.get("cost_usd") for r in ran_records]
    known = [c for c in costs if c is not None]
    out["cost_usd"] = sum(known) if known else None
    out["cost_complete"] = len(known) == len(costs)
    latencies = [x for r in ran_records for x in (r.get("latencies_s") or [])]
    out["latency_p50_s"] = metrics.percentile(latencies, 50)
    out["latency_p95_s"] = metrics.percentile(latencies, 95)
    out["no_tool_call_classes"] = dict(
        Counter(r["no_tool_call_class"] for r in done if r.get("no_tool_call_class"))
    )
    # How the completed episodes went: why each ended (`end`: steps, done, no_tool_call,
    # ...), and the answers' shape summed over them.
    out["ends"] = dict(sorted(Counter(str(r.get("end") or "?") for r in done).items()))
    out["text_tool_calls"] = sum(int(r.get("text_tool_calls") or 0) for r in done)
    out["noops"] = sum(int(r.get("noops") or 0) for r in done)
    invalid: Counter[str] = Counter()
    for r in done:
        invalid.update({str(k): int(v or 0) for k, v in (r.get("invalid_answers") or {}).items()})
    out["invalid_answers"] = dict(sorted(invalid.items()))
    return out


def behaviour_line(values: Mapping[str, Any]) -> str | None:
    """How a model's completed episodes went, in one line: `ended: steps 3, no_tool_call 1;
    invalid answers: invalid_tool_call 2; noops 5; tool calls written as text 30`; None
    without completed episodes."""
    ends = values.get("ends") or {}
    if not ends:
        return None
    parts = ["ended: " + ", ".join(f"{k} {n}" for k, n in ends.items())]
    invalid = values.get("invalid_answers") or {}
    if invalid:
        parts.append("invalid answers: " + ", ".join(f"{k} {n}" for k, n in invalid.items()))
    if values.get("noops"):
        parts.append(f"noops {values['noops']}")
    if values.get("text_tool_calls"):
        parts.append(f"tool calls written as text {values['text_tool_calls']}")
    return "; ".join(parts)


def score_label(
    score: Mapping[str, Any], unlocked: list[Mapping[str, Any]], done: list[Mapping[str, Any]]
) -> str | None:
    """What every report says next to a Crafter score: `cut at N steps` when episodes
    were cut at the `steps` limit (their score is not the paper's), and `upper end
    uninformative: k achievements never seen` when the interval's upper end is more than
    3x the estimate (an achievement never seen may still happen often). None when
    neither."""
    notes = []
    cut = [int(r.get("steps") or 0) for r in done if r.get("end") == "steps"]
    if cut:
        notes.append(f"cut at {max(cut)} steps")
    high = score.get("high")
    if high is not None and high > 3 * score["value"]:
        unseen = sum(1 for name in metrics.ACHIEVEMENTS if not any(a.get(name) for a in unlocked))
        notes.append(f"upper end uninformative: {unseen} achievements never seen")
    return "; ".join(notes) or None


def check_gate(gate: Any, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per threshold of `gate` (a `spec.Gate`) against `model_metrics` output:
    metric, value, low, high, op, threshold, compared (the number held against the
    threshold), passed, note."""
    rows = []
    items = [
        (key, getattr(gate, key)) for key in spec.GATE_METRICS if getattr(gate, key) is not None
    ]
    items += [(f"success_rate.{name}", percent) for name, percent in gate.success_rate]
    for key, threshold in items:
        if key.startswith("success_rate."):
            rates = values.get("success_rates")
            est, op = (rates or {}).get(key.split(".", 1)[1]), ">="
            metric = key
        else:
            metric, op = spec.GATE_METRICS[key]
            est = values.get(metric)
        row = {
            "metric": metric,
            "op": op,
            "threshold": threshold,
            "on": gate.on,
            "value": None,
            "low": None,
            "high": None,
            "compared": None,
            "passed": False,
            "note": None,
        }
        if est is None:
            row["note"] = "no completed episodes"
        else:
            row.update(value=est["value"], low=est["low"], high=est["high"])
            compared = est["value"]
            if gate.on == "lower_bound":  # the conservative end of the interval
                compared = est["low"] if op == ">=" else est["high"]
            if compared is None:
                row["note"] = "no interval: the data cannot bound it (on lower_bound)"
            else:
                row["compared"] = compared
                row["passed"] = compared >= threshold if op == ">=" else compared <= threshold
        rows.append(row)
    return rows


def _judged(
    gate: Any, group: list[Mapping[str, Any]], values: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], bool, dict[str, Any] | None]:
    """(checks, passed, sequential) of one model's gate on its records (in seed order).
    A sequential gate (`report.sequential`) is judged on confidence sequences: decided,
    its verdict stands; undecided after all its seeds, `on: lower_bound` fails (the
    sequence did not clear the threshold) and `on: mean` is judged on the mean."""
    if not getattr(gate, "sequential", 0):
        checks = check_gate(gate, values)
        return checks, all(c["passed"] for c in checks), None
    verdict = sequential.judge(gate, group)
    info = {"round": gate.sequential, "decided": verdict.decided, "episodes": verdict.episodes}
    if verdict.decided or gate.on == "lower_bound":
        return list(verdict.checks), verdict.status == "passed", info
    checks = check_gate(gate, values)
    return checks, all(c["passed"] for c in checks), info


def regression_check(
    gate: Any, records: list[Mapping[str, Any]], baseline: Any, key: tuple[str, str]
) -> dict[str, Any]:
    """The check row of a `spec.Regression` (as `check_gate` rows, plus `judged` and the
    verdict of `compare.judge` under `regression`): value, low and high are the paired
    difference candidate - baseline and its interval, `compared` its p-value."""
    row: dict[str, Any] = {
        "metric": f"regression.{gate.metric}",
        "op": "drop <=",
        "threshold": gate.max_drop,
        "on": "regression",
        "value": None,
        "low": None,
        "high": None,
        "compared": None,
        "passed": False,
        "judged": False,
        "note": None,
        "regression": None,
    }
    if not isinstance(baseline, list):
        row["note"] = baseline or "no baseline: set gate.regression.baseline or --baseline"
        return row
    base = compare.latest_by_model(baseline).get(key, [])
    differ = compare.settings_differences(base, records)
    if differ:
        row["note"] = "settings differ from the baseline's: " + "; ".join(differ)
        return row
    verdict = compare.judge(base, records, gate)
    row["regression"] = verdict
    if verdict["status"] == "not_judged":
        row["note"] = f"{verdict['note']} (baseline {gate.baseline})"
        return row
    power = "-" if verdict["power"] is None else f"{verdict['power']:.2f}"
    row.update(
        value=verdict["difference"],
        low=verdict["low"],
        high=verdict["high"],
        compared=verdict["p"],
        passed=verdict["status"] == "passed",
        judged=True,
        note=(
            f"p {compare.fmt_p(verdict['p'])}, n {verdict['n']}, power {power} to detect a "
            f"drop of {gate.max_drop:g}"
        ),
    )
    return row


def summarize(
    records: Iterable[Mapping[str, Any]],
    runs: Mapping[tuple[str, str], Any] | None = None,
    *,
    unplayed: Iterable[Mapping[str, Any]] = (),
    incomplete_reason: str | None = None,
    baselines: Mapping[tuple[str, str], Any] | None = None,
) -> dict[str, Any]:
    """The summary of a run: per eval and model, outcome counts, metrics and gates.

    Shape (summary.json): {schema, complete, not_played, incomplete_reason, created_at,
    episodes, outcomes, evals: {eval name: {eval, path, models: {model: {model, xfail,
    seeds, outcomes, not_played, resumed, metrics, gate: None | {status, on, checks:
    [check_gate rows]}, skip_reasons?}}}}, skipped: [{eval, model, episodes, reasons}],
    failed_gates: [{eval, model}]}. Evals come in the order of their files' paths, models
    in the order their eval file lists them (then by name), whatever order episodes
    ended in.

    `unplayed` are the episodes selected to run that have no record ({path, eval, model,
    seed}; a run stopped by -x, --maxfail or Ctrl-C): with any, the run is not
    `complete`, `incomplete_reason` says why, and their models are listed even without
    a record.

    `runs` maps (eval name, model) -> `spec.Run` (for its `gate`, `xfail` and its line
    in the file); a model without one is reported ungated. Gate status per model:
    passed, failed, xfailed (failed, but the model is xfail: does not fail the run),
    xpassed (an xfail model that meets its gate: reported), not_judged (some of its
    episodes were not played: neither passed nor failed), skipped (no episode ran) or
    None (no gate).

    A gate's `regression` adds a check row (`regression_check`) against the baseline's
    records in `baselines` ((eval, model) -> the records of its baseline run, or a
    string saying why there are none, `merge.baselines`); a regression that cannot be
    judged (no baseline, no seed in common) is said, and fails nothing. An eval whose
    file has `compare: {baseline: MODEL}` gets `comparisons`: every other model against
    MODEL, paired by seed (`compare.compare_models`).
    """
    runs = runs or {}
    baselines = baselines or {}
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    paths: dict[str, str | None] = {}
    missing: Counter[tuple[str, str]] = Counter()
    for record in records:
        groups.setdefault((record["eval"], record["model"]), []).append(record)
        paths.setdefault(record["eval"], record.get("path"))
    for episode in unplayed:
        key = (episode["eval"], episode["model"])
        groups.setdefault(key, [])
        missing[key] += 1
        paths.setdefault(episode["eval"], episode.get("path"))

    def order(key: tuple[str, str]) -> tuple[str, str, float, str]:
        line = getattr(runs.get(key), "line", None)
        return (paths.get(key[0]) or "", key[0], line if line is not None else float("inf"), key[1])

    evals: dict[str, dict[str, Any]] = {}
    skipped, failed_gates = [], []
    for key in sorted(groups, key=order):
        eval_name, model = key
        group = sorted(groups[key], key=lambda r: r.get("seed", 0))
        entry = evals.setdefault(
            eval_name, {"eval": eval_name, "path": paths.get(eval_name), "models": {}}
        )
        outcomes = Counter(r.get("outcome") for r in group)
        run = runs.get(key)
        xfail = getattr(run, "xfail", None)
        values = model_metrics(group)
        item = {
            "model": model,
            "xfail": xfail,
            "seeds": [r.get("seed") for r in group],
            "outcomes": {o: outcomes.get(o, 0) for o in OUTCOMES},
            "not_played": missing[key],
            "resumed": sum(1 for r in group if r.get("resumed")),
            "metrics": values,
            "note": (
                SCORE_NOTE.format(cut=values["episodes_cut"], n=values["episodes_completed"])
                if values["episodes_cut"]
                else None
            ),
            "gate": None,
            **_protocol(run, group),
        }
        if group and outcomes.get("skipped", 0) == len(group):
            reasons = sorted({r.get("message") or "skipped" for r in group})
            skipped.append(
                {"eval": eval_name, "model": model, "episodes": len(group), "reasons": reasons}
            )
            item["skip_reasons"] = reasons
        gate = getattr(run, "gate", None)
        if gate is not None and not gate.empty:
            checks = check_gate(gate, values)
            if gate.regression is not None:
                checks.append(regression_check(gate.regression, group, baselines.get(key), key))
            if missing[key]:  # judged on part of its episodes, a gate could pass by luck
                item["gate"] = {"status": "not_judged", "on": gate.on, "checks": checks}
            elif values["episodes"] + values["errors"] == 0:
                item["gate"] = {"status": "skipped", "on": gate.on, "checks": []}
            elif all(c.get("judged") is False for c in checks):  # no baseline to judge by
                item["gate"] = {"status": "not_judged", "on": gate.on, "checks": checks}
            else:
                judged_checks, ok, decided = _judged(gate, group, values)
                regressions = [c for c in checks if c["on"] == "regression"]
                checks = judged_checks + regressions
                ok = ok and all(c["passed"] or c.get("judged") is False for c in regressions)
                status = (
                    ("xpassed" if ok else "xfailed") if xfail else ("passed" if ok else "failed")
                )
                verdict: dict[str, Any] = {"status": status, "on": gate.on, "checks": checks}
                if decided is not None:
                    verdict["sequential"] = decided
                item["gate"] = verdict
                if status == "failed":
                    failed_gates.append({"eval": eval_name, "model": model})
        entry["models"][model] = item
    for key, run in runs.items():
        against = getattr(run, "compare", None)
        if against is None or key[1] == against or key not in groups:
            continue
        base = groups.get((key[0], against))
        if key[0] in evals and base:
            evals[key[0]].setdefault("comparisons", []).append(
                {
                    "base_model": against,
                    "cand_model": key[1],
                    **compare.compare_models(base, groups[key]),
                }
            )
    for entry in evals.values():  # in the order the models are listed
        if "comparisons" in entry:
            listed = list(entry["models"])
            entry["comparisons"].sort(key=lambda c: listed.index(c["cand_model"]))
    all_outcomes = Counter(r.get("outcome") for g in groups.values() for r in g)
    not_played = sum(missing.values())
    return {
        "schema": SCHEMA,
        "complete": not not_played,
        "not_played": not_played,
        "incomplete_reason": (incomplete_reason or "not run") if not_played else None,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "episodes": sum(len(g) for g in groups.values()),
        "outcomes": {o: all_outcomes.get(o, 0) for o in OUTCOMES},
        "evals": evals,
        "skipped": skipped,
        "failed_gates": failed_gates,
    }


def _protocol(run: Any, group: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The model's protocol label (spec.Protocol.label, else its records') and, under
    protocol balrog, the settings changed from BALROG's (`config.balrog.settings`)."""
    protocol = getattr(run, "protocol", None)
    label = (
        protocol.label
        if protocol
        else next((r["protocol"] for r in group if r.get("protocol")), "default")
    )
    changed = list(balrog.settings(run)[1]) if protocol and protocol.name == "balrog" else []
    return {"protocol": label, "protocol_changes": changed}


def balrog_lines(entry: Mapping[str, Any]) -> list[str]:
    """One line per model of an eval played under protocol balrog: its progression as
    BALROG's leaderboard shows it (mean ± standard error), this project's interval, and
    the settings changed from BALROG's."""
    lines = []
    for item in _shown(entry):
        v = item["metrics"]
        if not item.get("protocol", "").startswith("balrog") or v.get("progression") is None:
            continue
        p = v["progression"]
        changed = "; ".join(item.get("protocol_changes") or []) or "none"
        interval = (
            f"; 95% interval [{p['low']:.2f}, {p['high']:.2f}]%"
            if p.get("low") is not None and p.get("high") is not None
            else ""
        )
        lines.append(
            f"{_model_name(item)} ({item['protocol']}): progression {p['value']:.2f}% ± "
            f"{v['progression_se']:.2f}% (BALROG's standard error, {v['episodes']} "
            f"episode{'s' * (v['episodes'] != 1)}{interval}); settings changed from "
            f"BALROG's: {changed}"
        )
    return lines


def incomplete_line(summary: Mapping[str, Any]) -> str | None:
    """`incomplete run: 3 of 12 episodes not played (stopping after 1 failures); ...`,
    or None for a complete run."""
    if summary.get("complete", True):
        return None
    missing = summary["not_played"]
    total = summary["episodes"] + missing
    return (
        f"incomplete run: {missing} of {total} episodes not played "
        f"({summary['incomplete_reason']}); gates of models with unplayed episodes "
        "are not judged"
    )


# -- formatting ---------------------------------------------------------------------


def fmt_estimate(est: Mapping[str, Any] | None, digits: int = 2, unit: str = "") -> str:
    """`2.25 [1.10, 3.40]`, `2.25` without an interval, `-` for none."""
    if est is None:
        return "-"
    value = f"{est['value']:.{digits}f}{unit}"
    if est.get("low") is None or est.get("high") is None:
        return value
    return f"{value} [{est['low']:.{digits}f}, {est['high']:.{digits}f}]"


def fmt_cost(values: Mapping[str, Any]) -> str:
    cost = values.get("cost_usd")
    if cost is None:
        return "-"
    return f"${cost:.4f}" + ("" if values.get("cost_complete", True) else "+")


def _gate_cell(item: Mapping[str, Any]) -> str:
    gate = item.get("gate")
    if gate is None:
        return "-"
    return gate["status"].replace("_", " ") + _sequential_note(gate)


def _sequential_note(gate: Mapping[str, Any]) -> str:
    """` (decided after 20 seeds)` or ` (undecided after 100 seeds)` for a sequential gate."""
    seq = gate.get("sequential")
    if not seq:
        return ""
    return f" ({'decided' if seq['decided'] else 'undecided'} after {seq['episodes']} seeds)"


def _shown(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The models of an eval with an episode played, errored or not played."""
    return [
        m
        for m in entry["models"].values()
        if m["metrics"]["episodes"] + m["metrics"]["errors"] or m.get("not_played")
    ]


def _model_name(item: Mapping[str, Any]) -> str:
    return item["model"] + (" (xfail)" if item.get("xfail") else "")


_COLUMNS = (
    "model",
    "completed",
    "achievements (95% CI)",
    "score % (95% CI)",
    "reward",
    "tool-call rate",
    "errors",
    "cost",
    "gate",
)


CACHED_COLUMN = "cached input"  # shown after cost when a model of the eval had cached tokens


def _columns(items: list[Mapping[str, Any]]) -> tuple[str, ...]:
    """The table's columns for these models: the cached share of input tokens only when
    a provider's prompt cache served some (else every row would say 0%)."""
    if not any(m["metrics"].get("tokens_cached") for m in items):
        return _COLUMNS
    at = _COLUMNS.index("cost") + 1
    return (*_COLUMNS[:at], CACHED_COLUMN, *_COLUMNS[at:])


def fmt_share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _row(item: Mapping[str, Any], columns: tuple[str, ...] = _COLUMNS) -> list[str]:
    v, o = item["metrics"], item["outcomes"]
    # the completed episodes, which every metric of the row is computed from
    episodes = f"{v['episodes']}" + (f" ({item['resumed']} resumed)" if item.get("resumed") else "")
    cached = [fmt_share(v.get("cached_share"))] if CACHED_COLUMN in columns else []
    return [
        _model_name(item),
        episodes,
        fmt_estimate(v.get("mean_achievements")),
        fmt_estimate(v.get("crafter_score"), 1)
        + (f" ({v['score_label']})" if v.get("score_label") else ""),
        fmt_estimate(v.get("mean_reward"), 1),
        fmt_estimate(v.get("tool_call_rate")),
        str(o.get("error", 0)),
        fmt_cost(v),
        *cached,
        _gate_cell(item),
    ]


def markdown(summary: Mapping[str, Any]) -> str:
    """summary.md: a compact table per eval, then skipped models and failed gates."""
    o = summary["outcomes"]
    lines = ["## Crafter eval", ""]
    incomplete = incomplete_line(summary)
    if incomplete:
        lines += [f"**{incomplete[0].upper()}{incomplete[1:]}.**", ""]
    lines += [
        f"{summary['episodes']} episodes: " + ", ".join(f"{o[k]} {k}" for k in OUTCOMES if o[k]),
        "",
    ]
    for entry in summary["evals"].values():
        items = _shown(entry)
        if not items:
            continue
        columns = _columns(items)
        lines += [
            f"### {entry['eval']} (`{entry['path']}`)",
            "",
            "| " + " | ".join(columns) + " |",
            "|" + "---|" * len(columns),
        ]
        lines += [
            "| " + " | ".join(cell.replace("|", "\\|") for cell in _row(m, columns)) + " |"
            for m in items
        ]
        how = [(m, behaviour_line(m["metrics"])) for m in items]
        lines += [""] + [f"- {_model_name(m)}: {line}" for m, line in how if line]
        cut = sum(m["metrics"]["episodes_cut"] for m in items)
        if cut:
            completed = sum(m["metrics"]["episodes_completed"] for m in items)
            lines += ["", SCORE_NOTE.format(cut=cut, n=completed)]
        if entry.get("comparisons"):
            lines += [
                "",
                "Paired by seed (candidate - baseline, 95% CI, exact sign-flip test):",
                "",
                "| " + " | ".join(compare.COMPARISON_HEADER) + " |",
                "|" + "---|" * len(compare.COMPARISON_HEADER),
            ]
            lines += [
                "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
                for row in compare.comparison_rows(entry["comparisons"])
            ]
        shown = balrog_lines(entry)
        if shown:
            lines += ["", *[f"- BALROG: {line}" for line in shown]]
        lines.append("")
    if summary["skipped"]:
        lines += ["**Skipped models**", ""]
        lines += [
            f"- {s['eval']}: {s['model']} ({s['episodes']} episodes): {'; '.join(s['reasons'])}"
            for s in summary["skipped"]
        ]
        lines.append("")
    rows = gate_rows(summary)
    if rows:
        lines += [
            "**Gates**",
            "",
            "| eval | model | metric | value (95% CI) | threshold | result |",
            "|---|---|---|---|---|---|",
        ]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def gate_rows(summary: Mapping[str, Any], notable_only: bool = False) -> list[list[str]]:
    """[eval, model, metric, value [interval], threshold, result] per gate check;
    `notable_only`: only of models whose gate failed, or is xfail."""
    rows = []
    for entry in summary["evals"].values():
        for item in entry["models"].values():
            gate = item.get("gate")
            if not gate or gate["status"] == "skipped":
                continue
            if notable_only and gate["status"] not in ("failed", "xfailed", "xpassed"):
                continue
            judged = gate["status"] != "not_judged"
            for check in gate["checks"]:
                digits = 1 if check["metric"].startswith(("success_rate", "crafter_score")) else 2
                est = None if check["value"] is None else check
                value = fmt_estimate(est, digits) + (f" ({check['note']})" if check["note"] else "")
                bound = {"lower_bound": " on lower bound", "sequential": " on sequence"}.get(
                    check["on"], ""
                )  # on sequence: `value` holds the confidence sequence's ends
                if check.get("judged") is False:
                    result = "not judged"
                elif not judged:
                    result = "not judged (episodes not played)"
                elif check["passed"]:
                    result = (
                        "ok (xfail model passes its gate: remove the xfail?)"
                        if gate["status"] == "xpassed"
                        else "ok"
                    )
                else:
                    result = "FAILED" if not item.get("xfail") else "failed (xfail: expected)"
                result += _sequential_note(gate)
                rows.append(
                    [
                        entry["eval"],
                        _model_name(item),
                        check["metric"],
                        value,
                        f"{check['op']} {check['threshold']:g}{bound}",
                        result,
                    ]
                )
    return rows


def terminal_lines(summary: Mapping[str, Any]) -> list[str]:
    """The end-of-run summary: a table per eval with one row per model, then skipped
    models with their reasons."""
    lines: list[str] = []
    for entry in summary["evals"].values():
        items = _shown(entry)
        if not items:
            continue
        lines.append(f"{entry['eval']} ({entry['path']})")
        columns = _columns(items)
        lines += ["  " + x for x in text_table(columns, [_row(m, columns) for m in items])]
        for m in items:
            line = behaviour_line(m["metrics"])
            if line:
                lines.append(f"  {_model_name(m)}: {line}")
        cut = sum(m["metrics"]["episodes_cut"] for m in items)
        if cut:
            completed = sum(m["metrics"]["episodes_completed"] for m in items)
            lines.append("  note: " + SCORE_NOTE.format(cut=cut, n=completed))
        if entry.get("comparisons"):
            lines.append("  paired by seed (candidate - baseline, 95% CI, exact sign-flip test):")
            rows = compare.comparison_rows(entry["comparisons"])
            lines += ["  " + x for x in text_table(compare.COMPARISON_HEADER, rows)]
        lines += [f"  BALROG: {line}" for line in balrog_lines(entry)]
    for s in summary["skipped"]:
        lines.append(
            f"skipped {s['eval']}: {s['model']} ({s['episodes']} episodes): "
            + "; ".join(s["reasons"])
        )
    return lines


# Said above the terminal's gate table, which is shorter than summary.md's.
GATE_TABLE_NOTE = (
    "the checks of models whose gate failed (or that are xfail); summary.md lists every check"
)


def gate_failure_lines(summary: Mapping[str, Any]) -> list[str]:
    """The table printed when a gate fails, or an xfail model's gate was checked."""
    rows = gate_rows(summary, notable_only=True)
    if not rows:
        return []
    return text_table(("eval", "model", "metric", "value (95% CI)", "threshold", "result"), rows)
