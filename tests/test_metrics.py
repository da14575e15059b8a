"""metrics: the Crafter score on the Crafter paper's own data, and the intervals."""

import gzip
import json
import math
import random
import statistics
from pathlib import Path

import crafter.constants
import pytest

from pytest_crafter_eval import metrics

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
    assert metrics.mean([2, 2, 2]).low == 2  # no spread


def test_wilson_interval():
    est = metrics.wilson(8, 10)
    assert (round(est.low, 3), round(est.high, 3)) == (0.49, 0.943)
    assert metrics.wilson(0, 5).low == 0.0 and metrics.wilson(5, 5).high == 1.0
    assert 0 < metrics.wilson(0, 5).high < 1


def test_score_interval_is_seeded_and_contains_the_score():
    runs = json.loads((DATA / "crafter_reward-human.json").read_text())
    episodes = [ep for eps in episodes_per_seed(runs) for ep in eps]
    a, b = metrics.score_interval(episodes), metrics.score_interval(episodes)
    assert a == b
    assert a.low < a.value < a.high
    assert a.value == pytest.approx(metrics.crafter_score(metrics.success_rates(episodes)))


def test_percentile_interpolates():
    assert metrics.percentile([], 50) is None
    assert metrics.percentile([4, 1, 3, 2], 50) == 2.5
    assert metrics.percentile(list(range(1, 11)), 95) == pytest.approx(9.55)
    assert math.isclose(metrics.percentile([7.0], 95), 7.0)


def test_clipped_keeps_an_interval_of_fractions_within_zero_and_one():
    est = metrics.mean([1.0, 0.2, 1.0]).clipped(0.0, 1.0)
    assert est.value == pytest.approx(2.2 / 3)
    assert est.low == 0.0 and est.high == 1.0


def test_progression_is_the_mean_percent_of_the_22_achievements_per_episode():
    episodes = [{"collect_wood": 3, "place_table": 1}, {"collect_wood": 1, "eat_cow": 0}, {}]
    est = metrics.progression(episodes)
    per_episode = [200 / 22, 100 / 22, 0.0]
    assert est.value == pytest.approx(statistics.mean(per_episode))
    assert est.low == 0.0  # clipped: the t interval reaches below 0
    assert est.high == pytest.approx(metrics.mean(per_episode).high)
    everything = dict.fromkeys(metrics.ACHIEVEMENTS, 1)
    assert metrics.progression([everything, everything]).value == 100.0
    with pytest.raises(ValueError, match="no episodes"):
        metrics.progression([])
    with pytest.raises(ValueError, match="collect_gold"):
        metrics.progression([{"collect_gold": 1}])


def test_progression_interval_covers_the_true_mean_about_95_percent_of_the_time():
    """Episodes of 10, each achievement unlocked independently with its own chance: the
    interval should hold the true mean progression in about 95% of 2000 runs."""
    rng = random.Random(7)
    chances = [0.9, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1] + [0.0] * 14
    truth = 100 * sum(chances) / 22
    hits, runs = 0, 2000
    for _ in range(runs):
        episodes = [
            {name: int(rng.random() < p) for name, p in zip(metrics.ACHIEVEMENTS, chances)}
            for _ in range(10)
        ]
        est = metrics.progression(episodes)
        hits += est.low <= truth <= est.high
    assert 0.92 <= hits / runs <= 0.975
