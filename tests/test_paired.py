"""report.paired: paired differences by seed, McNemar, the score's paired bootstrap, power
and the seeds a drop needs; the claims checked by seeded simulations (benchmarks/coverage.py,
smaller), a few seconds in all."""

import importlib.util
import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from pytest_crafter_eval.report import paired

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "coverage_bench", ROOT / "benchmarks" / "coverage.py"
)
assert _spec and _spec.loader
cov = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cov)


def brute_force_p(d, delta=0.0):
    """(p below, p above) over all 2^n sign patterns, written out plainly."""
    x = [v - delta for v in d]
    observed = sum(x)
    sums = [
        sum(s * v for s, v in zip(signs, x)) for signs in itertools.product((1, -1), repeat=len(x))
    ]
    below = sum(1 for s in sums if s <= observed + 1e-9) / len(sums)
    above = sum(1 for s in sums if s >= observed - 1e-9) / len(sums)
    return below, above


def test_exact_p_values_are_the_sign_flip_distribution():
    rng = np.random.default_rng(1)
    for n in (1, 4, 9):
        for delta in (0.0, -1.5, 2.0):
            d = list(np.round(rng.normal(-1, 3, n), 1))
            base = dict.fromkeys(range(n), 10.0)
            cand = {s: 10.0 + v for s, v in enumerate(d)}
            signs, exact = paired.sign_matrix(n)
            got = paired.signflip_p(np.array([d]), delta, signs, exact)[:, 0]
            assert exact and tuple(got) == pytest.approx(brute_force_p(d, delta))
            if delta == 0.0:
                diff = paired.paired_difference(base, cand)
                assert (diff.p_worse, diff.p_better) == pytest.approx(brute_force_p(d))
                assert diff.method == f"signflip (exact, 2^{n} signs)"


@pytest.mark.parametrize("n", [8, 16, 40])
def test_the_interval_is_the_set_of_shifts_the_test_does_not_reject(n):
    rng = np.random.default_rng(n)
    base = {s: float(v) for s, v in enumerate(rng.integers(0, 6, n))}
    cand = {s: float(v) for s, v in enumerate(rng.integers(0, 5, n))}
    diff = paired.paired_difference(base, cand, bounds=(0, 22))
    assert diff.method.startswith("signflip (exact" if n <= 16 else "signflip (Monte Carlo")
    d = paired.pairs(base, cand)[None, :]
    signs, exact = paired.sign_matrix(n)

    def p(delta):
        return paired.signflip_p(d, delta, signs, exact)[:, 0]

    assert diff.low <= diff.value <= diff.high
    for end in (diff.low, diff.high):  # the ends are kept: neither side rejects them
        assert min(p(end)) > 0.025
    assert p(diff.low - 1e-6)[1] <= 0.025 and p(diff.high + 1e-6)[0] <= 0.025


def test_pairs_only_seeds_both_sides_have_whatever_their_order():
    base = {0: 1.0, 1: 2.0, 2: 3.0, 7: 9.0}
    cand = {2: 2.0, 1: 2.0, 0: 0.0, 5: 4.0}
    diff = paired.paired_difference(base, cand)
    assert diff.n == 3 and diff.value == pytest.approx(-2 / 3)
    again = paired.paired_difference(dict(reversed(base.items())), dict(reversed(cand.items())))
    assert again == diff
    with pytest.raises(ValueError, match="no seed played by both sides"):
        paired.paired_difference({0: 1.0}, {1: 1.0})
    with pytest.raises(ValueError, match="unknown method"):
        paired.paired_difference(base, cand, method="z")


def test_few_pairs_cannot_reach_the_level_and_say_so_with_the_bounds():
    # 4 pairs: the smallest exact p is 1/16 > 0.025, so no shift is rejected
    diff = paired.paired_difference(dict.fromkeys(range(4), 10.0), dict.fromkeys(range(4), 0.0))
    assert diff.p_worse == 1 / 16 and diff.low is None and diff.high is None
    bounded = paired.paired_difference(
        dict.fromkeys(range(4), 10.0), dict.fromkeys(range(4), 0.0), bounds=(0, 100)
    )
    assert (bounded.low, bounded.high) == (-100, 100)


def test_t_method_matches_the_paired_t_test():
    base = dict(enumerate([5.0, 7.0, 6.0, 9.0, 4.0, 8.0]))
    cand = dict(enumerate([4.0, 6.0, 6.5, 7.0, 3.0, 8.0]))
    diff = paired.paired_difference(base, cand, method="t")
    d = np.array([cand[s] - base[s] for s in base])
    se = d.std(ddof=1) / math.sqrt(6)
    assert diff.value == pytest.approx(d.mean()) and diff.method == "t"
    assert diff.high - diff.value == pytest.approx(2.5706 * se, rel=1e-4)  # t(0.975, 5)
    assert diff.p_worse == pytest.approx(0.0456, abs=2e-4)  # t = -2.0868, 5 df
    assert diff.p_worse + diff.p_better == pytest.approx(1.0)


def test_mcnemar_counts_gained_and_lost_seeds_and_uses_the_exact_binomial():
    base = {s: s < 8 for s in range(12)}  # unlocked on seeds 0-7
    cand = {s: s in (0, 1, 9) for s in range(12)}  # kept 2, lost 6, gained 1
    test = paired.mcnemar(base, cand)
    assert (test.gained, test.lost, test.n) == (1, 6, 12)
    assert test.base_rate == pytest.approx(100 * 8 / 12) and test.cand_rate == 25.0
    assert test.p_worse == pytest.approx((1 + 7) / 2**7)  # P(X <= 1), X ~ Bin(7, 1/2)
    assert test.p_better == pytest.approx(1 - 1 / 2**7)
    same = paired.mcnemar(base, base)
    assert (same.gained, same.lost, same.p_worse, same.p_better) == (0, 0, 1.0, 1.0)


def test_score_difference_is_a_seeded_paired_bootstrap_labelled_approximate():
    base = {s: {"collect_wood": 1, "place_table": int(s % 2 == 0)} for s in range(20)}
    cand = {s: {"collect_wood": int(s % 3 > 0)} for s in range(20)}
    a = paired.score_difference(base, cand)
    assert a == paired.score_difference(base, cand)
    assert "approximate" in a["method"] and a["n"] == 20
    assert a["low"] <= a["value"] <= a["high"] < 0


def test_power_and_the_seeds_a_drop_needs():
    n = paired.seeds_needed(3.0, 7.0, 0.8)
    assert paired.power(3.0, 7.0, n) >= 0.8 > paired.power(3.0, 7.0, n - 1)
    assert 40 <= n <= 50  # (1.96 + 0.84)^2 * (7/3)^2 = 42.7, plus the t quantile
    assert paired.power(3.0, 0.0, 30) is None
    assert paired.p_drop({0: 5.0, 1: 5.0}, {0: 5.0, 1: 5.0}, 1.0) == 1.0


# -- seeded simulations (benchmarks/coverage.py, smaller) ------------------------------


@pytest.mark.parametrize("shared", [0.0, 0.5])
@pytest.mark.parametrize("n", cov.NS)
def test_sign_flip_false_alarms_stay_at_most_3_percent(n, shared):
    reps = 2000
    base, cand = cov.weak_pairs(n, reps, np.random.default_rng(n), 0.0, shared)
    # 2,000 random signs above 16 pairs here (the default is 20,000): the Monte Carlo
    # p-value is valid for any number of them
    p = cov.signflip_p(cand - base, resamples=2000)
    assert np.mean(p[0] <= cov.ALPHA) <= 0.03
    assert np.mean(p[1] <= cov.ALPHA) <= 0.03


def test_pairing_by_seed_has_power_where_the_betting_interval_has_none():
    base, cand = cov.weak_pairs(30, 1000, np.random.default_rng(5), 3.0, 0.5)
    signflip = np.mean(cov.signflip_p(cand - base, resamples=2000)[0] <= cov.ALPHA)
    unpaired = np.mean(cov.unpaired_t_p_worse(base, cand) <= cov.ALPHA)
    assert signflip >= 0.7 and signflip > unpaired + 0.05
    assert np.mean(cov.betting_rejects(cand - base)) < 0.01


def test_the_seeds_plan_recommends_give_the_power_it_promises():
    """A weak agent whose two models spread 6-8 points per seed in a 30-seed pilot: the
    seeds planned for a 3-point progression drop at power 0.8 detect it in >= 75% of
    simulated evaluations."""
    from pytest_crafter_eval.report import plan

    rng = np.random.default_rng(11)
    pilots = []
    while len(pilots) < 3:
        base, cand = cov.weak_pairs(30, 1, rng, 3.0, 0.0)
        d = (cand - base)[0]
        if 6 <= np.std(d, ddof=1) <= 8:
            pilots.append(d)
    for d in pilots:
        n = plan.seeds_for_drop(d, 3.0, 0.8)["n"]
        base, cand = cov.weak_pairs(n, 1000, rng, 3.0, 0.0)
        power = np.mean(cov.signflip_p(cand - base, resamples=2000)[0] <= cov.ALPHA)
        assert power >= 0.75, (n, np.std(d, ddof=1), power)


@pytest.mark.parametrize("n", [10, 30])
def test_the_sign_flip_interval_covers_the_true_difference(n):
    reps = 2000
    base, cand = cov.weak_pairs(n, reps, np.random.default_rng(n + 1), 3.0, 0.0)
    p = cov.signflip_p(cand - base, -3.0, resamples=2000)
    covered = np.mean((p[0] > cov.ALPHA) & (p[1] > cov.ALPHA))
    assert covered >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / reps)
