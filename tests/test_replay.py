"""--record and --replay through real pytest subprocesses, xdist and loopback HTTP: a recorded
run replays to the same episode records, a keyed model replays without a key, and a changed
payload fails with a one-line diff."""

import ast
import json
import xml.etree.ElementTree as ET

import pytest

from pytest_crafter_eval.wire.local import LocalServer

EVAL = """\
models:
  - local/random: {{expect: {{min_achievements: 0}}}}
  - local/heuristic: {{expect: {{min_achievements: 0}}}}
  - gpt-4o-mini-2024-07-18: {{expect: {{min_achievements: 0}}}}
seeds: 0-1
steps: 3
request: {{temperature: {temperature}}}
"""
TIMINGS = ("latencies_s", "duration_s", "latency_p50_s", "latency_p95_s", "finished_at")


def run(pytester, *args):
    # payload snapshot items are tested in test_payload.py; these files have no snapshots
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-m", "not crafter_payload", *args
    )


def episodes(junitxml) -> dict[str, dict]:
    """Each episode's record without its timings, by test name, from a junit XML file."""
    out = {}
    for case in ET.parse(junitxml).getroot().iter("testcase"):
        for prop in case.iter("property"):
            if prop.get("name") == "crafter_episode":
                record = ast.literal_eval(prop.get("value"))
                out[case.get("name")] = {k: v for k, v in record.items() if k not in TIMINGS}
    return out


def results(path) -> list[dict]:
    """The records of a results.jsonl file without their timings, sorted by node id."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return sorted(
        ({k: v for k, v in r.items() if k not in TIMINGS} for r in records),
        key=lambda r: r["nodeid"],
    )


@pytest.mark.slow
def test_record_then_replay_gives_the_same_episodes_and_a_changed_payload_fails(
    pytester, monkeypatch
):
    # Record 6 episodes; the keyed model is answered by local/heuristic on loopback.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-recording-only")
    pytester.makefile(".yaml", **{"evals/smoke": EVAL.format(temperature=0.6)})
    with LocalServer(model="local/heuristic") as server:
        result = run(
            pytester,
            "evals",
            "-n",
            "2",
            "--record",
            "cassette",
            "--report-dir",
            "rec",
            "--base-url",
            server.base_url,
            "--junitxml",
            "record.xml",
        )
    result.assert_outcomes(passed=6)
    files = sorted((pytester.path / "cassette").glob("*.json"))
    assert len(files) == 6 * 3  # one per model call: 6 episodes x 3 steps
    entry = json.loads(files[0].read_text())
    assert (
        set(entry) == {"key", "model", "request", "response"} and entry["response"]["status"] == 200
    )

    # Replay with no key, and --base-url pointing nowhere: every answer comes from the cassette.
    monkeypatch.delenv("OPENAI_API_KEY")
    result = run(
        pytester,
        "evals",
        "-n",
        "2",
        "--replay",
        "cassette",
        "--report-dir",
        "rep",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--junitxml",
        "replay.xml",
    )
    result.assert_outcomes(passed=6)  # the keyed model is not skipped
    recorded, replayed = (
        results(pytester.path / "rec/results.jsonl"),
        results(pytester.path / "rep/results.jsonl"),
    )
    assert len(recorded) == 6 and recorded == replayed
    assert [r["outcome"] for r in replayed] == ["passed"] * 6
    # The same records, as the controller got them through xdist (junitxml user properties).
    before, after = episodes(pytester.path / "record.xml"), episodes(pytester.path / "replay.xml")
    assert len(before) == 6 and before == after
    assert sum(e["env_steps"] for e in after.values()) > 6 * 3

    # A changed payload is a failure naming the difference, not an error.
    pytester.makefile(".yaml", **{"evals/smoke": EVAL.format(temperature=0.7)})
    result = run(
        pytester,
        "evals/smoke.yaml::local/heuristic[seed=1]",
        "--replay",
        "cassette",
        "--junitxml",
        "miss.xml",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            (
                "local/heuristic seed 1: step 0: HTTP 400: replay: request not in cassette cassette *: "
                "closest recorded request local_heuristic-*.json differs at "
                "temperature: 0.6 recorded, 0.7 now*"
            )
        ]
    )  # then "(code cassette_miss)"
    record = episodes(pytester.path / "miss.xml")["local/heuristic[seed=1]"]
    assert record["outcome"] == "failed" and "not in cassette" in record["error"]
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--record", "a", "--replay", "a"], "ERROR: --record and --replay: choose one*"),
        (["--replay", "missing"], "ERROR: --replay: no such directory: missing"),
        (["--replay", "empty"], "ERROR: --replay: no cassette files (*.json) in empty"),
        (["--replay", "bad"], "ERROR: --replay: bad*x.json: not a cassette entry*"),
        (["--record", "file.txt"], "ERROR: --record: file.txt exists and is not a directory"),
    ],
)
def test_bad_cassette_options_are_usage_errors(pytester, args, message):
    pytester.mkdir("a"), pytester.mkdir("empty"), pytester.mkdir("bad")
    (pytester.path / "bad" / "x.json").write_text("[]")
    (pytester.path / "file.txt").write_text("")
    pytester.makefile(".yaml", **{"evals/smoke": "models: [local/random]\nseeds: 1\nsteps: 1\n"})
    result = run(pytester, "evals", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()
