"""Stage: metrics. Pure statistics over episodes: success rates, the Crafter score, intervals.

Public and stable: `success_rates`, `crafter_score`, `progression`, `ACHIEVEMENTS`,
`Estimate`, `mean`, `wilson`, `score_interval`, `percentile`. No I/O, no pytest, no crafter import.

The Crafter score follows the Crafter paper (Hafner, 2021): the success rate s_i of an
achievement is the percentage of episodes that unlocked it at least once, and

    S = exp(mean_i ln(1 + s_i)) - 1        over all 22 achievements, in percent.

The paper reports the mean and standard deviation of per-seed scores: its human experts
score 50.5 +- 6.8 %, its random agent 1.6 +- 0.0 % (tests/test_metrics.py reproduces both
from the paper's own data). BALROG's progression is the mean over episodes of the percent
of the 22 achievements each unlocked.

Intervals are two-sided 95% by default: a Student t interval for means, a Wilson score
interval for rates, and a seeded percentile bootstrap over episodes for the Crafter score
(deterministic: the same episodes always give the same interval).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

# The 22 achievements of Crafter 1.8, in crafter.constants order.
ACHIEVEMENTS: tuple[str, ...] = (
    "collect_coal",
    "collect_diamond",
    "collect_drink",
    "collect_iron",
    "collect_sapling",
    "collect_stone",
    "collect_wood",
    "defeat_skeleton",
    "defeat_zombie",
    "eat_cow",
    "eat_plant",
    "make_iron_pickaxe",
    "make_iron_sword",
    "make_stone_pickaxe",
    "make_stone_sword",
    "make_wood_pickaxe",
    "make_wood_sword",
    "place_furnace",
    "place_plant",
    "place_stone",
    "place_table",
    "wake_up",
)
_KNOWN = frozenset(ACHIEVEMENTS)


def success_rates(episodes: Iterable[Mapping[str, int]]) -> dict[str, float]:
    """Per-achievement success rates, in percent, over all 22 achievements.

    `episodes` is an iterable of mappings from achievement name to how often it was done
    in that episode, as in Crafter's `info['achievements']` (names without the
    `achievement_` prefix). Missing names count as 0. The rate of an achievement is the
    percentage of episodes in which its count is at least 1.

    Raises ValueError for no episodes or an unknown achievement name.
    """
    unlocked = dict.fromkeys(ACHIEVEMENTS, 0)
    n = 0
    for episode in episodes:
        n += 1
        for name, count in episode.items():
            if name not in _KNOWN:
                raise ValueError(f"unknown achievement {name!r}")
            if count and count > 0:
                unlocked[name] += 1
    if n == 0:
        raise ValueError("success rates of no episodes are undefined")
    return {name: 100.0 * hits / n for name, hits in unlocked.items()}


def crafter_score(rates: Mapping[str, float]) -> float:
    """The Crafter score, in percent, from success rates in percent.

    S = exp(mean_i ln(1 + s_i)) - 1 over all 22 achievements; an achievement missing
    from `rates` counts as 0 %. Raises ValueError for unknown names or rates outside
    0..100.
    """
    total = 0.0
    for name, rate in rates.items():
        if name not in _KNOWN:
            raise ValueError(f"unknown achievement {name!r}")
        if not 0.0 <= rate <= 100.0:
            raise ValueError(f"success rate of {name} must be from 0 to 100, got {rate}")
        total += math.log1p(rate)
    return math.expm1(total / len(ACHIEVEMENTS))


def progression(episodes: Iterable[Mapping[str, int]], confidence: float = 0.95) -> Estimate:
    """BALROG's Crafter progression: the percent of the 22 achievements an episode
    unlocked (count at least 1), averaged over episodes, with the mean's interval kept
    within [0, 100]. `episodes` as for `success_rates`. Raises ValueError for no episodes
    or an unknown achievement name."""
    percents = []
    for episode in episodes:
        unknown = set(episode) - _KNOWN
        if unknown:
            raise ValueError(f"unknown achievement {min(unknown)!r}")
        unlocked = sum(1 for count in episode.values() if count and count > 0)
        percents.append(100.0 * unlocked / len(ACHIEVEMENTS))
    if not percents:
        raise ValueError("the progression of no episodes is undefined")
    return mean(percents, confidence).clipped(0.0, 100.0)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval. `low`/`high` are None when the data cannot
    bound it (a mean of one episode); `n` is the sample size behind it."""

    value: float
    low: float | None
    high: float | None
    n: int
    method: str  # "t", "wilson", "bootstrap", or "exact" (no spread: all values equal)

    def scaled(self, factor: float) -> Estimate:
        """The same estimate in other units (for example fractions -> percent)."""

        def s(x):
            return None if x is None else x * factor

        return Estimate(self.value * factor, s(self.low), s(self.high), self.n, self.method)

    def clipped(self, lowest: float, highest: float) -> Estimate:
        """The same estimate with its interval kept within [lowest, highest] (a t interval
        of a mean of fractions can reach past 0 or 1)."""

        def c(x):
            return None if x is None else min(highest, max(lowest, x))

        return Estimate(self.value, c(self.low), c(self.high), self.n, self.method)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "method": self.method,
        }


def mean(values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """The mean of `values` with a Student t interval. Raises ValueError when empty."""
    n = len(values)
    if n == 0:
        raise ValueError("the mean of no values is undefined")
    m = math.fsum(values) / n
    if n == 1:
        return Estimate(m, None, None, 1, "t")
    sd = math.sqrt(math.fsum((v - m) ** 2 for v in values) / (n - 1))
    if sd == 0.0:
        return Estimate(m, m, m, n, "exact")
    half = t_quantile((1 + confidence) / 2, n - 1) * sd / math.sqrt(n)
    return Estimate(m, m - half, m + half, n, "t")


def wilson(successes: int, n: int, confidence: float = 0.95) -> Estimate:
    """A rate `successes / n` (a fraction) with its Wilson score interval."""
    if n <= 0:
        raise ValueError("a rate over no trials is undefined")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be from 0 to {n}, got {successes}")
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Estimate(p, low, high, n, "wilson")


def score_interval(
    episodes: Sequence[Mapping[str, int]],
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Estimate:
    """The Crafter score of `episodes` with a percentile bootstrap interval over episodes.

    Seeded, so the same episodes always give the same interval. One episode gives no
    interval (None bounds)."""
    import numpy as np

    rates = success_rates(episodes)
    value = crafter_score(rates)
    n = len(episodes)
    if n == 1:
        return Estimate(value, None, None, 1, "bootstrap")
    hits = np.array([[1.0 if ep.get(name, 0) else 0.0 for name in ACHIEVEMENTS] for ep in episodes])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(resamples, n))
    sampled = hits[picks].mean(axis=1) * 100.0  # resamples x 22 rates
    scores = np.expm1(np.log1p(sampled).mean(axis=1))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(scores, [alpha, 1 - alpha])
    return Estimate(value, min(float(low), value), max(float(high), value), n, "bootstrap")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between order statistics
    (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def t_quantile(p: float, df: int) -> float:
    """The p-quantile (p > 0.5) of Student's t distribution with `df` degrees of freedom.

    Exact (bisection on the closed-form CDF for whole df) up to df 200, then the
    Cornish-Fisher expansion, whose error there is below 1e-6."""
    if not 0.5 < p < 1:
        raise ValueError(f"p must be in (0.5, 1), got {p}")
    if df < 1:
        raise ValueError(f"df must be at least 1, got {df}")
    target = 2 * p - 1  # P(|T| < t)
    if df > 200:
        z = NormalDist().inv_cdf(p)
        g1 = (z**3 + z) / 4
        g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
        g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
        g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
        return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4
    lo, hi = 0.0, 1.0
    while _t_central(hi, df) < target:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if _t_central(mid, df) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return (lo + hi) / 2


def _t_central(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with whole `df`, by the classic finite series."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    s = math.sin(theta)
    if df % 2 == 1:
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 1) // 2):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        return 2 / math.pi * (theta + (s * math.cos(theta) * total if df > 1 else 0.0))
    term, total = 1.0, 1.0
    for k in range(1, df // 2):
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return s * total
