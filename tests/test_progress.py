"""progress: the live line on the controller (pure formatting, and a real run)."""

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
        "crafter-eval: 37/128 episodes done, 64 in flight, 1204 model calls, 2.1M tokens, "
        "$0.4200, 2 errors, ETA 1m05s"
    )
    assert "ETA" not in progress.line(done=0, total=None, counts={}, errors=1, eta_s=None)
    assert progress.eta(0, 10, 5.0) is None
    assert progress.eta(2, 6, 10.0) == 30.0  # 5 s an episode, 6 left


def test_progress_is_printed_when_asked_and_quieted_by_q(pytester):
    pytester.makefile(".yaml", **{"evals/slow": EVAL})
    base = ("-p", "no:cacheprovider", "-m", "not crafter_payload", "evals", "--concurrency", "2")
    shown = pytester.runpytest_subprocess(*base, "--progress", "0.3")
    shown.assert_outcomes(passed=4)
    shown.stdout.fnmatch_lines(
        ["crafter-eval: */4 episodes done, * in flight, * model calls, * tokens, $*, 0 errors*"]
    )
    quiet = pytester.runpytest_subprocess(*base, "--progress", "0.3", "-q")
    quiet.assert_outcomes(passed=4)
    assert "episodes done" not in quiet.stdout.str()
    bad = pytester.runpytest_subprocess(*base, "--progress", "soon")
    assert bad.ret == 4
    bad.stderr.fnmatch_lines(["*--progress: expected seconds from 0.1 to 3600, got 'soon'*"])
