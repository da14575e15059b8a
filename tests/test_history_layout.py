"""Cache-friendly history (issue 19): `history.layout: window | blocks`, the episode's
`prompt_cache_key`, and cached input priced at the profile's cached price. Episodes run
through the real SDK and loopback server, whose usage reports cached tokens as OpenAI does."""

from __future__ import annotations

import itertools
import json
import warnings
from dataclasses import replace

import openai
import pytest

from pytest_crafter_eval.agent import episode
from pytest_crafter_eval.agent.episode import cache_key, first_request, run_episode
from pytest_crafter_eval.config import profiles, spec
from pytest_crafter_eval.wire.client import ModelClient
from pytest_crafter_eval.wire.conversation import (
    Conversation,
    Observation,
    Outcome,
    Reply,
    turns_kept,
)
from pytest_crafter_eval.wire.local import LocalServer
from pytest_crafter_eval.wire.local.inprocess import InProcess

BASE = spec.Run(
    model="local/heuristic",
    steps=40,
    observation=spec.Observation(),
    request=spec.Request(),
    expect=spec.Expect(),
    answer=spec.Answer(on_invalid="noop"),
)
PRICED = profiles.check_entries(  # gpt-4o-mini's prices (profiles.yaml) on a local model
    {"local/heuristic": {"price": {"input": 0.15, "output": 0.6, "cached": 0.075}}},
    lambda key, message: ValueError(message),
)


@pytest.fixture(scope="module")
def client():
    with (
        LocalServer() as server,
        openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0) as sdk,
    ):
        yield ModelClient(sdk)


def sent(steps, layout, turns=40):
    """Per request, the steps of the earlier turns it holds."""
    conversation = Conversation("go", keep=turns_kept(steps, layout))
    out = []
    for step in range(turns):
        turn = conversation.observe(Observation(f"step {step}"))
        out.append(
            [int(t.observation.text.split()[1]) for t in conversation.window(steps, layout)[:-1]]
        )
        turn.reply, turn.outcome = Reply(), Outcome()
        assert len(conversation.turns) <= turns_kept(steps, layout)  # memory stays bounded
    return out


def test_window_slides_by_one_and_blocks_append_then_cut_the_oldest_steps_at_once():
    window, blocks = sent(4, "window"), sent(4, "blocks")
    assert window[10] == [6, 7, 8, 9] and window[11] == [7, 8, 9, 10]
    assert [len(b) for b in blocks[:14]] == [0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5]
    assert blocks[8] == [4, 5, 6, 7] and blocks[11] == [4, 5, 6, 7, 8, 9, 10]
    for before, after in itertools.pairwise(blocks):  # append-only between cuts
        cut = len(after) <= len(before)
        assert after[: len(before)] == before or (cut and len(after) == 4)
    assert all(4 <= len(b) <= 7 for b in blocks[4:])  # at least `steps`, below twice that


def test_layout_is_an_eval_file_key_with_a_one_line_error(tmp_path):
    path = tmp_path / "evals" / "h.yaml"
    path.parent.mkdir()
    path.write_text("models: [local/random]\nhistory: {steps: 4, layout: window}\n")
    assert spec.load(path).runs[0].history == spec.History(4, 0, "window")
    path.write_text("models: [local/random]\nhistory: {steps: 4}\n")
    assert spec.load(path).runs[0].history.layout == "blocks"  # the default
    path.write_text("models: [local/random]\nhistory: {steps: 4, layout: sliding}\n")
    with pytest.raises(spec.SpecError) as error:
        spec.load(path)
    assert "history.layout: must be one of window, blocks, got 'sliding'" in str(error.value)
    assert "\n" not in str(error.value)


def play(client, layout, images, steps=40, history=16, seed=0, profiles_=PRICED):
    run = replace(
        BASE,
        steps=steps,
        history=spec.History(history, images, layout),
        profiles=profiles_,
    )
    events = []
    # an eval of its own per layout: a prompt cache key of its own (the two layouts send the
    # same requests until the first cut, which would be cache hits across the runs)
    name = f"cache-{layout}-{images}"
    result = run_episode(run, seed, client, eval_name=name, on_step=events.append)
    return result, events


def test_blocks_send_earlier_turns_unchanged_so_most_input_is_cached_and_cheaper(client):
    window, _ = play(client, "window", 0)
    blocks, events = play(client, "blocks", 0)
    assert blocks.steps == window.steps > 33 and blocks.achievements == window.achievements
    assert blocks.tokens_in > window.tokens_in  # more tokens...
    assert blocks.tokens_cached / blocks.tokens_in > 0.8  # ...most of them cached
    assert window.tokens_cached / window.tokens_in < 0.3  # only while its history fills
    assert blocks.cost_usd < window.cost_usd
    # without frames on earlier turns, a request is the last one's messages but the
    # current observation, then the last step's turn and the new observation
    for before, after in itertools.pairwise(events):
        old, new = before["request"]["messages"], after["request"]["messages"]
        if after["step"] < 32 or after["step"] % 16:  # not a request just after a cut
            assert new[: len(old) - 1] == old[:-1], after["step"]


def test_cost_prices_cached_input_at_the_profiles_cached_price(client):
    result, events = play(client, "blocks", 1, steps=24)
    usages = [e["response"]["usage"] for e in events]
    cached = sum(u["prompt_tokens_details"]["cached_tokens"] for u in usages)
    assert cached == result.tokens_cached > 0
    uncached = sum(u["prompt_tokens"] for u in usages) - cached
    out = sum(u["completion_tokens"] for u in usages)
    expected = (uncached * 0.15 + cached * 0.075 + out * 0.6) / 1e6
    assert result.cost_usd == pytest.approx(expected, rel=1e-9)
    assert [e["cost_usd"] for e in events][-1] == pytest.approx(
        profiles.Profile("x", prices=profiles.Prices(0.15, 0.6, 0.075)).cost(
            usages[-1]["prompt_tokens"],
            usages[-1]["completion_tokens"],
            usages[-1]["prompt_tokens_details"]["cached_tokens"],
        )
    )


def test_a_frame_kept_on_the_latest_turns_moves_and_the_cache_holds_less(client):
    text_only, _ = play(client, "blocks", 0, seed=2)  # a seed no other test plays
    framed, events = play(client, "blocks", 2, seed=2)
    assert framed.tokens_cached / framed.tokens_in < text_only.tokens_cached / text_only.tokens_in
    assert max(json.dumps(e["request"]).count("image/png") for e in events) == 3


def test_every_request_says_which_turn_of_the_episode_it_asks_for():
    """Not Crafter's `step: 0 of 10000` in a 5-call episode: the turn, counted from 1."""
    _, events = play(InProcess(), "blocks", 0, steps=5, history=2)
    firsts = [e["request"]["messages"][-1]["content"] for e in events]
    texts = [c if isinstance(c, str) else c[0]["text"] for c in firsts]
    assert [t.splitlines()[0] for t in texts] == [f"turn: {k} of 5" for k in range(1, 6)]
    run = replace(BASE, steps=5, history=spec.History(2, 0, "blocks"))
    assert first_request(run, 0)["messages"][-1] == events[0]["request"]["messages"][-1]


def test_the_heuristic_gets_the_same_achievements_in_both_layouts_on_10_seeds():
    """It reads only the current observation (its RNG too), so the history's layout
    cannot change its play; answered in-process, as payload snapshots are."""
    for seed in range(10):
        window, _ = play(InProcess(), "window", 1, steps=34, seed=seed)  # past the cut at 32
        blocks, _ = play(InProcess(), "blocks", 1, steps=34, seed=seed)
        assert (blocks.steps, blocks.achievements) == (window.steps, window.achievements), seed


# -- prompt_cache_key --------------------------------------------------------------------


def body(model="local/heuristic", history=16, seed=0, eval_name="e", **request):
    run = replace(
        BASE,
        model=model,
        history=spec.History(history),
        request=spec.Request(**request),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        made = first_request(run, seed, eval_name=eval_name)
    return made, [str(w.message) for w in caught]


def test_prompt_cache_key_is_sent_with_a_history_where_the_profile_takes_it():
    made, _ = body()
    assert made["prompt_cache_key"] == cache_key("e", "local/heuristic", 0)
    assert body()[0]["prompt_cache_key"] == made["prompt_cache_key"]  # stable
    keys = {body(seed=1)[0]["prompt_cache_key"], body(eval_name="f")[0]["prompt_cache_key"]}
    assert made["prompt_cache_key"] not in keys and len(keys) == 2
    assert body(model="gpt-4o-mini", api="responses")[0]["prompt_cache_key"].startswith(
        "crafter-eval-"
    )
    assert "prompt_cache_key" not in body(history=0)[0]  # no history: prompts too short
    assert "prompt_cache_key" in body(history=0, prompt_cache_key=True)[0]
    assert "prompt_cache_key" not in body(prompt_cache_key=False)[0]


def test_prompt_cache_key_is_not_sent_where_the_profile_does_not_take_it():
    made, notes = body(model="acme-vl-7b")
    assert "prompt_cache_key" not in made and not any("prompt_cache_key" in n for n in notes)
    made, notes = body(model="acme-vl-7b", prompt_cache_key=True)
    assert "prompt_cache_key" not in made
    assert any("request.prompt_cache_key dropped" in n for n in notes)


def test_the_payload_of_step_k_carries_the_runs_key():
    run = replace(BASE, history=spec.History(4))
    made = episode.request_at(run, 3, 5, eval_name="e")
    assert made["prompt_cache_key"] == cache_key("e", "local/heuristic", 3)


# -- reports -----------------------------------------------------------------------------


def test_summary_tables_and_html_show_the_cached_share_of_input_tokens(client):
    from pytest_crafter_eval.report import html
    from pytest_crafter_eval.report import summary as report

    records = []
    for model, layout in (("blocks", "blocks"), ("window", "window")):
        result, _ = play(client, layout, 0, steps=36, seed=1)  # not played before
        record = {**result.to_dict(), "eval": "cache", "model": model, "outcome": "passed"}
        records.append(record)
    summary = report.summarize(records)
    models = summary["evals"]["cache"]["models"]
    blocks, window = models["blocks"]["metrics"], models["window"]["metrics"]
    assert blocks["cached_share"] == blocks["tokens_cached"] / blocks["tokens_in"] > 0.8
    assert 0 < window["cached_share"] < 0.3 and blocks["cost_usd"] < window["cost_usd"]
    share = f"{100 * blocks['cached_share']:.0f}%"
    md = report.markdown(summary)
    assert "| cost | cached input | gate |" in md and f" | {share} | " in md
    terminal = "\n".join(report.terminal_lines(summary))
    assert "cached input" in terminal and share in terminal
    page = html.render_html(records, summary)
    assert "cached<br><small>of input tokens</small>" in page and f"{share}</td>" in page
    assert f"{share} of input cached" in page
    # with no cached tokens the column is left out, as before
    plain = report.summarize([{**r, "tokens_cached": 0} for r in records])
    assert "cached input" not in report.markdown(plain)
    assert "of input tokens" not in html.render_html(records, plain)
