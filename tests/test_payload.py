"""Payload snapshots (real syrupy, real pytest subprocesses, real xdist), the no-tool-call
diagnosis end to end through the plugin, and `crafter-eval payload`."""

import json

import pytest

from pytest_crafter_eval import cli

EVAL = """\
models:
  - local/random
  - gpt-5-nano
  - gpt-4o-mini-2024-07-18
seeds: 1
steps: 1
request: {max_output_tokens: 300, temperature: 0.6}
expect: {min_achievements: 0}
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No key; and not an xdist worker: syrupy reads PYTEST_XDIST_WORKER, which a
    subprocess started by one of this suite's workers would inherit."""
    for name in (
        "OPENAI_API_KEY",
        "PYTEST_XDIST_WORKER",
        "PYTEST_XDIST_WORKER_COUNT",
        "PYTEST_XDIST_TESTRUNUID",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def evals(pytester):
    pytester.makefile(".yaml", **{"evals/smoke": EVAL})
    return pytester


def run(pytester, *args):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


@pytest.mark.slow
def test_snapshots_update_pass_offline_under_xdist_diff_readably_and_report_unused(evals):
    result = run(evals, "evals", "--snapshot-update", "-m", "crafter_payload")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*3 snapshots generated.*"])
    ambr = (evals.path / "evals" / "__snapshots__" / "smoke.ambr").read_text()
    assert "# name: payload[gpt-5-nano]" in ambr and "'max_completion_tokens': 4396" in ambr
    assert "'url': '<image/png 64x64, pixels sha256:" in ambr and "base64" not in ambr

    # offline under xdist: payload items run without a key while the keyless episodes skip
    result = run(evals, "evals", "-n", "2")
    result.assert_outcomes(passed=4, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*gpt-5-nano: request.temperature=0.6 dropped*profile rule 'temperature'*",
            "*3 snapshots passed.*",
        ]
    )

    # --model narrows the run: the other models' payload items are deselected, so their
    # snapshots are not "unused" (which would fail the run, or be deleted on update)
    result = run(evals, "evals", "--model", "local/random", "--snapshot-update")
    assert result.ret == 0 and "snapshot unused" not in result.stdout.str()
    assert "snapshots unused" not in result.stdout.str() and "deleted" not in result.stdout.str()
    result.assert_outcomes(passed=2, deselected=2)

    # a changed profile rule: a readable diff naming the model
    evals.makefile(
        ".yaml",
        profiles="profiles:\n  gpt-5-nano: {reasoning_budget: 1000, reasoning_effort: minimal}\n",
    )
    result = run(evals, "evals", "-m", "crafter_payload", "--profiles", "profiles.yaml")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            (
                "*the first request of gpt-5-nano (eval smoke, seed 0) does not match its snapshot in "
                "__snapshots__/smoke.ambr; if the change is intended, run pytest --snapshot-update"
            ),
            "*- *'max_completion_tokens': 4396,",
            "*+ *'max_completion_tokens': 1300,",
            "*- *'reasoning_effort': 'low',",
            "*+ *'reasoning_effort': 'minimal',",
            "FAILED evals/smoke.yaml::payload[[]gpt-5-nano[]]*",
        ]
    )
    assert "Traceback" not in result.stdout.str() and "\x1b[" not in result.stdout.str()

    # a model gone from the file: its snapshot is unused (with -m or -k syrupy cannot tell
    # unused from deselected, so the whole file runs), and --snapshot-update deletes it
    evals.makefile(".yaml", **{"evals/smoke": EVAL.replace("  - gpt-5-nano\n", "")})
    result = run(evals, "evals")
    result.stdout.fnmatch_lines(["*2 snapshots passed. 1 snapshot unused.*"])
    result = run(evals, "evals", "--snapshot-update")
    result.stdout.fnmatch_lines(["*1 unused snapshot deleted*"])
    assert "gpt-5-nano" not in (evals.path / "evals" / "__snapshots__" / "smoke.ambr").read_text()


def test_models_named_only_on_the_command_line_get_no_payload_item(evals):
    result = run(evals, "evals", "--model", "local/random,local/heuristic", "--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "evals/smoke.yaml::payload[[]local/random[]]",
            "evals/smoke.yaml::local/random[[]seed=0[]]",
            "evals/smoke.yaml::local/heuristic[[]seed=0[]]",
            "3/5 tests collected (2 deselected)*",
        ]
    )


def test_a_model_without_image_input_fails_its_items_with_the_reason(pytester, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # never reached
    pytester.makefile(".yaml", **{"evals/e": "models: [o3-mini]\nseeds: 1\nsteps: 1\n"})
    result = run(pytester, "evals")
    # a missing capability is a verdict on the model: a failure, not an error
    result.assert_outcomes(failed=2)
    reason = (
        "o3-mini does not take image input (profile 'o3-mini', exact): use a text-only eval "
        "(observation: {image: false})"
    )
    result.stdout.fnmatch_lines(
        ["*_ payload[[]o3-mini[]] _*", reason, "*_ o3-mini[[]seed=0[]] _*", reason]
    )
    (record,) = [json.loads(x) for x in (pytester.path / "reports/results.jsonl").open()]
    assert (record["outcome"], record["end"], record["steps"]) == ("failed", "unsupported", 0)
    assert "Traceback" not in result.stdout.str() and "During handling" not in result.stdout.str()


CLASSES = {  # model -> (class, the failure message with its fix)
    "local/exhaust": (
        "budget_exhausted",
        (
            "no tool call at step 0: reasoning used 512 of "
            "max_completion_tokens=512; raise request.max_output_tokens or lower reasoning_effort"
        ),
    ),
    "local/silent": (
        "text_answer",
        (
            "no tool call at step 0: finish_reason=stop, text answer: 'I will "
            "move left*'; the model answered in text: set request.tool_choice: required, or check "
            "the instructions"
        ),
    ),
    "local/silent?mode=refusal": (
        "refusal",
        (
            "no tool call at step 0: refusal: *I'm sorry, but I can't "
            "help with that request.*; the model declined: reword the "
            "eval's instructions"
        ),
    ),
    "local/silent?mode=content_filter": (
        "content_filter",
        (
            "no tool call at step 0: finish_reason=content_filter: the provider "
            "filtered the answer; check the prompt and image"
        ),
    ),
    "local/silent?mode=empty": (
        "empty_response",
        (
            "no tool call at step 0: finish_reason=stop, empty "
            "response: no text and no tool call; set "
            "request.tool_choice: required, or check the server"
        ),
    ),
}


def test_each_no_tool_call_class_is_reported_with_its_fix(pytester):
    models = "\n".join(f"  - '{m}'" for m in CLASSES)
    pytester.makefile(
        ".yaml",
        **{
            "evals/d": f"models:\n{models}\nseeds: 1\nsteps: 3\n"
            "request: {max_output_tokens: 512, reasoning_budget: 0}\n"
        },
    )
    pytester.makeconftest("""
import json
def pytest_runtest_logreport(report):
    for key, value in report.user_properties:
        if key == "crafter_episode" and report.when == "call":
            print("RESULT", value["model"], json.dumps(value["no_tool_call"]), flush=True)
""")
    result = run(pytester, "evals", "-m", "crafter", "-s")
    result.assert_outcomes(failed=len(CLASSES))
    for model, (_kind, message) in CLASSES.items():
        result.stdout.fnmatch_lines([f"*_ {model.replace('[', '[[]')}[[]seed=0[]] _*", message])
    found = [
        line.split("RESULT ", 1)[1].split(" ", 1)
        for line in result.stdout.lines
        if "RESULT " in line
    ]
    recorded = {model: json.loads(data) for model, data in found}
    # the episode results carry the class
    assert {m: (r["step"], r["class"]) for m, r in recorded.items()} == {
        m: (0, kind) for m, (kind, _) in CLASSES.items()
    }


def test_payload_command_prints_the_exact_body(capsys, tmp_path):
    assert cli.main(["payload", "--model", "gpt-5-nano"]) == 0
    out, err = capsys.readouterr()
    body = json.loads(out)
    assert body["max_completion_tokens"] == 512 + 4096 and body["reasoning_effort"] == "low"
    assert body["messages"][1]["content"][1]["image_url"]["url"].startswith(
        "data:image/png;base64,"
    )
    assert err == ""

    (tmp_path / "e.yaml").write_text(
        "models: [gpt-4o-mini]\nseeds: 7-9\nrequest: {temperature: 0.6}\n"
    )
    assert (
        cli.main(
            ["payload", "--model", "gpt-5-nano", "--eval", str(tmp_path / "e.yaml"), "--redact"]
        )
        == 0
    )
    out, err = capsys.readouterr()
    image = json.loads(out)["messages"][1]["content"][1]["image_url"]["url"]
    assert image.startswith("<image/png 64x64, ") and " bytes, pixels sha256:" in image
    assert "warning: gpt-5-nano: request.temperature=0.6 dropped" in err
    # the eval's first seed, 7, unless --seed says otherwise
    assert (
        cli.main(
            [
                "payload",
                "--model",
                "gpt-5-nano",
                "--eval",
                str(tmp_path / "e.yaml"),
                "--redact",
                "--seed",
                "7",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out == out


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--model", "gpt-3.5-turbo"], 2, "gpt-3.5-turbo does not take tool calls"),
        (
            ["--model", "o3-mini"],
            2,
            (
                "o3-mini does not take image input (profile 'o3-mini', exact): use a "
                "text-only eval (observation: {image: false})"
            ),
        ),
        (["--model", "../x"], 4, "--model: invalid model name '../x'"),
        (["--model", "x", "--eval", "missing.yaml"], 4, "missing.yaml: cannot read"),
        (["--model", "x", "--seed", "minus"], 4, "argument --seed: expected a whole number"),
        (["--seed", "1"], 4, "the following arguments are required: --model"),
    ],
)
def test_payload_command_errors(capsys, args, code, message):
    try:
        rc = cli.main(["payload", *args])
    except SystemExit as exc:
        rc = exc.code
    assert rc == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_payload_command_for_a_text_only_eval_needs_only_tools(capsys, tmp_path):
    (tmp_path / "t.yaml").write_text("models: [o3-mini]\nobservation: {image: false}\n")
    assert cli.main(["payload", "--model", "o3-mini", "--eval", str(tmp_path / "t.yaml")]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["messages"][1]["content"] == [body["messages"][1]["content"][0]]  # no image part
    assert (
        cli.main(["payload", "--model", "gpt-3.5-turbo", "--eval", str(tmp_path / "t.yaml")]) == 2
    )


@pytest.mark.parametrize("where", ["option", "ini"])
def test_a_bad_profiles_file_is_a_one_line_usage_error(pytester, where):
    pytester.makefile(
        ".yaml",
        **{
            "evals/e": "models: [local/random]\n",
            "conf/profiles": "profiles:\n  gpt-5-nano:\n    temprature: 1\n",
        },
    )
    if where == "ini":
        pytester.makeini("[pytest]\ncrafter_profiles = conf/profiles.yaml\n")
        result = run(pytester, "evals")
    else:
        result = run(pytester, "evals", "--profiles", "conf/profiles.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            (
                "ERROR: --profiles: *conf/profiles.yaml:3: profiles.gpt-5-nano.temprature: "
                "unknown key (did you mean 'temperature'?)"
            )
        ]
    )
    assert "Traceback" not in result.stderr.str()


def test_a_missing_snapshot_says_it_is_missing_and_how_to_create_it(evals, monkeypatch):
    monkeypatch.setenv("CI", "true")  # outside CI it is written (tests/test_first_run.py)
    result = run(evals, "evals", "-m", "crafter_payload", "-k", "local")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            (
                "the first request of local/random (eval smoke, seed 0) has no snapshot yet in "
                "__snapshots__/smoke.ambr, and CI is set, so it is not written: create it with "
                "pytest --snapshot-update (or a run outside CI) and commit it"
            )
        ]
    )
    assert "does not match" not in result.stdout.str()


def test_normalisation_warnings_point_at_the_eval_files_line(pytester):
    pytester.makefile(
        ".yaml",
        **{
            "evals/w": (
                "models:\n"
                "  - gpt-5-nano\n"
                "  - acme-unknown-model\n"
                "request:\n"
                "  max_output_tokens: 300\n"
                "  temperature: 0.6\n"
            )
        },
    )
    result = run(pytester, "evals", "-m", "crafter_payload", "--snapshot-update")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*evals/w.yaml:6: CrafterEvalWarning: gpt-5-nano: request.temperature=0.6 dropped*",
            "*evals/w.yaml:3: CrafterEvalWarning: acme-unknown-model: no profile of its own*",
        ],
        consecutive=False,
    )
    assert "episode.py" not in result.stdout.str() and "profiles.py" not in result.stdout.str()
