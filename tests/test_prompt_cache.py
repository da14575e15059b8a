"""The local server's prompt cache (issue 19): cached tokens counted as OpenAI counts them,
per model and prompt_cache_key, from 1,024 tokens in steps of 128, reported in chat and
Responses usage through the real SDK over loopback HTTP."""

from __future__ import annotations

import openai
import pytest

from pytest_crafter_eval.wire.local.models import prompt_tokens
from pytest_crafter_eval.wire.local.prompt_cache import PromptCache

WORDS = [f"w{i:03d}" for i in range(2000)]  # 4 characters each: one token apiece


def tokens(n, start=0):
    return WORDS[start : start + n]


def test_a_prompt_shorter_than_1024_tokens_is_never_cached():
    cache = PromptCache()
    assert cache.cached("m", tokens(1000)) == 0
    assert cache.cached("m", tokens(1000)) == 0
    assert len(cache) == 0  # nothing below 1,024 tokens is remembered


@pytest.mark.parametrize(
    "first, second, expected",
    [
        (1500, 1500, 1408),  # the same prompt: its prefix in steps of 128
        (1100, 1500, 1024),  # a longer prompt after a shorter one: the shorter one's prefix
        (1500, 1100, 1024),  # a shorter one after a longer one
        (1023, 2000, 0),  # the first was not cached at all
        (2000, 2000, 1920),
    ],
)
def test_the_longest_shared_prefix_counts_from_1024_in_steps_of_128(first, second, expected):
    cache = PromptCache()
    assert cache.cached("m", tokens(first)) == 0
    assert cache.cached("m", tokens(second)) == expected


def test_a_change_ends_the_shared_prefix_and_scopes_do_not_share():
    cache = PromptCache()
    cache.cached("m", tokens(1600))
    changed = tokens(1600)
    changed[1200] = "XXXX"
    assert cache.cached("m", changed) == 1152  # the last whole step before the change
    changed[10] = "YYYY"
    assert cache.cached("m", changed) == 0
    assert cache.cached("other model or key", tokens(1600)) == 0
    # the longest of several earlier prompts counts
    assert cache.cached("m", tokens(1600)) == 1536


def test_memory_is_bounded_and_the_oldest_prefixes_go_first():
    cache = PromptCache(capacity=10)
    cache.cached("a", tokens(2000))  # 8 prefixes
    cache.cached("b", tokens(2000))  # 8 more: a's oldest are forgotten
    assert len(cache) == 10
    assert cache.cached("b", tokens(2000)) == 1920
    assert cache.cached("a", tokens(2000)) == 0  # its 1,024 prefix was evicted


def test_prompt_tokens_follow_the_body_tools_first_and_name_each_image():
    image = _image("AAAA")
    body = {
        "messages": [
            {"role": "system", "content": "abcdefgh"},
            {"role": "user", "content": [{"type": "text", "text": "abcde"}, image]},
        ],
        "tools": [{"type": "function"}],
    }
    counted = prompt_tokens(body)
    tools = -(-len('[{"type": "function"}]') // 4)
    assert len(counted) == tools + 4 + 2 + 4 + 2 + 85
    other = {**body, "messages": [body["messages"][0], {"role": "user", "content": [image]}]}
    assert prompt_tokens(other)[: tools + 6] == counted[: tools + 6]
    swapped = {
        **body,
        "messages": [
            body["messages"][0],
            {"role": "user", "content": [{"type": "text", "text": "abcde"}, _image("BBBB")]},
        ],
    }
    assert prompt_tokens(swapped)[:-85] == counted[:-85]
    assert prompt_tokens(swapped)[-85:] != counted[-85:]  # another image is another prefix


def _image(data):
    return {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{data}", "detail": "low"},
    }


# -- through the SDK -------------------------------------------------------------------

LONG = " ".join(WORDS[:1100])  # about 1,375 tokens


def _chat(sdk, key=None, extra=(), model="local/random"):
    messages = [{"role": "system", "content": LONG}, {"role": "user", "content": "go"}, *extra]
    kwargs = {"prompt_cache_key": key} if key else {}
    return sdk.chat.completions.create(model=model, messages=messages, **kwargs).usage


def test_chat_usage_reports_cached_tokens_per_model_and_cache_key(sdk):
    first = _chat(sdk, key="episode-1")
    assert first.prompt_tokens > 1280 and first.prompt_tokens_details.cached_tokens == 0
    again = _chat(sdk, key="episode-1")
    assert again.prompt_tokens_details.cached_tokens == first.prompt_tokens // 128 * 128
    longer = _chat(sdk, key="episode-1", extra=[{"role": "user", "content": "x" * 2000}])
    assert longer.prompt_tokens_details.cached_tokens == first.prompt_tokens // 128 * 128
    assert _chat(sdk, key="episode-2").prompt_tokens_details.cached_tokens == 0
    assert (
        _chat(sdk, key="episode-1", model="local/heuristic").prompt_tokens_details.cached_tokens
        == 0
    )
    assert _chat(sdk).prompt_tokens_details.cached_tokens == 0  # no key is a scope of its own


def test_responses_usage_reports_cached_tokens(sdk):
    def create():
        return sdk.responses.create(
            model="local/random",
            instructions=LONG,
            input="go",
            prompt_cache_key="responses-1",
            store=False,
        ).usage

    assert create().input_tokens_details.cached_tokens == 0
    usage = create()
    assert usage.input_tokens > 1280
    assert usage.input_tokens_details.cached_tokens == usage.input_tokens // 128 * 128


def test_a_prompt_cache_key_that_is_not_a_string_is_a_400(sdk):
    with pytest.raises(openai.BadRequestError, match="prompt_cache_key"):
        sdk.chat.completions.create(
            model="local/random",
            messages=[{"role": "user", "content": "go"}],
            extra_body={"prompt_cache_key": 3},
        )
