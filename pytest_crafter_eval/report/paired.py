"""Stage: report (paired). Pure statistics of two sides matched by seed: differences of
means, of success rates and of the Crafter score, the power of a paired test and the
seeds it needs.

Public and stable: `paired_difference`, `Difference`, `signflip_p`, `mcnemar`,
`score_difference`, `power`, `seeds_needed`. No I/O, no pytest, no crafter import.

Seed k is the same Crafter world for every model and every run, so a candidate and a
base played on the same seeds differ by the model, not by the worlds: the differences
per seed `d_k = cand_k - base_k` carry no world-to-world variance.

`paired_difference` tests them with the sign-flip (randomisation) test: if the two sides
are exchangeable on each seed (no difference between them), each d_k is as likely to be
-d_k, so the observed sum is one of 2^n equally likely sums of +-d_k. The p-value is
exact, whatever the distribution of the values, by enumeration of all 2^n signs up to
`EXACT_MAX_N` pairs, and with seeded Monte Carlo signs above (valid: the observed signs
are counted as one of the draws). The interval inverts the test at every shift delta
(the differences minus delta, symmetric about 0): its ends are order statistics of the
means of the flipped subsets, so it is exact, not a search. The interval and tests at a
margin (a regression gate's max_drop) assume the differences are symmetric about their
mean; the test of no difference does not.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from . import metrics

EXACT_MAX_N = 16  # enumerate all 2^n signs up to here (65,536 of them)
RESAMPLES = 20_000  # random signs above it
SEED = 0
METHODS = ("signflip", "t")
_TIE = 1e-9  # sums within this (relative to the values' scale) of 0 count as ties


@dataclass(frozen=True)
class Difference:
    """candidate - base, averaged over the seeds both have, with its two-sided interval
    and one-sided p-values: `p_worse` for "the candidate is lower than the base" (small
    when it is), `p_better` for "higher". `sd` is the spread of the per-seed
    differences (None for one pair). `method`: "signflip (exact, 2^n signs)",
    "signflip (Monte Carlo, R signs, seed s)" or "t". `low`/`high` None when the data
    cannot bound it (too few pairs, and no bounds given)."""

    value: float
    low: float | None
    high: float | None
    n: int
    method: str
    p_worse: float
    p_better: float
    sd: float | None
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pairs(base: Mapping[Any, float], cand: Mapping[Any, float]) -> np.ndarray:
    """cand - base on the keys (seeds) both have, in key order."""
    keys = sorted(set(base) & set(cand))
    return np.array([float(cand[k]) - float(base[k]) for k in keys], dtype=float)


def paired_difference(
    base: Mapping[Any, float],
    cand: Mapping[Any, float],
    confidence: float = 0.95,
    method: str = "signflip",
    bounds: tuple[float, float] | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Difference:
    """The mean difference cand - base over the seeds (keys) both sides have.

    method "signflip" (the default, and what gates use): the sign-flip test and its
    inverted interval (module docstring). method "t": Student's paired t, approximate.
    `bounds` (lowest, highest) of the values, if known, keep the interval within the
    differences possible (an end the data cannot set becomes that bound). Raises
    ValueError for no common seeds or an unknown method.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    d = pairs(base, cand)
    n = len(d)
    if n == 0:
        raise ValueError("no seed played by both sides: nothing to pair")
    value = float(np.mean(d))
    sd = float(np.std(d, ddof=1)) if n > 1 else None
    span = None if bounds is None else float(bounds[1]) - float(bounds[0])
    alpha = (1 - confidence) / 2
    if method == "t":
        low = high = None
        p_worse = p_better = 1.0
        if n > 1 and sd == 0:
            p_worse = p_better = 1.0 if value == 0 else (0.0 if value < 0 else 1.0)
            if value > 0:
                p_better = 0.0
        if n > 1 and sd:
            se = sd / math.sqrt(n)
            half = metrics.t_quantile(1 - alpha, n - 1) * se
            low, high = value - half, value + half
            p_worse = metrics.t_cdf(value / se, n - 1)
            p_better = 1.0 - p_worse
        low, high = _clip(low, high, span)
        return Difference(value, low, high, n, "t", p_worse, p_better, sd, confidence)
    signs, exact = sign_matrix(n, resamples, seed)
    p_worse, p_better = (float(p) for p in signflip_p(d[None, :], 0.0, signs, exact)[:, 0])
    low, high = signflip_interval(d, alpha, signs, exact)
    low, high = _clip(low, high, span)
    label = (
        f"signflip (exact, 2^{n} signs)"
        if exact
        else f"signflip (Monte Carlo, {resamples} signs, seed {seed})"
    )
    return Difference(value, low, high, n, label, p_worse, p_better, sd, confidence)


def _clip(low, high, span):
    if span is None:
        return (None if low is None or not math.isfinite(low) else low), (
            None if high is None or not math.isfinite(high) else high
        )
    low = -span if low is None or not math.isfinite(low) else max(-span, low)
    high = span if high is None or not math.isfinite(high) else min(span, high)
    return low, high


@functools.lru_cache(maxsize=64)
def sign_matrix(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> tuple[np.ndarray, bool]:
    """(K, n) booleans, True where a sign is flipped, and whether they are exact: all
    2^n patterns for n <= EXACT_MAX_N (the unflipped one included), else `resamples`
    seeded random ones (the observed signs are then counted apart, `signflip_p`)."""
    if n <= EXACT_MAX_N:
        codes = np.arange(2**n, dtype=np.int64)[:, None]
        flips = (codes >> np.arange(n)) & 1
        matrix = flips.astype(bool)
        exact = True
    else:
        matrix = np.random.default_rng(seed).random((resamples, n)) < 0.5
        exact = False
    matrix.setflags(write=False)
    return matrix, exact


def signflip_p(d: np.ndarray, delta: float, signs: np.ndarray, exact: bool) -> np.ndarray:
    """(2, reps) one-sided sign-flip p-values of each row of `d` (reps, n) about `delta`:
    [0] for "the mean is below delta", [1] for "above". Vectorised over rows; a row's
    flipped sum is at least as extreme as the observed when it is within ties of it.

    The flipped sum minus the observed is -2 * the sum of (d - delta) over the flipped
    subset F, so "as low as observed" is sum_F (d - delta) >= 0."""
    d = np.asarray(d, dtype=float)
    x = d - delta
    scale = np.maximum(np.abs(x).max(axis=-1, initial=0.0), 1e-300)[:, None]
    sums = (x @ signs.T.astype(float)) / scale  # (reps, K): sum over each F
    extra = 0 if exact else 1  # the observed signs, counted as one of the draws
    total = signs.shape[0] + extra
    low = (extra + np.count_nonzero(sums >= -_TIE, axis=-1)) / total
    high = (extra + np.count_nonzero(sums <= _TIE, axis=-1)) / total
    return np.stack([low, high])


def signflip_interval(
    d: np.ndarray, alpha: float, signs: np.ndarray, exact: bool
) -> tuple[float, float]:
    """The deltas whose one-sided p-values both exceed `alpha`: [the k-th smallest, the
    k-th largest] mean of a flipped subset, k set by alpha and the number of signs
    (-inf/inf when alpha is below what the signs can reach)."""
    counts = signs.sum(axis=1)
    chosen = counts > 0
    means = (signs[chosen].astype(float) @ d) / counts[chosen]
    empty = int(np.count_nonzero(~chosen))
    extra = 0 if exact else 1
    total = signs.shape[0] + extra
    # p_below(delta) = (extra + empty + #{means >= delta}) / total > alpha
    k = math.floor(alpha * total - extra - empty) + 1
    if k <= 0:
        return -math.inf, math.inf
    if k > len(means):
        return float(np.mean(d)), float(np.mean(d))
    ordered = np.sort(means)
    return float(ordered[k - 1]), float(ordered[-k])


# -- success of an achievement, paired -----------------------------------------------


@dataclass(frozen=True)
class McNemar:
    """Paired successes of one achievement: `gained` seeds the candidate unlocked and
    the base did not, `lost` the other way; exact one-sided p-values of McNemar's test
    (given gained + lost, gained is Binomial(gained + lost, 1/2) when neither side is
    better). Rates in percent of the n paired seeds."""

    base_rate: float
    cand_rate: float
    difference: float
    gained: int
    lost: int
    n: int
    p_worse: float
    p_better: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mcnemar(base: Mapping[Any, bool], cand: Mapping[Any, bool]) -> McNemar:
    """McNemar's exact test on the seeds both sides have (values: unlocked or not)."""
    keys = sorted(set(base) & set(cand))
    if not keys:
        raise ValueError("no seed played by both sides: nothing to pair")
    b = np.array([bool(base[k]) for k in keys])
    c = np.array([bool(cand[k]) for k in keys])
    gained = int(np.count_nonzero(c & ~b))
    lost = int(np.count_nonzero(b & ~c))
    n = len(keys)
    m = gained + lost
    pmf = [math.comb(m, i) / 2**m for i in range(m + 1)]
    p_worse = min(1.0, math.fsum(pmf[: gained + 1]))
    p_better = min(1.0, math.fsum(pmf[gained:]))
    base_rate = 100.0 * np.count_nonzero(b) / n
    cand_rate = 100.0 * np.count_nonzero(c) / n
    return McNemar(base_rate, cand_rate, cand_rate - base_rate, gained, lost, n, p_worse, p_better)


# -- the Crafter score, paired bootstrap ----------------------------------------------


def score_difference(
    base: Mapping[Any, Mapping[str, int]],
    cand: Mapping[Any, Mapping[str, int]],
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = SEED,
) -> dict[str, Any]:
    """The Crafter score of cand minus base (points) on the seeds both have, with a
    seeded paired percentile bootstrap over seeds (the same seeds drawn for both).
    Approximate (the score is biased low when rare achievements go unseen): for
    display, never for gates."""
    keys = sorted(set(base) & set(cand))
    if not keys:
        raise ValueError("no seed played by both sides: nothing to pair")
    value = metrics.crafter_score(
        metrics.success_rates(cand[k] for k in keys)
    ) - metrics.crafter_score(metrics.success_rates(base[k] for k in keys))
    n = len(keys)
    low = high = None
    if n > 1:
        hb = np.array(
            [[1.0 if base[k].get(a) else 0.0 for a in metrics.ACHIEVEMENTS] for k in keys]
        )
        hc = np.array(
            [[1.0 if cand[k].get(a) else 0.0 for a in metrics.ACHIEVEMENTS] for k in keys]
        )
        picks = np.random.default_rng(seed).integers(0, n, size=(resamples, n))

        def scores(h):
            return np.expm1(np.log1p(h[picks].mean(axis=1) * 100.0).mean(axis=1))

        diffs = scores(hc) - scores(hb)
        alpha = (1 - confidence) / 2
        lo, hi = np.quantile(diffs, [alpha, 1 - alpha])
        low, high = min(float(lo), value), max(float(hi), value)
    return {
        "value": value,
        "low": low,
        "high": high,
        "n": n,
        "method": f"paired bootstrap ({resamples} resamples, seed {seed}; approximate)",
    }


# -- power and planning -------------------------------------------------------------


def power(drop: float, sd: float, n: int, alpha: float = 0.025) -> float | None:
    """The power of a one-sided paired test at level `alpha` to detect a true mean drop
    of `drop` from n pairs whose differences spread `sd` (normal approximation with
    Student's t quantile; approximate). None when sd is 0 or unknown."""
    if not sd or n < 2 or drop <= 0:
        return None
    shift = drop * math.sqrt(n) / sd
    return NormalDist().cdf(shift - metrics.t_quantile(1 - alpha, n - 1))


def seeds_needed(
    drop: float, sd: float, target: float = 0.8, alpha: float = 0.025, most: int = 100_000
) -> int | None:
    """The fewest pairs (seeds) at which `power` reaches `target`; None above `most`."""
    if drop <= 0 or sd <= 0:
        raise ValueError("drop and sd must be positive")
    z = NormalDist().inv_cdf
    n = max(2, math.ceil(((z(1 - alpha) + z(target)) * sd / drop) ** 2))
    while n <= most:
        p = power(drop, sd, n, alpha)
        if p is not None and p >= target:
            return n
        n += 1
    return None


def p_drop(
    base: Mapping[Any, float],
    cand: Mapping[Any, float],
    max_drop: float,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> float:
    """The one-sided sign-flip p-value for "the candidate is lower than the base by more
    than `max_drop`" (the test of the differences about -max_drop; assumes they are
    symmetric about their mean). Small when the data show such a drop."""
    d = pairs(base, cand)
    if not len(d):
        raise ValueError("no seed played by both sides: nothing to pair")
    signs, exact = sign_matrix(len(d), resamples, seed)
    return float(signflip_p(d[None, :], -float(max_drop), signs, exact)[0, 0])
