"""shard and merge: --shard K/N splits the episodes into disjoint, balanced parts, and
`crafter-eval report` merges the parts' results into the report of one run (real pytest
runs in subprocesses, the real CLI)."""

import json
import subprocess
import sys
from collections import Counter

import pytest

from pytest_crafter_eval.run import shard

EVAL = """\
name: split
models:
  - local/random:
      expect: {min_achievements: 0}
      gate: {mean_achievements: 20}
  - local/heuristic:
      expect: {min_achievements: 0}
      gate: {min_tool_call_rate: 0.5}
seeds: 0-6
steps: 2
"""


def test_parse_takes_k_of_n_and_names_bad_values():
    assert shard.parse("2/4") == shard.Shard(2, 4)
    assert shard.parse(" 1 / 1 ") == shard.Shard(1, 1)
    for bad in ("0/4", "5/4", "1/0", "2", "a/b", "-1/3"):
        with pytest.raises(ValueError, match="K/N"):
            shard.parse(bad)


def test_assign_is_disjoint_balanced_per_model_and_independent_of_order():
    keys = [("evals/a.yaml", m, s) for m in ("x", "y", "z") for s in range(7)]
    keys += [("evals/b.yaml", "x", s) for s in range(5)]
    parts = shard.assign(keys, 4)
    sizes = Counter(parts)
    assert set(sizes) == {1, 2, 3, 4} and max(sizes.values()) - min(sizes.values()) <= 1
    for model in ("x", "y", "z"):  # every model is spread evenly over the shards
        per = Counter(p for k, p in zip(keys, parts) if k[:2] == ("evals/a.yaml", model))
        assert max(per.values()) - min(per.values()) <= 1 and len(per) == 4
    shuffled = list(reversed(keys))
    again = dict(zip(shuffled, shard.assign(shuffled, 4)))
    assert again == dict(zip(keys, parts))


def _summary(path):
    """summary.json without what differs between runs: times and durations."""
    data = json.loads(path.read_text())
    data.pop("created_at")
    for entry in data["evals"].values():
        for item in entry["models"].values():
            for key in ("duration_s", "latency_p50_s", "latency_p95_s"):
                item["metrics"].pop(key)
    return data


def _report(cwd, *args):
    return subprocess.run(
        [sys.executable, "-m", "pytest_crafter_eval.cli", "report", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_four_shards_merged_give_the_summary_of_one_run(pytester):
    pytester.makefile(".yaml", **{"evals/split": EVAL})
    base = ("-p", "no:cacheprovider", "-m", "not crafter_payload", "evals")
    whole = pytester.runpytest_subprocess(*base, "--report-dir", "whole")
    assert whole.ret == 1  # local/random's gate fails
    played = []
    for k in range(1, 5):
        extra = ("-n", "2") if k == 2 else ()
        done = pytester.runpytest_subprocess(
            *base, "--shard", f"{k}/4", "--report-dir", f"s{k}", *extra
        )
        assert done.ret in (0, 1), done.stdout.str()
        lines = (pytester.path / f"s{k}" / "results.jsonl").read_text().splitlines()
        played.append(len(lines))
    assert sorted(played) == [3, 3, 4, 4]  # 14 episodes, disjoint, balanced
    merged = _report(pytester.path, "s1", "s2", "s3", "s4", "--out", "merged")
    assert merged.returncode == 1, merged.stdout + merged.stderr  # the same failed gate
    assert "local/random" in merged.stdout and "FAILED" in merged.stdout
    assert _summary(pytester.path / "merged" / "summary.json") == _summary(
        pytester.path / "whole" / "summary.json"
    )
    assert (pytester.path / "merged" / "index.html").is_file()
    assert len((pytester.path / "merged" / "results.jsonl").read_text().splitlines()) == 14

    # a gate that passes exits 0: only local/heuristic's records
    only = pytester.path / "heuristic" / "results.jsonl"
    only.parent.mkdir()
    only.write_text(
        "".join(
            line + "\n"
            for k in range(1, 5)
            for line in (pytester.path / f"s{k}" / "results.jsonl").read_text().splitlines()
            if '"model":"local/heuristic"' in line
        )
    )
    passed = _report(pytester.path, "heuristic", "--out", "h-out")
    assert passed.returncode == 0, passed.stdout + passed.stderr

    # the same episode from two runs is an error naming it
    twice = _report(pytester.path, "s1", "s1/results.jsonl", "--out", "bad")
    assert twice.returncode == 4
    assert "evals/split.yaml::" in twice.stderr and "recorded by two runs" in twice.stderr
    assert "Traceback" not in twice.stderr
    missing = _report(pytester.path, "nowhere", "--out", "bad")
    assert missing.returncode == 4 and "nowhere: no results.jsonl" in missing.stderr


def test_shard_deselects_the_other_parts_and_keeps_payload_items_in_shard_one(pytester):
    pytester.makefile(".yaml", **{"evals/split": EVAL})
    first = pytester.runpytest_subprocess("evals", "--collect-only", "-q", "--shard", "1/3")
    first.stdout.fnmatch_lines(["*payload*", "7/16 tests collected (9 deselected)*"])
    second = pytester.runpytest_subprocess("evals", "--collect-only", "-q", "--shard", "2/3")
    second.stdout.fnmatch_lines(["5/16 tests collected (11 deselected)*"])
    assert "::payload[" not in second.stdout.str()  # no payload item in the other shards
    bad = pytester.runpytest_subprocess("evals", "--shard", "4/3")
    assert bad.ret == 4
    bad.stderr.fnmatch_lines(["*--shard: expected K/N with 1 <= K <= N, got '4/3'*"])
