"""The eval as an RL environment: CrafterTools (TRL) and crafter_eval/Crafter-v0
(Gymnasium) play the harness's episodes exactly."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from pytest_crafter_eval.agent import episode
from pytest_crafter_eval.rl import CrafterTools, Source, SplitError
from pytest_crafter_eval.wire.local.inprocess import InProcess

gymnasium = pytest.importorskip("gymnasium")

from gymnasium.utils.env_checker import check_env  # noqa: E402

from pytest_crafter_eval.rl import ENV_ID  # noqa: E402

EVAL = """\
name: rl
seeds: {{train: 100-199, test: 0-9}}
steps: {steps}
history: {history}
answer: {answer}
models: [{model}]
"""


def _source(tmp_path, steps=30, history="{steps: 0}", answer="{}", model="local/heuristic"):
    path = tmp_path / "rl.yaml"
    path.write_text(EVAL.format(steps=steps, history=history, answer=answer, model=model))
    return Source.from_eval(path, include_test_seeds=True), path


def _harness(source, seed):
    events: list[dict] = []
    result = episode.run_episode(
        source.run,
        seed,
        InProcess(source.run.model),  # type: ignore[arg-type]
        eval_name="rl",
        instructions=source.instructions,
        on_step=events.append,
    )
    return result, events


def _sent_text(event) -> str:
    """The text of the request's current observation (its last user message)."""
    form = event["adapter"].chat_form(event["request"])
    user = [m for m in form["messages"] if m["role"] == "user"][-1]
    content = user["content"]
    return content if isinstance(content, str) else content[0]["text"]


@pytest.mark.parametrize(
    ("model", "history", "answer"),
    [
        ("local/heuristic", "{steps: 0}", "{}"),
        ("local/heuristic", "{steps: 2, images: 1}", "{}"),
        ("local/fumble", "{steps: 2}", "{on_invalid: noop}"),
    ],
)
def test_crafter_tools_play_the_harness_episode(tmp_path, model, history, answer):
    source, _ = _source(tmp_path, 30, history, answer, model)
    seed = 3
    result, events = _harness(source, seed)
    assert result.steps == 30 and result.end == "steps"
    tools = CrafterTools(source)
    first = tools.reset(seed=seed)
    assert first[0]["text"].startswith(episode.system_prompt(None, "tool"))
    for number, event in enumerate(events):
        assert tools.last is not None and tools.frame is not None
        assert tools.last.text == _sent_text(event), f"step {number}: observation text"
        assert np.array_equal(tools.frame, event["frame"]), f"step {number}: frame"
        reply = event["reply"]
        calls = [c for c in reply.tool_calls if c.name == "interact_many"]
        if len(calls) == 1 and len(reply.tool_calls) == 1:
            try:
                actions = json.loads(calls[0].arguments)["actions"]
            except (ValueError, KeyError, TypeError):
                actions = None
            blocks = (
                tools.interact_many(actions) if isinstance(actions, list) else tools.answer(reply)
            )
        else:
            blocks = tools.answer(reply)
        assert tools.reward == pytest.approx(event["reward"], abs=0), f"step {number}"
        assert list(tools.achievements) == event["achievements"]
        if not tools.done:
            image = np.asarray(blocks[1]["image"])
            assert np.array_equal(image, tools.frame)
    assert tools.reward == result.reward
    assert tools.achievements == result.achievements
    assert tools.steps == result.steps and tools.env.step_count == result.env_steps
    assert tools.done and tools.end == "steps"


def test_crafter_tools_factory_draws_training_seeds(tmp_path):
    path = tmp_path / "rl.yaml"
    path.write_text("seeds: {train: 100-102, test: 0-9}\nmodels: [local/heuristic]\n")
    factory = pickle.loads(pickle.dumps(CrafterTools.from_eval(path, rng_seed=1)))
    tools = factory()
    seeds = set()
    for _ in range(6):
        tools.reset()
        seeds.add(tools.seed)
    assert seeds <= {100, 101, 102} and len(seeds) > 1
    with pytest.raises(SplitError, match="seed 4 is a test seed"):
        tools.reset(seed=4)


@pytest.mark.parametrize("actions", ["discrete", "sequence"])
def test_gym_env_passes_check_env(actions):
    env = gymnasium.make(ENV_ID, actions=actions)
    check_env(env.unwrapped, skip_render_check=True)


def test_gym_env_replays_harness_episodes(tmp_path):
    source, path = _source(tmp_path, steps=12)
    env = gymnasium.make(ENV_ID, eval=str(path), actions="sequence", include_test_seeds=True)
    for seed in range(10):
        result, events = _harness(source, seed)
        observation, info = env.reset(seed=seed)
        total = 0.0
        for number, event in enumerate(events):
            assert observation["text"] == _sent_text(event), f"seed {seed} step {number}"
            assert np.array_equal(observation["image"], event["frame"])
            actions = [episode.ACTIONS.index(a) for a in event["actions"]]
            observation, reward, terminated, truncated, info = env.step(np.array(actions))
            total += reward
            assert list(info["achievements"]) == event["achievements"]
            assert info["split"] == "test"
        assert total == pytest.approx(result.reward, abs=1e-9)
        assert info["achievements"] == result.achievements
        assert info["env_steps"] == result.env_steps
        assert truncated == (result.end == "steps") and terminated == (result.end == "done")
