"""Coverage of the interval methods of `pytest_crafter_eval.report.metrics`, by simulation.

    python benchmarks/coverage.py              # the README's tables (Statistics), ~1 min
                                               # (with benchmarks/sequential.py's at the end)
    python benchmarks/coverage.py --reps 300   # quicker, noisier

Prints markdown tables: for each method, sample size n and setting, the share of
simulated samples whose 95% interval holds the true value (coverage), and how wide the
intervals are. Seeded: the same command prints the same tables. tests/test_metrics_coverage.py
runs the same simulations, smaller, and asserts the claims.

Settings, all from the Crafter paper's own data (tests/data):
  score, `human` / `random`: 22 independent achievements at the success rates of the
      paper's human experts (score 52.0 %) and of its random agent (1.6 %; a weak agent:
      10 achievements never seen, 5 more below 1 %);
  score, `human, resampled`: the paper's 100 human episodes drawn with replacement, so
      achievements keep their real dependence (the true score is theirs);
  score, `human, nested`: the human rates, fully dependent: an episode unlocks every
      achievement whose rate is above its one uniform draw;
  means: achievements per episode of the same episodes, resampled; tool-call rates per
      episode of a model missing the tool call at 1 % or 0.2 % of steps (an episode ends
      at its first miss; 50 steps); an achievement count that is 1 in 10 % of episodes.
  rates: exact coverage (binomial sums, no simulation), the minimum over true rates
      0.001..0.999.
  paired differences (`report.paired`): a weak agent (8 achievements at rates 80 %
      down to 5 %, 14 never: about 11 progression points, score 2.1 %) against itself
      (false alarms) and against a candidate 3 progression points lower (power), on the
      same seeds; `shared` is the share of a seed's achievement draws both sides share
      (the world's difficulty). The paired spread is 7 points unshared, 5.5 at 0.5.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_crafter_eval.report import metrics, paired  # noqa: E402

DATA = ROOT / "tests" / "data"
A = metrics.ACHIEVEMENTS
NS = (10, 30, 100)


def load_hits(name: str) -> np.ndarray:
    """(episodes, 22) booleans: which achievements each episode of a paper's score file
    unlocked."""
    path = DATA / name
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt") as f:
        runs = json.load(f)
    rows = []
    for run in runs:
        count = len(run["length"])
        cols = [run.get(f"achievement_{a}", [0] * count) for a in A]
        rows += [[bool(col[i]) for col in cols] for i in range(count)]
    return np.array(rows, dtype=bool)


def score_of(rates: np.ndarray) -> np.ndarray:
    """Crafter scores (percent) of success rates given as fractions (last axis: 22)."""
    return np.expm1(np.log1p(100.0 * rates).mean(axis=-1))


def score_settings() -> dict[
    str, tuple[Callable[[int, int, np.random.Generator], np.ndarray], float]
]:
    """name -> (draw(n, reps, rng) -> (reps, n, 22) hits, true score)."""
    human = load_hits("crafter_reward-human.json")
    random_agent = load_hits("crafter_noreward-random.json.gz")

    def independent(p):
        return lambda n, reps, rng: rng.random((reps, n, len(A))) < p

    def resampled(data):
        return lambda n, reps, rng: data[rng.integers(0, len(data), size=(reps, n))]

    def nested(p):  # one skill per episode: every achievement rarer than another implies it
        return lambda n, reps, rng: rng.random((reps, n, 1)) < p

    return {
        "human": (independent(human.mean(0)), float(score_of(human.mean(0)))),
        "random": (independent(random_agent.mean(0)), float(score_of(random_agent.mean(0)))),
        "human, resampled": (resampled(human), float(score_of(human.mean(0)))),
        "human, nested": (nested(human.mean(0)), float(score_of(human.mean(0)))),
    }


def score_intervals(method: str, hits: np.ndarray, resamples: int = 1000) -> np.ndarray:
    """(reps, 2) intervals of `metrics.score_interval`'s `method` for each sample."""
    n = hits.shape[1]
    if method in ("bonferroni", "unadjusted"):
        counts = hits.sum(axis=1)
        adjust = method == "bonferroni"
        return np.array([metrics.score_bounds(list(c), n, adjust=adjust) for c in counts])
    out = []
    for sample in hits:
        episodes = [{a: 1 for a, hit in zip(A, row) if hit} for row in sample]
        est = metrics.score_interval(episodes, method=method, resamples=resamples)
        out.append((est.low, est.high))
    return np.array(out, dtype=float)


def coverage(intervals: np.ndarray, truth: float) -> float:
    return float(np.mean((intervals[:, 0] <= truth) & (truth <= intervals[:, 1])))


def tool_call_rates(miss: float, steps: int = 50):
    """draw(shape, rng): per-episode tool-call rates of a model missing the tool call
    with probability `miss` at each step; an episode ends at its first miss."""

    def draw(shape, rng):
        answered = rng.geometric(miss, size=shape) - 1  # steps before the first miss
        return np.where(answered >= steps, 1.0, answered / (answered + 1.0))

    return draw


def mean_settings() -> dict[str, tuple[tuple[float, float], Callable, float]]:
    """name -> (bounds, draw(shape, rng) -> values, true mean)."""
    human = load_hits("crafter_reward-human.json").sum(axis=1).astype(float)
    random_agent = load_hits("crafter_noreward-random.json.gz").sum(axis=1).astype(float)

    def resampled(values):
        return lambda shape, rng: rng.choice(values, size=shape)

    def true_tool_call_rate(miss, steps=50):
        k = np.arange(steps)
        return float(np.sum(miss * (1 - miss) ** k * k / (k + 1)) + (1 - miss) ** steps)

    return {
        "achievements, human": ((0.0, 22.0), resampled(human), float(human.mean())),
        "achievements, random": ((0.0, 22.0), resampled(random_agent), float(random_agent.mean())),
        "achievements, 1 in 10%": (
            (0.0, 22.0),
            lambda shape, rng: (rng.random(shape) < 0.1).astype(float),
            0.1,
        ),
        "tool-call rate, 1% misses": ((0.0, 1.0), tool_call_rates(0.01), true_tool_call_rate(0.01)),
        "tool-call rate, 0.2% misses": (
            (0.0, 1.0),
            tool_call_rates(0.002),
            true_tool_call_rate(0.002),
        ),
    }


def betting_covers(values: np.ndarray, bounds: tuple[float, float], truth: float) -> np.ndarray:
    """(reps,) whether the true mean is in the betting confidence set of each sample
    (neither gambler rejects it): vectorised with the very function `metrics.mean` uses.
    The interval `metrics.mean` reports contains that set, so its coverage is at least
    the share of True here. The values are played as `metrics.bounded_mean_interval`
    plays them: sorted, then in its fixed seeded order."""
    lo, hi = bounds
    values = np.sort(values, axis=-1)[..., metrics.play_order(values.shape[-1])]
    y = (values - lo) / (hi - lo)
    m = (truth - lo) / (hi - lo)
    alpha = 0.025
    threshold = math.log(1 / alpha)
    below = metrics.betting_log_capital(y, np.full(len(y), m), alpha) < threshold
    above = metrics.betting_log_capital(1 - y, np.full(len(y), 1 - m), alpha) < threshold
    return below & above


def t_before(values: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """(reps, 2) the t intervals the report used before: zero width when all values are
    equal, clipped to `bounds`."""
    n = values.shape[1]
    mean = values.mean(axis=1)
    half = metrics.t_quantile(0.975, n - 1) * values.std(axis=1, ddof=1) / math.sqrt(n)
    return np.clip(np.stack([mean - half, mean + half], axis=1), *bounds)


def rate_min_coverage(method: str, n: int) -> float:
    """The smallest exact coverage of a 95% rate interval over true rates 0.001..0.999."""
    est = metrics.clopper_pearson if method == "clopper-pearson" else metrics.wilson
    bounds = np.array([(e.low, e.high) for e in (est(k, n) for k in range(n + 1))])
    k = np.arange(n + 1)
    worst = 1.0
    for p in np.linspace(0.001, 0.999, 999):
        log_pmf = (
            np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k])
            + k * math.log(p)
            + (n - k) * math.log1p(-p)
        )
        covered = (bounds[:, 0] <= p) & (p <= bounds[:, 1])
        worst = min(worst, float(np.exp(log_pmf)[covered].sum()))
    return worst


# A weak agent's success rates: 8 achievements seen, 14 never.
WEAK_RATES = np.array([0.8, 0.5, 0.4, 0.3, 0.2, 0.1, 0.1, 0.05] + [0.0] * 14)
ALPHA = 0.025  # one-sided, as a regression gate's default


def weak_pairs(
    n: int, reps: int, rng: np.random.Generator, drop: float = 0.0, shared: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(base, cand): (reps, n) progressions (percent) of a weak agent and of a candidate
    whose mean is `drop` points lower (every rate scaled down alike), paired by seed.
    `shared`: the share of (seed, achievement) draws the two sides share."""
    k = len(WEAK_RATES)
    ub = rng.random((reps, n, k))
    uc = np.where(rng.random((reps, n, k)) < shared, ub, rng.random((reps, n, k)))
    scale = 1 - drop * k / 100 / WEAK_RATES.sum()
    base = (ub < WEAK_RATES).sum(-1) * 100.0 / k
    cand = (uc < WEAK_RATES * scale).sum(-1) * 100.0 / k
    return base, cand


def signflip_p(d: np.ndarray, delta: float = 0.0, resamples: int = paired.RESAMPLES) -> np.ndarray:
    """(2, reps) the sign-flip p-values `paired.paired_difference` computes (exact up to
    16 pairs, else Monte Carlo with `resamples` signs) of each row of d (reps, n) about
    delta: [0] for "the mean is below delta", [1] "above"."""
    signs, exact = paired.sign_matrix(d.shape[1], resamples)
    chunks = np.array_split(d, max(1, len(d) // 200))
    return np.concatenate([paired.signflip_p(c, delta, signs, exact) for c in chunks], axis=1)


def t_p_worse(d: np.ndarray) -> np.ndarray:
    """(reps,) one-sided paired t p-values for "the mean is below 0"."""
    n = d.shape[1]
    sd = d.std(axis=1, ddof=1)
    t = d.mean(axis=1) / np.where(sd > 0, sd, np.inf) * math.sqrt(n)
    return np.array([metrics.t_cdf(float(x), n - 1) for x in t])


def unpaired_t_p_worse(base: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """(reps,) one-sided t p-values for "cand is below base", the seeds not paired."""
    n = base.shape[1]
    se = np.sqrt((base.var(axis=1, ddof=1) + cand.var(axis=1, ddof=1)) / n)
    t = (cand.mean(axis=1) - base.mean(axis=1)) / np.where(se > 0, se, np.inf)
    return np.array([metrics.t_cdf(float(x), 2 * n - 2) for x in t])


def betting_rejects(d: np.ndarray, span: float = 100.0) -> np.ndarray:
    """(reps,) whether the betting interval of the differences (within [-span, span],
    played as `metrics.bounded_mean_interval` plays them) lies below 0."""
    d = np.sort(d, axis=-1)[..., metrics.play_order(d.shape[-1])]
    y = 1.0 - (d + span) / (2 * span)  # the gambler betting "below 0" bets on -d
    capital = metrics.betting_log_capital(y, np.full(len(d), 0.5), ALPHA)
    return capital >= math.log(1 / ALPHA)


PAIRED_TESTS = {
    "sign-flip, paired (gates)": lambda b, c: signflip_p(c - b)[0] <= ALPHA,
    "t, paired (approximate)": lambda b, c: t_p_worse(c - b) <= ALPHA,
    "t, unpaired (approximate)": lambda b, c: unpaired_t_p_worse(b, c) <= ALPHA,
    "betting interval of the differences": lambda b, c: betting_rejects(c - b),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2000, help="samples per cell")
    parser.add_argument("--boot-reps", type=int, default=500, help="samples per bootstrap cell")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(20261129)

    print("Crafter score (95%): coverage (mean width; mean distance of the lower end below")
    print("the sample's score), in points")
    print()
    settings = score_settings()
    print("| method | setting | " + " | ".join(f"n={n}" for n in NS) + " |")
    print("|---|---|" + "---|" * len(NS))
    for method in ("bonferroni", "unadjusted", "bootstrap"):
        for name, (draw, truth) in settings.items():
            cells = []
            for n in NS:
                reps = args.reps if method != "bootstrap" else args.boot_reps
                hits = draw(n, reps, rng)
                intervals = score_intervals(method, hits)
                width = float(np.mean(intervals[:, 1] - intervals[:, 0]))
                below = float(np.mean(score_of(hits.mean(axis=1)) - intervals[:, 0]))
                cells.append(f"{coverage(intervals, truth):.3f} ({width:.1f}; {below:.1f})")
            print(
                f"| {method} | {name} (S = {truth:.1f}) | " + " | ".join(cells) + " |", flush=True
            )
    print()
    print("Means (95%): coverage, mean width")
    print()
    print("| method | setting | " + " | ".join(f"n={n}" for n in NS) + " |")
    print("|---|---|" + "---|" * len(NS))
    for method in ("betting", "t (before)"):
        for name, (bounds, draw, truth) in mean_settings().items():
            cells = []
            for n in NS:
                values = draw((args.reps, n), rng)
                if method == "betting":
                    ests = [metrics.mean(list(v), bounds=bounds) for v in values[: args.boot_reps]]
                    intervals = np.array([(e.low, e.high) for e in ests])
                    cov = float(np.mean(betting_covers(values, bounds, truth)))
                else:
                    intervals = t_before(values, bounds)
                    cov = coverage(intervals, truth)
                width = float(np.mean(intervals[:, 1] - intervals[:, 0]))
                cells.append(f"{cov:.3f} ({width:.2f})")
            print(f"| {method} | {name} | " + " | ".join(cells) + " |", flush=True)
    print()
    print("Rates (95%): smallest exact coverage over true rates")
    print()
    print("| method | " + " | ".join(f"n={n}" for n in NS) + " |")
    print("|---|" + "---|" * len(NS))
    for method in ("clopper-pearson", "wilson"):
        cells = [f"{rate_min_coverage(method, n):.3f}" for n in NS]
        print(f"| {method} | " + " | ".join(cells) + " |", flush=True)
    print()
    print("Paired differences of progression, weak agent (one-sided alpha 0.025): false alarms")
    print("(no difference) / power (a 3-point drop); `shared`: the share of a seed's draws both")
    print("sides share")
    print()
    print("| test | shared | " + " | ".join(f"n={n}" for n in NS) + " |")
    print("|---|---|" + "---|" * len(NS))
    for name, rejects in PAIRED_TESTS.items():
        for shared in (0.0, 0.5):
            cells = []
            for n in NS:
                same = rejects(*weak_pairs(n, args.reps, rng, 0.0, shared))
                drop = rejects(*weak_pairs(n, args.reps, rng, 3.0, shared))
                cells.append(f"{np.mean(same):.3f} / {np.mean(drop):.2f}")
            print(f"| {name} | {shared:g} | " + " | ".join(cells) + " |", flush=True)
    print()
    print("Sign-flip interval of the difference (95%): coverage of the true -3 points, and how")
    print("often a regression gate with max_drop 3 fails when the true drop is exactly 3")
    print("(alpha 0.025; the differences are skewed here, not symmetric)")
    print()
    print("| shared | " + " | ".join(f"n={n}" for n in NS) + " |")
    print("|---|" + "---|" * len(NS))
    for shared in (0.0, 0.5):
        cells = []
        for n in NS:
            base, cand = weak_pairs(n, args.reps, rng, 3.0, shared)
            p = signflip_p(cand - base, -3.0)
            covered = np.mean((p[0] > ALPHA) & (p[1] > ALPHA))
            cells.append(f"{covered:.3f} / {np.mean(p[0] <= ALPHA):.3f}")
        print(f"| {shared:g} | " + " | ".join(cells) + " |", flush=True)
    print(flush=True)
    _sequential().main(["--reps", str(args.reps)])  # sequential gates, beside the rest
    return 0


def _sequential():
    """benchmarks/sequential.py: false passes of gates re-judged every round of seeds."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "sequential", Path(__file__).with_name("sequential.py")
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    sys.exit(main())
