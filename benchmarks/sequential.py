"""Sequential gates by simulation: how often a gate judged again after every round of
seeds passes wrongly, and how many seeds an easy gate needs.

    python benchmarks/sequential.py              # the README's table (Statistics), ~20 s
    python benchmarks/sequential.py --reps 1000  # quicker, noisier

A gate `progression >= t` (or a success rate >= t) with `on: lower_bound` is judged after
every 10 seeds up to 100. With the true value exactly at the threshold, every pass is
wrong. Compared:

- `sequence`: the confidence sequence sequential gates use
  (`metrics.confidence_sequence`: betting, bets that do not know n);
- `betting, re-checked`: the fixed-n betting interval (`metrics.bounded_mean_interval`)
  computed again at each look, as a plain gate re-run with more seeds would;
- `Clopper-Pearson, re-checked` (rates only): the exact fixed-n interval, re-checked.

Settings: per-episode progression of the Crafter paper's random agent (a weak agent,
true progression 4.1; episodes resampled from tests/data), and Bernoulli successes at
rates 0.5 and 0.1. Also: the mean number of seeds a sequential gate plays before it is
decided when the true value is clearly above the threshold (an easy gate), out of 100.
Seeded: the same command prints the same table. tests/test_sequential.py runs the same
simulations, smaller, and asserts the claims.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_crafter_eval.report import metrics  # noqa: E402

DATA = ROOT / "tests" / "data"
LOOKS = tuple(range(10, 101, 10))
ALPHA = 0.025  # one side of a 95% interval


def random_agent_progression() -> np.ndarray:
    """Per-episode progression (percent of the 22 achievements) of the paper's random agent."""
    with gzip.open(DATA / "crafter_noreward-random.json.gz", "rt") as f:
        runs = json.load(f)
    out = []
    for run in runs:
        count = len(run["length"])
        cols = [run.get(f"achievement_{a}", [0] * count) for a in metrics.ACHIEVEMENTS]
        out += [100.0 * sum(1 for col in cols if col[i]) / len(cols) for i in range(count)]
    return np.array(out)


def settings() -> dict[str, tuple[str, object, float]]:
    """name -> (kind, population or rate, true value)."""
    progression = random_agent_progression()
    return {
        "weak agent, progression": ("mean", progression, float(progression.mean())),
        "success rate 0.5": ("rate", 0.5, 50.0),
        "success rate 0.1": ("rate", 0.1, 10.0),
    }


def draw(kind: str, population, reps: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(reps, n) per-episode values in percent."""
    if kind == "mean":
        return rng.choice(population, size=(reps, n))
    return 100.0 * (rng.random((reps, n)) < population)


def rejected_low(values: np.ndarray, threshold: float, anytime: bool) -> np.ndarray:
    """Per sample: whether the betting interval's lower end clears `threshold` (percent
    values in [0, 100]) after the values given; `anytime`: the confidence sequence."""
    y = values / 100.0
    log_capital = metrics.betting_log_capital(
        y, np.full(y.shape[0], threshold / 100.0), ALPHA, anytime
    )
    return log_capital >= math.log(1.0 / ALPHA)


def clopper_pearson_passes(successes: np.ndarray, n: int, rate: float) -> np.ndarray:
    """Whether the exact lower bound at 1 - ALPHA is at least `rate`: P(X >= k | rate) <= ALPHA."""
    tail = np.zeros(n + 2)
    for k in range(n, -1, -1):
        tail[k] = tail[k + 1] + math.comb(n, k) * rate**k * (1 - rate) ** (n - k)
    return tail[successes] <= ALPHA


def false_passes(kind: str, population, truth: float, reps: int, seed: int = 0) -> dict[str, float]:
    """Share of samples that pass at some look, the true value being the threshold."""
    rng = np.random.default_rng(seed)
    values = draw(kind, population, reps, LOOKS[-1], rng)
    out = {"sequence": float(rejected_low(values, truth, anytime=True).mean())}
    passed = np.zeros(reps, dtype=bool)
    for n in LOOKS:
        passed |= rejected_low(values[:, :n], truth, anytime=False)
    out["betting, re-checked"] = float(passed.mean())
    if kind == "rate":
        passed = np.zeros(reps, dtype=bool)
        hits = (values > 0).cumsum(axis=1)
        for n in LOOKS:
            passed |= clopper_pearson_passes(hits[:, n - 1], n, float(population))
        out["Clopper-Pearson, re-checked"] = float(passed.mean())
    return out


def seeds_to_decide(values: np.ndarray, threshold: float) -> float:
    """Mean seeds played by a sequential gate `>= threshold` (rounds of 10, up to 100)."""
    played = np.full(values.shape[0], LOOKS[-1], dtype=float)
    open_ = np.ones(values.shape[0], dtype=bool)
    for n in LOOKS:
        sub = values[open_, :n] / 100.0
        m_low = np.full(sub.shape[0], threshold / 100.0)
        passed = metrics.betting_log_capital(sub, m_low, ALPHA, True) >= math.log(1 / ALPHA)
        failed = metrics.betting_log_capital(1.0 - sub, 1.0 - m_low, ALPHA, True) >= math.log(
            1 / ALPHA
        )
        done = passed | failed
        idx = np.flatnonzero(open_)[done]
        played[idx] = n
        open_[idx] = False
    return float(played.mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=4000)
    args = parser.parse_args(argv)
    print("Sequential gates: passes wrongly (true value at the threshold), judged every 10")
    print(f"seeds up to 100, {args.reps} samples each")
    print()
    print(
        "| setting | "
        + " | ".join(["sequence", "betting, re-checked", "Clopper-Pearson, re-checked"])
        + " |"
    )
    print("|---|---|---|---|")
    for name, (kind, population, truth) in settings().items():
        shares = false_passes(kind, population, truth, args.reps)
        cells = [
            shares.get(k)
            for k in ("sequence", "betting, re-checked", "Clopper-Pearson, re-checked")
        ]
        print(f"| {name} | " + " | ".join("-" if c is None else f"{c:.3f}" for c in cells) + " |")
    print()
    rng = np.random.default_rng(1)
    print("Seeds a sequential gate plays before it is decided (of 100, rounds of 10)")
    print()
    print("| true success rate | threshold | mean seeds played |")
    print("|---|---|---|")
    for rate, threshold in ((0.9, 50.0), (0.7, 50.0), (0.55, 50.0)):
        values = draw("rate", rate, min(args.reps, 1000), LOOKS[-1], rng)
        print(f"| {rate:.2f} | {threshold / 100:.2f} | {seeds_to_decide(values, threshold):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
