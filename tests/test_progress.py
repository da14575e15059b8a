"""progress: the live line on the controller (pure formatting, and a real run)."""

import pytest

from pytest_crafter_eval.run import progress

EVAL = """\
models:
  - local/random?latency_ms=150:
      expect: {min_achievements: 0}
seeds: 0-3
steps: 6
"""


def test_line_names_every_count_and_the_eta():
    counts = {"in_flight": 64, "calls": 1204, "tokens": 2_100_000, "cost_usd": 0.42}
    text = progress.line(done=37, total=128, counts=counts, errors=2, eta_s=65)
    assert text == (
        "crafter-eval: 37/128 episodes done, 64 in flight, 27 waiting, 1204 model calls, "
        "2.1M tokens, $0.4200, 2 errors, ETA 1m05s"
    )
    assert "ETA" not in progress.line(done=0, total=None, counts={}, errors=1, eta_s=None)


def test_line_adds_up_and_leaves_out_a_zero_cost():
    counts = {"in_flight": 5, "calls": 40, "tokens": 1200, "cost_usd": 0.0}
    text = progress.line(done=4, total=12, counts=counts, errors=0, eta_s=None)
    # 4 done + 5 in flight + 3 waiting = 12; a free model's run shows no "$0.0000"
    assert text == (
        "crafter-eval: 4/12 episodes done, 5 in flight, 3 waiting, 40 model calls, "
        "1200 tokens, 0 errors"
    )
    # a tally that counts more in flight than are left (a worker died mid-episode) is capped
    text = progress.line(done=10, total=12, counts={"in_flight": 5}, errors=0, eta_s=None)
    assert "10/12 episodes done, 2 in flight, 0 waiting" in text


def test_eta_counts_parallel_episodes_not_start_up():
    # 12 episodes of 20 s, 8 at a time; the first ends 28 s into the run (start-up 8 s), 7
    # are still in flight and 4 wait. The old estimate, time so far / episodes done x
    # episodes left, said 11 x 28 s = 5m08s; the run ends about 30 s later.
    assert progress.eta([20.0], waiting=4, in_flight=7, parallel=8) == 30.0
    assert progress.eta([20.0, 20.0], waiting=0, in_flight=0, parallel=8) == 0.0
    assert progress.eta([], waiting=4, in_flight=8, parallel=8) is None
    assert progress.eta([10.0, 30.0], waiting=3, in_flight=1, parallel=1) == 70.0


def test_the_line_is_rewritten_in_place_on_a_terminal_only_when_nothing_came_between():
    assert progress.in_place(tty=True, unchanged=True)
    assert not progress.in_place(tty=True, unchanged=False)  # a test reported: new line
    assert not progress.in_place(tty=False, unchanged=True)  # a CI log keeps every line
    assert progress.REWRITE == "\x1b[F\x1b[2K"


@pytest.mark.slow
def test_progress_is_printed_when_asked_and_quieted_by_q(pytester):
    pytester.makefile(".yaml", **{"evals/slow": EVAL})
    base = (
        "-p",
        "no:cacheprovider",
        "-m",
        "not crafter_payload",
        "evals",
        "--episodes-per-process",
        "2",
    )
    shown = pytester.runpytest_subprocess(*base, "--progress", "0.3")
    shown.assert_outcomes(passed=4)
    shown.stdout.fnmatch_lines(
        [
            "crafter-eval: */4 episodes done, * in flight, * waiting, * model calls, * tokens, 0 errors*"
        ]
    )
    quiet = pytester.runpytest_subprocess(*base, "--progress", "0.3", "-q")
    quiet.assert_outcomes(passed=4)
    assert "episodes done" not in quiet.stdout.str()
    bad = pytester.runpytest_subprocess(*base, "--progress", "soon")
    assert bad.ret == 4
    bad.stderr.fnmatch_lines(["*--progress: expected seconds from 0.1 to 3600, got 'soon'*"])
