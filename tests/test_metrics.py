"""metrics: the Crafter score on the Crafter paper's own data, and the intervals."""

import gzip
import json
import math
import random
import re
import statistics
from pathlib import Path

import crafter.constants
import numpy as np
import pytest

from pytest_crafter_eval.report import metrics

DATA = Path(__file__).parent / "data"


def episodes_per_seed(runs):
    """The paper's score files: one entry per seed, `achievement_<name>` -> counts."""
    for run in runs:
        names = [k for k in run if k.startswith("achievement_")]
        count = len(run[names[0]])
        yield [{name[len("achievement_") :]: run[name][i] for name in names} for i in range(count)]


def paper_score(runs):
    scores = [metrics.crafter_score(metrics.success_rates(eps)) for eps in episodes_per_seed(runs)]
    return statistics.mean(scores), statistics.pstdev(scores)


def test_achievements_are_crafters_22():
    assert tuple(crafter.constants.achievements) == metrics.ACHIEVEMENTS
    assert len(metrics.ACHIEVEMENTS) == 22


def test_human_experts_score_50_5_pm_6_8():
    runs = json.loads((DATA / "crafter_reward-human.json").read_text())
    assert len(runs) == 5 and all(len(run["length"]) == 20 for run in runs)
    mean, std = paper_score(runs)
    assert (round(mean, 1), round(std, 1)) == (50.5, 6.8)


def test_random_agent_scores_1_6_pm_0_0():
    with gzip.open(DATA / "crafter_noreward-random.json.gz", "rt") as f:
        runs = json.load(f)
    mean, std = paper_score(runs)
    assert (round(mean, 1), round(std, 1)) == (1.6, 0.0)


def test_success_rates_cover_all_22_and_count_episodes_not_unlocks():
    rates = metrics.success_rates(
        [{"collect_wood": 5}, {"collect_wood": 0, "place_table": 1}, {}, {"collect_wood": 1}]
    )
    assert set(rates) == set(metrics.ACHIEVEMENTS)
    assert rates["collect_wood"] == 50.0 and rates["place_table"] == 25.0
    assert rates["collect_diamond"] == 0.0


def test_crafter_score_bounds_and_formula():
    assert metrics.crafter_score({}) == 0.0
    assert metrics.crafter_score(dict.fromkeys(metrics.ACHIEVEMENTS, 100.0)) == pytest.approx(100.0)
    # one achievement at 100 %: exp(ln(101) / 22) - 1
    assert metrics.crafter_score({"collect_wood": 100.0}) == pytest.approx(101 ** (1 / 22) - 1)


@pytest.mark.parametrize("bad", [[{"collect_wod": 1}], []])
def test_success_rates_reject_bad_input(bad):
    with pytest.raises(ValueError):
        metrics.success_rates(bad)


def test_crafter_score_rejects_percent_out_of_range():
    with pytest.raises(ValueError, match="from 0 to 100"):
        metrics.crafter_score({"collect_wood": 1.5e2})


@pytest.mark.parametrize(
    "df, expected",
    [
        (1, 12.7062),
        (2, 4.3027),
        (4, 2.7764),
        (9, 2.2622),
        (29, 2.0452),
        (200, 1.9719),
        (1000, 1.9623),
    ],
)
def test_t_quantiles_match_tables(df, expected):
    assert metrics.t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)


def test_mean_interval():
    est = metrics.mean([1, 2, 3, 4])
    half = 3.1824 * statistics.stdev([1, 2, 3, 4]) / 2
    assert est.value == 2.5 and est.low == pytest.approx(2.5 - half, abs=1e-3)
    assert est.high == pytest.approx(2.5 + half, abs=1e-3)
    assert metrics.mean([3.0]).low is None  # one episode cannot bound a mean


@pytest.mark.parametrize("values", [[2, 2, 2], [2.0] * 30, [0.0] * 5, [7.0]])
def test_equal_values_never_give_a_zero_width_interval(values):
    # no bounds: the data cannot bound the mean
    assert metrics.mean(values).low is None and metrics.mean(values).high is None
    est = metrics.mean(values, bounds=(0, 22))
    assert est.method == "betting" and 0 <= est.low < est.high <= 22
    assert est.low <= values[0] <= est.high
    if values[0] > 0:
        assert est.low < values[0]


def test_bounded_mean_stays_within_its_bounds_and_narrows_with_n():
    # the example: a t interval of these counts reached below 0
    assert metrics.mean([0, 0, 0, 5]).low < 0
    est = metrics.mean([0, 0, 0, 5], bounds=(0, 22))
    assert 0 <= est.low <= 1.25 <= est.high <= 22
    widths = [
        (e.high - e.low)
        for e in (metrics.mean([3.0, 4.0] * k, bounds=(0, 22)) for k in (5, 15, 50, 500))
    ]
    assert widths == sorted(widths, reverse=True) and widths[-1] < 0.5
    est = metrics.mean([3.0, 4.0] * 500, bounds=(0, 22))
    assert est.low < 3.5 < est.high


def test_reward_range_follows_crafters_reward():
    # +1 per unlocking step (22 at most), health changes / 10 from 9 to 0 at worst
    assert metrics.REWARD_RANGE == (-0.9, 22.0)
    est = metrics.mean([-0.9, -0.9, -0.9], bounds=metrics.REWARD_RANGE)
    assert est.low == -0.9 < est.high
    # float rounding past a bound is clipped, never raises
    assert metrics.mean([-0.9000000000000001, 1.0], bounds=metrics.REWARD_RANGE).low == -0.9


@pytest.mark.parametrize(
    "values, bounds, message",
    [
        ([0.5, 23.0], (0, 22), "value 23.0 is outside the bounds [0, 22]"),
        ([-1.0], (0, 1), "value -1.0 is outside the bounds [0, 1]"),
        ([float("nan")], (0, 1), "value nan is outside the bounds [0, 1]"),
        ([0.5], (1, 0), "bounds must be (lowest, highest) with lowest < highest, got (1, 0)"),
        ([0.5], (0.5, 0.5), "lowest < highest, got (0.5, 0.5)"),
        ([], (0, 1), "the mean of no values is undefined"),
    ],
)
def test_bounded_mean_interval_refuses_values_outside_its_bounds_and_bad_bounds(
    values, bounds, message
):
    with pytest.raises(ValueError, match=re.escape(message)):
        metrics.bounded_mean_interval(values, bounds)


def test_bounded_mean_interval_does_not_depend_on_the_order_of_the_values():
    rng = np.random.default_rng(4)
    for n in (3, 10, 57):
        values = list(rng.integers(0, 8, size=n).astype(float))
        shuffled = [values[i] for i in rng.permutation(n)]
        reversed_ = values[::-1]
        got = {metrics.bounded_mean_interval(v, (0, 22)) for v in (values, shuffled, reversed_)}
        assert len(got) == 1
    # before, the interval of the same values depended on the order (seed order)
    ascending = [0.0] * 10 + [10.0] * 10
    assert metrics.mean(ascending, bounds=(0, 22)) == metrics.mean(ascending[::-1], bounds=(0, 22))


def test_clopper_pearson_matches_tables_and_binomial_tails():
    est = metrics.clopper_pearson(5, 10)
    assert (round(est.low, 4), round(est.high, 4)) == (0.1871, 0.8129)
    assert metrics.clopper_pearson(0, 10).high == pytest.approx(1 - 0.025 ** (1 / 10))
    assert metrics.clopper_pearson(0, 10).low == 0.0 and metrics.clopper_pearson(10, 10).high == 1.0
    # the lower bound L of k in n solves P(X >= k | L) = alpha, exactly
    for k, n in [(1, 20), (7, 30), (93, 100), (3, 1000)]:
        low, high = metrics.clopper_pearson_bounds(k, n, 0.01, 0.02)
        tail = sum(math.comb(n, i) * low**i * (1 - low) ** (n - i) for i in range(k, n + 1))
        head = sum(math.comb(n, i) * high**i * (1 - high) ** (n - i) for i in range(k + 1))
        assert tail == pytest.approx(0.01, rel=1e-6) and head == pytest.approx(0.02, rel=1e-6)


def test_wilson_interval():
    est = metrics.wilson(8, 10)
    assert (round(est.low, 3), round(est.high, 3)) == (0.49, 0.943)
    assert metrics.wilson(0, 5).low == 0.0 and metrics.wilson(5, 5).high == 1.0
    assert 0 < metrics.wilson(0, 5).high < 1


def test_score_interval_is_seeded_and_contains_the_score():
    runs = json.loads((DATA / "crafter_reward-human.json").read_text())
    episodes = [ep for eps in episodes_per_seed(runs) for ep in eps]
    for method in metrics.SCORE_METHODS:
        a = metrics.score_interval(episodes, method=method)
        assert a == metrics.score_interval(episodes, method=method)
        assert a.low < a.value < a.high and a.method == method
        assert a.value == pytest.approx(metrics.crafter_score(metrics.success_rates(episodes)))
    default = metrics.score_interval(episodes)
    assert default.method == "bonferroni"
    # the conservative box holds the unadjusted one, which holds the bootstrap's
    unadjusted = metrics.score_interval(episodes, method="unadjusted")
    boot = metrics.score_interval(episodes, method="bootstrap")
    assert default.low < unadjusted.low < boot.low < boot.high < unadjusted.high < default.high


def test_score_interval_of_few_episodes_is_bounded_and_wide():
    one = metrics.score_interval([{"collect_wood": 1}])
    assert 0 <= one.low < one.value < one.high <= 100
    assert metrics.score_interval([{"collect_wood": 1}], method="bootstrap").low is None
    same = metrics.score_interval([{"collect_wood": 1, "wake_up": 2}] * 10)
    assert same.low < same.value < same.high  # equal episodes: not a zero-width interval
    with pytest.raises(ValueError, match="unknown score interval method 'boot'"):
        metrics.score_interval([{}], method="boot")


def test_percentile_interpolates():
    assert metrics.percentile([], 50) is None
    assert metrics.percentile([4, 1, 3, 2], 50) == 2.5
    assert metrics.percentile(list(range(1, 11)), 95) == pytest.approx(9.55)
    assert math.isclose(metrics.percentile([7.0], 95), 7.0)


def test_clipped_keeps_an_interval_within_bounds():
    est = metrics.mean([1.0, 0.2, 1.0]).clipped(0.0, 1.0)
    assert est.value == pytest.approx(2.2 / 3)
    assert est.low == 0.0 and est.high == 1.0


def test_progression_is_the_mean_percent_of_the_22_achievements_per_episode():
    episodes = [{"collect_wood": 3, "place_table": 1}, {"collect_wood": 1, "eat_cow": 0}, {}]
    est = metrics.progression(episodes)
    per_episode = [200 / 22, 100 / 22, 0.0]
    assert est.value == pytest.approx(statistics.mean(per_episode))
    assert metrics.mean(per_episode).low < 0  # a t interval reaches below 0
    assert 0 <= est.low < est.value < est.high <= 100 and est.method == "betting"
    # the achievements per episode's interval, in percent of 22
    counts = metrics.mean([2, 1, 0], bounds=(0, 22))
    assert (est.low, est.high) == pytest.approx((counts.low * 100 / 22, counts.high * 100 / 22))
    everything = dict.fromkeys(metrics.ACHIEVEMENTS, 1)
    assert metrics.progression([everything, everything]).value == 100.0
    with pytest.raises(ValueError, match="no episodes"):
        metrics.progression([])
    with pytest.raises(ValueError, match="collect_gold"):
        metrics.progression([{"collect_gold": 1}])


def test_progression_interval_covers_the_true_mean_at_least_95_percent_of_the_time():
    """Episodes of 10, each achievement unlocked independently with its own chance: the
    interval should hold the true mean progression in at least 95% of 500 runs, within
    Monte Carlo error (benchmarks/coverage.py measures more settings)."""
    rng = random.Random(7)
    chances = [0.9, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1] + [0.0] * 14
    truth = 100 * sum(chances) / 22
    hits, runs = 0, 500
    for _ in range(runs):
        episodes = [
            {name: int(rng.random() < p) for name, p in zip(metrics.ACHIEVEMENTS, chances)}
            for _ in range(10)
        ]
        est = metrics.progression(episodes)
        hits += est.low <= truth <= est.high
    assert hits / runs >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / runs)
