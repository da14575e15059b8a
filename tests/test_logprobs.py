"""request.logprobs: sent where the model's profile allows it (a warning and no field
where not); the token logprobs, and token ids where the server returns them, kept in the
trace. The local server returns them, so this runs offline over real loopback HTTP."""

from __future__ import annotations

import json
import warnings

import pytest

from pytest_crafter_eval.agent.episode import first_request, run_episode
from pytest_crafter_eval.config import spec
from pytest_crafter_eval.config.profiles import CrafterEvalWarning
from pytest_crafter_eval.data import trace
from pytest_crafter_eval.wire.client import Connections

EVAL = """\
models: [local/heuristic]
steps: 4
request: {{logprobs: true{api}}}
{profiles}
"""


def _run(tmp_path, api: str = "", profiles: str = "") -> spec.Run:
    path = tmp_path / "lp.yaml"
    path.write_text(EVAL.format(api=api, profiles=profiles))
    return spec.load(path).runs[0]


def _played(tmp_path, run: spec.Run) -> list[dict]:
    directory = tmp_path / "trace"
    with Connections() as connections, trace.TraceWriter(directory) as writer:
        result = run_episode(
            run, 0, connections.for_model(run.model), eval_name="lp", on_step=writer
        )
    assert result.steps == 4 and result.error is None
    return [json.loads(line) for line in (directory / "steps.jsonl").read_text().splitlines()]


def test_logprobs_are_asked_and_kept_in_the_trace(tmp_path):
    run = _run(tmp_path)
    assert first_request(run, 0)["logprobs"] is True
    assert "return_token_ids" not in first_request(run, 0)  # not every server takes it
    lines = _played(tmp_path, run)
    for line in lines:
        usage = line["response"]["usage"]
        assert len(line["logprobs"]) == usage["completion_tokens"]
        assert all(-2 <= p < 0 for p in line["logprobs"])
        assert line["token_ids"] is None and line["prompt_token_ids"] is None
    # the same request gives the same numbers; another request others
    assert lines[0]["logprobs"] == _played(tmp_path / "again", run)[0]["logprobs"]
    assert lines[0]["logprobs"] != lines[1]["logprobs"]


def test_token_ids_where_the_profile_says_the_server_returns_them(tmp_path):
    run = _run(tmp_path, profiles='profiles: {"local/*": {token_ids: true}}')
    assert first_request(run, 0)["return_token_ids"] is True
    for line in _played(tmp_path, run):
        usage = line["response"]["usage"]
        assert len(line["token_ids"]) == len(line["logprobs"]) == usage["completion_tokens"]
        assert len(line["prompt_token_ids"]) == usage["prompt_tokens"]
        assert all(isinstance(t, int) and 0 <= t < 1 << 17 for t in line["token_ids"])


@pytest.mark.parametrize(
    ("api", "profiles", "why"),
    [
        ("", 'profiles: {"local/*": {logprobs: false}}', "the model returns no token logprobs"),
        (", api: responses", "", "the Responses API returns no logprobs of function calls"),
    ],
)
def test_a_warning_and_no_field_where_logprobs_are_not_taken(tmp_path, api, profiles, why):
    run = _run(tmp_path, api, profiles)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        body = first_request(run, 0)
    assert "logprobs" not in body and "include" not in body
    messages = [str(w.message) for w in caught if issubclass(w.category, CrafterEvalWarning)]
    assert any(f"request.logprobs dropped: {why}" in m for m in messages), messages
    lines = _played(tmp_path, run)
    assert all(line["logprobs"] is None for line in lines)


def test_a_profile_with_a_bad_logprobs_value_is_a_file_line_error(tmp_path):
    path = tmp_path / "lp.yaml"
    path.write_text('models: [local/heuristic]\nprofiles:\n  "local/*": {logprobs: 3}\n')
    with pytest.raises(spec.SpecError, match=r"lp.yaml:3: .*logprobs"):
        spec.load(path)
