"""spec: YAML eval files -> frozen dataclasses, and one-line errors naming file:line: key."""

import pytest

from pytest_crafter_eval.config import spec

GOOD = """\
name: smoke
models:
  - local/heuristic
  - gpt-4o-mini-2024-07-18
  - local/silent: {xfail: "answers in text, never calls the tool"}
seeds: 0-9
steps: 50
observation:
  image: {size: 64, detail: low}
  text: true
request:
  max_output_tokens: 512
  temperature: 0.6
expect:
  tool_call_at_first_step: true
  min_tool_call_rate: 0.9
  min_achievements: 1
"""


def test_reference_file_parses_into_resolved_runs(tmp_path):
    loaded = spec.load(tmp_path / "smoke.yaml", GOOD)
    assert loaded.name == "smoke"
    assert loaded.seeds == tuple(range(10))
    assert [r.model for r in loaded.runs] == [
        "local/heuristic",
        "gpt-4o-mini-2024-07-18",
        "local/silent",
    ]
    silent = loaded.runs[2]
    assert silent.xfail == "answers in text, never calls the tool"
    assert silent.steps == 50 and silent.request.temperature == 0.6
    assert silent.observation.image == spec.Image(64, "low")
    assert silent.expect == spec.Expect(True, 0.9, 1)
    assert silent.line == 5


def test_model_overrides_merge_key_by_key(tmp_path):
    text = (
        "models:\n  - a: {steps: 3, request: {temperature: 0}, observation: {image: false}}\n  - b\n"
        "request: {max_output_tokens: 100, temperature: 1}\n"
    )
    a, b = spec.load(tmp_path / "x.yaml", text).runs
    assert (a.steps, a.request.temperature, a.request.max_output_tokens) == (3, 0.0, 100)
    assert a.observation.image is None and a.observation.text
    assert (b.steps, b.request.temperature, b.observation.image) == (50, 1.0, spec.Image())


def test_name_defaults_to_the_file_stem(tmp_path):
    assert spec.load(tmp_path / "nightly.yaml", "models: [m]").name == "nightly"


@pytest.mark.parametrize(
    "value, seeds",
    [
        (3, (0, 1, 2)),
        ("0-2", (0, 1, 2)),
        ("3,5,8", (3, 5, 8)),
        ([7, 1], (7, 1)),
        ("4", (0, 1, 2, 3)),
    ],
)
def test_seed_forms(value, seeds):
    assert spec.parse_seeds(value) == seeds


BAD = [
    ("models: []", 1, "models: the model list is empty"),
    ("models: [a, a]", 1, "models[1]: duplicate model 'a'"),
    ("modls: [a]", 1, "modls: unknown key (did you mean 'models'?)"),
    ("models: [a]\nseeds: 9-3", 2, "seeds: range '9-3' ends before it starts"),
    ("models: [a]\nseeds: 0-999999", 2, "seeds: at most 100000 seeds"),
    ("models: [a]\nseeds: [1, 1]", 2, "seeds: seed 1 is listed twice"),
    ("models: [a]\nsteps: 0", 2, "steps: must be at least 1, got 0"),
    ("models: [a]\nsteps: '5'", 2, "steps: must be a whole number of model calls"),
    (
        "models: [a]\nrequest: {temprature: 1}",
        2,
        "request.temprature: unknown key (did you mean 'temperature'?)",
    ),
    (
        "models: [a]\nexpect:\n  min_tool_call_rate: high",
        3,
        "expect.min_tool_call_rate: must be a number",
    ),
    (
        "models: [a]\nexpect: {min_tool_call_rate: 2}",
        2,
        "expect.min_tool_call_rate: must be from 0 to 1",
    ),
    ("models:\n  - a: {stepz: 3}", 2, "models[0].a.stepz: unknown key (did you mean 'steps'?)"),
    ("models: [../../etc/passwd]", 1, "models[0]: invalid model name '../../etc/passwd'"),
    (
        "models: [a]\nobservation: {image: false, text: false}",
        2,
        "observation: image and text are both off",
    ),
    ("models: [a]\nmodels: [b]", 2, "models: key given twice"),
    ("name: smoke\n", 1, "missing key 'models'"),
    ("- a\n- b\n", 1, "expected a mapping at the top"),
    ("models: [a\n", 2, "invalid YAML"),
]


@pytest.mark.parametrize("text, line, message", BAD, ids=[b[2][:40] for b in BAD])
def test_bad_files_give_one_line_errors_with_file_line_and_key(tmp_path, text, line, message):
    path = tmp_path / "bad.yaml"
    with pytest.raises(spec.SpecError) as info:
        spec.load(path, text)
    error = str(info.value)
    assert "\n" not in error
    where = f"{path}:{line}: " if line else f"{path}: "
    assert error.startswith(where), error
    assert message in error


def test_empty_file(tmp_path):
    with pytest.raises(spec.SpecError, match="empty eval file"):
        spec.load(tmp_path / "e.yaml", "")


def test_command_line_overrides_keep_file_settings_of_named_models(tmp_path):
    loaded = spec.load(tmp_path / "s.yaml", GOOD)
    out = loaded.with_overrides(models=["local/silent", "new-model"], seeds=(4,), steps=7)
    assert [r.model for r in out.runs] == ["local/silent", "new-model"]
    assert out.runs[0].xfail and out.runs[1].xfail is None
    assert out.runs[1].request.temperature == 0.6
    assert out.seeds == (4,) and {r.steps for r in out.runs} == {7}


def test_seed_ranges_stay_within_crafters_seed_range():
    with pytest.raises(ValueError, match="2\\*\\*31-1"):
        spec.parse_seeds("2147483647-2147483648")


@pytest.mark.parametrize(("text", "seeds"), [("3,", (3,)), ("3, ", (3,)), ("3,5,", (3, 5))])
def test_a_trailing_comma_makes_a_list_so_one_seed_is_written_3_comma(text, seeds):
    assert spec.parse_seeds(text) == seeds
    assert spec.parse_seeds([3]) == (3,) and spec.parse_seeds("3") == (0, 1, 2)
