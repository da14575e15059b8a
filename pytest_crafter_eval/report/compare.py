"""Stage: report (compare). Two sides' episode records -> paired comparisons by seed.

    comparison = compare(base_records, cand_records)          # pure
    comparison = compare(records, records, models=("A", "B"))  # two models of one run

Seed k is the same world for every model and run, so each eval's episodes are paired by
seed (only the seeds both sides completed) and compared with `paired`: per metric the
mean of each side on those seeds, the difference (candidate - base) with its 95%
interval and one-sided p-values (exact sign-flip), a verdict; per achievement McNemar's
exact test; the Crafter score's difference by a paired bootstrap (approximate, never
gated). A regression gate (`judge`) fails when the candidate is shown lower than the base
by more than `max_drop`. Touches nothing: the caller reads records and writes files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import metrics, paired
from .results import COMPLETED
from .tables import text_table

SCHEMA = 1
RAN = COMPLETED | {"error"}


@dataclass(frozen=True)
class Metric:
    """A per-episode quantity compared by seed. `value(record)` is None where the
    episode does not count for it; `higher_is_better` says which way is a regression."""

    name: str
    label: str
    bounds: tuple[float, float]
    digits: int
    value: Callable[[Mapping[str, Any]], float | None]
    higher_is_better: bool = True


def _unlocked(record: Mapping[str, Any]) -> int:
    return sum(1 for count in (record.get("achievements") or {}).values() if count)


def _completed(f):
    return lambda r: f(r) if r.get("outcome") in COMPLETED else None


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "progression",
            "progression %",
            (0.0, 100.0),
            1,
            _completed(lambda r: 100.0 * _unlocked(r) / len(metrics.ACHIEVEMENTS)),
        ),
        Metric(
            "achievements",
            "achievements",
            (0.0, float(len(metrics.ACHIEVEMENTS))),
            2,
            _completed(lambda r: float(_unlocked(r))),
        ),
        Metric(
            "reward",
            "reward",
            metrics.REWARD_RANGE,
            2,
            _completed(lambda r: float(r.get("reward") or 0.0)),
        ),
        Metric(
            "tool_call_rate",
            "tool-call rate",
            (0.0, 1.0),
            3,
            _completed(
                lambda r: (
                    int(r.get("tool_calls") or 0) / int(r["steps"]) if r.get("steps") else None
                )
            ),
        ),
        Metric(
            "error_rate",
            "error rate",
            (0.0, 1.0),
            3,
            lambda r: (
                (1.0 if r.get("outcome") == "error" else 0.0) if r.get("outcome") in RAN else None
            ),
            higher_is_better=False,
        ),
    )
}
DEFAULT_METRICS = tuple(METRICS)


def by_seed(records: Iterable[Mapping[str, Any]], metric: Metric) -> dict[int, float]:
    """seed -> the metric's value of each record that counts for it."""
    out = {}
    for r in records:
        v = metric.value(r)
        if v is not None:
            out[int(r["seed"])] = v
    return out


def compare_models(
    base: Sequence[Mapping[str, Any]],
    cand: Sequence[Mapping[str, Any]],
    names: Sequence[str] = DEFAULT_METRICS,
    confidence: float = 0.95,
    regression: Any = None,
) -> dict[str, Any]:
    """The comparison of one eval's records of two models (or one model in two runs):
    {pairs, metrics: {name: {label, base, cand, difference, verdict}}, achievements:
    {name: McNemar dict + verdict}, score, per_seed: [[seed, base, cand]] of the first
    metric, gate}. `regression` (a spec.Regression or anything with metric, max_drop
    and alpha) adds its verdict."""
    alpha = (1 - confidence) / 2
    out: dict[str, Any] = {"metrics": {}, "achievements": {}, "score": None, "gate": None}
    for name in names:
        metric = METRICS[name]
        b, c = by_seed(base, metric), by_seed(cand, metric)
        seeds = sorted(set(b) & set(c))
        if not seeds:
            out["metrics"][name] = {"label": metric.label, "n": 0, "difference": None}
            continue
        diff = paired.paired_difference(b, c, confidence, bounds=metric.bounds)
        worse, better = (
            (diff.p_worse, diff.p_better)
            if metric.higher_is_better
            else (diff.p_better, diff.p_worse)
        )
        out["metrics"][name] = {
            "label": metric.label,
            "n": len(seeds),
            "base": float(np.mean([b[s] for s in seeds])),
            "cand": float(np.mean([c[s] for s in seeds])),
            "difference": diff.to_dict(),
            "verdict": "worse"
            if worse <= alpha
            else "better"
            if better <= alpha
            else "no difference shown",
        }
    done_b = {
        int(r["seed"]): r.get("achievements") or {} for r in base if r.get("outcome") in COMPLETED
    }
    done_c = {
        int(r["seed"]): r.get("achievements") or {} for r in cand if r.get("outcome") in COMPLETED
    }
    seeds = sorted(set(done_b) & set(done_c))
    out["pairs"] = len(seeds)
    if seeds:
        level = alpha / len(metrics.ACHIEVEMENTS)  # Bonferroni over the 22 tests
        for name in metrics.ACHIEVEMENTS:
            test = paired.mcnemar(
                {s: bool(done_b[s].get(name)) for s in seeds},
                {s: bool(done_c[s].get(name)) for s in seeds},
            ).to_dict()
            test["verdict"] = (
                "worse"
                if test["p_worse"] <= level
                else "better"
                if test["p_better"] <= level
                else ""
            )
            out["achievements"][name] = test
        out["score"] = paired.score_difference(
            {s: done_b[s] for s in seeds}, {s: done_c[s] for s in seeds}, confidence
        )
    first = METRICS[names[0]] if names else METRICS["progression"]
    b, c = by_seed(base, first), by_seed(cand, first)
    out["per_seed"] = {
        "metric": first.name,
        "label": first.label,
        "seeds": [[s, b[s], c[s]] for s in sorted(set(b) & set(c))],
    }
    if regression is not None:
        out["gate"] = judge(base, cand, regression)
    return out


def judge(
    base: Sequence[Mapping[str, Any]], cand: Sequence[Mapping[str, Any]], gate: Any
) -> dict[str, Any]:
    """A regression gate's verdict: failed when the one-sided sign-flip test shows the
    candidate lower than the base by more than `gate.max_drop` (p <= `gate.alpha`; for
    error_rate, higher). With the difference, its interval at 1 - 2 alpha, p, n and the
    power n pairs had to detect a drop of max_drop (from the observed spread)."""
    metric = METRICS[gate.metric]
    b, c = by_seed(base, metric), by_seed(cand, metric)
    if not metric.higher_is_better:  # a rise of the error rate is its drop
        b, c = {s: -v for s, v in b.items()}, {s: -v for s, v in c.items()}
    row: dict[str, Any] = {
        "metric": gate.metric,
        "max_drop": gate.max_drop,
        "alpha": gate.alpha,
        "baseline": getattr(gate, "baseline", None),
        "n": len(set(b) & set(c)),
    }
    if not row["n"]:
        return {**row, "status": "not_judged", "note": "no seed completed by both sides"}
    diff = paired.paired_difference(b, c, 1 - 2 * gate.alpha, bounds=_span(metric))
    p = paired.p_drop(b, c, gate.max_drop)
    power = None if diff.sd is None else paired.power(gate.max_drop, diff.sd, diff.n, gate.alpha)
    sign = 1.0 if metric.higher_is_better else -1.0
    low, high = diff.low, diff.high
    if sign < 0:
        low, high = (None if high is None else -high), (None if low is None else -low)
    return {
        **row,
        "status": "failed" if p <= gate.alpha else "passed",
        "difference": sign * diff.value,
        "low": low,
        "high": high,
        "p": p,
        "sd": diff.sd,
        "power": power,
        "method": diff.method,
        "note": None,
    }


def _span(metric: Metric) -> tuple[float, float]:
    lo, hi = metric.bounds
    return (-hi, -lo) if not metric.higher_is_better else (lo, hi)


class CompareError(Exception):
    """Sides that cannot be compared: no pairs, ambiguous models, differing settings."""


def latest_by_model(
    records: Iterable[Mapping[str, Any]],
) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    """(eval, model) -> records, one per seed (the last one given)."""
    out: dict[tuple[str, str], dict[int, Mapping[str, Any]]] = {}
    for r in records:
        if r.get("outcome") == "skipped" or r.get("seed") is None:
            continue
        out.setdefault((r["eval"], r["model"]), {})[int(r["seed"])] = r
    return {k: [v[s] for s in sorted(v)] for k, v in out.items()}


def pairings(
    base: Mapping[tuple[str, str], Any],
    cand: Mapping[tuple[str, str], Any],
    models: tuple[str, str] | None = None,
) -> list[tuple[str, str, str]]:
    """(eval, base model, candidate model) to compare: with `models` (A, B), A of the
    base against B of the candidate in every eval that has both; else each model the two
    sides share, or in an eval where each side has one model, those two."""
    evals = sorted({e for e, _ in base} | {e for e, _ in cand})
    out = []
    for name in evals:
        b = [m for e, m in base if e == name]
        c = [m for e, m in cand if e == name]
        if models is not None:
            if models[0] in b and models[1] in c:
                out.append((name, models[0], models[1]))
            continue
        shared = [m for m in b if m in c]
        if shared:
            out += [(name, m, m) for m in shared]
        elif len(b) == 1 and len(c) == 1:
            out.append((name, b[0], c[0]))
        elif b and c:
            raise CompareError(
                f"eval {name}: the sides share no model and have several ({', '.join(b)} vs "
                f"{', '.join(c)}); name the two with --models BASE_MODEL,CANDIDATE_MODEL"
            )
    return out


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def settings_differences(
    base: Sequence[Mapping[str, Any]], cand: Sequence[Mapping[str, Any]]
) -> list[str]:
    """What differs between the settings the paired episodes were played with: from the
    records' `settings` where both have them (`steps: 50 vs 100`), else, for the same
    model, their settings fingerprints (which cannot say what differs)."""
    b = {int(r["seed"]): r for r in base}
    c = {int(r["seed"]): r for r in cand}
    found: dict[str, None] = {}
    for seed in sorted(set(b) & set(c)):
        x, y = b[seed], c[seed]
        if isinstance(x.get("settings"), Mapping) and isinstance(y.get("settings"), Mapping):
            fx, fy = _flat(x["settings"]), _flat(y["settings"])
            for key in sorted(set(fx) | set(fy)):
                if fx.get(key) != fy.get(key):
                    found[f"{key}: {fx.get(key)!r} vs {fy.get(key)!r}"] = None
        elif x.get("model") == y.get("model") and x.get("fingerprint") != y.get("fingerprint"):
            found["settings fingerprints differ (records without `settings` cannot say which)"] = (
                None
            )
    return list(found)


def compare(
    base: Iterable[Mapping[str, Any]],
    cand: Iterable[Mapping[str, Any]],
    *,
    models: tuple[str, str] | None = None,
    names: Sequence[str] = DEFAULT_METRICS,
    confidence: float = 0.95,
    regressions: Mapping[tuple[str, str], Any] | None = None,
    allow_different_settings: bool = False,
    labels: tuple[str, str] = ("base", "candidate"),
) -> dict[str, Any]:
    """compare.json: {schema, base, cand, confidence, metrics, comparisons: [{eval,
    base_model, cand_model, settings: [differences], ...compare_models}], failed_gates}.
    `regressions` maps (eval, candidate model) -> its regression gate. Raises CompareError when nothing
    pairs, or when settings differ and `allow_different_settings` is not set."""
    for name in names:
        if name not in METRICS:
            raise CompareError(f"unknown metric {name!r}; expected one of {', '.join(METRICS)}")
    b, c = latest_by_model(base), latest_by_model(cand)
    chosen = pairings(b, c, models)
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "base": labels[0],
        "cand": labels[1],
        "confidence": confidence,
        "metrics": list(names),
        "comparisons": [],
        "failed_gates": [],
    }
    problems = []
    for name, bm, cm in chosen:
        diffs = settings_differences(b[(name, bm)], c[(name, cm)])
        if diffs and not allow_different_settings:
            problems.append(f"eval {name} ({bm} vs {cm}): settings differ: {'; '.join(diffs)}")
        gate = (regressions or {}).get((name, cm))
        item = {
            "eval": name,
            "base_model": bm,
            "cand_model": cm,
            "settings": diffs,
            **compare_models(b[(name, bm)], c[(name, cm)], names, confidence, gate),
        }
        if item["gate"] and item["gate"]["status"] == "failed":
            out["failed_gates"].append({"eval": name, "base_model": bm, "cand_model": cm})
        out["comparisons"].append(item)
    if problems:
        raise CompareError(
            problems[0] + " (pass --allow-different-settings to compare them anyway)"
        )
    if not any(item["pairs"] or item["metrics"] for item in out["comparisons"]):
        raise CompareError("no episode of one side has a partner (same eval and seed) on the other")
    return out


# -- formatting ---------------------------------------------------------------------


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def fmt_p(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}" if value < 0.01 else f"{value:.3f}"


def _diff_cell(diff: Mapping[str, Any] | None, digits: int) -> str:
    if diff is None:
        return "-"
    text = f"{diff['value']:+.{digits}f}"
    if diff.get("low") is not None and diff.get("high") is not None:
        text += f" [{diff['low']:+.{digits}f}, {diff['high']:+.{digits}f}]"
    return text


NOTE = (
    "Differences are candidate - base over the seeds both sides completed; intervals "
    "and p-values from the exact sign-flip test (Monte Carlo above 16 seeds), "
    "achievements by McNemar's exact test; the score's by a paired bootstrap "
    "(approximate, never gated)."
)
HEADER: tuple[str, ...] = (
    "metric",
    "base",
    "candidate",
    "difference (95% CI)",
    "p worse",
    "p better",
    "n",
    "verdict",
)


def metric_rows(item: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for name, m in item["metrics"].items():
        digits = METRICS[name].digits
        diff = m.get("difference")
        if diff is None:
            rows.append([m["label"], "-", "-", "-", "-", "-", "0", "no seed to pair"])
            continue
        worse, better = (diff["p_worse"], diff["p_better"])
        if not METRICS[name].higher_is_better:
            worse, better = better, worse
        rows.append(
            [
                m["label"],
                _num(m["base"], digits),
                _num(m["cand"], digits),
                _diff_cell(diff, digits),
                fmt_p(worse),
                fmt_p(better),
                str(m["n"]),
                m["verdict"],
            ]
        )
    score = item.get("score")
    if score:
        rows.append(
            [
                "score % (approximate, not gated)",
                "",
                "",
                _diff_cell(score, 1),
                "",
                "",
                str(score["n"]),
                "",
            ]
        )
    return rows


COMPARISON_HEADER = ("model", "vs", *HEADER)


def comparison_rows(comparisons: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """The rows of a summary's `comparisons` (`compare: {baseline: MODEL}`): per model
    and metric, as `metric_rows`, led by the model and the baseline."""
    return [[c["cand_model"], c["base_model"], *row] for c in comparisons for row in metric_rows(c)]


def gate_line(gate: Mapping[str, Any]) -> str:
    """`regression gate (progression, max_drop 3, alpha 0.025): FAILED: -6.1 [...] ...`"""
    head = f"regression gate ({gate['metric']} drop at most {gate['max_drop']:g}, alpha {gate['alpha']:g})"
    if gate["status"] == "not_judged":
        return f"{head}: not judged: {gate['note']}"
    digits = METRICS[gate["metric"]].digits
    power = "-" if gate.get("power") is None else f"{gate['power']:.2f}"
    level = round(100 * (1 - 2 * gate["alpha"]), 1)
    return (
        f"{head}: {'FAILED' if gate['status'] == 'failed' else 'passed'}: difference "
        f"{_diff_cell({'value': gate['difference'], 'low': gate['low'], 'high': gate['high']}, digits)}"
        f" ({level:g}% CI), p {fmt_p(gate['p'])} (drop beyond {gate['max_drop']:g}), n {gate['n']}, "
        f"power {power} to detect a drop of {gate['max_drop']:g}"
    )


def title(item: Mapping[str, Any], out: Mapping[str, Any]) -> str:
    if item["base_model"] == item["cand_model"]:
        who = f"{item['base_model']}: {out['base']} vs {out['cand']}"
    else:
        who = f"{item['base_model']} ({out['base']}) vs {item['cand_model']} ({out['cand']})"
    return f"{item['eval']}: {who}, {item['pairs']} seeds paired"


def changed_achievements(item: Mapping[str, Any]) -> list[str]:
    return [
        f"{name} {a['base_rate']:.0f}% -> {a['cand_rate']:.0f}% ({a['verdict']}, p {fmt_p(a['p_worse'] if a['verdict'] == 'worse' else a['p_better'])})"
        for name, a in item["achievements"].items()
        if a["verdict"]
    ]


def terminal_lines(out: Mapping[str, Any]) -> list[str]:
    lines = []
    for item in out["comparisons"]:
        lines.append(title(item, out))
        lines += ["  " + x for x in text_table(HEADER, metric_rows(item))]
        changed = changed_achievements(item)
        if changed:
            lines.append("  achievements (McNemar, p <= 0.025/22): " + "; ".join(changed))
        if item["settings"]:
            lines.append("  settings differ (allowed): " + "; ".join(item["settings"]))
        if item["gate"]:
            lines.append("  " + gate_line(item["gate"]))
    return lines


def markdown(out: Mapping[str, Any]) -> str:
    lines = [f"## Crafter eval comparison: {out['base']} vs {out['cand']}", ""]
    for item in out["comparisons"]:
        lines += [f"### {title(item, out)}", ""]
        lines += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        lines += [
            "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
            for row in metric_rows(item)
        ]
        lines.append("")
        if item["gate"]:
            lines += [f"**{gate_line(item['gate'])}**", ""]
        if item["settings"]:
            lines += ["Settings differ (allowed): " + "; ".join(item["settings"]), ""]
        if item["achievements"]:
            lines += [
                "| achievement | base % | candidate % | difference | gained | lost | p worse | p better |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for name, a in item["achievements"].items():
                if a["gained"] or a["lost"] or a["base_rate"]:
                    lines.append(
                        f"| {name} | {a['base_rate']:.0f} | {a['cand_rate']:.0f} | "
                        f"{a['difference']:+.0f} | {a['gained']} | {a['lost']} | "
                        f"{fmt_p(a['p_worse'])} | {fmt_p(a['p_better'])} |"
                    )
            lines.append("")
    lines += [NOTE, ""]
    return "\n".join(lines)
