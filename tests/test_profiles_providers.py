"""profiles beyond OpenAI: the Anthropic, Gemini and open-weight entries against the
models.dev facts, the rule for facts that providers disagree on, name matching for
dated, aliased and provider-prefixed names, and `crafter-eval payload` for them."""

import importlib.util
import json
import statistics
import subprocess
import sys
import warnings
from collections import Counter
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from pytest_crafter_eval import cli
from pytest_crafter_eval.agent import episode
from pytest_crafter_eval.config import spec
from pytest_crafter_eval.config.profiles import CrafterEvalWarning, resolve
from pytest_crafter_eval.wire.adapters import chat

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"
FACTS = json.loads((DATA / "models-anthropic-google-open.json").read_text())["models"]
SCHEMA = json.loads((DATA / "openai-CreateChatCompletionRequest.schema.json").read_text())
LABS = {  # the labs' own platforms (the seed rule's first choice)
    "claude-": "anthropic",
    "gemini-": "google",
    "gemma-": "google",
    "qwen": "alibaba",
    "llama-": "llama",
    "pixtral-": "mistral",
    "mistral-": "mistral",
    "ministral-": "mistral",
    "glm-": "zai",
    "phi-": "azure",
}
FIRST_PARTY = sorted(k for k in FACTS if k.split("/")[1].startswith(("claude-", "gemini-")))


def normalise(run, profile, messages):
    """The chat adapter's body for `messages` (instructions first), and its notes."""
    prepared = chat.ADAPTER.prepare(run, profile, messages[0]["content"])
    template = prepared.template
    return {**template, "messages": [template["messages"][0], *messages[1:]]}, list(prepared.notes)


def _seeder():
    spec_ = importlib.util.spec_from_file_location(
        "seed_profiles", ROOT / "scripts/seed_profiles.py"
    )
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    return module


SEED = _seeder()
MODELS = SEED.group(FACTS)  # model -> {listing key: facts}
OPEN = sorted(m for m in MODELS if not m.startswith(("claude-", "gemini-")))


def make_run(model, **request):
    return spec.Run(
        model=model,
        steps=1,
        observation=spec.Observation(),
        request=replace(spec.Request(), **request),
        expect=spec.Expect(),
    )


@pytest.fixture(scope="module")
def messages():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CrafterEvalWarning)
        return episode.first_request(make_run("local/random"), 0)["messages"]


def test_the_seed_data_covers_24_anthropic_14_gemini_and_350_open_listings():
    providers = Counter(k.split("/")[0] for k in FACTS)
    assert providers["anthropic"] == 24
    assert sum(k.startswith("google/gemini-") for k in FACTS) == 14
    assert len(FACTS) - len(FIRST_PARTY) == 350
    # every listing is placed under a model, except one that names no size
    placed = sum(len(v) for v in MODELS.values())
    assert placed == len(FACTS) - 1 and SEED.canonical("inference/google/gemma-3") is None
    assert len(OPEN) == 49


def test_the_generated_block_is_what_the_script_writes_from_the_copied_facts():
    assert SEED.main(["--check"]) == 0, "run python scripts/seed_profiles.py"


@pytest.mark.parametrize("key", FIRST_PARTY)
def test_anthropic_and_gemini_entries_agree_with_models_dev(key):
    facts, model = FACTS[key], key.split("/", 1)[1]
    profile = resolve(key)  # with its provider prefix, as a router names it
    assert (profile.entry, profile.match, profile.assumed) == (model, "exact", None)
    assert profile.reasoning == facts["reasoning"]
    assert profile.image_input == facts["image_input"]
    assert profile.tool_call == facts["tool_call"]
    assert profile.max_output_tokens == facts["limit"]["output"]
    assert profile.context_tokens == facts["limit"]["context"]
    efforts = [
        v for o in facts["reasoning_options"] or [] if o["type"] == "effort" for v in o["values"]
    ]
    assert profile.reasoning_efforts == tuple(efforts)
    if not facts["temperature"]:
        assert profile.temperature is None
    elif model.startswith("claude-"):  # Anthropic's OpenAI-compatible endpoint: 0 to 1
        assert profile.temperature == (0.0, 1.0)
    else:
        assert profile.temperature == (0.0, 2.0)
    cost = facts["cost_per_million_tokens"]
    assert profile.cost(10**6, 0) == pytest.approx(cost["input"])
    assert profile.cost(0, 10**6) == pytest.approx(cost["output"])
    assert profile.cost(10**6, 0, cached=10**6) == pytest.approx(
        cost.get("cache_read", cost["input"])
    )


@pytest.mark.parametrize("model", OPEN)
def test_open_weight_entries_follow_the_rule(model):
    """The lab's listing if there is one; else the majority (ties: the value that cannot
    fail); prices the lab's or the median of the non-zero ones. Every value is listed."""
    listings = MODELS[model]
    profile = resolve(model)
    assert (profile.entry, profile.match, profile.assumed) == (model, "exact", None)
    assert profile.image_input
    lab = next((v for k, v in LABS.items() if model.startswith(k)), None)
    own = sorted(k for k in listings if k.startswith(f"{lab}/"))
    got = {
        "tool_call": profile.tool_call,
        "reasoning": profile.reasoning,
        "temperature": profile.temperature is not None,
        "output": profile.max_output_tokens,
        "context": profile.context_tokens,
    }

    def value(f, key):
        return f["limit"].get(key) if key in ("output", "context") else f[key]

    for key, have in got.items():
        values = [value(f, key) for f in listings.values() if value(f, key) is not None]
        assert have in values, (key, have, values)  # never a value no provider lists
        if own:
            assert have == value(listings[own[0]], key), key
        else:
            top = Counter(values).most_common()
            if len(top) == 1 or top[0][1] > top[1][1]:
                assert have == top[0][0], key
            else:  # a tie: the value that cannot fail
                tied = [v for v, n in top if n == top[0][1]]
                assert have == (False if isinstance(have, bool) else min(tied)), key
    lab_cost = listings[own[0]]["cost_per_million_tokens"] if own else None
    priced = [
        c
        for f in listings.values()
        if (c := f["cost_per_million_tokens"]) and (c["input"] or c["output"])
    ]
    if lab_cost and (lab_cost["input"] or lab_cost["output"]):
        assert profile.cost(10**6, 0) == pytest.approx(lab_cost["input"])
        assert profile.cost(0, 10**6) == pytest.approx(lab_cost["output"])
    elif priced:
        assert profile.cost(10**6, 0) == pytest.approx(
            statistics.median(c["input"] for c in priced)
        )
        assert profile.cost(0, 10**6) == pytest.approx(
            statistics.median(c["output"] for c in priced)
        )
        assert profile.prices.cached is None
    else:
        assert profile.prices is None


@pytest.mark.parametrize(
    "model, tool_call, output, context, price",
    [
        # Alibaba's own listing, though 6 of its 11 listings say no tool calls
        ("qwen2.5-vl-72b-instruct", True, 8192, 131072, (2.8, 8.4)),
        # no Google listing: 5 of 6 providers list no tool calls
        ("gemma-3-12b-it", False, 8192, 131072, (0.05, 0.1)),
        # three listings, three limits: the smaller
        ("qwen2.5-vl-32b-instruct", True, 4096, 16384, (0.2, 0.6)),
        # Meta's Llama API lists it at 0 (a free tier): the median of the priced listings
        ("llama-4-scout-17b-16e-instruct", True, 4096, 128000, (0.17, 0.59)),
    ],
)
def test_chosen_facts_by_hand(model, tool_call, output, context, price):
    profile = resolve(model)
    assert (profile.tool_call, profile.max_output_tokens, profile.context_tokens) == (
        tool_call,
        output,
        context,
    )
    assert (profile.prices.input, profile.prices.output) == pytest.approx(price)


NAMES = [
    ("anthropic/claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929", "exact"),
    ("claude-sonnet-4-5", "claude-sonnet-4-5", "exact"),
    ("claude-3-5-sonnet-latest", "claude-3-5-sonnet-20241022", "snapshot"),
    ("anthropic/claude-3.5-sonnet", "claude-3-5-sonnet-20241022", "snapshot"),  # OpenRouter
    ("openrouter/anthropic/claude-sonnet-4.5", "claude-sonnet-4-5", "exact"),
    ("claude-sonnet-4-6-20260217", "claude-sonnet-4-6", "snapshot"),
    ("gemini-2.5-flash-preview-05-20", "gemini-2.5-flash", "snapshot"),
    ("gemini-2.0-flash-001", "gemini-2.0-flash", "snapshot"),
    ("google/gemini-2.5-pro", "gemini-2.5-pro", "exact"),
    ("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2.5-vl-7b-instruct", "exact"),
    ("qwen/qwen2.5-vl-72b-instruct", "qwen2.5-vl-72b-instruct", "exact"),
    ("Qwen/Qwen2.5-VL-72B-Instruct-AWQ", "qwen2.5-vl-72b-instruct", "exact"),  # vLLM, quantised
    ("qwen2-5-vl-72b-instruct", "qwen2-5-vl-72b-instruct", "exact"),  # Alibaba's spelling
    ("meta-llama/Llama-3.2-11B-Vision-Instruct", "llama-3.2-11b-vision-instruct", "exact"),
    ("meta-llama/llama-3.2-11b-vision-instruct:free", "llama-3.2-11b-vision-instruct", "exact"),
    ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "llama-4-scout-17b-16e-instruct", "exact"),
    ("meta-llama/llama-4-maverick", "llama-4-maverick", "exact"),  # OpenRouter's id
    ("hosted_vllm/google/gemma-3-27b-it", "gemma-3-27b-it", "exact"),  # LiteLLM prefix
    ("mistralai/Pixtral-12B-2409", "pixtral-12b-2409", "exact"),
    ("pixtral-large-latest", "pixtral-large-latest", "exact"),  # Mistral's API name
    ("zai-org/GLM-4.5V", "glm-4.5v", "exact"),
    ("Qwen/Qwen3-VL-8B-Instruct", "qwen3-vl-8b-instruct", "exact"),
]


@pytest.mark.parametrize("name, entry, match", NAMES)
def test_dated_aliased_and_prefixed_names_resolve_to_their_entry(name, entry, match):
    profile = resolve(name)
    assert (profile.entry, profile.match, profile.assumed) == (entry, match, None)


@pytest.mark.parametrize(
    "name, family",
    [
        ("Qwen/Qwen2.5-VL-3B-Instruct", "qwen2.5-vl-*"),  # no provider lists it
        ("claude-3-5-haiku-latest", "claude-*"),
        ("gemini-4-pro", "gemini-*"),
        ("google/gemma-3-1b-it", "gemma-3-*"),
    ],
)
def test_unlisted_members_get_their_family_and_the_warning(name, family):
    profile = resolve(name)
    assert (profile.entry, profile.match) == (family, "family")
    assert "no profile of its own" in profile.assumed and "prices unknown" in profile.assumed
    if family == "claude-*":  # Claude models disagree on temperature: none is sent
        assert profile.temperature is None and profile.parallel_tool_calls


@pytest.mark.parametrize("name", [n for n, _, _ in NAMES])
def test_payload_command_gives_a_body_without_an_assumed_profile(name, capsys):
    assert cli.main(["payload", "--model", name]) == 0
    out, err = capsys.readouterr()
    body = json.loads(out)
    assert body["model"] == name and body["tools"][0]["function"]["name"] == "interact_many"
    assert "no profile of its own" not in err and err == ""


def test_the_payload_command_in_a_subprocess_for_an_anthropic_a_gemini_and_a_qwen_name():
    for name in ("anthropic/claude-sonnet-4-5", "gemini-2.5-flash", "Qwen/Qwen2.5-VL-7B-Instruct"):
        done = subprocess.run(
            [sys.executable, "-m", "pytest_crafter_eval.cli", "payload", "--model", name],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "no profile of its own" not in done.stderr and done.stderr == ""
        assert json.loads(done.stdout)["messages"][1]["content"][1]["type"] == "image_url"


def test_claude_temperature_is_clamped_to_what_anthropic_takes(messages):
    body, notes = normalise(
        make_run("claude-sonnet-4-5", temperature=1.5), resolve("claude-sonnet-4-5"), messages
    )
    assert body["temperature"] == 1.0 and body["max_tokens"] == 512 + 4096
    assert [n.rule for n in notes] == ["temperature"]
    body, notes = normalise(
        make_run("claude-opus-4-7", temperature=0.5), resolve("claude-opus-4-7"), messages
    )
    assert "temperature" not in body and body["reasoning_effort"] == "low"


def test_every_new_model_that_takes_images_and_tools_gives_a_valid_body(messages):
    validator = jsonschema.Draft202012Validator(SCHEMA)
    usable = [m for m in MODELS if resolve(m).tool_call]
    assert len(usable) > 70
    for model in usable:
        body, _ = normalise(make_run(model, temperature=0.7), resolve(model), messages)
        errors = [e.message for e in validator.iter_errors(body)]
        assert not errors, (model, errors[:3])
