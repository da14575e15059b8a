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
