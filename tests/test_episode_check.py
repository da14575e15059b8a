"""episode.check: the per-episode expectations, judged on a result (pure)."""

from pytest_crafter_eval.agent.episode import EpisodeResult, check
from pytest_crafter_eval.config import spec

MISSED = {"step": 99, "class": "text_answer", "message": "finish_reason=stop, text answer: 'hm'"}


def result(**fields) -> EpisodeResult:
    return EpisodeResult(eval="e", model="m", seed=0, **fields)


def test_a_late_miss_fails_only_when_the_rate_falls_below_the_threshold():
    late = result(steps=100, tool_calls=99, no_tool_call=MISSED, end="no_tool_call")
    assert check(late, spec.Expect(min_tool_call_rate=0.9)) == []
    problems = check(late, spec.Expect(min_tool_call_rate=1.0))
    assert problems == [
        (
            "tool-call rate 0.99 is below expect.min_tool_call_rate=1.0 "
            "(no tool call at step 99: finish_reason=stop, text answer: 'hm')"
        )
    ]


def test_a_miss_at_the_first_step_names_its_reason():
    first = result(steps=1, tool_calls=0, no_tool_call=dict(MISSED, step=0), end="no_tool_call")
    assert check(first, spec.Expect()) == [
        "no tool call at step 0: finish_reason=stop, text answer: 'hm'"
    ]
    assert check(first, spec.Expect(tool_call_at_first_step=False)) == []


def test_achievement_floor_and_errors():
    played = result(steps=10, tool_calls=10, achievements={"collect_wood": 1})
    assert check(played, spec.Expect(min_achievements=1)) == []
    assert check(played, spec.Expect(min_achievements=2)) == [
        "1 achievement(s) (collect_wood), expected at least expect.min_achievements=2"
    ]
    assert check(result(steps=1, error="HTTP 500"), spec.Expect(min_achievements=5)) == []
