"""trace: per-step traces (--trace-dir) and the episode GIFs, from real episodes against
the loopback local models, and through real pytest runs (the xdist run that writes them
for every episode is in test_html_report.py)."""

import base64
import copy
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_crafter_eval.agent.env import CrafterEnv
from pytest_crafter_eval.agent.episode import run_episode
from pytest_crafter_eval.config import spec
from pytest_crafter_eval.data import trace
from pytest_crafter_eval.wire.client import Connections


@pytest.fixture(scope="module")
def connections():
    c = Connections()
    yield c
    c.close()


def play(connections, tmp_path, text, seed=0):
    """Run one real episode with a TraceWriter; return (result, events seen, trace dir)."""
    path = tmp_path / "e.yaml"
    path.write_text(text)
    run = spec.load(path).runs[0]
    events = []
    directory = tmp_path / "trace" / trace.episode_path("e", run.model, seed)
    with trace.TraceWriter(directory) as writer:
        result = run_episode(
            run,
            seed,
            connections.for_model(run.model),
            eval_name="e",
            on_step=trace.chain(lambda e: events.append(copy.deepcopy(e)), writer),
        )
    return result, events, directory


def lines(directory):
    return [json.loads(x) for x in (directory / "steps.jsonl").read_text().splitlines()]


def test_steps_reference_frames_by_file_and_read_back_as_the_requests(connections, tmp_path):
    result, events, directory = play(connections, tmp_path, "models: [local/heuristic]\nsteps: 6\n")
    steps = lines(directory)
    assert [s["step"] for s in steps] == list(range(result.steps)) == list(range(6))
    text = (directory / "steps.jsonl").read_text()
    assert "base64" not in text, "images must be files, not inline"
    for line, event in zip(steps, events):
        image = line["messages"][1]["content"][1]["image_url"]
        assert image == {"url": f"frames/{line['step']:04d}.png", "detail": "low"}
        sent = event["request"]["messages"][1]["content"][1]["image_url"]["url"]
        assert (directory / image["url"]).read_bytes() == base64.b64decode(sent.split(",", 1)[1])
        assert np.array_equal(np.asarray(Image.open(directory / line["frame"])), event["frame"])
        assert line["messages"][-1]["role"] == "assistant"
        assert (
            line["messages"][-1]["tool_calls"]
            == event["response"]["choices"][0]["message"]["tool_calls"]
        )
        assert (
            line["tools"] == event["request"]["tools"]
            and line["params"]["model"] == "local/heuristic"
        )
        assert line["actions"] == event["actions"] and line["no_tool_call"] is None
    assert sum(s["reward"] for s in steps) == pytest.approx(result.reward)
    assert steps[-1]["reward_total"] == pytest.approx(result.reward)
    assert [a for s in steps for a in s["new_achievements"]] == steps[-1]["achievements"]
    assert set(steps[-1]["achievements"]) == set(result.achievements) != set()

    examples = list(trace.sft_examples(directory / "steps.jsonl"))
    assert len(examples) == 6
    for example, event in zip(examples, events):
        assert example["messages"][:-1] == event["request"]["messages"]  # the images inlined again
        assert example["messages"][-1]["tool_calls"]
        assert example["tools"] == event["request"]["tools"]
        assert set(example) == {"messages", "tools"}


def test_text_only_episodes_still_save_their_frames(connections, tmp_path):
    _, events, directory = play(
        connections, tmp_path, "models: [local/random]\nsteps: 3\nobservation: {image: false}\n"
    )
    for line, event in zip(lines(directory), events):
        assert all(
            isinstance(m["content"], str) or all(p["type"] == "text" for p in m["content"])
            for m in line["messages"][:-1]
        ), "the model saw no image"
        assert np.array_equal(np.asarray(Image.open(directory / line["frame"])), event["frame"])


def test_an_answer_without_tool_call_is_traced_but_no_sft_example(connections, tmp_path):
    result, _, directory = play(connections, tmp_path, "models: [local/silent]\nsteps: 5\n")
    (step,) = lines(directory)
    assert step["no_tool_call"] == result.no_tool_call and step["actions"] == []
    assert step["messages"][-1] == {
        "role": "assistant",
        "content": step["response"]["choices"][0]["message"]["content"],
    }
    assert list(trace.sft_examples(directory / "steps.jsonl")) == []
    assert len(list(trace.sft_examples(directory / "steps.jsonl", include_failed=True))) == 1


def test_a_new_trace_replaces_an_old_one(connections, tmp_path):
    play(connections, tmp_path, "models: [local/random]\nsteps: 4\n")
    _, _, directory = play(connections, tmp_path, "models: [local/random]\nsteps: 2\n")
    assert len(lines(directory)) == 2 and len(list((directory / "frames").iterdir())) == 2


def test_filmstrip_keeps_an_evenly_spaced_bounded_sample_and_saves_a_gif(tmp_path):
    film = trace.Filmstrip(max_frames=16)
    for step in range(1000):
        frame = np.zeros((128, 128, 3), np.uint8)
        frame[..., 0] = step % 256
        frame[..., 1] = step // 256
        film({"step": step, "frame": frame})
    assert 8 < len(film.frames) <= 16
    seen = [int(f[0, 0, 0]) + 256 * int(f[0, 0, 1]) for f in film.frames]
    assert seen == list(range(0, 1000, film.stride))
    path = film.save(tmp_path / "a" / "b.gif")
    gif = Image.open(path)
    assert gif.format == "GIF" and gif.size == (64, 64) and gif.n_frames == len(seen)
    gif.seek(3)
    assert np.asarray(gif.convert("RGB"))[0, 0, 0] == seen[3] % 256
    assert trace.Filmstrip().save(tmp_path / "none.gif") is None
    assert not (tmp_path / "none.gif").exists()


def test_filmstrip_keeps_crafter_frames_compressed_and_exact():
    env = CrafterEnv(3)
    env.reset()
    film, frames = trace.Filmstrip(), []
    for step in range(40):
        frames.append(env.frame())
        film({"step": step, "frame": frames[-1]})
        env.step("move_left" if step % 3 else "do")
    assert all(np.array_equal(a, b) for a, b in zip(film.frames, frames, strict=True))
    assert film.nbytes < 0.4 * sum(f.nbytes for f in frames)


def test_episode_paths_are_safe_directory_names():
    assert trace.episode_path("smoke", "local/random?seed=1&x=2", 3) == Path(
        "smoke", "local_random_seed_1_x_2", "seed-3"
    )
    assert trace.episode_path("e", "../..", 0) == Path("e", "_", "seed-0")


EVAL = "models: [local/random, local/silent]\nseeds: 0-1\nsteps: 3\nexpect: {min_achievements: 0}\n"


def test_trace_dir_from_the_ini_file_is_relative_to_it(pytester, monkeypatch):
    pytester.makefile(".yaml", **{"evals/smoke": EVAL})
    pytester.makeini("[pytest]\ncrafter_trace_dir = out/traces\ncrafter_model = local/random\n")
    monkeypatch.chdir(pytester.mkdir("sub"))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-m", "not crafter_payload", "../evals"
    )
    result.assert_outcomes(passed=2)
    assert not (pytester.path / "sub" / "out").exists()
    assert (
        pytester.path / "out" / "traces" / "smoke" / "local_random" / "seed-1" / "steps.jsonl"
    ).is_file()


def test_trace_dir_that_is_a_file_is_a_usage_error(pytester):
    pytester.makefile(".yaml", **{"evals/smoke": EVAL})
    pytester.makefile(".txt", taken="x")
    result = pytester.runpytest_subprocess("evals", "--trace-dir", "taken.txt")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--trace-dir: *taken.txt is not a directory*"])
    assert "Traceback" not in result.stderr.str()


def test_the_gif_shows_the_episodes_frames_with_their_colours(tmp_path):
    """One palette for the whole episode (fast octree): day, night and the inventory
    strip come back within a mean 3 of 255 a channel."""
    from pytest_crafter_eval.agent.env import CrafterEnv

    env, film, frames, dark = CrafterEnv(2), trace.Filmstrip(), [], []
    env.reset()
    for step in range(200):  # into the night
        if step % 10 == 0:
            frames.append(env.frame())
            film({"frame": frames[-1]})
            dark.append(env.daylight < 0.5)
        env.step(["move_left", "do", "noop", "noop"][step % 4])
        if env.done:
            break
    gif = Image.open(film.save(tmp_path / "e.gif"))
    assert gif.n_frames == len(frames) and any(dark) and not all(dark)
    for i, frame in enumerate(frames):
        gif.seek(i)
        error = np.abs(np.asarray(gif.convert("RGB")).astype(int) - frame).mean()
        assert error < 3, (i, error)  # median cut, 6 ms slower: 2.1 at worst here
