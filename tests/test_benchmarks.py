"""benchmarks/run.py at its tiny size: every key is measured, judged and written.

No timed assertions here: the speed and memory goals are checked by `make bench`, whose
figures are ratios against floors measured in the same run. This only checks that the
benchmarks work, so that `make bench` cannot rot unnoticed.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEYS = [
    "overhead_ratio",
    "harness_cpu_ms_per_call",
    "parallel_wall_over_ideal",
    "reset_median_s",
    "collect_20k_s",
    "snapshot_50_s",
    "worker_peak_rss_mb",
    "inflight_wall_over_ideal",
    "inflight_peak_rss_mb",
    "rss_mb_per_episode_in_flight",
    "rate_limited_wall_over_ideal",
    "text_tags_scaling",
    "history16_cached_share",
    "history16_cost_ratio_gpt-4o-mini",
    "history16_cost_ratio_gpt-5-mini",
]


def bench(tmp_path, *args):
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_tiny_run_writes_every_key_with_its_goal(tmp_path):
    out = tmp_path / "results.json"
    done = bench(tmp_path, "--tiny", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(out.read_text())
    assert data["size"] == "tiny"
    machine = data["machine"]
    assert machine["cpus"] >= 1 and machine["python"] and machine["packages"]["crafter"] == "1.8.3"
    # a difference of two runs' peaks: at the tiny size (3 episodes above the idle
    # run's one) the allocator's noise can make it negative
    differences = {"rss_mb_per_episode_in_flight"}
    for key in KEYS:
        result = data[key]
        assert result["goal"].split()[0] in ("<=", ">="), key
        assert isinstance(result["value"], (int, float)) and math.isfinite(result["value"]), key
        assert key in differences or result["value"] > 0, key
        assert isinstance(result["pass"], bool), key
    # the tiny sizes really ran: 2 models x 10 seeds collected, 2 episodes x 2 calls played
    assert data["collect_20k_s"]["items"] == 20
    assert data["parallel_wall_over_ideal"]["model_calls"] == 4
    assert data["inflight_wall_over_ideal"]["model_calls"] == 8
    assert data["inflight_wall_over_ideal"]["in_flight"] == 4
    assert data["rate_limited_wall_over_ideal"]["model_calls"] == 12
    assert data["rate_limited_wall_over_ideal"]["errors"] == 0
    assert set(data["worker_peak_rss_mb"]["per_worker_mb"]) == {"gw0"}  # a real xdist worker
    assert data["overhead_ratio"]["crafter_steps"] > 0
    table = done.stdout.splitlines()
    for key in KEYS:
        assert any(line.startswith(key + " ") for line in table), key


def test_unknown_key_is_a_usage_error(tmp_path):
    done = bench(tmp_path, "--only", "overhead,reset_median_s")
    assert done.returncode == 2
    assert "--only: unknown key(s) overhead" in done.stderr and "Traceback" not in done.stderr


# -- causes of slowness found by the benchmarks, checked without timing them ---------


def test_collection_and_payload_items_do_not_import_the_openai_sdk(pytester):
    """Importing openai costs about 0.5 s; neither collection (collect_20k_s) nor the
    offline payload snapshot items (snapshot_50_s) need a client."""
    pytester.makefile(".yaml", **{"evals/e": "models: [local/random, gpt-4o-mini]\nseeds: 2\n"})
    pytester.makeconftest("""
        import sys
        def pytest_collection_finish(session):
            print("openai imported at collection:", "openai" in sys.modules)
        def pytest_sessionfinish(session):
            print("openai imported at the end:", "openai" in sys.modules)
    """)
    result = pytester.runpytest_subprocess(
        "evals", "--collect-only", "-q", "-p", "no:cacheprovider"
    )
    result.stdout.fnmatch_lines(["openai imported at collection: False", "6 tests collected*"])
    result = pytester.runpytest_subprocess(
        "evals", "-m", "crafter_payload", "--snapshot-update", "-s", "-p", "no:cacheprovider"
    )
    result.stdout.fnmatch_lines(["*openai imported at the end: False"])
    result.assert_outcomes(passed=2)
