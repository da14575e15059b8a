"""Benchmarks: how much the harness costs next to the model, and how it scales.

    make bench                        # = python benchmarks/run.py, a few minutes
    python benchmarks/run.py --tiny   # seconds; the test suite runs this
    python benchmarks/run.py --only overhead_ratio,reset_median_s

Prints a table and writes benchmarks/results.json (or --out): the machine's description
and, for each key, its value, goal and pass/fail. Figures that depend on the machine's
speed are ratios against a floor or an ideal measured in the same run, so that they hold
on a noisy shared machine. Every model is served by its own process (`crafter-eval
serve`), as a remote API is: its CPU and memory are not the harness's.

  overhead_ratio            steps/s of episodes of local/random (1-8 actions a call) over
                            loopback HTTP, over steps/s of the raw floor on the same seeds
                            and actions, 64x64: stock crafter's Env.step (which renders
                            every step), a frame, PNG and data URI per call, the loop a
                            user would write without the harness (the goal was set against
                            it). The harness plays a faster exact copy of that game
                            (agent/env.py); its own floor is in the details.
  harness_cpu_ms_per_call   CPU milliseconds of the client per model call (observation,
                            PNG, request, parse, record; no trace), one episode at a time.
  parallel_wall_over_ideal  wall time of `pytest -n 2 --concurrency 4` on E episodes x S
                            steps of a model answering in 200 ms, start-up included, over
                            E*S*0.2/8 (8 in flight). The model plays one random action per
                            call: with 1-8, most episodes die within 50 calls, and uneven
                            episodes would measure the workload's imbalance, not the harness.
  inflight_wall_over_ideal  wall time of `pytest -n 2 --concurrency 64` on 128 episodes x 20
                            calls of a model answering in 1 s, over 128*20*1/128 = 20 s;
                            the fastest of 3 runs (all in the details).
  inflight_peak_rss_mb      the peak RSS of all that run's processes together (controller
                            and workers), 128 in flight; the largest of the 3 runs.
  rss_mb_per_episode_in_flight  that peak above an idle run's of the same processes, per
                            episode in flight.
  rate_limited_wall_over_ideal  wall time of `pytest -n 2 --concurrency 8` against one
                            `crafter-eval serve` of a model that takes R requests a minute
                            (429 with retry-after-ms beyond it), over requests / R; the
                            run must end with no error.
  reset_median_s            median CPU seconds of `CrafterEnv(seed).reset()` (the world
                            generator's one-off set-up in a process is reported apart).
  collect_20k_s             seconds to collect 20 models x 1,000 seeds (pytest's own
                            collection, measured inside the pytest process; the file's
                            20 payload snapshot items are collected too, and deselected).
  snapshot_50_s             seconds to collect and run the payload snapshot items of an
                            eval file with 50 models, inside the pytest process.
  worker_peak_rss_mb        largest peak RSS of an xdist worker of the parallel run.
  text_tags_scaling         seconds to read an answer of 4N characters of unclosed
                            `<tool_call>` tags over 4 x the seconds for N characters (the
                            best of 3 each): 1 when the work is linear in the text's length,
                            4 when quadratic.
  history16_cached_share    one episode of local/heuristic (seed 0, at most 50 calls,
                            history 16, images 0) over loopback HTTP, layout blocks: the
                            share of its input tokens, over the steps after the history is
                            full, that the local server's prompt cache reports cached
                            (OpenAI's rule: the prefix shared with an earlier request of
                            the same model and prompt_cache_key, from 1,024 tokens in
                            steps of 128). images 1 and the whole episode in the details.
  history16_cost_ratio_<model>  input cost per step of that episode in layout blocks over
                            layout window, at the model profile's input and cached-input
                            prices, over the same steps; details: both layouts' input
                            tokens per step and cached shares, images 0 and 1.

Exit status: 0 when every measured goal is met (always 0 with --tiny), 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# key -> (comparison, goal, unit)
GOALS: dict[str, tuple[str, float, str]] = {
    "overhead_ratio": (">=", 0.5, ""),
    "harness_cpu_ms_per_call": ("<=", 2.0, "ms"),
    "parallel_wall_over_ideal": ("<=", 1.25, ""),
    "reset_median_s": ("<=", 0.03, "s"),
    "collect_20k_s": ("<=", 3.0, "s"),
    "snapshot_50_s": ("<=", 2.0, "s"),
    "worker_peak_rss_mb": ("<=", 200.0, "MB"),
    "inflight_wall_over_ideal": ("<=", 1.15, ""),
    "inflight_peak_rss_mb": ("<=", 400.0, "MB"),
    "rss_mb_per_episode_in_flight": ("<=", 1.0, "MB"),
    "rate_limited_wall_over_ideal": ("<=", 1.2, ""),
    "text_tags_scaling": ("<=", 1.5, ""),
    "history16_cached_share": (">=", 0.8, ""),
    "history16_cost_ratio_gpt-4o-mini": ("<=", 0.8, ""),
    "history16_cost_ratio_gpt-5-mini": ("<=", 0.35, ""),
}
HISTORY_PRICED = ("gpt-4o-mini", "gpt-5-mini")  # the cost ratios' profiles

SIZES: dict[str, dict[str, int]] = {
    # parallel: 32 episodes x 50 steps x 0.2 s / 8 in flight = an ideal of 40 s
    # inflight: 128 episodes x 20 steps x 1 s / 128 in flight = an ideal of 20 s
    # rate limited: 40 episodes x 12 steps at 600 requests a minute = an ideal of 48 s
    "full": {
        "overhead_seeds": 6,
        "overhead_steps": 50,
        "overhead_rounds": 5,
        "parallel_episodes": 32,
        "parallel_steps": 50,
        "workers": 2,
        "concurrency": 4,
        "latency_ms": 200,
        "inflight_episodes": 128,
        "inflight_steps": 20,
        "inflight_workers": 2,
        "inflight_concurrency": 64,
        "inflight_latency_ms": 1000,
        "inflight_rounds": 3,
        "limited_episodes": 40,
        "limited_steps": 12,
        "limited_rpm": 600,
        "limited_workers": 2,
        "limited_concurrency": 8,
        "reset_seeds": 50,
        "collect_models": 20,
        "collect_seeds": 1000,
        "snapshot_models": 50,
        "text_chars": 110_000,
        "history_calls": 50,
        "history_steps": 16,
    },
    "tiny": {
        "overhead_seeds": 1,
        "overhead_steps": 4,
        "overhead_rounds": 1,
        "parallel_episodes": 2,
        "parallel_steps": 2,
        "workers": 1,
        "concurrency": 2,
        "latency_ms": 20,
        "inflight_episodes": 4,
        "inflight_steps": 2,
        "inflight_workers": 1,
        "inflight_concurrency": 4,
        "inflight_latency_ms": 50,
        "limited_episodes": 4,
        "limited_steps": 3,
        "limited_rpm": 600,
        "limited_workers": 1,
        "limited_concurrency": 4,
        "reset_seeds": 2,
        "collect_models": 2,
        "collect_seeds": 10,
        "snapshot_models": 2,
        "text_chars": 11_000,
        "history_calls": 12,  # past a cut, with prompts above 1,024 tokens
        "history_steps": 4,
    },
}

# Written into each temporary pytest run: records collection time, episode results and
# each process's peak RSS, and writes them as JSON to $CRAFTER_BENCH_OUT.
PROBE = """\
import json, os, resource, time
import pytest

_seen = {"collect_s": None, "items": 0, "episodes": [], "rss_kb": {}}


def _peak_rss_kb():
    # VmHWM: this process's own peak. ru_maxrss also counts the parent's RSS when it
    # started this process (Linux keeps it across exec): the benchmark's own memory.
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
_started = [None]   # collection start: session_s is collection plus running


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_collection(session):
    _seen["start"] = _started[0] = time.perf_counter()
    yield


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    _seen["collect_s"] = time.perf_counter() - _seen.pop("start")
    _seen["items"] = len(items)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_setup(item):
    usage = resource.getrusage(resource.RUSAGE_SELF)
    item.user_properties.append(("bench_started", (time.time(), usage.ru_utime + usage.ru_stime)))
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    if call.when == "teardown":
        item.user_properties.append(("bench_worker", os.environ.get("PYTEST_XDIST_WORKER", "main")))
        item.user_properties.append(("bench_rss_kb", _peak_rss_kb()))
    yield


def pytest_runtest_logreport(report):
    if report.when != "teardown" or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    props = dict(report.user_properties)
    if "crafter_episode" in props:
        _seen["episodes"].append({**props["crafter_episode"], "worker": props.get("bench_worker"),
                                  "started": props.get("bench_started")})
    if "bench_rss_kb" in props:
        worker = props["bench_worker"]
        _seen["rss_kb"][worker] = max(_seen["rss_kb"].get(worker, 0), props["bench_rss_kb"])


def pytest_sessionfinish(session):
    if _started[0] is not None:
        _seen["session_s"] = time.perf_counter() - _started[0]
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        _seen["controller_rss_kb"] = _peak_rss_kb()
        with open(os.environ["CRAFTER_BENCH_OUT"], "w") as f:
            json.dump(_seen, f)
"""


# -- the machine ----------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What ran the benchmarks, next to the figures."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": _memory_gb(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        # the pytest runs measured here cache bytecode whatever this says (_pytest_run)
        "bytecode_cache_off_in_env": bool(os.environ.get("PYTHONDONTWRITEBYTECODE")),
        "packages": {
            name: _version(name)
            for name in (
                "pytest-crafter-eval",
                "crafter",
                "pytest",
                "pytest-xdist",
                "openai",
                "numpy",
                "pillow",
            )
        },
        "commit": _git_commit(),
    }
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# -- measures -------------------------------------------------------------------------


def measure_overhead(size: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Episodes of local/random over loopback HTTP against the raw floor, same seeds and
    actions: overhead_ratio and harness_cpu_ms_per_call.

    Both are timed from the end of the first model call to the end of the last one, so
    world generation (see reset_median_s) and connection set-up count in neither. Each
    seed is played `overhead_rounds` times, episode and floor in turn, and the fastest
    of each counts: what other processes on the machine add is not the harness's cost.
    The model is served by its own process (`crafter-eval serve`), as a remote API is,
    so this process's CPU time is the client's alone: observation, PNG, request, parse,
    record (no trace), per model call.
    """
    from pytest_crafter_eval.agent.env import CrafterEnv
    from pytest_crafter_eval.agent.episode import run_episode
    from pytest_crafter_eval.config import spec
    from pytest_crafter_eval.wire.client import Connections

    run = spec.Run(
        model="gpt-4o-mini",
        steps=size["overhead_steps"],
        observation=spec.Observation(image=spec.Image(64, "low"), text=True),
        request=spec.Request(),
        expect=spec.Expect(),
    )
    stack = contextlib.ExitStack()
    os.environ.setdefault("CRAFTER_BENCH_API_KEY", "sk-bench-not-a-key")
    base_url = stack.enter_context(served("local/random"))
    connections = Connections(base_url=base_url, api_key_env="CRAFTER_BENCH_API_KEY")
    client = connections.for_model(run.model)
    harness = [0.0, 0.0]  # wall, CPU seconds
    floor = [0.0, 0.0]  # the harness's own env: steps, frame, PNG
    stock = [0.0, 0.0]  # stock crafter.Env: steps (each rendering), frame, PNG
    timed_steps = timed_calls = stock_steps = 0
    try:
        for seed in range(size["overhead_seeds"]):
            best_harness, best_floor = [float("inf")] * 2, [float("inf")] * 2
            best_stock = [float("inf")] * 2
            for _ in range(size["overhead_rounds"]):
                marks: list[tuple[float, float]] = []
                actions: list[list[str]] = []

                def on_step(info: dict[str, Any]) -> None:
                    marks.append((time.perf_counter(), time.process_time()))  # noqa: B023
                    actions.append(info["actions"])  # noqa: B023 (called in this iteration)

                run_episode(run, seed, client, eval_name="bench", on_step=on_step)
                calls_timed = len(marks) - 1  # episodes of local/random often die early
                for i in range(2):
                    best_harness[i] = min(best_harness[i], marks[-1][i] - marks[0][i])

                env = CrafterEnv(seed, size=64)
                env.reset()
                steps, spent = _time_floor(env, actions)
                played, spent_stock = _time_floor(_StockGame(seed), actions)
                for i in range(2):
                    best_floor[i] = min(best_floor[i], spent[i])
                    best_stock[i] = min(best_stock[i], spent_stock[i])
            timed_steps += steps
            timed_calls += calls_timed
            stock_steps += played
            for i in range(2):
                harness[i] += best_harness[i]
                floor[i] += best_floor[i]
                stock[i] += best_stock[i]
    finally:
        connections.close()
        stack.close()
    harness_rate, floor_rate = timed_steps / harness[0], timed_steps / floor[0]
    stock_rate = stock_steps / stock[0]
    calls = timed_calls  # not seeds x (steps - 1): most episodes end before 50 calls
    cpu_per_call = {
        "value": round(1000 * harness[1] / calls, 3),
        "floor_cpu_ms_per_call": round(1000 * floor[1] / calls, 3),
        "model_calls": calls,
        "image_size": 64,
        "note": "CPU of this process per model call (the model served by another process), "
        "one episode at a time; floor: Crafter step, frame, PNG and data URI alone. "
        "inflight_wall_over_ideal's cpu_ms_per_call is the same with 128 in flight",
    }
    return {
        "harness_cpu_ms_per_call": cpu_per_call,
        "overhead_ratio": {
            "value": round(harness_rate / stock_rate, 3),
            "harness_steps_per_s": round(harness_rate, 1),
            "floor_steps_per_s": round(stock_rate, 1),
            "floor": "stock crafter.Env: step (renders), frame, PNG, data URI",
            "over_own_env": round(harness_rate / floor_rate, 3),
            "own_env_steps_per_s": round(floor_rate, 1),
            "cpu_ratio": round(stock[1] / harness[1], 3),
            "harness_ms_per_call": round(1000 * (harness[0] - floor[0]) / calls, 2),
            "crafter_steps": timed_steps,
            "episodes": size["overhead_seeds"],
            "rounds": size["overhead_rounds"],
            "model_calls_per_episode_at_most": size["overhead_steps"],
            "image_size": 64,
        },
    }


class _StockGame:
    """Stock `crafter.Env` (1.8.3; its step renders a frame) on `seed`, reset, stepped by
    action name as `CrafterEnv` is: what `_time_floor` plays."""

    def __init__(self, seed: int):
        import crafter
        from crafter import constants

        self._env = crafter.Env(size=(64, 64), seed=seed)
        self._env.reset()
        self._index = {name: i for i, name in enumerate(constants.actions)}
        self.done = False

    def step(self, action: str) -> None:
        _, _, self.done, _ = self._env.step(self._index[action])

    def frame(self):
        return self._env.render()


def _time_floor(game, actions: list[list[str]]) -> tuple[int, tuple[float, float]]:
    """The floor of an episode's model calls on `game` (reset; `CrafterEnv` or
    `_StockGame`): a frame and its data URI, then the call's actions, per call; timed
    like the harness, from the end of the first call: (steps played, (wall, CPU s))."""
    from pytest_crafter_eval.agent.env import data_uri

    data_uri(game.frame())
    _play(game, actions[0])
    started = (time.perf_counter(), time.process_time())
    steps = 0
    for call in actions[1:]:
        data_uri(game.frame())
        steps += _play(game, call)
    ended = (time.perf_counter(), time.process_time())
    return steps, (ended[0] - started[0], ended[1] - started[1])


def _play(env, actions: list[str]) -> int:
    played = 0
    for action in actions:
        if env.done:
            break
        env.step(action)
        played += 1
    return played


def measure_parallel(size: dict[str, int], workdir: Path) -> dict[str, dict[str, Any]]:
    """A real `pytest -n W` run: parallel_wall_over_ideal and worker_peak_rss_mb."""
    episodes, steps, workers = size["parallel_episodes"], size["parallel_steps"], size["workers"]
    concurrency = size["concurrency"]
    latency = size["latency_ms"] / 1000
    model = f"local/random?max_actions=1&latency_ms={size['latency_ms']}"
    run, _ = _run_served(workdir, "parallel", model, episodes, steps, workers, concurrency)
    probe = run["probe"]
    found = probe["episodes"]
    if len(found) != episodes or run["returncode"] != 0:
        raise RuntimeError(
            f"parallel run: {len(found)} of {episodes} episodes, "
            f"pytest exit {run['returncode']}:\n{run['tail']}"
        )
    calls = sum(e["steps"] for e in found)
    ideal = calls * latency / (workers * concurrency)
    per_worker: dict[str, int] = {}
    first_start: dict[
        str, list[float]
    ] = {}  # worker -> [wall clock, CPU seconds] at its first episode
    for e in found:
        per_worker[e["worker"]] = per_worker.get(e["worker"], 0) + e["steps"]
        first_start[e["worker"]] = min(first_start.get(e["worker"], e["started"]), e["started"])
    rss = probe["rss_kb"]
    return {
        "parallel_wall_over_ideal": {
            "value": round(run["wall_s"] / ideal, 3),
            "wall_s": round(run["wall_s"], 2),
            "ideal_s": round(ideal, 2),
            "cpu_s": round(run["cpu_s"], 2),
            "episodes": episodes,
            "steps": steps,
            "model_calls": calls,
            "latency_ms": size["latency_ms"],
            "workers": workers,
            "concurrency": concurrency,
            "busiest_worker_calls": max(per_worker.values()),
            "busiest_worker_ideal_s": round(max(per_worker.values()) * latency / concurrency, 2),
            "worker_start_s": round(
                statistics.median(w for w, _ in first_start.values()) - run["started"], 2
            ),
            "worker_start_cpu_s": round(statistics.median(c for _, c in first_start.values()), 2),
            "ended_early": sum(e["steps"] < steps for e in found),
            "command": f"pytest evals -n {workers} --concurrency {concurrency}",
        },
        "worker_peak_rss_mb": {
            "value": round(max(rss.values()) / 1024, 1),
            "per_worker_mb": {w: round(kb / 1024, 1) for w, kb in sorted(rss.items())},
            "note": "peak RSS (VmHWM) of each xdist worker after each of its episodes (64x64, "
            f"{steps} steps, the model served by its own process)",
        },
    }


def measure_inflight(size: dict[str, int], workdir: Path) -> dict[str, dict[str, Any]]:
    """A real `pytest -n W --concurrency C` run with W*C episodes in flight against a
    model served by its own process: inflight_wall_over_ideal, inflight_peak_rss_mb and
    rss_mb_per_episode_in_flight.

    A second, small run (one episode in flight per worker, a model answering at once)
    measures what the same processes cost with nothing in flight: start-up, imports,
    the world generator's set-up. Memory and CPU above it are the episodes'."""
    episodes, steps = size["inflight_episodes"], size["inflight_steps"]
    workers, concurrency = size["inflight_workers"], size["inflight_concurrency"]
    latency = size["inflight_latency_ms"] / 1000

    def run_against(model: str, n_episodes: int, n_concurrency: int, name: str):
        run, command = _run_served(workdir, name, model, n_episodes, steps, workers, n_concurrency)
        found = run["probe"]["episodes"]
        if len(found) != n_episodes or run["returncode"] != 0:
            raise RuntimeError(
                f"{name} run: {len(found)} of {n_episodes} episodes, "
                f"pytest exit {run['returncode']}:\n{run['tail']}"
            )
        rss = run["probe"]["rss_kb"]
        total_mb = (sum(rss.values()) + run["probe"]["controller_rss_kb"]) / 1024
        return run, sum(e["steps"] for e in found), total_mb, command

    base, base_calls, base_mb, _ = run_against("local/random?max_actions=1", workers, 1, "idle")
    # The fastest of `inflight_rounds` runs counts, as the fastest round does for
    # overhead_ratio: what other processes on a shared machine add (this one's wall time
    # moved by +-1 s between identical runs) is not the harness's cost. Memory is the
    # largest of the runs'.
    rounds = [
        run_against(
            f"local/random?max_actions=1&latency_ms={size['inflight_latency_ms']}",
            episodes,
            concurrency,
            f"inflight{i}",
        )
        for i in range(size.get("inflight_rounds", 1))
    ]
    run, calls, _, command = min(rounds, key=lambda r: r[0]["wall_s"])
    heaviest, _, total_mb, _ = max(rounds, key=lambda r: r[2])
    walls = [round(r[0]["wall_s"], 2) for r in rounds]
    in_flight = min(episodes, workers * concurrency)
    ideal = calls * latency / in_flight
    rss = heaviest["probe"]["rss_kb"]
    return {
        "inflight_wall_over_ideal": {
            "value": round(run["wall_s"] / ideal, 3),
            "wall_s": round(run["wall_s"], 2),
            "ideal_s": round(ideal, 2),
            "cpu_s": round(run["cpu_s"], 2),
            "cpu_ms_per_call": round(
                1000 * (run["cpu_s"] - base["cpu_s"]) / (calls - base_calls), 2
            ),
            "idle_cpu_s": round(base["cpu_s"], 2),
            "walls_s": walls,
            "episodes": episodes,
            "model_calls": calls,
            "latency_ms": size["inflight_latency_ms"],
            "in_flight": in_flight,
            "command": "pytest " + " ".join(command) + " --base-url <crafter-eval serve>",
            "note": "cpu_ms_per_call: the run's CPU above the idle run's (same processes, "
            "one episode in flight each), per model call above it; the server not included",
        },
        "inflight_peak_rss_mb": {
            "value": round(total_mb, 1),
            "controller_mb": round(heaviest["probe"]["controller_rss_kb"] / 1024, 1),
            "per_worker_mb": {w: round(kb / 1024, 1) for w, kb in sorted(rss.items())},
            "note": f"sum of the peak RSS (VmHWM) of every process of the run, {in_flight} in flight "
            "(the model's server, in its own process, not included)",
        },
        "rss_mb_per_episode_in_flight": {
            "value": round((total_mb - base_mb) / max(in_flight - workers, 1), 3),
            "idle_mb": round(base_mb, 1),
            "note": "(inflight_peak_rss_mb - the idle run's) / (episodes in flight - workers)",
        },
    }


def measure_rate_limited(size: dict[str, int], workdir: Path) -> dict[str, Any]:
    """Episodes against one `crafter-eval serve` that takes `limited_rpm` requests a
    minute: wall time over requests / rpm, with no error allowed."""
    episodes, steps, rpm = size["limited_episodes"], size["limited_steps"], size["limited_rpm"]
    workers, concurrency = size["limited_workers"], size["limited_concurrency"]
    model = f"local/random?max_actions=1&rpm={rpm}"
    run, command = _run_served(workdir, "limited", model, episodes, steps, workers, concurrency)
    found = run["probe"]["episodes"]
    errors = [e for e in found if e.get("outcome") != "passed"]
    if len(found) != episodes or run["returncode"] != 0 or errors:
        raise RuntimeError(
            f"rate-limited run: {len(found)} of {episodes} episodes, {len(errors)} not "
            f"passed, pytest exit {run['returncode']}:\n{run['tail']}"
        )
    calls = sum(e["steps"] for e in found)
    ideal = calls / (rpm / 60)
    return {
        "value": round(run["wall_s"] / ideal, 3),
        "wall_s": round(run["wall_s"], 2),
        "ideal_s": round(ideal, 2),
        "model_calls": calls,
        "rpm": rpm,
        "retried_429": sum(e["retries"].get("429", 0) for e in found),
        "errors": 0,
        "command": "pytest " + " ".join(command) + " --base-url <crafter-eval serve, rpm>",
    }


def _run_served(
    workdir: Path, name: str, model: str, episodes: int, steps: int, workers: int, concurrency: int
) -> tuple[dict[str, Any], list[str]]:
    """`pytest evals -n W --concurrency C` of one eval file (gpt-4o-mini, `episodes` seeds,
    `steps` calls each) against `model` served by its own process; (run, command)."""
    eval_text = textwrap.dedent(f"""\
        models:
          - gpt-4o-mini
        seeds: 0-{episodes - 1}
        steps: {steps}
        expect: {{min_tool_call_rate: 0.0, min_achievements: 0}}
        """)
    command = ["evals", "-n", str(workers), "--concurrency", str(concurrency)]
    with served(model) as base_url:
        run = _pytest_run(
            workdir / name,
            {f"evals/{name}.yaml": eval_text},
            # -p no:anyio: anyio's pytest plugin (openai depends on anyio) imports trio in
            # every process when trio is installed, ~0.4 s each; only this repo's test
            # extra (selenium) installs it, and no eval uses anyio.
            command + ["-m", "not crafter_payload", "-p", "no:anyio", "--base-url", base_url],
            extra_env={"OPENAI_API_KEY": "sk-bench-not-a-key"},
        )
    return run, command


@contextlib.contextmanager
def served(model: str) -> Iterator[str]:
    """`crafter-eval serve --model MODEL` in its own process, as a remote API is: yields
    its base URL; its CPU and memory are not the harness's."""
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "pytest_crafter_eval.cli", "serve", "--model", model]
        + ["--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"crafter-eval serve did not start on port {port}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.wait(timeout=30)


def measure_reset(size: dict[str, int]) -> dict[str, Any]:
    """Median CPU seconds of `CrafterEnv(seed).reset()`: world generation dominates.

    CPU, not wall time: other processes on a shared machine do not count. The first
    reset of a process also sets up the world generator (agent/worldgen.py `_Plan`);
    it is timed apart, as `first_reset_cpu_s`, and not in the median."""
    from pytest_crafter_eval.agent.env import CrafterEnv

    def timed(seed: int) -> tuple[float, float]:
        env = CrafterEnv(seed)
        started, started_cpu = time.perf_counter(), time.process_time()
        env.reset()
        return time.perf_counter() - started, time.process_time() - started_cpu

    first = timed(size["reset_seeds"])
    times, cpu = zip(*(timed(seed) for seed in range(size["reset_seeds"])))
    return {
        "value": round(statistics.median(cpu), 4),
        "max_cpu_s": round(max(cpu), 4),
        "median_wall_s": round(statistics.median(times), 4),
        "first_reset_cpu_s": round(first[1], 4),
        "seeds": size["reset_seeds"],
    }


def measure_text_tags(size: dict[str, int]) -> dict[str, Any]:
    """How reading an answer's text scales: 4N characters of unclosed tags over N."""
    from pytest_crafter_eval.wire.answers import parse_text

    def best(chars: int) -> float:
        text = "<tool_call>x" * (chars // 12)
        times = []
        for _ in range(3):
            started = time.perf_counter()
            parse_text(text)
            times.append(time.perf_counter() - started)
        return min(times)

    small, large = best(size["text_chars"]), best(4 * size["text_chars"])
    return {
        "value": round(large / small / 4, 3),
        "chars": [size["text_chars"], 4 * size["text_chars"]],
        "seconds": [round(small, 4), round(large, 4)],
    }


def measure_history_cache(size: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Layouts window and blocks of a 16-step history: input tokens per step, the share
    the prompt cache served, and the input cost per step at cached prices, over the
    steps after the history is full (the first 16 requests are the same in both
    layouts; the whole episode's figures are in the details)."""
    import openai

    from pytest_crafter_eval.agent.episode import run_episode
    from pytest_crafter_eval.config import profiles, spec
    from pytest_crafter_eval.wire.client import ModelClient
    from pytest_crafter_eval.wire.local import LocalServer

    prices = {m: profiles.resolve(m).prices for m in HISTORY_PRICED}
    history = size["history_steps"]

    def figures(usages: list[Any]) -> dict[str, float]:
        tokens = sum(u.input for u in usages)
        cached = sum(u.cached for u in usages)
        row = {
            "steps": len(usages),
            "input_tokens_per_step": round(tokens / len(usages), 1),
            "cached_share": round(cached / tokens, 4),
        }
        for model, p in prices.items():
            assert p is not None and p.cached is not None, model
            row[model] = ((tokens - cached) * p.input + cached * p.cached) / len(usages) / 1e6
        return row

    rows: dict[tuple[int, str], dict[str, dict[str, float]]] = {}
    with (
        LocalServer() as server,
        openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0) as sdk,
    ):
        client = ModelClient(sdk)
        for images in (0, 1):
            for layout in ("window", "blocks"):
                run = spec.Run(
                    model="local/heuristic",
                    steps=size["history_calls"],
                    observation=spec.Observation(),
                    request=spec.Request(),
                    expect=spec.Expect(),
                    history=spec.History(history, images, layout),
                    answer=spec.Answer(on_invalid="noop"),
                )
                events: list[dict[str, Any]] = []
                run_episode(
                    run,
                    0,
                    client,
                    eval_name=f"bench-{layout}-{images}",  # a cache key of its own
                    on_step=events.append,
                )
                steps = [(event["step"], event["reply"].usage) for event in events]
                rows[images, layout] = {
                    "full_history": figures([u for step, u in steps if step > history]),
                    "whole_episode": figures([u for _, u in steps]),
                }

    def ratio(images: int, model: str, part: str = "full_history") -> float:
        blocks, window = rows[images, "blocks"][part], rows[images, "window"][part]
        return round(blocks[model] / window[model], 4)

    def shown(row: dict[str, float]) -> dict[str, float]:
        return {k: v for k, v in row.items() if k not in prices}

    details = {
        f"images_{images}": {
            layout: {part: shown(row) for part, row in rows[images, layout].items()}
            for layout in ("window", "blocks")
        }
        for images in (0, 1)
    }
    out: dict[str, dict[str, Any]] = {
        "history16_cached_share": {
            "value": rows[0, "blocks"]["full_history"]["cached_share"],
            "images_1": rows[1, "blocks"]["full_history"]["cached_share"],
            **details,
        }
    }
    for model in HISTORY_PRICED:
        p = prices[model]
        out[f"history16_cost_ratio_{model}"] = {
            "value": ratio(0, model),
            "images_1": ratio(1, model),
            "whole_episode": {f"images_{i}": ratio(i, model, "whole_episode") for i in (0, 1)},
            "prices_usd_per_million": {"input": p.input, "cached": p.cached} if p else None,
        }
    return out


def measure_collect(size: dict[str, int], workdir: Path) -> dict[str, Any]:
    """`pytest --collect-only` of one eval file with M models x N seeds."""
    models = "\n".join(f"  - local/random?seed={i}" for i in range(size["collect_models"]))
    eval_text = f"models:\n{models}\nseeds: 0-{size['collect_seeds'] - 1}\nsteps: 50\n"
    run = _pytest_run(
        workdir / "collect",
        {"evals/collect.yaml": eval_text},
        ["evals", "--collect-only", "-q", "-m", "not crafter_payload"],
    )
    probe = run["probe"]
    expected = size["collect_models"] * size["collect_seeds"]
    if probe["items"] != expected or run["returncode"] != 0:
        raise RuntimeError(
            f"collection: {probe['items']} of {expected} items, "
            f"pytest exit {run['returncode']}:\n{run['tail']}"
        )
    return {
        "value": round(probe["collect_s"], 3),
        "items": probe["items"],
        "process_wall_s": round(run["wall_s"], 2),
        "note": "value: pytest's collection inside the process; process_wall_s adds "
        "start-up and printing the ids",
    }


def measure_snapshot(size: dict[str, int], workdir: Path) -> dict[str, Any]:
    """Collect and run the payload snapshot items of one eval file with M models (half
    chat, half reasoning profiles), after a first run has written the snapshots."""
    half = size["snapshot_models"] // 2
    names = [f"local/random?seed={i}" for i in range(half)] + [
        f"local/exhaust?seed={i}" for i in range(size["snapshot_models"] - half)
    ]
    models = "\n".join(f"  - {name}" for name in names)
    files = {"evals/snap.yaml": f"models:\n{models}\nseeds: 0-9\nsteps: 50\n"}
    args = ["evals", "-m", "crafter_payload", "-q"]
    first = _pytest_run(workdir / "snapshot", files, args + ["--snapshot-update"])
    if first["returncode"] != 0:
        raise RuntimeError(f"snapshot update: pytest exit {first['returncode']}:\n{first['tail']}")
    (workdir / "snapshot" / "probe.json").unlink()
    run = _pytest_run(workdir / "snapshot", {}, args, fresh=False)
    probe = run["probe"]
    if probe["items"] != len(names) or run["returncode"] != 0:
        raise RuntimeError(
            f"snapshots: {probe['items']} of {len(names)} items, "
            f"pytest exit {run['returncode']}:\n{run['tail']}"
        )
    return {
        "value": round(probe["session_s"], 3),
        "collect_s": round(probe["collect_s"], 3),
        "items": probe["items"],
        "process_wall_s": round(run["wall_s"], 2),
        "note": "value: collecting and running the payload items inside the process (the "
        "file's 10 seeds per model are collected too, and deselected); "
        "process_wall_s adds start-up",
    }


def _pytest_run(
    directory: Path,
    files: dict[str, str],
    args: list[str],
    fresh: bool = True,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run pytest in a fresh directory holding `files` and the probe; wall time included.
    `fresh=False` runs again in the same directory."""
    directory.mkdir(parents=True, exist_ok=not fresh)
    (directory / "pytest.ini").write_text("[pytest]\n")
    (directory / "conftest.py").write_text(PROBE)
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    out = directory / "probe.json"
    # Python's own default: compiled modules (and pytest's assertion-rewritten ones) are
    # cached. A machine that sets PYTHONDONTWRITEBYTECODE (this project's CI sandbox
    # does) makes every process compile and rewrite the plugin's modules again, ~0.7 s
    # a process that no installed copy pays; `bytecode_cache_off_in_env` says so.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "OPENAI_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["CRAFTER_BENCH_OUT"] = str(out)
    env.update(extra_env or {})
    command = [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider"]
    started, wall_started = time.perf_counter(), time.time()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        command, cwd=directory, env=env, capture_output=True, text=True, timeout=900
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
    if not out.exists():
        raise RuntimeError(
            f"{' '.join(command[2:])} wrote no results (exit {done.returncode}):\n{tail}"
        )
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "started": wall_started,
        "returncode": done.returncode,
        "probe": json.loads(out.read_text()),
        "tail": tail,
    }


# -- running and reporting ------------------------------------------------------------


def judge(key: str, result: dict[str, Any]) -> dict[str, Any]:
    op, goal, unit = GOALS[key]
    value = result.get("value")
    passed = None if value is None else (value >= goal if op == ">=" else value <= goal)
    return {
        "value": value,
        "goal": f"{op} {goal:g}{unit and ' ' + unit}",
        "pass": passed,
        **{k: v for k, v in result.items() if k != "value"},
    }


def run_all(size_name: str, only: set[str] | None) -> dict[str, dict[str, Any]]:
    size = SIZES[size_name]
    wanted = lambda *keys: only is None or any(k in only for k in keys)  # noqa: E731
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="crafter-bench-") as tmp:
        workdir = Path(tmp)
        steps: list[tuple[tuple[str, ...], Callable[[], Any]]] = [
            (("overhead_ratio", "harness_cpu_ms_per_call"), lambda: measure_overhead(size)),
            (("reset_median_s",), lambda: {"reset_median_s": measure_reset(size)}),
            (("text_tags_scaling",), lambda: {"text_tags_scaling": measure_text_tags(size)}),
            (
                (
                    "history16_cached_share",
                    "history16_cost_ratio_gpt-4o-mini",
                    "history16_cost_ratio_gpt-5-mini",
                ),
                lambda: measure_history_cache(size),
            ),
            (("collect_20k_s",), lambda: {"collect_20k_s": measure_collect(size, workdir)}),
            (("snapshot_50_s",), lambda: {"snapshot_50_s": measure_snapshot(size, workdir)}),
            (
                ("parallel_wall_over_ideal", "worker_peak_rss_mb"),
                lambda: measure_parallel(size, workdir),
            ),
            (
                (
                    "inflight_wall_over_ideal",
                    "inflight_peak_rss_mb",
                    "rss_mb_per_episode_in_flight",
                ),
                lambda: measure_inflight(size, workdir),
            ),
            (
                ("rate_limited_wall_over_ideal",),
                lambda: {"rate_limited_wall_over_ideal": measure_rate_limited(size, workdir)},
            ),
        ]
        for keys, measure in steps:
            if not wanted(*keys):
                continue
            print(f"measuring {', '.join(keys)} ...", file=sys.stderr, flush=True)
            load_before = round(os.getloadavg()[0], 2)
            for key, result in measure().items():
                # other processes' load explains a slow figure on a shared machine
                result["load_1min"] = [load_before, round(os.getloadavg()[0], 2)]
                results[key] = judge(key, result)
    return results


def table(results: dict[str, dict[str, Any]]) -> str:
    rows = [("key", "value", "goal", "result")]
    for key, r in results.items():
        value = "-" if r["value"] is None else f"{r['value']:g}"
        verdict = r.get("status") or {True: "pass", False: "FAIL"}[r["pass"]]
        rows.append((key, value, r["goal"], verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="a tiny size that runs in seconds (checks the benchmarks work)",
    )
    parser.add_argument("--only", help=f"comma-separated keys: {', '.join(GOALS)}")
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "results.json",
        help="where to write the results (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    only = None
    if args.only:
        only = {k.strip() for k in args.only.split(",") if k.strip()}
        unknown = only - set(GOALS)
        if unknown:
            parser.error(
                f"--only: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(GOALS)}"
            )
    size_name = "tiny" if args.tiny else "full"
    started = time.time()
    report: dict[str, Any] = {
        "size": size_name,
        "size_parameters": SIZES[size_name],
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
    }
    results = run_all(size_name, only)
    report["duration_s"] = round(time.time() - started, 1)
    report.update(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    m = report["machine"]
    print(
        f"{m['cpu']}, {m['cpus']} CPUs, {m['memory_gb']} GB, Python {m['python']}, "
        f"load {m['load_average_at_start']}; {size_name} size, {report['duration_s']} s"
    )
    print(table(results))
    print(f"wrote {args.out}")
    failed = [k for k, r in results.items() if r["pass"] is False]
    return 0 if args.tiny or not failed else 1


if __name__ == "__main__":
    sys.exit(main())
