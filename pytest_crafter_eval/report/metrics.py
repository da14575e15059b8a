"""Stage: report (metrics). Pure statistics over episodes: success rates, the Crafter score, intervals.

Public and stable: `success_rates`, `crafter_score`, `progression`,
`progression_percents`, `balrog_standard_error`, `ACHIEVEMENTS`,
`REWARD_RANGE`, `Estimate`, `mean`, `clopper_pearson`, `wilson`, `score_interval`,
`percentile`. No I/O, no pytest, no crafter import.

The Crafter score follows the Crafter paper (Hafner, 2021): the success rate s_i of an
achievement is the percentage of episodes that unlocked it at least once, and

    S = exp(mean_i ln(1 + s_i)) - 1        over all 22 achievements, in percent.

The paper reports the mean and standard deviation of per-seed scores: its human experts
score 50.5 +- 6.8 %, its random agent 1.6 +- 0.0 % (tests/test_metrics.py reproduces both
from the paper's own data). BALROG's progression is the mean over episodes of the percent
of the 22 achievements each unlocked.

Intervals are two-sided, 95% by default, and deterministic. Those that gates use have
coverage >= their confidence for every distribution (measured by simulation in
tests/test_metrics_coverage.py and benchmarks/coverage.py): the Crafter score a
Bonferroni box of exact per-achievement intervals (`score_interval`), rates an exact
Clopper-Pearson interval, means of bounded values (achievements, progression, reward,
tool-call rate per episode) a betting interval within their bounds
(`bounded_mean_interval`).
No interval has zero width. The score's bootstrap (`method="bootstrap"`) and Wilson
intervals stay available; both are approximate.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from ..config.game import ACHIEVEMENTS

_KNOWN = frozenset(ACHIEVEMENTS)

# The range of an episode's Crafter reward: +1 on each step that unlocks achievements
# (at most 22 such steps) plus the change in health / 10 at every step, which sums to
# (final health - 9) / 10 since health starts at its maximum 9 and never drops below 0.
REWARD_RANGE: tuple[float, float] = (-0.9, 22.0)


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
    within [0, 100] (a betting interval, `bounded_mean_interval`). `episodes` as for
    `success_rates`. Raises ValueError for no episodes or an unknown achievement name."""
    percents = progression_percents(episodes)
    if not percents:
        raise ValueError("the progression of no episodes is undefined")
    return mean(percents, confidence, bounds=(0.0, 100.0))


def progression_percents(episodes: Iterable[Mapping[str, int]]) -> list[float]:
    """Each episode's progression: the percent of the 22 achievements it unlocked."""
    percents = []
    for episode in episodes:
        unknown = set(episode) - _KNOWN
        if unknown:
            raise ValueError(f"unknown achievement {min(unknown)!r}")
        unlocked = sum(1 for count in episode.values() if count and count > 0)
        percents.append(100.0 * unlocked / len(ACHIEVEMENTS))
    return percents


def balrog_standard_error(values: Sequence[float]) -> float:
    """The standard error BALROG reports beside a mean (balrog/utils.py,
    `collect_and_summarize_results`): the population standard deviation (divided by n)
    over sqrt(n); 0 for fewer than 2 values. Not an interval: mean +- 2 SE covers the
    true mean only approximately, and not at all for few episodes; the gates use
    `progression`'s interval."""
    n = len(values)
    if n <= 1:
        return 0.0
    center = sum(values) / n
    return math.sqrt(sum((v - center) ** 2 for v in values) / n) / math.sqrt(n)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval. `low`/`high` are None when the data cannot
    bound it (an unbounded mean of equal values, or of one episode; the score's bootstrap
    of one episode); `n` is the sample size behind it."""

    value: float
    low: float | None
    high: float | None
    n: int
    method: str  # "t", "all-equal", "wilson", "clopper-pearson", "bonferroni" or "bootstrap"

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


def mean(
    values: Sequence[float],
    confidence: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> Estimate:
    """The mean of `values` with a two-sided interval. Raises ValueError when empty.

    With `bounds` (the lowest and highest value possible), `bounded_mean_interval`: valid
    for every distribution within them, never of zero width, always within them
    (method "betting"). Without, a Student t interval (method "t"); when all values are
    equal (one value included) the data cannot bound the mean: None bounds (method
    "all-equal"), never a zero-width interval.
    """
    n = len(values)
    if n == 0:
        raise ValueError("the mean of no values is undefined")
    m = math.fsum(values) / n
    if bounds is not None:
        low, high = bounded_mean_interval(values, bounds, confidence)
        return Estimate(m, min(low, m), max(high, m), n, "betting")
    if min(values) == max(values):
        return Estimate(m, None, None, n, "all-equal")
    sd = math.sqrt(math.fsum((v - m) ** 2 for v in values) / (n - 1))
    half = t_quantile((1 + confidence) / 2, n - 1) * sd / math.sqrt(n)
    return Estimate(m, m - half, m + half, n, "t")


# The betting interval's cap on a bet: each factor 1 + lambda (y - m) stays >= 1 - _BET_CAP.
_BET_CAP = 0.75
_GRID = 101


def bounded_mean_interval(
    values: Sequence[float], bounds: tuple[float, float], confidence: float = 0.95
) -> tuple[float, float]:
    """A two-sided interval for the mean of values known to lie within `bounds`, valid
    (coverage >= `confidence`) for every distribution within them: a betting interval
    (Waudby-Smith and Ramdas, "Estimating means of bounded random variables by
    betting", JRSS B 2023), each side at (1 - confidence) / 2.

    For a candidate mean m, a gambler bets on the values, scaled to [0, 1], one after
    another, each bet sized from the values before it only. If the mean is m, the
    gambler's capital is a nonnegative martingale, and by Ville's inequality it ever
    reaches 2 / (1 - confidence) with probability at most (1 - confidence) / 2. The
    interval holds the m at which neither the gambler betting on "above m" nor the one
    betting on "below m" gets there. Equal values still give an interval of nonzero
    width.

    The result depends on the values only, not on their order: they are played sorted,
    then in one fixed seeded shuffle (`play_order`). Independent values in a uniformly
    random order are distributed as the values themselves, so the guarantee is the
    same; the shuffle is fixed so that the same values always give the same interval.

    Raises ValueError for no values, bounds that are not (lowest, highest) with lowest
    < highest, or a value outside them (beyond float rounding, 1e-9 of their span,
    which is clipped).
    """
    import numpy as np

    x, lowest, span = _unit(values, bounds)
    y = np.sort(x)[play_order(len(x))]
    alpha = (1.0 - confidence) / 2
    low = _betting_lower(y, alpha)
    high = 1.0 - _betting_lower(1.0 - y, alpha)
    return lowest + low * span, lowest + high * span


def _unit(values: Sequence[float], bounds: tuple[float, float]) -> tuple[Any, float, float]:
    """(values scaled to [0, 1] as an array, in the order given; lowest; span), or
    ValueError for no values, bounds not (lowest, highest) with lowest < highest, or a
    value outside them (beyond float rounding, 1e-9 of their span, which is clipped)."""
    import numpy as np

    lowest, highest = float(bounds[0]), float(bounds[1])
    if not lowest < highest:
        raise ValueError(
            f"bounds must be (lowest, highest) with lowest < highest, got ({bounds[0]}, "
            f"{bounds[1]})"
        )
    if len(values) == 0:
        raise ValueError("the mean of no values is undefined")
    span = highest - lowest
    x = np.asarray(values, dtype=float)
    slack = 1e-9 * span
    outside = x[(x < lowest - slack) | (x > highest + slack) | np.isnan(x)]
    if len(outside):
        raise ValueError(
            f"value {float(outside[0])!r} is outside the bounds [{lowest:g}, {highest:g}]"
        )
    return np.clip((x - lowest) / span, 0.0, 1.0), lowest, span


@functools.lru_cache(maxsize=256)
def play_order(n: int) -> Any:
    """The fixed seeded order in which `bounded_mean_interval` plays n sorted values."""
    import numpy as np

    order = np.random.default_rng(n).permutation(n)
    order.setflags(write=False)
    return order


def betting_log_capital(y: Any, m: Any, alpha: float, anytime: bool = False) -> Any:
    """The largest log capital, over the plays, of the gambler betting that the mean of
    `y` (values in [0, 1]; last axis: the values in play order) is above `m` (an array
    broadcast against y's leading axes, values in [0, 1]). m is rejected as too low
    when it reaches ln(1 / alpha). Nonincreasing in m.

    `anytime`: bets sized without the number of plays (lambda_t = sqrt(2 ln(1/alpha) /
    (t ln(1 + t) var)), Waudby-Smith and Ramdas' predictable plug-in for confidence
    sequences), so that the capital stays a test martingale whenever the plays stop: the
    rejection is valid at every n at once, under optional stopping. Without it the bets
    are tuned for exactly n plays (tighter at that n, invalid if n was chosen by looking).
    """
    import numpy as np

    y = np.asarray(y, dtype=float)
    m = np.asarray(m, dtype=float)[..., None]
    n = y.shape[-1]
    # Bet sizes from the values before each play (a prior of one value at 1/2), tuned
    # for n plays: lambda = sqrt(2 ln(1/alpha) / (n var)).
    seen = np.arange(1, n + 1)
    centre = (0.5 + np.cumsum(y, axis=-1)) / (seen + 1)  # after each play
    squares = np.cumsum((y - centre) ** 2, axis=-1)
    zero = np.zeros(y.shape[:-1] + (1,))
    var = (0.25 + np.concatenate([zero, squares[..., :-1]], axis=-1)) / seen  # before
    scale = seen * np.log1p(seen) if anytime else n
    lam = np.sqrt(2.0 * math.log(1.0 / alpha) / (scale * var))
    cap = _BET_CAP / np.maximum(m, 1e-12)
    factor = 1.0 + np.minimum(lam, cap) * (y - m)
    return np.max(np.cumsum(np.log(factor), axis=-1), axis=-1)


def _betting_lower(y: Any, alpha: float, anytime: bool = False) -> float:
    """The lower end of the betting interval of `y` (values in [0, 1]): the highest
    rejected m, found on a grid refined three times (to 1e-6 of the range)."""
    import numpy as np

    threshold = math.log(1.0 / alpha)
    lo, hi = 0.0, 1.0
    for _ in range(3):
        grid = np.linspace(lo, hi, _GRID)
        rejected = betting_log_capital(y, grid, alpha, anytime) >= threshold
        if not rejected[0]:
            return lo
        j = int(np.argmin(rejected))  # the first m not rejected (m = 1 never is)
        lo, hi = float(grid[j - 1]), float(grid[j])
    return lo


def confidence_sequence(
    values: Sequence[float], bounds: tuple[float, float], confidence: float = 0.95
) -> tuple[float, float]:
    """A confidence sequence for the mean of values within `bounds`, taken in the order
    given (seed order): the interval after the last value, valid (coverage >=
    `confidence`) at every number of values at once, so that a gate may be judged again
    after every round of seeds and stop as soon as it is decided (optional stopping).

    The betting interval of `bounded_mean_interval` with bets that do not depend on how
    many values there will be (`betting_log_capital(anytime=True)`); Ville's inequality
    holds the capital below 2 / (1 - confidence) on each side over all n. The interval
    is the running intersection: it only shrinks as values come. Wider than
    `bounded_mean_interval` at a planned n: the price of looking as often as one likes.
    Raises ValueError as `bounded_mean_interval` does.
    """
    y, lowest, span = _unit(values, bounds)  # in the order given: a sequence is a stream
    alpha = (1.0 - confidence) / 2
    low = _betting_lower(y, alpha, anytime=True)
    high = 1.0 - _betting_lower(1.0 - y, alpha, anytime=True)
    return lowest + low * span, lowest + high * span


def score_sequence(
    unlocked: Sequence[Mapping[str, int]], confidence: float = 0.95
) -> tuple[float, float]:
    """The Crafter score's confidence sequence (percent): a Bonferroni box of the 22
    success rates' confidence sequences (each at 1 - (1 - confidence) / 22), pushed
    through the score, which rises with every rate; valid at every n at once under any
    dependence between achievements. Episodes in the order given (seed order)."""
    each = 1.0 - (1.0 - confidence) / len(ACHIEVEMENTS)
    bounds = [
        confidence_sequence([1.0 if e.get(name) else 0.0 for e in unlocked], (0.0, 1.0), each)
        for name in ACHIEVEMENTS
    ]
    low = math.expm1(math.fsum(math.log1p(100.0 * lo) for lo, _ in bounds) / len(bounds))
    high = math.expm1(math.fsum(math.log1p(100.0 * hi) for _, hi in bounds) / len(bounds))
    return low, high


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


SCORE_METHODS: tuple[str, ...] = ("bonferroni", "unadjusted", "bootstrap")


def score_interval(
    episodes: Sequence[Mapping[str, int]],
    confidence: float = 0.95,
    method: str = "bonferroni",
    resamples: int = 2000,
    seed: int = 0,
) -> Estimate:
    """The Crafter score of `episodes` (percent) with a two-sided interval.

    method "bonferroni" (the default, and what gates use): a Clopper-Pearson interval
    for each achievement's success rate at confidence 1 - (1 - confidence) / 22
    (a Bonferroni split), so all 22 hold at once with probability >= `confidence`
    whatever the dependence between achievements; the score increases with every rate,
    so the score of all lower ends and the score of all upper ends bound it. Guaranteed
    conservative; tests/test_metrics_coverage.py measures its coverage.

    method "bootstrap": a seeded percentile bootstrap over episodes (`resamples`,
    `seed`). Approximate, and far below its nominal coverage with few episodes (the
    score is biased low when rare achievements go unseen): for display, never for gates.

    method "unadjusted": the same box from each achievement's own interval at
    `confidence` (no split). Narrower; its coverage is measured (>= 0.99 in every
    simulated setting, with independent, real or fully dependent achievements) but not
    guaranteed.

    One episode gives no bootstrap interval (None bounds); the other methods bound any n.
    """
    if method not in SCORE_METHODS:
        raise ValueError(
            f"unknown score interval method {method!r}; expected one of {SCORE_METHODS}"
        )
    rates = success_rates(episodes)
    value = crafter_score(rates)
    n = len(episodes)
    if method in ("bonferroni", "unadjusted"):
        counts = [round(rates[name] * n / 100.0) for name in ACHIEVEMENTS]
        low, high = score_bounds(counts, n, confidence, adjust=method == "bonferroni")
        return Estimate(value, min(low, value), max(high, value), n, method)
    import numpy as np

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


def score_bounds(
    counts: Sequence[int], n: int, confidence: float = 0.95, adjust: bool = True
) -> tuple[float, float]:
    """The score interval (percent) of `score_interval`'s "bonferroni" method (or with
    `adjust=False`, "unadjusted") from the number of episodes, out of `n`, that unlocked
    each of the 22 achievements (in `ACHIEVEMENTS` order)."""
    if len(counts) != len(ACHIEVEMENTS):
        raise ValueError(f"expected {len(ACHIEVEMENTS)} counts, got {len(counts)}")
    alpha = (1 - confidence) / 2  # per side
    if adjust:
        alpha /= len(ACHIEVEMENTS)
    bounds = [clopper_pearson_bounds(int(k), n, alpha, alpha) for k in counts]
    low = math.expm1(math.fsum(math.log1p(100.0 * lo) for lo, _ in bounds) / len(bounds))
    high = math.expm1(math.fsum(math.log1p(100.0 * hi) for _, hi in bounds) / len(bounds))
    return low, high


def clopper_pearson(successes: int, n: int, confidence: float = 0.95) -> Estimate:
    """A rate `successes / n` (a fraction) with its exact (Clopper-Pearson) interval:
    each end misses with probability at most (1 - confidence) / 2 for every true rate."""
    alpha = (1 - confidence) / 2
    low, high = clopper_pearson_bounds(successes, n, alpha, alpha)
    return Estimate(successes / n, low, high, n, "clopper-pearson")


@functools.lru_cache(maxsize=4096)
def clopper_pearson_bounds(
    k: int, n: int, alpha_low: float, alpha_high: float
) -> tuple[float, float]:
    """The exact binomial bounds (fractions) of a rate from `k` successes in `n` trials:
    the lower one misses with probability at most `alpha_low`, the upper `alpha_high`.
    They are quantiles of Beta distributions: Beta(k, n-k+1) at alpha_low and
    Beta(k+1, n-k) at 1 - alpha_high; 0 for k = 0 and 1 for k = n."""
    if n <= 0:
        raise ValueError("a rate over no trials is undefined")
    if not 0 <= k <= n:
        raise ValueError(f"successes must be from 0 to {n}, got {k}")
    low = 0.0 if k == 0 else _beta_quantile(alpha_low, k, n - k + 1)
    high = 1.0 if k == n else _beta_quantile(1.0 - alpha_high, k + 1, n - k)
    return low, high


def _beta_quantile(q: float, a: float, b: float) -> float:
    """x with I_x(a, b) = q (I is increasing in x)."""
    return _solve_increasing(lambda x: _betainc(a, b, x), q, 0.0, 1.0, 1e-13)


def _solve_increasing(
    f: Callable[[float], float], target: float, lo: float, hi: float, tol: float
) -> float:
    """x in [lo, hi] with f(x) = target, by bisection, for f increasing in x."""
    for _ in range(200):
        mid = (lo + hi) / 2
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < tol:
            break
    return (lo + hi) / 2


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction
    (evaluated where it converges fast, with the symmetry I_x(a, b) = 1 - I_1-x(b, a))."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz method)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 1000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return result


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


@functools.lru_cache(maxsize=1024)
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
    hi = 1.0
    while _t_central(hi, df) < target:
        hi *= 2
    return _solve_increasing(lambda t: _t_central(t, df), target, 0.0, hi, 1e-12)


def t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with whole `df` degrees of freedom."""
    central = _t_central(abs(t), df)
    return 0.5 + central / 2 if t >= 0 else 0.5 - central / 2


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
