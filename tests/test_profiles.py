"""profiles: the registry against the models.dev facts, name matching, user overrides,
normalisation rules, prices, and every body against the official request schema."""

import json
import warnings
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from pytest_crafter_eval.agent import episode
from pytest_crafter_eval.config import profiles, spec
from pytest_crafter_eval.config.profiles import CrafterEvalWarning, resolve
from pytest_crafter_eval.wire import adapters
from pytest_crafter_eval.wire.adapters import chat

DATA = Path(__file__).parent / "data"
FACTS = json.loads((DATA / "openai-models.json").read_text())["models"]
SCHEMA = json.loads((DATA / "openai-CreateChatCompletionRequest.schema.json").read_text())
IMAGE_AND_TOOLS = sorted(m for m, f in FACTS.items() if f["image_input"] and f["tool_call"])
LACKING = sorted(set(FACTS) - set(IMAGE_AND_TOOLS))


def normalise(run, profile, messages):
    """The chat adapter's body for `messages` (instructions first), and its notes."""
    prepared = chat.ADAPTER.prepare(run, profile, messages[0]["content"])
    template = prepared.template
    return {**template, "messages": [template["messages"][0], *messages[1:]]}, list(prepared.notes)


def make_run(model, text_only=False, **request):
    observation = spec.Observation(image=None) if text_only else spec.Observation()
    return spec.Run(
        model=model,
        steps=1,
        observation=observation,
        request=replace(spec.Request(), **request),
        expect=spec.Expect(),
    )


@pytest.fixture(scope="module")
def messages():
    """One real first-step conversation (system prompt, text and frame), for every model."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CrafterEvalWarning)
        return episode.first_request(make_run("local/random"), 0)["messages"]


def test_the_seed_data_covers_42_models():
    assert len(FACTS) == 42 and len(IMAGE_AND_TOOLS) == 38


@pytest.mark.parametrize("model", sorted(FACTS))
def test_registry_agrees_with_models_dev(model):
    facts, profile = FACTS[model], resolve(model)
    assert (profile.entry, profile.match) == (model, "exact")
    assert profile.reasoning == facts["reasoning"]
    assert (profile.temperature is not None) == facts["temperature"]
    assert profile.image_input == facts["image_input"]
    assert profile.tool_call == facts["tool_call"]
    assert profile.max_output_tokens == facts["limit"]["output"]
    if facts["reasoning"]:
        assert profile.token_param == "max_completion_tokens"
        efforts = [v for o in facts["reasoning_options"] or [] for v in o["values"]]
        assert profile.reasoning_efforts == tuple(efforts)
        assert (
            (profile.reasoning_effort in efforts) if efforts else profile.reasoning_effort is None
        )
    cost = facts["cost_per_million_tokens"]
    assert profile.cost(1_000_000, 0) == pytest.approx(cost["input"])
    assert profile.cost(0, 1_000_000) == pytest.approx(cost["output"])
    assert profile.cost(1_000_000, 0, cached=1_000_000) == pytest.approx(
        cost.get("cache_read", cost["input"])
    )


def test_reasoning_models_without_temperature_take_max_completion_tokens():
    for model, facts in FACTS.items():
        if facts["reasoning"] and not facts["temperature"]:
            assert resolve(model).token_param == "max_completion_tokens", model
            assert resolve(model).temperature is None and resolve(model).top_p is None, model


@pytest.mark.parametrize(
    "model, entry, match",
    [
        ("gpt-4o-mini", "gpt-4o-mini", "exact"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", "snapshot"),
        ("gpt-5-nano-2025-08-07", "gpt-5-nano", "snapshot"),
        ("gpt-4o-2024-08-06", "gpt-4o-2024-08-06", "exact"),  # its own entry beats the undated one
        ("gpt-4-0613", "gpt-4", "snapshot"),
        ("gpt-5.9-mini", "gpt-5*", "family"),
        ("o5-mini", "o[0-9]*", "family"),
        ("gpt-4o-mini-search-preview", "gpt-4*", "family"),
        ("openai/gpt-4.1-nano", "gpt-4.1-nano", "exact"),
        ("local/silent?mode=refusal", "local/silent", "exact"),
        ("my-vllm-model", "*", "default"),
        ("omni-thing", "*", "default"),  # o-family needs a digit
    ],
)
def test_matching(model, entry, match):
    profile = resolve(model)
    assert (profile.entry, profile.match) == (entry, match)
    assert (profile.assumed is not None) == (match in ("family", "default"))


def test_a_future_model_lands_in_its_family_and_the_warning_says_what_was_assumed():
    future = resolve("gpt-5.9-mini")
    assert (future.token_param, future.temperature, future.reasoning_effort) == (
        "max_completion_tokens",
        None,
        "low",
    )
    assert future.cost(1000, 1000) is None
    assert "gpt-5.9-mini: no profile of its own; assumed family 'gpt-5*'" in future.assumed
    assert "prices unknown" in future.assumed
    unknown = resolve("my-vllm-model")
    assert unknown.token_param == "max_tokens" and unknown.tool_choice == ("none", "auto")
    assert (
        "assumed the default OpenAI-compatible profile: max_tokens, temperature 0-2"
        in unknown.assumed
    )


def test_default_effort_is_low_or_the_nearest_accepted():
    assert resolve("gpt-5-nano").reasoning_effort == "low"
    assert resolve("gpt-5-pro").reasoning_effort == "high"  # takes only high
    assert resolve("gpt-5.1-chat-latest").reasoning_effort == "medium"  # takes only medium
    assert resolve("gpt-5-chat-latest").reasoning_effort is None  # takes none at all


def test_user_entries_override_and_add(tmp_path):
    user = profiles.check_entries(
        {
            "gpt-5-nano": {"reasoning_budget": 1000, "price": {"input": 1, "output": 2}},
            "acme-*": {"like": "gpt-4o-mini", "price": {"input": 0.5, "output": 1}},
        },
        lambda key, msg: ValueError(f"{key}: {msg}"),
    )
    nano = resolve("gpt-5-nano", user)
    assert (nano.reasoning_budget, nano.token_param, nano.match) == (
        1000,
        "max_completion_tokens",
        "exact",
    )
    assert nano.cost(1_000_000, 1_000_000) == pytest.approx(3.0)
    acme = resolve("acme-vision-2", user)
    assert (acme.entry, acme.match, acme.token_param, acme.image_input) == (
        "acme-*",
        "family",
        "max_tokens",
        True,
    )
    assert resolve("gpt-5-nano").reasoning_budget == 4096  # the built-in one is unchanged


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "profiles: {gpt-5: {temprature: 1}}\n",
            "1: profiles.gpt-5.temprature: unknown key (did you mean 'temperature'?)",
        ),
        (
            "profiles:\n  x:\n    token_param: max_output\n",
            "3: profiles.x.token_param: must be one of max_tokens, max_completion_tokens, got 'max_output'",
        ),
        (
            "profiles:\n  x:\n    price: {input: 1}\n",
            "3: profiles.x.price: must be a mapping {input: X",
        ),
        (
            "profiles:\n  x:\n    temperature: [0, 3]\n",
            "3: profiles.x.temperature: must be true, false or a range [min, max] within 0..2",
        ),
        ("profiles: [a]\n", "1: profiles: must be a mapping of model names to profile fields"),
    ],
)
def test_bad_profiles_are_one_line_errors_with_file_and_line(tmp_path, text, message):
    path = tmp_path / "profiles.yaml"
    path.write_text(text)
    with pytest.raises(spec.SpecError) as info:
        spec.load_profiles(path)
    assert str(info.value).startswith(f"{path}:{message}")
    with pytest.raises(spec.SpecError) as info:  # the same key in an eval file
        spec.load(tmp_path / "e.yaml", "models: [a]\n" + text)
    assert f"e.yaml:{int(message.split(':')[0]) + 1}:" in str(info.value)


def test_eval_file_profiles_reach_every_run(tmp_path):
    loaded = spec.load(
        tmp_path / "e.yaml",
        "models: [acme-1, gpt-5-nano]\n"
        "profiles: {acme-1: {like: o3, price: {input: 1, output: 1}}}\n",
    )
    extra = profiles.check_entries({"acme-1": {"reasoning_budget": 7}}, lambda k, m: ValueError(m))
    runs = loaded.with_overrides(profiles=extra, models=["acme-1", "other"]).runs
    assert profiles.for_run(runs[0]).reasoning_budget == 7  # --profiles wins over the file
    assert profiles.for_run(runs[0]).token_param == "max_completion_tokens"
    assert profiles.for_run(runs[1]).entry == "*"


def test_reasoning_models_get_a_budget_and_low_effort_and_lose_temperature(messages):
    body, notes = normalise(
        make_run("gpt-5-nano", temperature=0.6, top_p=0.9), resolve("gpt-5-nano"), messages
    )
    assert body["max_completion_tokens"] == 512 + 4096 and "max_tokens" not in body
    assert body["reasoning_effort"] == "low"
    assert "temperature" not in body and "top_p" not in body
    assert body["messages"][0]["role"] == "developer"
    assert [str(n) for n in notes] == [
        (
            "gpt-5-nano: request.temperature=0.6 dropped: the model takes only the default temperature "
            "(profile rule 'temperature')"
        ),
        (
            "gpt-5-nano: request.top_p=0.9 dropped: the model takes only the default top_p "
            "(profile rule 'top_p')"
        ),
    ]
    body, notes = normalise(
        make_run("gpt-5-nano", reasoning_budget=0, reasoning_effort="high"),
        resolve("gpt-5-nano"),
        messages,
    )
    assert (body["max_completion_tokens"], body["reasoning_effort"], notes) == (512, "high", [])


def test_chat_models_keep_temperature_and_take_max_tokens(messages):
    body, notes = normalise(
        make_run("gpt-4o-mini-2024-07-18", temperature=0.6, reasoning_effort="low"),
        resolve("gpt-4o-mini-2024-07-18"),
        messages,
    )
    assert (body["max_tokens"], body["temperature"], body["messages"][0]["role"]) == (
        512,
        0.6,
        "system",
    )
    assert "reasoning_effort" not in body
    assert [n.rule for n in notes] == ["reasoning"]
    assert "request.reasoning_effort='low' dropped: not a reasoning model" in str(notes[0])


@pytest.mark.parametrize(
    "model, request_settings, rule, said",
    [
        (
            "gpt-5-pro",
            {"reasoning_effort": "low"},
            "reasoning_efforts",
            "request.reasoning_effort='low' changed to 'high': the model takes high",
        ),
        (
            "gpt-4-turbo",
            {"max_output_tokens": 9000},
            "max_output_tokens",
            "max_tokens=9000 lowered to the model's output limit 4096",
        ),
        (
            "my-server-model",
            {"tool_choice": "required"},
            "tool_choice",
            "request.tool_choice='required' is not taken; sent 'auto'",
        ),
        (
            "o3",
            {"parallel_tool_calls": False},
            "parallel_tool_calls",
            "request.parallel_tool_calls dropped: not taken",
        ),
        ("local/random", {"temperature": 1.5, "top_p": 1.0}, None, None),
    ],
)
def test_every_change_is_a_note_naming_model_and_rule(
    messages, model, request_settings, rule, said
):
    _body, notes = normalise(make_run(model, **request_settings), resolve(model), messages)
    if rule is None:
        assert notes == []
    else:
        assert [(n.model, n.rule) for n in notes] == [(model, rule)] and said in notes[0].message


def test_prepare_warns_once_per_process(messages):
    run = make_run("gpt-4.1-mini", reasoning_effort="medium")
    with pytest.warns(
        CrafterEvalWarning,
        match=r"gpt-4.1-mini: request.reasoning_effort='medium' "
        r"dropped.*profile rule 'reasoning'",
    ):
        adapters.prepare(chat.ADAPTER, run, resolve(run.model), "instructions")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adapters.prepare(chat.ADAPTER, run, resolve(run.model), "instructions")  # silent now


def _schema_properties():
    root = SCHEMA["$defs"]["CreateChatCompletionRequest"]
    names = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if "$ref" in node:
            stack.append(SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]])
        stack.extend(node.get("allOf", []))
        names.update(node.get("properties", {}))
    return names


@pytest.mark.parametrize("text_only", [False, True], ids=["image", "text-only"])
def test_every_image_and_tool_model_gives_a_body_the_official_schema_accepts(messages, text_only):
    validator = jsonschema.Draft202012Validator(SCHEMA)
    known = _schema_properties()
    msgs = (
        messages
        if not text_only
        else [messages[0], {"role": "user", "content": [messages[1]["content"][0]]}]
    )
    for model in IMAGE_AND_TOOLS:
        for settings in (
            {},
            {
                "temperature": 0.6,
                "top_p": 0.5,
                "reasoning_effort": "high",
                "tool_choice": "required",
                "parallel_tool_calls": True,
            },
        ):
            run = make_run(model, text_only=text_only, **settings)
            body, _ = normalise(run, resolve(model), msgs)
            errors = [
                f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in validator.iter_errors(body)
            ]
            assert errors == [], f"{model} {settings}: {errors}"
            assert set(body) <= known, f"{model}: unknown keys {set(body) - known}"
    # the check itself can fail: a value outside the schema is caught
    assert list(validator.iter_errors(dict(body, reasoning_effort="extreme")))
    assert list(validator.iter_errors(dict(body, max_completion_tokens="512")))


@pytest.mark.parametrize("model", LACKING)
def test_models_lacking_images_or_tools_get_a_clear_error(messages, model):
    facts = FACTS[model]
    with pytest.raises(profiles.Unsupported) as info:
        normalise(make_run(model), resolve(model), messages)
    lacking = "tool calls" if not facts["tool_call"] else "image input"
    assert str(info.value).startswith(f"{model} does not take {lacking} (profile '{model}', exact)")
    if facts["tool_call"]:  # a text-only eval needs only tool calls
        body, _ = normalise(make_run(model, text_only=True), resolve(model), messages[:1])
        assert body["tools"]


def test_cost_counts_cached_input_at_the_cached_price():
    mini = resolve("gpt-4o-mini")  # 0.15 input, 0.6 output, 0.075 cached per million
    assert mini.cost(1000, 200, cached=400) == pytest.approx(
        (600 * 0.15 + 400 * 0.075 + 200 * 0.6) / 1e6
    )
    assert resolve("local/heuristic").cost(10**6, 10**6) == 0.0


def test_the_packaged_registry_is_read_once_though_threads_ask_at_once(monkeypatch):
    """64 episodes in flight start at once and each asks for its run's profile: the
    packaged profiles.yaml is read by one of them, the others wait for it."""
    import threading

    reads = []
    check = profiles.check_entries

    def counted(*args, **kwargs):
        reads.append(1)
        return check(*args, **kwargs)

    monkeypatch.setattr(profiles, "check_entries", counted)
    profiles._read_builtin.cache_clear()
    start = threading.Barrier(8)

    def ask():
        start.wait()
        profiles.builtin()

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    profiles._read_builtin.cache_clear()  # the next test reads the real one again
    assert len(reads) == 1
