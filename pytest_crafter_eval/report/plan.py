"""Stage: report (plan). Pilot runs -> how many seeds a decision needs.

    crafter-eval plan reports/pilot [--drop 3] [--power 0.8] [--metric progression]

`seeds_for_drop`: the seeds a paired comparison needs to detect a mean drop of `drop`
with the given power (one-sided alpha 0.025), from the spread of the per-seed
differences between two models of the pilot (paired), or, with one model, from its
episodes' spread times sqrt(2) (unpaired: as if the two sides were independent; seeds
shared by both sides usually spread less). The spread is the pilot's upper 80%
confidence bound (a chi-square bound on the standard deviation), so that a pilot that
happened to spread little does not under-plan. `gate_pass`: for each absolute gate, the
share of samples of n of the pilot's episodes (drawn with replacement) that pass it.
Pure: records in, numbers out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from . import paired
from .results import COMPLETED
from .summary import check_gate, model_metrics

SPREAD_CONFIDENCE = 0.8
NS = (10, 30, 100)


def spread_bound(sd: float, n: int, confidence: float = SPREAD_CONFIDENCE) -> float:
    """An upper `confidence` bound on a standard deviation estimated as `sd` from n
    values: sd * sqrt((n - 1) / chi2_{1 - confidence}(n - 1)) (Wilson-Hilferty's
    chi-square quantile)."""
    k = n - 1
    if k < 1:
        raise ValueError("a spread needs at least 2 values")
    z = NormalDist().inv_cdf(1 - confidence)
    q = k * (1 - 2 / (9 * k) + z * math.sqrt(2 / (9 * k))) ** 3
    return sd * math.sqrt(k / max(q, 1e-12))


def seeds_for_drop(
    differences: Sequence[float],
    drop: float,
    target: float = 0.8,
    alpha: float = 0.025,
    paired_: bool = True,
) -> dict[str, Any]:
    """{n, sd, sd_bound, pilot, paired}: the seeds needed from the pilot's per-seed
    differences (paired) or its values (unpaired, spread times sqrt(2))."""
    values = np.asarray(differences, dtype=float)
    out: dict[str, Any] = {"pilot": len(values), "paired": paired_, "drop": drop, "power": target}
    if len(values) < 2:
        return {**out, "n": None, "sd": None, "sd_bound": None, "note": "fewer than 2 seeds"}
    sd = float(np.std(values, ddof=1)) * (1.0 if paired_ else math.sqrt(2.0))
    bound = spread_bound(sd, len(values))
    out.update(sd=sd, sd_bound=bound)
    if bound == 0:
        return {**out, "n": None, "note": "no spread in the pilot: every seed gave the same value"}
    n = paired.seeds_needed(drop, bound, target, alpha)
    return {**out, "n": n, "note": None if n else "more than 100,000 seeds"}


def gate_pass(
    records: Sequence[Mapping[str, Any]],
    gate: Any,
    ns: Iterable[int] = NS,
    samples: int = 200,
    seed: int = 0,
) -> dict[int, float]:
    """n -> the share of `samples` draws of n of `records` (completed or errored
    episodes, with replacement) whose `report.model_metrics` pass `gate`."""
    pool = [r for r in records if r.get("outcome") in COMPLETED or r.get("outcome") == "error"]
    out: dict[int, float] = {}
    if not pool:
        return out
    rng = np.random.default_rng(seed)
    for n in ns:
        passed = 0
        for _ in range(samples):
            picks = rng.integers(0, len(pool), size=n)
            drawn: list[Mapping[str, Any]] = [{**pool[i], "seed": j} for j, i in enumerate(picks)]
            checks = check_gate(gate, model_metrics(drawn))
            passed += all(c["passed"] for c in checks)
        out[n] = passed / samples
    return out


def plan(
    records: Sequence[Mapping[str, Any]],
    runs: Mapping[tuple[str, str], Any],
    *,
    drop: float = 3.0,
    target: float = 0.8,
    metric: str = "progression",
    baseline: Sequence[Mapping[str, Any]] | None = None,
    ns: Iterable[int] = NS,
    samples: int = 200,
) -> dict[str, Any]:
    """The plan of a pilot: {metric, drop, power, evals: {eval: {seeds: [seeds_for_drop +
    base, cand], gates: [{model, gate, pass: {n: share}}]}}}. Per eval: with `baseline`
    (records of an earlier run), each model against its own baseline episodes; else,
    with two models or more, each against the eval's `compare: {baseline: MODEL}` or its
    first model (paired); else each model alone (unpaired). `runs`: (eval, model) ->
    spec.Run, for the gates."""
    from .compare import METRICS, by_seed, latest_by_model

    chosen = METRICS[metric]
    pilot = latest_by_model(records)
    before = latest_by_model(baseline or [])
    out: dict[str, Any] = {"metric": metric, "drop": drop, "power": target, "evals": {}}
    for name in dict.fromkeys(e for e, _ in pilot):
        models = [m for e, m in pilot if e == name]
        listed = {m: getattr(runs.get((name, m)), "line", None) or 0 for m in models}
        models.sort(key=lambda m: listed[m])
        entry: dict[str, Any] = {"seeds": [], "gates": []}
        against = next((getattr(runs.get((name, m)), "compare", None) for m in models), None)
        first = against if against in models else models[0]
        for model in models:
            values = by_seed(pilot[(name, model)], chosen)
            if baseline is not None:
                base_model, base = model, by_seed(before.get((name, model), []), chosen)
            elif len(models) > 1:
                if model == first:
                    continue
                base_model, base = first, by_seed(pilot[(name, first)], chosen)
            else:
                base_model, base = None, None
            if base is None:
                row = seeds_for_drop(list(values.values()), drop, target, paired_=False)
            else:
                keys = sorted(set(base) & set(values))
                row = seeds_for_drop([values[k] - base[k] for k in keys], drop, target)
            entry["seeds"].append({"model": model, "base": base_model, **row})
        for model in models:
            gate = getattr(runs.get((name, model)), "gate", None)
            if gate is None or not check_gate(gate, {}):  # no absolute threshold
                continue
            ns_ = sorted(set(ns) | {r["n"] for r in entry["seeds"] if r.get("n")})
            shares = gate_pass(pilot[(name, model)], gate, ns_, samples)
            entry["gates"].append({"model": model, "pass": shares})
        out["evals"][name] = entry
    return out


def lines(result: Mapping[str, Any]) -> list[str]:
    """The plan as the terminal shows it."""
    from .compare import METRICS

    label = METRICS[result["metric"]].label
    out = []
    for name, entry in result["evals"].items():
        out.append(f"{name}:")
        for row in entry["seeds"]:
            who = row["model"] + (f" vs {row['base']}" if row["base"] else "")
            kind = "paired" if row["paired"] else "unpaired, no second model: spread x sqrt(2)"
            if row["n"] is None:
                out.append(f"  {who} ({kind}, {row['pilot']} pilot seeds): {row['note']}")
                continue
            out.append(
                f"  {who} ({kind}, {row['pilot']} pilot seeds): spread {row['sd']:.2f} (80% "
                f"upper bound {row['sd_bound']:.2f}) -> {row['n']} seeds to detect a drop of "
                f"{result['drop']:g} in {label} with power {result['power']:g} (one-sided "
                "alpha 0.025)"
            )
        for gate in entry["gates"]:
            cells = ", ".join(f"n={n}: {share:.2f}" for n, share in gate["pass"].items())
            out.append(f"  {gate['model']}: its gate passes in {cells} (resampling the pilot)")
    return out
