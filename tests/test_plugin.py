"""plugin: eval files become pytest items; runs go through real pytest, xdist and the
loopback server (pytester subprocesses), with nothing of the project mocked."""

import pytest

EVAL = """\
models:
  - local/random:
      expect: {{min_achievements: 0}}
  - local/silent: {{xfail: "answers in text"}}
  - gpt-4o-mini-2024-07-18
seeds: {seeds}
steps: 3
"""


@pytest.fixture
def evals(pytester, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pytester.makefile(".yaml", **{"evals/smoke": EVAL.format(seeds="0-1")})
    return pytester


def run(pytester, *args):
    # Payload snapshot items (one per model, tested in test_payload.py) are left out here:
    # these files have no snapshots.
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-m", "not crafter_payload", *args
    )


def test_items_have_readable_ids(evals):
    result = run(evals, "evals", "--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "evals/smoke.yaml::local/random[[]seed=0[]]",
            "evals/smoke.yaml::local/random[[]seed=1[]]",
            "evals/smoke.yaml::local/silent[[]seed=0[]]",
            "evals/smoke.yaml::gpt-4o-mini-2024-07-18[[]seed=1[]]",
            "6/9 tests collected (3 deselected)*",
        ]
    )


def test_offline_run_under_xdist_passes_xfails_and_skips_with_reason(evals):
    result = run(evals, "evals", "-n", "2", "-rsx")
    result.assert_outcomes(passed=2, xfailed=2, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*SKIPPED [[]2[]] evals/smoke.yaml: no API key for gpt-4o-mini-2024-07-18: set OPENAI_API_KEY*",
            "*XFAIL*local/silent*answers in text (no tool call at step 0: finish_reason=stop, text answer:*",
        ]
    )


def test_require_api_key_turns_skips_into_errors(evals):
    result = run(evals, "evals", "--require-api-key", "-k", "gpt")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        ["*no API key for gpt-4o-mini-2024-07-18*--require-api-key is set*"]
    )
    assert "Traceback" not in result.stdout.str()


def test_command_line_replaces_models_seeds_and_steps(evals):
    result = run(
        evals,
        "evals",
        "--model",
        "local/random",
        "--model",
        "local/silent",
        "--seeds",
        "3,5",
        "--steps",
        "2",
        "--collect-only",
        "-q",
    )
    result.stdout.fnmatch_lines(
        [
            "*local/random[[]seed=3[]]",
            "*local/silent[[]seed=5[]]",
            "4/7 tests collected (3 deselected)*",
        ]
    )


def test_ini_settings(evals):
    evals.makeini("[pytest]\ncrafter_model = local/random\ncrafter_seeds = 1\n")
    result = run(evals, "evals", "--collect-only", "-q")
    result.stdout.fnmatch_lines(
        ["evals/smoke.yaml::local/random[[]seed=0[]]", "1/4 tests collected (3 deselected)*"]
    )


def test_node_id_and_keyword_selection(evals):
    result = run(evals, "evals/smoke.yaml::local/random[seed=1]")
    result.assert_outcomes(passed=1)
    result = run(evals, "evals", "-k", "silent")
    result.assert_outcomes(xfailed=2)


def test_capability_gained_fails_a_strict_xfail(pytester):
    pytester.makefile(
        ".yaml",
        **{"evals/gain": "models:\n  - local/random: {xfail: 'cannot act'}\nseeds: 1\nsteps: 2\n"},
    )
    result = run(pytester, "evals")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*capability gained: remove the xfail of local/random ('cannot act')*"]
    )


def test_failed_expectation_says_what_happened(pytester):
    pytester.makefile(".yaml", **{"evals/strict": "models: [local/silent]\nseeds: 1\nsteps: 2\n"})
    result = run(pytester, "evals")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*no tool call at step 0: finish_reason=stop, text answer: 'I will move left*"]
    )
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    "text, message",
    [
        ("models: []\n", "evals/bad.yaml:1: models: the model list is empty"),
        ("models: [a]\nsteps: 0\n", "evals/bad.yaml:2: steps: must be at least 1, got 0"),
        ("models: [a]\nseeds: 5-1\n", "evals/bad.yaml:2: seeds: range '5-1' ends before it starts"),
        ("models: [a\n", "evals/bad.yaml:1: invalid YAML: expected *"),
        ("", "evals/bad.yaml: empty eval file*"),
    ],
)
def test_bad_eval_file_is_a_one_line_collection_error(pytester, text, message):
    pytester.makefile(".yaml", **{"evals/bad": text})
    result = run(pytester, "evals")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # collection errors stop the run
    result.stdout.fnmatch_lines(["*ERROR collecting evals/bad.yaml*", message])
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "9-1"], "ERROR: --seeds: range '9-1' ends before it starts"),
        (
            ["--steps", "many"],
            "ERROR: --steps: expected a whole number from 1 to 10000, got 'many'",
        ),
        (["--model", "../x"], "ERROR: --model: invalid model name '../x'*"),
        (["--request-timeout", "-1"], "ERROR: --request-timeout: expected a positive number*"),
    ],
)
def test_bad_command_line_values_are_usage_errors(evals, args, message):
    result = run(evals, "evals", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


def test_yaml_outside_eval_dirs_is_not_collected(pytester):
    pytester.makefile(".yaml", **{"config/settings": "models: [local/random]\n"})
    result = run(pytester, "config")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_options_have_their_own_help_group(pytester):
    result = run(pytester, "--help")
    result.stdout.fnmatch_lines(
        [
            "crafter-eval: Crafter episodes as tests:",
            "*--model=NAME*",
            "*--seeds=SEEDS*",
            "*--base-url=BASE_URL*",
            "*--require-api-key*",
        ]
    )
