"""export: traces -> fine-tuning files (`crafter-eval export`). The traces are real: short
episodes of the local models played through the openai SDK over loopback HTTP and
written by TraceWriter, and (last test) a real `pytest --trace-dir` run of an eval file."""

import base64
import dataclasses
import io
import json
import shutil
from pathlib import Path

import jinja2
import jsonschema
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment
from PIL import Image

from pytest_crafter_eval import cli
from pytest_crafter_eval.agent.episode import run_episode
from pytest_crafter_eval.config import spec
from pytest_crafter_eval.data import export, trace
from pytest_crafter_eval.data.export import ExportError, Options
from pytest_crafter_eval.wire.answers import parse_calls, parse_text
from pytest_crafter_eval.wire.client import Connections
from pytest_crafter_eval.wire.conversation import ToolCall

SCHEMA = json.loads(
    (Path(__file__).parent / "data" / "openai-FineTuneChatRequestInput.schema.json").read_text()
)
CHAOS = "local/chaos?rate_malformed=0.5&malformed=many&seed=1"  # some steps play 12 actions
EPISODES = [  # eval, model, seed, model calls
    *[("e", "local/heuristic", seed, 10) for seed in range(4)],
    ("e", "local/random", 0, 4),
    ("e", "local/random", 1, 4),
    ("e", CHAOS, 0, 8),
    ("e", "local/silent", 0, 3),  # answers in text: one step, no tool call
    ("f", "local/heuristic", 0, 4),
]


@pytest.fixture(scope="module")
def traces(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("traces")
    with Connections() as connections:
        for eval_name, model, seed, steps in EPISODES:
            path = root.parent / "e.yaml"
            path.write_text(f"models: [{json.dumps(model)}]\nsteps: {steps}\n")
            run = spec.load(path).runs[0]
            directory = root / trace.episode_path(eval_name, model, seed)
            with trace.TraceWriter(directory) as writer:
                run_episode(
                    run, seed, connections.for_model(model), eval_name=eval_name, on_step=writer
                )
    return root


HISTORY = """\
models:
  - local/hermes: {answer: {format: auto}}   # writes its calls as Hermes text
  - local/fumble?rate=0.4&seed=1              # invalid answers now and then
history: {steps: 3, images: 1}
answer: {on_invalid: noop}
steps: 8
"""


@pytest.fixture(scope="module")
def history_traces(tmp_path_factory) -> Path:
    """Episodes whose requests carry history: text answers (local/hermes with
    answer.format auto) and invalid earlier answers (local/fumble)."""
    root = tmp_path_factory.mktemp("history")
    path = root.parent / "h.yaml"
    path.write_text(HISTORY)
    with Connections() as connections:
        for run in spec.load(path).runs:
            for seed in (0, 1):
                directory = root / trace.episode_path("h", run.model, seed)
                with trace.TraceWriter(directory) as writer:
                    run_episode(
                        run, seed, connections.for_model(run.model), eval_name="h", on_step=writer
                    )
    return root


@pytest.fixture(scope="module")
def episodes(traces):
    return export.load([traces])


def files(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_counts(manifest: dict) -> None:
    """Every count in the manifest adds up."""
    counts = manifest["counts"]
    episodes, steps, examples = counts["episodes"], counts["steps"], counts["examples"]
    assert episodes["found"] == episodes["kept"] + sum(episodes["dropped"].values())
    assert episodes["found"] == sum(s["episodes"] for s in manifest["sources"])
    assert episodes["found"] == sum(r["episodes"] for r in manifest["runs"])
    assert episodes["kept"] == len(manifest["episodes"])
    assert episodes["found"] - episodes["kept"] == len(manifest["dropped_episodes"])
    assert steps["in_kept_episodes"] == sum(e["steps"] for e in manifest["episodes"])
    assert steps["in_kept_episodes"] == steps["kept"] + sum(steps["dropped"].values())
    assert (
        steps["kept"] == examples["train"] + examples["val"] + examples["dropped_by_max_examples"]
    )
    for name in ("train", "val"):
        mine = [e for e in manifest["episodes"] if e["split"] == name]
        assert manifest["splits"][name]["episodes"] == len(mine)
        assert manifest["splits"][name]["examples"] == examples[name]
        assert sum(e["examples"] for e in mine) == examples[name]


# ------------------------------------------------------------------ the OpenAI format


def test_every_line_validates_against_the_fine_tuning_schema(traces, tmp_path):
    out = tmp_path / "out"
    manifest = export.export([traces], out, Options(val_fraction=0.3))
    check_counts(manifest)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    lines = {name: jsonl(out / f"{name}.jsonl") for name in ("train", "val")}
    assert len(lines["train"]) == manifest["counts"]["examples"]["train"] > 0
    assert len(lines["val"]) == manifest["counts"]["examples"]["val"] > 0
    for line in lines["train"] + lines["val"]:
        errors = list(validator.iter_errors(line))
        assert not errors, errors[0].message
        system, user, answer = line["messages"]
        assert system["role"] == "system" and user["role"] == "user"
        image = next(p for p in user["content"] if p["type"] == "image_url")["image_url"]
        assert image["url"].startswith("data:image/png;base64,")
        assert answer["role"] == "assistant" and "weight" not in answer
        assert [c["function"]["name"] for c in answer["tool_calls"]] == ["interact_many"]
        assert line["tools"][0]["function"]["name"] == "interact_many"
    # the steps that are no example: the silent model's text answer, the chaos model's
    # 12-action calls (played as 8, but no example to learn from)
    dropped = manifest["counts"]["steps"]["dropped"]
    assert dropped["no_tool_call"] == 1 and dropped["invalid_tool_call"] >= 1
    assert manifest["files"] == {"train": "train.jsonl", "val": "val.jsonl"}
    assert sorted(files(out)) == ["manifest.json", "train.jsonl", "val.jsonl"]


def test_examples_are_the_trace_steps_with_images_inlined(traces, tmp_path, episodes):
    """The first example is step 0 of the first episode, as sft_examples reads it."""
    only = Options(val_fraction=0, evals=("e",), models=("local/heuristic",))
    export.export([traces], tmp_path / "out", only)
    first = jsonl(tmp_path / "out" / "train.jsonl")[0]
    heuristic = next(e for e in episodes if e.model == "local/heuristic" and e.eval == "e")
    expected = next(trace.sft_examples(heuristic.directory / "steps.jsonl"))
    assert first == expected
    url = first["messages"][1]["content"][1]["image_url"]["url"]
    assert (
        base64.b64decode(url.split(",", 1)[1])
        == (heuristic.directory / "frames/0000.png").read_bytes()
    )


def test_a_developer_message_becomes_system_and_earlier_answers_weigh_zero(episodes):
    """A reasoning model's `developer` instructions and a conversation's history turns:
    the format has no developer role, and only the step's own answer is trained."""
    episode = next(e for e in episodes if e.model == "local/heuristic")
    first, second = episode.steps[0], episode.steps[1]
    one, two = episode.line(first), episode.line(second)
    history = [{**one["messages"][0], "role": "developer"}, *one["messages"][1:]]
    data = {**two, "messages": history + two["messages"][1:]}
    line = export.openai_example(episode, dataclasses.replace(second, data=data))
    assert not list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(line))
    roles = [m["role"] for m in line["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant"]
    assert line["messages"][2]["weight"] == 0 and "weight" not in line["messages"][4]


# ------------------------------------------------------------------ splits and determinism


def test_no_world_is_in_both_splits(traces, tmp_path, episodes):
    """Across seeds, and with the same episodes given twice (two trace dirs of one run):
    the files hold exactly the plan's examples, and no seed (a world: the same map for
    every eval and model) is in both, though evals e and f and four models share seed 0."""
    copy = tmp_path / "copy"
    shutil.copytree(traces, copy)
    for seed in range(5):
        out = tmp_path / f"out-{seed}"
        options = Options(val_fraction=0.5, seed=seed, shuffle=True)
        manifest = export.export([traces, copy], out, options)
        check_counts(manifest)
        plan = export.plan(export.load([traces, copy]), options)
        keys = {}
        for name in ("train", "val"):
            written = (out / f"{name}.jsonl").read_text().splitlines()
            expected = [export.openai_example(e, s) for e, s in plan.splits[name]]
            assert [json.loads(x) for x in written] == expected
            keys[name] = {e.seed for e, _ in plan.splits[name]}
            assert keys[name] == {
                e["seed"] for e in manifest["episodes"] if e["split"] == name and e["examples"]
            }
        assert keys["train"] and keys["val"] and not keys["train"] & keys["val"]


def test_split_is_by_world_stratified_by_achievement_count_and_seeded(episodes):
    """90 episodes on 60 worlds (seeds; some worlds played by two models) in strata of
    0..4 achievements (a world's: the rounded mean of its episodes'): val takes
    round(F x 60) worlds in all, each stratum floor or ceil of F x its size, and every
    episode of a world goes where its world goes; the seed changes which, not how many."""
    many = [
        dataclasses.replace(e, seed=10 * i + j % 6, achievements=["x"] * ((i + j) % 5))
        for i in range(10)
        for j, e in enumerate(episodes[:9])
    ]
    worlds: dict[int, list[int]] = {}
    for e in many:
        worlds.setdefault(e.seed, []).append(len(e.achievements))
    stratum = {w: round(sum(a) / len(a)) for w, a in worlds.items()}
    sizes = {k: sum(1 for w in worlds if stratum[w] == k) for k in range(5)}
    assert len(worlds) == 60
    for fraction in (0.1, 0.25, 0.5):
        picks = []
        for seed in range(3):
            names = export.split(many, fraction, seed)
            assert names == export.split(many, fraction, seed)
            split_of = {}
            for e, name in zip(many, names):
                assert split_of.setdefault(e.seed, name) == name  # a world in one split
            val = [w for w, n in split_of.items() if n == "val"]
            assert len(val) == round(fraction * 60)
            for k, size in sizes.items():
                assert abs(sum(1 for w in val if stratum[w] == k) - fraction * size) < 1
            picks.append(names)
        assert picks[0] != picks[1] or picks[1] != picks[2]
    assert export.split(many[:1], 0.5, 0) == ["train"]  # never all in val
    assert export.split(many, 0, 0) == ["train"] * 90


def test_same_inputs_give_byte_identical_files(traces, tmp_path):
    for format in ("openai", "hf"):
        options = Options(
            format=format, val_fraction=0.3, shuffle=True, dedupe=True, max_examples=40, seed=7
        )
        first = files(_export(traces, tmp_path / f"{format}-1", options))
        again = files(_export(traces, tmp_path / f"{format}-2", options))
        assert first == again
        # and into the same directory again (an earlier export is replaced)
        assert files(_export(traces, tmp_path / f"{format}-1", options)) == first
    other = files(_export(traces, tmp_path / "seed-8", dataclasses.replace(options, seed=8)))
    assert other["train.jsonl"] != first["train.jsonl"]


def test_output_is_the_same_however_trace_dir_is_spelled(traces, tmp_path, monkeypatch):
    """`t`, `./t`, an absolute path and a path from elsewhere give byte-identical files
    (the ids --shuffle and --max-examples draw from hold no path), and the manifest
    holds no path but the TRACE_DIR's name and `<eval>/<model>/seed-<n>`."""
    shutil.copytree(traces, tmp_path / "t")
    options = Options(shuffle=True, max_examples=20, val_fraction=0.3)
    monkeypatch.chdir(tmp_path)
    outputs = []
    for i, spelled in enumerate(["t", "./t", str(tmp_path / "t"), "../t"]):
        if spelled.startswith(".."):
            monkeypatch.chdir(tmp_path / "out-0")
        out = tmp_path / f"out-{i}"
        export.export([spelled], out, options, [])
        outputs.append(files(out))
    assert outputs[1:] == outputs[:1] * 3
    manifest = outputs[0]["manifest.json"].decode()
    assert str(tmp_path) not in manifest and tmp_path.name not in manifest
    assert json.loads(manifest)["sources"] == [{"trace_dir": "t", "episodes": len(EPISODES)}]


def _export(traces, out, options):
    export.export([traces], out, options)
    return out


# ------------------------------------------------------------------ filters


def test_episode_filters_keep_exactly_the_episodes_they_say(episodes):
    def kept(**options):
        chosen, dropped = export.select_episodes(episodes, Options(**options))
        assert len(chosen) + len(dropped) == len(episodes)
        return {e.key for e in chosen}

    everything = {e.key for e in episodes}
    assert kept() == everything
    assert kept(min_achievements=3) == {e.key for e in episodes if len(e.achievements) >= 3}
    assert set() < kept(min_achievements=3) < everything
    assert kept(require=("collect_wood",)) == {
        e.key for e in episodes if "collect_wood" in e.achievements
    }
    assert set() < kept(require=("collect_wood",)) < everything
    rewards = sorted({e.reward for e in episodes})
    middle = rewards[len(rewards) // 2]
    assert kept(min_reward=middle) == {e.key for e in episodes if e.reward >= middle}
    assert kept(models=("local/heuristic",)) == {k for k in everything if k[1] == "local/heuristic"}
    assert kept(models=("local/r*", "local_silent")) == {
        k for k in everything if k[1] in ("local/random", "local/silent")
    }
    assert kept(evals=("f",)) == {("f", "local/heuristic", 0)}
    assert kept(evals=("f",), models=("local/random",)) == set()


def test_reward_is_the_sum_of_per_step_rewards(episodes):
    for episode in episodes:
        lines = jsonl(episode.directory / "steps.jsonl")
        assert episode.reward == pytest.approx(sum(x["reward"] for x in lines))
        assert episode.reward_total == pytest.approx(episode.reward)
        assert episode.checks == []
        assert [episode.line(s) for s in episode.steps] == lines  # read again by offset


def test_a_trace_changed_while_exporting_is_an_error(traces, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(traces, copy)
    [episode] = export.load([copy / "f"])
    steps = episode.directory / "steps.jsonl"
    steps.write_text(steps.read_text()[10:])
    with pytest.raises(ExportError, match=rf"^{steps}:1: changed while the export ran$"):
        export.openai_example(episode, episode.steps[0])


def test_a_call_written_in_text_is_exported_as_the_native_call_it_was_parsed_to(traces, tmp_path):
    """An answer whose call is written in its text (Hermes tags, with answer.format
    auto) ends its example as the native tool call it was parsed to, next to `tools`;
    `--calls as-written` keeps the text; a text with no call is no example."""
    copy = tmp_path / "copy"
    shutil.copytree(traces / "f", copy / "f")
    steps = copy / trace.episode_path("f", "local/heuristic", 0) / "steps.jsonl"
    lines = jsonl(steps)
    call = lines[1]["messages"][-1].pop("tool_calls")[0]["function"]
    written = f"I see a tree.\n<tool_call>{json.dumps(call)}</tool_call>"
    lines[1]["messages"][-1]["content"] = written
    lines[2]["messages"][-1].pop("tool_calls")
    lines[2]["messages"][-1]["content"] = "I will go left."
    steps.write_text("".join(json.dumps(x) + "\n" for x in lines))
    manifest = export.export([copy], tmp_path / "out", Options(val_fraction=0))
    assert manifest["counts"]["steps"]["dropped"]["no_tool_call"] == 1
    assert manifest["counts"]["steps"]["kept"] == len(lines) - 1
    examples = jsonl(tmp_path / "out" / "train.jsonl")
    assert all(example["messages"][-1].get("tool_calls") for example in examples)
    assert examples[1]["messages"][-1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1_0",
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"]},
            }
        ],
    }
    assert json.loads(call["arguments"])["actions"]  # the call it was parsed to
    assert not list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(examples[1]))
    export.export([copy], tmp_path / "as", Options(val_fraction=0, calls="as-written"))
    example = jsonl(tmp_path / "as" / "train.jsonl")[1]
    assert example["messages"][-1] == {"role": "assistant", "content": written}


def test_calls_in_the_text_of_a_real_run_become_native_calls(history_traces, tmp_path):
    """local/hermes answers in Hermes text (answer.format auto): 16 of its 16 steps are
    examples, each ending in the native call its text was parsed to."""
    manifest = export.export(
        [history_traces], tmp_path / "out", Options(val_fraction=0, models=("local/hermes",))
    )
    examples = jsonl(tmp_path / "out" / "train.jsonl")
    assert len(examples) == manifest["counts"]["steps"]["kept"] == 16
    for example in examples:
        answer = example["messages"][-1]
        assert answer["content"] is None and len(answer["tool_calls"]) == 1
        assert json.loads(answer["tool_calls"][0]["function"]["arguments"])["actions"]


def test_only_new_achievement_keeps_unlocking_steps_and_a_window_before(episodes):
    heuristic = [e for e in episodes if e.model == "local/heuristic" and e.achievements]
    assert len(heuristic) >= 4
    for window in (0, 2):
        options = Options(only_new_achievement=True, window=window)
        kept, dropped = export.select_steps(heuristic, options)
        for episode, steps in zip(heuristic, kept):
            unlocking = [s.index for s in episode.steps if s.new_achievements]
            assert unlocking
            expected = {i for u in unlocking for i in range(u - window, u + 1) if i >= 0} - {
                s.index for s in episode.steps if s.problem
            }
            assert {s.index for s in steps} == expected
        assert dropped["only_new_achievement"] > 0


def test_drop_loops_drops_a_step_repeating_the_last_n(episodes):
    """A real episode with one step played four times over (same frame, same actions)."""
    episode = next(e for e in episodes if e.model == "local/heuristic")
    first, rest = episode.steps[0], episode.steps[1:]
    looped = [dataclasses.replace(first, index=i) for i in range(4)]
    steps = looped + [dataclasses.replace(s, index=4 + i) for i, s in enumerate(rest)]
    looping = dataclasses.replace(episode, steps=steps)
    for n, dropped_indices in ((1, {1, 2, 3}), (2, {2, 3}), (3, {3}), (4, set())):
        (kept,), dropped = export.select_steps([looping], Options(drop_loops=n))
        assert {s.index for s in steps} - {s.index for s in kept} == dropped_indices
        assert dropped["drop_loops"] == len(dropped_indices)
    (kept,), _ = export.select_steps([looping], Options())
    assert len(kept) == len(steps)


def test_dedupe_drops_an_observation_and_actions_seen_before(traces, tmp_path, episodes):
    """The same traces given twice: every step of the second copy was seen before."""
    copy = tmp_path / "copy"
    shutil.copytree(traces, copy)
    both = export.load([traces, copy])
    once, _ = export.select_steps(both[:0] + episodes, Options(dedupe=True))
    twice, dropped = export.select_steps(both, Options(dedupe=True))
    plain, _ = export.select_steps(both, Options())
    n_once = sum(map(len, once))
    assert sum(map(len, twice)) == n_once and sum(map(len, plain)) == 2 * sum(
        len(export.select_steps(episodes, Options())[0][i]) for i in range(len(episodes))
    )
    assert dropped["dedupe"] == sum(map(len, plain)) - n_once > 0


def test_max_examples_and_shuffle(traces, tmp_path):
    full = export.export([traces], tmp_path / "full", Options(val_fraction=0.3))
    total = full["counts"]["examples"]["train"] + full["counts"]["examples"]["val"]
    small = export.export([traces], tmp_path / "small", Options(val_fraction=0.3, max_examples=20))
    check_counts(small)
    counts = small["counts"]["examples"]
    assert counts["train"] + counts["val"] == 20
    assert counts["dropped_by_max_examples"] == total - 20
    assert counts["val"] == round(20 * full["counts"]["examples"]["val"] / total)
    full_lines = set((tmp_path / "full" / "train.jsonl").read_text().splitlines())
    assert set((tmp_path / "small" / "train.jsonl").read_text().splitlines()) <= full_lines
    mixed = export.export([traces], tmp_path / "mixed", Options(val_fraction=0.3, shuffle=True))
    assert mixed["counts"] == full["counts"]
    before = (tmp_path / "full" / "train.jsonl").read_text().splitlines()
    after = (tmp_path / "mixed" / "train.jsonl").read_text().splitlines()
    assert sorted(before) == sorted(after) and before != after


# ------------------------------------------------------------------ the hf format


def test_hf_format_references_each_image_once_by_a_relative_path(traces, tmp_path):
    out = tmp_path / "hf"
    manifest = export.export([traces], out, Options(format="hf", val_fraction=0.3))
    check_counts(manifest)
    referenced = set()
    for name in ("train", "val"):
        for line in jsonl(out / f"{name}.jsonl"):
            placeholders = [
                p for m in line["messages"] for p in m["content"] if p["type"] == "image"
            ]
            assert len(placeholders) == len(line["images"]) == 1
            for path in line["images"]:
                assert not Path(path).is_absolute() and (out / path).is_file()
                referenced.add(path)
            answer = line["messages"][-1]
            assert isinstance(answer["tool_calls"][0]["function"]["arguments"], dict)
            assert all(isinstance(m["content"], list) for m in line["messages"])
    written = {p.relative_to(out).as_posix() for p in (out / "images").iterdir()}
    assert written == referenced  # each image once, none unused
    # an openai export into the same directory removes the images it no longer uses
    export.export([traces], out, Options(val_fraction=0.3))
    assert not (out / "images").exists()


def test_hf_format_writes_an_image_left_inline_in_the_trace_as_a_file(traces, tmp_path):
    """TraceWriter keeps PNGs as files; an image of another type stays a data URI."""
    copy = tmp_path / "copy"
    shutil.copytree(traces, copy)
    directory = copy / trace.episode_path("f", "local/heuristic", 0)
    lines = jsonl(directory / "steps.jsonl")
    jpeg = io.BytesIO()
    Image.open(directory / "frames" / "0000.png").save(jpeg, "JPEG")
    url = "data:image/jpeg;base64," + base64.b64encode(jpeg.getvalue()).decode()
    lines[0]["messages"][1]["content"][1]["image_url"]["url"] = url
    (directory / "steps.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    only = Options(format="hf", evals=("f",), val_fraction=0)
    export.export([copy], tmp_path / "hf", only)
    first, second = jsonl(tmp_path / "hf" / "train.jsonl")[:2]
    assert first["images"][0].endswith(".jpg") and second["images"][0].endswith(".png")
    assert (tmp_path / "hf" / first["images"][0]).read_bytes() == jpeg.getvalue()
    export.export([copy], tmp_path / "openai", dataclasses.replace(only, format="openai"))
    first = jsonl(tmp_path / "openai" / "train.jsonl")[0]
    assert first["messages"][1]["content"][1]["image_url"]["url"] == url


TEMPLATES = Path(__file__).parent / "data" / "chat_templates"  # provenance: PROVENANCE.md
IMAGE_TOKEN = {
    "qwen2.5-vl": "<|image_pad|>",
    "qwen3-vl": "<|image_pad|>",
    "llama-3.2-vision": "<|image|>",
}


def chat_template(name: str) -> jinja2.Template:
    """A stock chat template compiled as transformers' apply_chat_template compiles it:
    a sandbox with trim_blocks and lstrip_blocks, `tojson` writing `json.dumps`
    (non-ASCII kept), `raise_exception` and `strftime_now`."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )

    def raise_exception(message):
        raise jinja2.TemplateError(message)

    def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(
            value,
            ensure_ascii=ensure_ascii,
            indent=indent,
            separators=separators,
            sort_keys=sort_keys,
        )

    env.filters["tojson"] = tojson
    env.globals.update(raise_exception=raise_exception, strftime_now=lambda _: "01 Dec 2026")
    return env.from_string((TEMPLATES / f"{name}.jinja").read_text())


def rendered_target(template: jinja2.Template, example: dict) -> tuple[str, str]:
    """(the answer's text, the whole text) of an hf example, rendered with its tools as
    TRL renders it; the prompt (with the generation prompt) is a prefix of the whole."""
    context = {"tools": example["tools"], "bos_token": "<|begin_of_text|>"}
    whole = template.render(messages=example["messages"], **context)
    prompt = template.render(
        messages=example["messages"][:-1], add_generation_prompt=True, **context
    )
    assert whole.startswith(prompt)
    return whole[len(prompt) :], whole


@pytest.mark.parametrize(
    "name, calls, system_as_user",
    [
        ("qwen2.5-vl", "hermes", False),  # its template writes no tool_calls
        ("qwen3-vl", "native", False),
        ("qwen3-vl", "hermes", False),
        ("llama-3.2-vision", "native", True),  # its template refuses system + images
        ("llama-3.2-vision", "llama3_json", True),
    ],
)
def test_hf_answers_render_with_the_stock_chat_templates(
    history_traces, traces, tmp_path, name, calls, system_as_user
):
    """Each family's stock template, given the hf examples written with the --calls its
    README row names, renders every answer: non-empty, holding the call and its
    actions, with one image token per image."""
    template = chat_template(name)
    options = Options(format="hf", calls=calls, system_as_user=system_as_user)
    export.export([history_traces, traces], tmp_path / "out", options)
    examples = jsonl(tmp_path / "out" / "train.jsonl") + jsonl(tmp_path / "out" / "val.jsonl")
    assert len(examples) > 40 and any(
        m["role"] == "tool" for example in examples for m in example["messages"]
    )
    for example in examples:
        target, whole = rendered_target(template, example)
        answer = example["messages"][-1]
        if answer.get("tool_calls"):
            arguments = answer["tool_calls"][0]["function"]["arguments"]
        else:
            text = answer["content"][0]["text"]
            arguments = json.loads(text.split("\n")[1] if calls == "hermes" else text)
            arguments = arguments.get("arguments", arguments.get("parameters"))
        assert '"interact_many"' in target and json.dumps(arguments["actions"]) in target
        assert whole.count(IMAGE_TOKEN[name]) == len(example["images"]) > 0


def test_without_the_family_form_the_stock_templates_train_nothing(history_traces, tmp_path):
    """Why --calls and --system-as-user exist: native calls render an empty answer with
    Qwen2.5-VL's template (`<|im_start|>assistant\\n<|im_end|>`), and Llama 3.2 Vision's
    refuses the instructions as a system message next to images. Qwen3-VL writes native
    calls exactly as --calls hermes does."""
    export.export([history_traces], tmp_path / "native", Options(format="hf"))
    export.export([history_traces], tmp_path / "hermes", Options(format="hf", calls="hermes"))
    native = jsonl(tmp_path / "native" / "train.jsonl")
    hermes_lines = jsonl(tmp_path / "hermes" / "train.jsonl")
    qwen25, qwen3 = chat_template("qwen2.5-vl"), chat_template("qwen3-vl")
    assert {rendered_target(qwen25, example)[0] for example in native} == {"<|im_end|>\n"}
    with pytest.raises(jinja2.TemplateError, match="incompatible with system messages"):
        rendered_target(chat_template("llama-3.2-vision"), native[0])
    for a, b in zip(native, hermes_lines, strict=True):
        assert rendered_target(qwen3, a) == rendered_target(qwen3, b)


def answer_is_clean(message: dict) -> bool:
    """An hf assistant message holds a valid call (native, or written in its text)."""
    if message.get("tool_calls"):
        parsed = parse_calls(
            ToolCall(c["id"], c["function"]["name"], json.dumps(c["function"]["arguments"]))
            for c in message["tool_calls"]
        )
    else:
        parsed = parse_text("".join(p.get("text", "") for p in message["content"]))
    wrong = parsed.invalid_actions + parsed.malformed_json + parsed.unknown_tools
    return parsed.ok and parsed.valid_calls == parsed.tool_calls and not wrong


def test_hf_examples_hold_no_invalid_earlier_answer_unless_kept(history_traces, tmp_path):
    """hf has no per-message weight: an example whose history holds an invalid answer
    (local/fumble's) is dropped and counted; --keep-invalid-history keeps it; the
    OpenAI format (earlier answers weigh 0) drops none."""
    runs = {}
    for label, options in {
        "hf": Options(format="hf", val_fraction=0),
        "kept": Options(format="hf", val_fraction=0, keep_invalid_history=True),
        "openai": Options(val_fraction=0),
    }.items():
        manifest = export.export([history_traces], tmp_path / label, options)
        check_counts(manifest)
        runs[label] = (manifest, jsonl(tmp_path / label / "train.jsonl"))
    history = lambda example: [m for m in example["messages"][:-1] if m["role"] == "assistant"]  # noqa: E731
    dropped = runs["hf"][0]["counts"]["steps"]["dropped"]["invalid_history"]
    kept_examples = runs["kept"][1]
    invalid = [e for e in kept_examples if not all(map(answer_is_clean, history(e)))]
    assert dropped == len(invalid) > 0
    assert all(answer_is_clean(m) for e in runs["hf"][1] for m in history(e))
    assert len(runs["hf"][1]) == len(kept_examples) - dropped
    assert runs["kept"][0]["counts"]["steps"]["dropped"]["invalid_history"] == 0
    assert runs["openai"][0]["counts"]["steps"]["dropped"]["invalid_history"] == 0
    assert len(runs["openai"][1]) == len(kept_examples)


def test_hf_format_loads_with_datasets(traces, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "hf"
    manifest = export.export([traces], out, Options(format="hf", val_fraction=0.3))
    datasets.disable_progress_bars()
    loaded = datasets.load_dataset(
        "json",
        data_files={"train": str(out / "train.jsonl"), "val": str(out / "val.jsonl")},
        cache_dir=str(tmp_path / "cache"),
    )
    assert loaded["train"].num_rows == manifest["counts"]["examples"]["train"]
    assert loaded["val"].num_rows == manifest["counts"]["examples"]["val"]
    monkeypatch.chdir(out)  # the paths are relative to DIR
    images = loaded["train"].cast_column("images", datasets.Sequence(datasets.Image()))
    assert images[0]["images"][0].size == (64, 64)


# ------------------------------------------------------------------ bad input


def test_bad_input_is_one_line_naming_file_and_line_and_nothing_is_written(traces, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(traces, bad)
    episode = bad / trace.episode_path("e", "local/heuristic", 1)
    steps = episode / "steps.jsonl"
    good = steps.read_text()
    out = tmp_path / "out"
    export.export([traces], out, Options())
    before = files(out)

    def error(*sources) -> str:
        with pytest.raises(ExportError) as info:
            export.export(list(sources), out, Options())
        assert files(out) == before  # the earlier export untouched, no temporary file left
        message = str(info.value)
        assert "\n" not in message
        return message

    (tmp_path / "empty").mkdir()
    assert error(tmp_path / "empty") == (
        f"{tmp_path / 'empty'}: not a trace directory: no <eval>/<model>/seed-<n>/steps.jsonl "
        "under it (pytest --trace-dir writes them)"
    )
    assert error(tmp_path / "nothing").endswith("nothing: not a directory")

    lines = good.splitlines(keepends=True)
    steps.write_text("".join(lines[:3]) + lines[3][:40])  # stopped while writing line 4
    assert error(traces, bad).startswith(f"{steps}:4: truncated")

    steps.write_text("".join(lines[:2]) + "{not json\n" + "".join(lines[3:]))
    assert error(bad).startswith(f"{steps}:3: not a JSON line")

    steps.write_text(good.replace('"reward": ', '"reward_": ', 1))
    assert error(bad) == f"{steps}:1: reward: expected a number (the step's own reward)"

    steps.write_text(good)
    (episode / "frames" / "0005.png").unlink()
    assert error(bad) == f"{steps}:6: messages[1]: missing frame frames/0005.png"

    not_an_export = tmp_path / "mine"
    not_an_export.mkdir()
    (not_an_export / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty and not an earlier export"):
        export.export([traces], not_an_export, Options())

    killed = tmp_path / "killed"  # an export killed before its renames leaves temporary files
    killed.mkdir()
    (killed / ".train.jsonl.999.tmp").write_text("half")
    export.export([traces], killed, Options())
    assert sorted(files(killed)) == ["manifest.json", "train.jsonl", "val.jsonl"]


def test_a_reward_total_that_is_not_the_sum_is_flagged_not_used(traces, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(traces, bad)
    steps = bad / trace.episode_path("e", "local/heuristic", 0) / "steps.jsonl"
    lines = [json.loads(x) for x in steps.read_text().splitlines()]
    true_reward = sum(x["reward"] for x in lines)
    for line in lines:  # the running totals of the teams' old bug: summed again
        line["reward_total"] = line["reward_total"] * 2 + 100
    steps.write_text("".join(json.dumps(x) + "\n" for x in lines))
    manifest = export.export([bad], tmp_path / "out", Options(min_reward=true_reward))
    [mismatch] = manifest["mismatches"]
    assert mismatch["trace"].endswith("e/local_heuristic/seed-0")
    assert mismatch["problems"][0].startswith("line 1: reward_total 100 is not the sum")
    [kept] = [e for e in manifest["episodes"] if e["trace"] == mismatch["trace"]]
    assert kept["reward"] == pytest.approx(true_reward)
    assert kept["reward_total"] == pytest.approx(true_reward * 2 + 100)


def test_results_records_are_checked_against_the_trace(traces, tmp_path, episodes):
    """A record with another reward or other achievements is flagged; one with another
    number of steps is from another run and not used."""
    first, second, third, fourth = [e for e in episodes if e.model == "local/heuristic"][:4]

    def record(episode, **changes):
        return {
            "eval": episode.eval,
            "model": episode.model,
            "seed": episode.seed,
            "steps": len(episode.steps),
            "reward": episode.reward,
            "achievements": dict.fromkeys(episode.achievements, 1),
            "outcome": "passed",
            "fingerprint": "f" * 16,
        } | changes

    results = tmp_path / "results.jsonl"
    records = [
        record(first, reward=first.reward + 1),
        record(second, achievements={"collect_diamond": 1}),
        record(third, steps=len(third.steps) + 1, outcome="failed"),
        record(fourth, steps=len(fourth.steps) + 1, outcome="error", end="error"),
    ]
    results.write_text("".join(json.dumps(r) + "\n" for r in records))
    manifest = export.export([traces], tmp_path / "out", Options(), [results])
    problems = {m["trace"]: m["problems"] for m in manifest["mismatches"]}
    assert problems == {
        first.trace: [
            (
                f"results: reward {first.reward + 1:g} is not the sum of the per-step rewards, "
                f"{first.reward:g}"
            )
        ],
        second.trace: [
            (
                f"results: achievements ['collect_diamond'] differ from the trace's "
                f"{sorted(second.achievements)}"
            )
        ],
        third.trace: [
            (
                f"results: 1 record(s) for this episode, none with its {len(third.steps)} steps "
                "(from another run?); not used"
            )
        ],
    }
    outcomes = {e["trace"]: (e["outcome"], e["fingerprint"]) for e in manifest["episodes"]}
    assert outcomes[first.trace] == outcomes[second.trace] == ("passed", "f" * 16)
    assert outcomes[third.trace] == (None, None)
    assert outcomes[fourth.trace] == ("error", "f" * 16)  # its last call got no answer
    (tmp_path / "broken.jsonl").write_text('{"eval": "e"}\n')
    with pytest.raises(ExportError, match=r"broken.jsonl:1: not a results record \(KeyError"):
        export.export([traces], tmp_path / "out", Options(), [tmp_path / "broken.jsonl"])


def test_usage_errors(traces, tmp_path):
    for options, message in (
        (Options(val_fraction=1), "--val-fraction"),
        (Options(window=2), "--window K needs --only-new-achievement"),
        (Options(require=("collect_gold",)), "unknown achievement"),
        (Options(outcome=("passed",)), "--outcome needs --results"),
        (Options(max_examples=0), "--max-examples"),
    ):
        with pytest.raises(ValueError, match=message):
            export.export([traces], tmp_path / "out", options)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ end to end


EVAL = """\
models:
  - local/heuristic
  - local/random: {expect: {min_achievements: 5}}
  - "local/chaos?rate_malformed=0.5&malformed=action&seed=1":
      answer: {on_invalid: retry, retries: 1}
      expect: {min_achievements: 0, min_tool_call_rate: 0}
seeds: 0-1
steps: 4
expect: {min_achievements: 1}
"""


def test_pytest_trace_dir_then_crafter_eval_export(pytester, monkeypatch, capsys):
    """`pytest evals/ --trace-dir t`, then the command with the run's results.jsonl:
    every line validates, counts add up, outcomes and fingerprints come from the run."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pytester.makefile(".yaml", **{"evals/tiny": EVAL})
    run = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-m", "not crafter_payload", "evals", "--trace-dir", "t"
    )
    assert run.ret == 1  # local/random fails its expectation
    root = Path(pytester.path)
    monkeypatch.chdir(root)
    command = ["export", "t", "--out", "data", "--results", "reports/results.jsonl"]
    assert cli.main([*command, "--outcome", "passed"]) == 0
    manifest = json.loads((root / "data" / "manifest.json").read_text())
    check_counts(manifest)
    records = {
        (r["model"], r["seed"]): r
        for r in map(json.loads, (root / "reports/results.jsonl").read_text().splitlines())
    }
    kept = [k for k, r in records.items() if r["outcome"] == "passed"]
    assert capsys.readouterr().err == (
        f"crafter-eval export: warning: val.jsonl is empty: 0 of the {len(kept)} episodes "
        f"kept ({len({seed for _, seed in kept})} seed(s); all the episodes of a seed go to "
        "one split); trace more seeds, or change --val-fraction or the filters\n"
        f"crafter-eval export: {manifest['counts']['episodes']['kept']} of 6 episodes, "
        f"{manifest['counts']['examples']['train']} train + "
        f"{manifest['counts']['examples']['val']} val examples -> data\n"
    )
    passed = {k for k, r in records.items() if r["outcome"] == "passed"}
    assert {(e["model"], e["seed"]) for e in manifest["episodes"]} == passed
    assert manifest["counts"]["episodes"]["dropped"]["outcome"] == 6 - len(passed) > 0
    # every record joined its trace, also where a step was asked again (more lines)
    assert manifest["mismatches"] == []
    chaos = [(m, s) for m, s in records if m.startswith("local/chaos")]
    lines = [
        len(
            (root / "t" / trace.episode_path("tiny", m, s) / "steps.jsonl").read_text().splitlines()
        )
        for m, s in chaos
    ]
    assert any(n > records[k]["steps"] for n, k in zip(lines, chaos))
    for episode in manifest["episodes"]:
        record = records[(episode["model"], episode["seed"])]
        assert episode["fingerprint"] == record["fingerprint"] and episode["outcome"] == "passed"
        assert episode["reward"] == pytest.approx(record["reward"])
        assert sorted(episode["achievements"]) == sorted(record["achievements"])
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for name in ("train", "val"):
        for line in jsonl(root / "data" / f"{name}.jsonl"):
            assert not list(validator.iter_errors(line))

    assert cli.main(["export", "reports", "--out", "data2"]) == 2
    assert not (root / "data2").exists()
    assert capsys.readouterr().err == (
        "crafter-eval export: error: reports: not a trace directory: no "
        "<eval>/<model>/seed-<n>/steps.jsonl under it (pytest --trace-dir writes them)\n"
    )
    assert cli.main(["export", "t", "--out", "data2", "--outcome", "passed"]) == 4
    assert capsys.readouterr().err == (
        "crafter-eval export: error: --outcome needs --results FILE (the run's "
        "results.jsonl): traces hold no outcomes\n"
    )
