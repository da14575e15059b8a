"""metrics: the intervals' coverage, measured by simulation (benchmarks/coverage.py, smaller).

Each claim of coverage >= 95 % is asserted within Monte Carlo error (3 standard errors),
and next to it the method it replaced is shown to fall short in the same setting, so the
check can fail. Seeded; a few seconds in all.
"""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from pytest_crafter_eval.report import metrics

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "coverage_bench", ROOT / "benchmarks" / "coverage.py"
)
assert _spec and _spec.loader
cov = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cov)

SCORE = cov.score_settings()
MEANS = cov.mean_settings()


def at_least_95(share, reps):
    """share >= 0.95 within Monte Carlo error."""
    return share >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / reps)


def below_95(share, reps):
    """share < 0.95 beyond Monte Carlo error."""
    return share < 0.95 - 3 * math.sqrt(0.95 * 0.05 / reps)


@pytest.mark.parametrize("n", cov.NS)
@pytest.mark.parametrize("setting", sorted(SCORE))
@pytest.mark.parametrize("method", ["bonferroni", "unadjusted"])
def test_score_interval_covers_the_true_score(method, setting, n):
    draw, truth = SCORE[setting]
    reps = 1000
    intervals = cov.score_intervals(method, draw(n, reps, np.random.default_rng(n)))
    assert at_least_95(cov.coverage(intervals, truth), reps)


@pytest.mark.parametrize("setting, n", [("human", 10), ("random", 10), ("random", 30)])
def test_score_bootstrap_covers_far_less_than_95_percent(setting, n):
    draw, truth = SCORE[setting]
    reps = 150
    intervals = cov.score_intervals(
        "bootstrap", draw(n, reps, np.random.default_rng(1)), resamples=300
    )
    assert below_95(cov.coverage(intervals, truth), reps)
    # the conservative method holds the score on the very same samples
    draw_again = draw(n, reps, np.random.default_rng(1))
    assert cov.coverage(cov.score_intervals("bonferroni", draw_again), truth) == 1.0


def test_score_bounds_are_the_score_intervals_bounds():
    draw, _ = SCORE["human"]
    for sample in draw(10, 3, np.random.default_rng(7)):
        episodes = [{a: 1 for a, hit in zip(metrics.ACHIEVEMENTS, row) if hit} for row in sample]
        est = metrics.score_interval(episodes)
        counts = list(sample.sum(axis=0))
        assert (est.low, est.high) == pytest.approx(metrics.score_bounds(counts, 10))
        assert est.method == "bonferroni" and est.low < est.value < est.high


@pytest.mark.parametrize("n", cov.NS)
@pytest.mark.parametrize("setting", sorted(MEANS))
def test_bounded_mean_interval_covers_the_true_mean(setting, n):
    bounds, draw, truth = MEANS[setting]
    reps = 2000
    values = draw((reps, n), np.random.default_rng(n))
    assert at_least_95(float(np.mean(cov.betting_covers(values, bounds, truth))), reps)


@pytest.mark.parametrize(
    "setting",
    ["tool-call rate, 1% misses", "tool-call rate, 0.2% misses", "achievements, 1 in 10%"],
)
def test_t_interval_covered_far_less_than_95_percent(setting):
    bounds, draw, truth = MEANS[setting]
    reps = 2000
    values = draw((reps, 10), np.random.default_rng(3))
    assert below_95(cov.coverage(cov.t_before(values, bounds), truth), reps)
    assert at_least_95(float(np.mean(cov.betting_covers(values, bounds, truth))), reps)


def test_reported_mean_interval_contains_the_betting_set():
    """betting_covers (what the coverage tests count) implies the reported interval
    holds the mean: the interval is the set, rounded outwards."""
    bounds, draw, truth = MEANS["achievements, human"]
    values = draw((40, 30), np.random.default_rng(5))
    for v, covered in zip(values, cov.betting_covers(values, bounds, truth)):
        est = metrics.mean(list(v), bounds=bounds)
        if covered:
            assert est.low <= truth <= est.high
        for m in (est.low - 0.01, est.high + 0.01):  # just outside: rejected
            assert not cov.betting_covers(v[None, :], bounds, m)[0] or not 0 <= m <= 22


@pytest.mark.parametrize("n", [10, 30])
def test_clopper_pearson_covers_every_rate_and_wilson_does_not(n):
    assert cov.rate_min_coverage("clopper-pearson", n) >= 0.95
    assert cov.rate_min_coverage("wilson", n) < 0.9
