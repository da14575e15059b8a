"""A first run as a new user makes it: messages, names and the CLI (issue 18, 16-25).

Each test runs the real plugin in-process (pytester) or the real command, and checks what
the user reads.
"""

from __future__ import annotations

import pytest

# In-process runs import these once: modules imported during a run are dropped after it,
# and numpy (under crafter) cannot be imported twice in a process.
import pytest_crafter_eval.agent.episode
import pytest_crafter_eval.run.items
import pytest_crafter_eval.wire.client  # noqa: F401
from pytest_crafter_eval import cli
from pytest_crafter_eval.config import spec

pytest_plugins = ["pytester"]


def _import_the_http_stack() -> None:
    """Import every module of the HTTP stack now. Its parts that load lazily (on a first
    connection error, say) would otherwise load inside an in-process run and be dropped
    after it, leaving the SDK of this process holding classes no longer importable:
    later tests in this process would see raw transport errors."""
    import contextlib
    import importlib
    import pkgutil

    for name in ("httpcore2", "httpx2", "anyio", "h11", "sniffio"):
        try:
            package = importlib.import_module(name)
        except ImportError:
            continue
        for info in pkgutil.walk_packages(package.__path__, name + "."):
            # optional backends (trio, h2, socks) may be missing
            with contextlib.suppress(Exception):
                importlib.import_module(info.name)


_import_the_http_stack()

GATED = """\
name: gated
models:
  - local/random: {gate: {mean_achievements: 5}}
seeds: 2
steps: 3
expect: {min_achievements: 0}
"""


def run(pytester, *args):
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)


def run_apart(pytester, *args):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_the_last_line_says_a_gate_failed_and_the_table_says_it_lists_failures(pytester):
    pytester.makefile(".yaml", **{"evals/gated": GATED})
    result = run(pytester, "evals", "-m", "not crafter_payload")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*crafter-eval gates failed for 1 model(s)*",
            "the checks of models whose gate failed (or that are xfail); summary.md lists every check",
            "*local/random*mean_achievements*>= 5*FAILED*",
            "=* 2 passed, 1 deselected, *1 gate failed in *=",
        ]
    )


def test_a_model_named_only_by_model_warns_at_the_eval_files_model_list(pytester):
    pytester.makefile(".yaml", **{"evals/gated": GATED})
    from pytest_crafter_eval.config import profiles

    loaded = spec.load(pytester.path / "evals" / "gated.yaml").with_overrides(
        models=["my-own-model"]
    )
    run_ = loaded.runs[0]
    assert run_.line == 2  # `models:`, the list --model replaces
    profiles._WARNED.clear()
    with pytest.warns(profiles.CrafterEvalWarning) as caught:
        profiles.warn_note(run_, "my-own-model: no profile of its own")
    assert caught[0].filename.endswith("gated.yaml") and caught[0].lineno == 2


def test_dist_without_load_is_a_line_of_the_run_not_a_warning_in_plugin_code(pytester):
    pytester.makefile(".yaml", **{"evals/gated": GATED})
    result = run(
        pytester,
        "evals",
        "-m",
        "not crafter_payload",
        "-n",
        "1",
        "--dist",
        "loadfile",
        "--episodes-per-process",
        "2",
    )
    result.stdout.fnmatch_lines(
        ["crafter-eval: warning: --episodes-per-process needs --dist load (the default of -n);*"]
    )
    assert "plugin.py" not in result.stdout.str()


def test_a_query_string_on_the_command_line_keeps_the_files_settings_for_the_model(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text(
        "models:\n  - local/random: {steps: 7, expect: {min_achievements: 0}}\n"
        "  - local/heuristic\nsteps: 3\n"
    )
    loaded = spec.load(path)
    chosen = loaded.with_overrides(models=["local/random?latency_ms=400", "local/fumble"])
    by_model = {r.model: r for r in chosen.runs}
    assert by_model["local/random?latency_ms=400"].steps == 7
    assert by_model["local/random?latency_ms=400"].expect.min_achievements == 0
    assert by_model["local/fumble"].steps == 3  # not in the file: the file's defaults
    # the exact name still wins over a parameterised one of the same model
    path.write_text("models:\n  - local/random?x=1: {steps: 5}\n  - local/random: {steps: 6}\n")
    assert spec.load(path).with_overrides(models=["local/random"]).runs[0].steps == 6
    assert spec.load(path).with_overrides(models=["local/random?y=2"]).runs[0].steps == 6


def test_seeds_0_says_how_to_write_the_one_seed_0():
    with pytest.raises(ValueError, match=r"at least 1, got 0 \(for the one seed 0, write 0, or"):
        spec.parse_seeds("0")


def test_the_renamed_concurrency_options_and_their_old_names(pytester):
    pytester.makefile(".yaml", **{"evals/gated": GATED})
    help_text = run(pytester, "--help").stdout.str()
    assert "--episodes-per-process=N, --concurrency=N" in help_text
    assert "--requests-per-model=N, --max-concurrency=N" in help_text
    assert "(default: 60)" in help_text  # --request-timeout's default is in its help
    for flag in ("--concurrency", "--episodes-per-process"):
        result = run(pytester, "evals", "-m", "not crafter_payload", flag, "2")
        result.assert_outcomes(passed=2)
    pytester.makeini("[pytest]\ncrafter_episodes_per_process = 0\n")
    result = run(pytester, "evals")
    result.stderr.fnmatch_lines(["*--episodes-per-process: expected a whole number*got '0'*"])


def test_cli_version_descriptions_and_the_split_seed(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("crafter-eval ")
    for command in ("serve", "payload", "report", "export"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        out = capsys.readouterr().out
        description = out.split("\n\n")[1]
        assert not description.startswith(("positional", "options")), command
    parser = cli._parser()
    args = parser.parse_args(["export", "t", "--out", "o", "--split-seed", "3"])
    assert args.split_seed == 3
    assert parser.parse_args(["export", "t", "--out", "o", "--seed", "4"]).split_seed == 4


def test_the_readme_contents_list_every_section_with_a_working_link():
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "README.md").read_text()
    body = re.sub(r"```.*?```", "", text, flags=re.S)  # no headings inside code blocks
    headings = re.findall(r"^(##|###) (.+)$", body, flags=re.M)
    contents = body.split("## Contents\n", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^( *)- \[(.+?)\]\(#(.+?)\)$", contents, flags=re.M)

    def anchor(title: str) -> str:  # GitHub's: lower case, punctuation dropped, - for spaces
        return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")

    expected = [(level, title) for level, title in headings if title != "Contents"]
    assert [("##" if not indent else "###", title) for indent, title, _ in listed] == expected, (
        "README.md: the Contents list (after the intro) must list every ## and ### heading"
    )
    assert all(link == anchor(title) for _, title, link in listed)


NEW = """\
models: [local/random]
seeds: 1
steps: 2
expect: {min_achievements: 0}
"""
FAILS = """\
models: [local/random]
seeds: 1
steps: 1
expect: {min_achievements: 5}
"""


def snapshot_names(path):
    return sorted(
        line.removeprefix("# name: ") for line in path.read_text().splitlines() if "# name:" in line
    )


def test_a_new_eval_files_snapshot_is_written_and_reported_outside_ci_and_fails_in_ci(
    pytester, monkeypatch
):
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT"):  # see below
        monkeypatch.delenv(name, raising=False)
    pytester.makefile(".yaml", **{"evals/new": NEW})
    ambr = pytester.path / "evals" / "__snapshots__" / "new.ambr"
    monkeypatch.setenv("CI", "true")
    result = run(pytester, "evals")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            (
                "*the first request of local/random (eval new, seed 0) has no snapshot yet in "
                "__snapshots__/new.ambr, and CI is set, so it is not written*"
            )
        ]
    )
    assert not ambr.exists()
    monkeypatch.delenv("CI")  # outside CI: Jest's rule, written and reported
    result = run(pytester, "evals")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            (
                "crafter-eval: 1 payload snapshot(s) created (missing, and CI is not set): "
                "evals/__snapshots__/new.ambr: payload[local/random]; commit them"
            )
        ]
    )
    assert snapshot_names(ambr) == ["payload[local/random]"]
    monkeypatch.setenv("CI", "1")
    run(pytester, "evals").assert_outcomes(passed=2)  # now it is there: CI passes


def _snapshot_files(folder):
    """The snapshot files in `folder`, without syrupy's write sidecars (`a.ambr.lock`,
    `a.ambr.tmp`), which it may leave behind after a write."""
    return [p for p in folder.iterdir() if not p.name.endswith((".lock", ".tmp"))]


def test_snapshots_of_payload_items_that_did_not_run_are_never_deleted(pytester, monkeypatch):
    # not CI; and not an xdist worker (syrupy reads PYTEST_XDIST_WORKER, which this suite's
    # own workers set, and then locks snapshot files)
    for name in ("CI", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT"):
        monkeypatch.delenv(name, raising=False)
    pytester.makefile(".yaml", **{"evals/a_fails": FAILS, "evals/b_new": NEW})
    run_apart(pytester, "evals", "-m", "crafter_payload").assert_outcomes(passed=2)
    snapshots = pytester.path / "evals" / "__snapshots__"
    both = {"a_fails.ambr": ["payload[local/random]"], "b_new.ambr": ["payload[local/random]"]}
    assert {p.name: snapshot_names(p) for p in _snapshot_files(snapshots)} == both
    # --collect-only runs nothing: syrupy called every snapshot unused, and deleted them all
    result = run_apart(pytester, "evals", "--collect-only", "--snapshot-update")
    result.stdout.fnmatch_lines(["crafter-eval: --collect-only runs no payload item: no snapshot*"])
    assert {p.name: snapshot_names(p) for p in _snapshot_files(snapshots)} == both
    # -x stops the run in a_fails.yaml, before b_new.yaml's payload item runs
    result = run_apart(pytester, "evals", "-x", "--snapshot-update")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["crafter-eval: 1 selected payload item(s) did not compare*"])
    assert {p.name: snapshot_names(p) for p in _snapshot_files(snapshots)} == both
    # a model no longer in its file, in a run of every payload item, is still cleaned up
    pytester.makefile(".yaml", **{"evals/b_new": NEW.replace("local/random", "local/fumble")})
    result = run_apart(pytester, "evals", "--snapshot-update")
    assert snapshot_names(snapshots / "b_new.ambr") == ["payload[local/fumble]"]
    assert snapshot_names(snapshots / "a_fails.ambr") == ["payload[local/random]"]


def test_a_dead_endpoint_is_named_and_skips_the_models_remaining_episodes(pytester, monkeypatch):
    import socket

    with socket.socket() as probe:  # a loopback port nothing listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    pytester.makefile(".yaml", **{"evals/dead": "models: [gpt-4o-mini]\nseeds: 5\nsteps: 2\n"})
    # in a process of its own: the HTTP stack imports parts of itself lazily on its first
    # connection error, which in-process runs of other tests would leave half imported
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "evals",
        "-m",
        "crafter",
        "--base-url",
        url,
        "--max-retries",
        "0",
        "-rs",
    )
    result.assert_outcomes(errors=2, skipped=3)
    result.stdout.fnmatch_lines(
        [
            f"gpt-4o-mini seed 0: step 0: connection to {url} failed: *",
            (
                f"SKIPPED [[]3[]] evals/dead.yaml:1: not started: the first 2 episodes of gpt-4o-mini "
                f"failed to connect (connection to {url} failed: *); its remaining episodes are "
                "skipped: check --base-url or $OPENAI_BASE_URL"
            ),
        ]
    )


def test_a_model_that_answered_once_is_never_skipped_as_unreachable(tmp_path):
    from pytest_crafter_eval.run import reach
    from pytest_crafter_eval.wire.client import ModelCallError

    class Flaky:
        def __init__(self, answers):
            self.answers = list(answers)

        def complete(self, body):
            answer = self.answers.pop(0)
            if answer is None:
                raise ModelCallError("connection to http://x/v1 failed: reset", cause="connection")
            return answer

    def episode(run_dir, answers):
        client = reach.Watched(Flaky(answers), run_dir, "m")
        with pytest.raises(ModelCallError):
            while True:
                client.complete({})

    episode(tmp_path, [None])
    assert reach.unreachable(tmp_path, "m") is None  # one episode could be a blip
    episode(tmp_path, [None])
    assert "the first 2 episodes of m failed to connect" in str(reach.unreachable(tmp_path, "m"))
    other = tmp_path / "other"
    for answers in ([{"ok": 1}, None], [None], [None]):
        episode(other, answers)
    assert reach.unreachable(other, "m") is None  # it answered: later failures are transient


def test_an_eval_file_outside_an_evals_directory_says_how_to_collect_it(pytester):
    pytester.makefile(".yaml", **{"mine/first": NEW, "mine/other": "not: an eval file\n"})
    result = run(pytester, "mine")
    result.stdout.fnmatch_lines(
        [
            (
                "crafter-eval: not collected: mine/first.yaml: YAML files are eval files only in a "
                "directory named like evals (ini crafter_eval_dirs); name the file (pytest "
                "mine/first.yaml) or add its directory's name to crafter_eval_dirs"
            )
        ]
    )
    assert "other.yaml" not in result.stdout.str()
    run(pytester, "mine/first.yaml", "-m", "crafter").assert_outcomes(passed=1)
