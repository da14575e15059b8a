"""Stage: report (sequential gates). A gate judged again after every round of seeds,
decided as soon as the data settle it: `gate: {sequential: true}` or `--until-decided`.

Every threshold of the gate is held against a confidence sequence of its metric
(`metrics.confidence_sequence`, `metrics.score_sequence`): an interval valid at every
number of episodes at once, so looking after each round and stopping early keeps the
gate's error rates (a gate whose true value sits exactly at its threshold passes wrongly
at most (1 - confidence) / 2 of the time, however often it is judged; the README's
Statistics section has the simulation). A threshold is

- passed when the whole sequence clears it (its lower end for "at least", the upper end
  for "at most"),
- failed when the whole sequence misses it,
- undecided otherwise.

The gate is decided once one threshold failed or all passed. `judge(gate, records)` is
pure: records (plain dicts, as in results.jsonl) of one model, in seed order, in; the
verdict and one row per threshold out (the rows of `summary.check_gate`, with the
sequence's ends as `low` and `high`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import spec
from . import metrics
from .results import COMPLETED

__all__ = ["Verdict", "judge", "prefix"]

METHOD = "betting confidence sequence (valid at every n)"


@dataclass(frozen=True)
class Verdict:
    """`status`: passed, failed or undecided; `episodes`: how many episodes it rests on;
    `checks`: one row per threshold."""

    status: str
    episodes: int
    checks: tuple[dict[str, Any], ...]

    @property
    def decided(self) -> bool:
        return self.status != "undecided"

    def reason(self) -> str:
        """`decided after 20 seeds: gate passed (progression >= 5: sequence [6.1, 9.8])`."""
        decisive = [c for c in self.checks if c["decision"] == self.status] or list(self.checks)
        what = "; ".join(
            f"{c['metric']} {c['op']} {c['threshold']:g}: sequence "
            f"[{_fmt(c['low'])}, {_fmt(c['high'])}]"
            for c in decisive[:3]
        )
        return f"decided after {self.episodes} seeds: gate {self.status} ({what})"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def prefix(records_by_seed: Mapping[int, Mapping[str, Any]], seeds: Sequence[int], size: int):
    """The records of the longest run of whole rounds of `size` seeds, in seed-list order,
    that all have a record: what a sequential gate may be judged on. Episodes are taken
    in the order of the seed list, not the order they finished in (which can depend on
    how they went: short episodes end first), so that the sequence sees an unbiased
    stream. Returns the records, or [] before the first round is complete."""
    if size < 1:
        raise ValueError(f"round size must be at least 1, got {size}")
    done = 0
    while done < len(seeds) and seeds[done] in records_by_seed:
        done += 1
    whole = done if done == len(seeds) else (done // size) * size
    return [records_by_seed[seed] for seed in seeds[:whole]]


def judge(gate: Any, records: Sequence[Mapping[str, Any]], confidence: float = 0.95) -> Verdict:
    """The sequential verdict of `gate` (a `spec.Gate`) on `records` (one model's, in seed
    order; skipped ones are ignored, errors count only towards the error rate)."""
    done = [r for r in records if r.get("outcome") in COMPLETED]
    ran = [r for r in records if r.get("outcome") in COMPLETED or r.get("outcome") == "error"]
    items = [
        (key, getattr(gate, key)) for key in spec.GATE_METRICS if getattr(gate, key) is not None
    ]
    items += [(f"success_rate.{name}", percent) for name, percent in gate.success_rate]
    checks = []
    for key, threshold in items:
        metric, op = spec.GATE_METRICS.get(key, (key, ">="))
        low, high, value = _sequence(key, done, ran, confidence)
        decision = "undecided"
        if low is not None and high is not None:
            if op == ">=":
                decision = (
                    "passed" if low >= threshold else "failed" if high < threshold else decision
                )
            else:
                decision = (
                    "passed" if high <= threshold else "failed" if low > threshold else decision
                )
        compared = None if low is None else (low if op == ">=" else high)
        checks.append(
            {
                "metric": metric,
                "op": op,
                "threshold": threshold,
                "on": "sequential",
                "value": value,
                "low": low,
                "high": high,
                "compared": compared,
                "passed": decision == "passed",
                "decision": decision,
                "method": METHOD,
                "note": None if done or key == "max_error_rate" else "no completed episodes",
            }
        )
    if any(c["decision"] == "failed" for c in checks):
        status = "failed"
    elif checks and all(c["decision"] == "passed" for c in checks):
        status = "passed"
    else:
        status = "undecided"
    return Verdict(status, len(ran), tuple(checks))


def _sequence(
    key: str,
    done: Sequence[Mapping[str, Any]],
    ran: Sequence[Mapping[str, Any]],
    confidence: float,
) -> tuple[float | None, float | None, float | None]:
    """(low, high, mean) of the metric behind gate key `key`; Nones without data."""
    if key == "max_error_rate":
        values = [1.0 if r.get("outcome") == "error" else 0.0 for r in ran]
        return _interval(values, (0.0, 1.0), confidence)
    if not done:
        return None, None, None
    unlocked = [r.get("achievements") or {} for r in done]
    n_achievements = len(metrics.ACHIEVEMENTS)
    if key == "crafter_score":
        low, high = metrics.score_sequence(unlocked, confidence)
        return low, high, metrics.crafter_score(metrics.success_rates(unlocked))
    if key.startswith("success_rate."):
        name = key.split(".", 1)[1]
        values = [100.0 if a.get(name) else 0.0 for a in unlocked]
        return _interval(values, (0.0, 100.0), confidence)
    counts = [float(sum(1 for c in a.values() if c)) for a in unlocked]
    if key == "mean_achievements":
        return _interval(counts, (0.0, float(n_achievements)), confidence)
    if key == "progression":
        return _interval([100.0 * c / n_achievements for c in counts], (0.0, 100.0), confidence)
    if key == "mean_reward":
        values = [float(r.get("reward") or 0.0) for r in done]
        return _interval(values, metrics.REWARD_RANGE, confidence)
    if key == "min_tool_call_rate":
        rates = [int(r.get("tool_calls") or 0) / int(r["steps"]) for r in done if r.get("steps")]
        return _interval(rates, (0.0, 1.0), confidence)
    raise KeyError(key)


def _interval(
    values: Sequence[float], bounds: tuple[float, float], confidence: float
) -> tuple[float | None, float | None, float | None]:
    if not values:
        return None, None, None
    low, high = metrics.confidence_sequence(values, bounds, confidence)
    return low, high, sum(values) / len(values)
