"""HTML report: a real `pytest evals -n 2` run (loopback local models, xdist) writes
index.html with its GIFs (and traces); the page is then checked as text and opened in
headless Chromium (Debian's chromium + chromium-driver, driven by selenium)."""

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from pytest_crafter_eval.data import trace
from pytest_crafter_eval.report.html import render_html, write_html
from pytest_crafter_eval.report.metrics import ACHIEVEMENTS

SMOKE = """\
models:
  - local/heuristic: {gate: {mean_achievements: 1}}
  - local/random: {expect: {min_achievements: 0}, gate: {crafter_score: 50}}
  - local/silent: {xfail: "answers in text"}
  - local/nonexistent
  - gpt-4o-mini-2024-07-18
seeds: 0-1
steps: 12
"""
NIGHT = """\
models: ["local/random?seed=7&latency_ms=0", local/heuristic]
seeds: [5]
steps: 12
"""


@pytest.fixture(scope="session")
def report(tmp_path_factory, worker_id):
    """(report dir, records, summary) of a real run of two eval files under xdist, made
    once per test session: the first xdist worker to get here runs it, the other waits."""
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent  # the directory all workers of this session share
    tmp = shared / "html-report-run"
    with open(shared / "html-report-run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (tmp / "done").exists():
            _run(tmp)
            (tmp / "done").touch()
    report_dir = tmp / "out"
    records = [json.loads(line) for line in (report_dir / "results.jsonl").read_text().splitlines()]
    return report_dir, records, json.loads((report_dir / "summary.json").read_text())


def _run(tmp):
    (tmp / "evals").mkdir(parents=True, exist_ok=True)
    (tmp / "evals" / "smoke.yaml").write_text(SMOKE)
    (tmp / "evals" / "night.yaml").write_text(NIGHT)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENAI_API_KEY", "PYTEST_ADDOPTS", "GITHUB_STEP_SUMMARY")
        and not k.startswith("PYTEST_XDIST")
    }
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-m",
            "not crafter_payload",
            "evals",
            "-n",
            "2",
            "--report-dir",
            "out",
            "--trace-dir",
            "traces",
        ],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]  # random's gate fails


def test_the_run_writes_a_page_with_every_episode_model_and_gate(report):
    report_dir, records, summary = report
    page = (report_dir / "index.html").read_text()
    assert page == render_html(records, summary)
    assert len(records) == 12 and len(re.findall(r"<tr class='ep ", page)) == 12
    assert {r["outcome"] for r in records} == {"passed", "xfailed", "error", "skipped"}
    for model in (
        "local/heuristic",
        "local/random",
        "local/silent",
        "gpt-4o-mini-2024-07-18",
        "local/nonexistent",
    ):
        assert f"<td class=model>{model}</td>" in page
    assert "local/random?seed=7&amp;latency_ms=0" in page and "seed=7&latency" not in page
    assert "no API key for gpt-4o-mini-2024-07-18" in page  # the skip reason
    assert page.count("gate passed") == 1 and page.count("gate failed") == 1
    assert "✗ crafter_score" in page and "95% [" in page
    gifs = [r["gif"] for r in records if r.get("gif")]
    assert len(gifs) == 8  # played episodes only
    for gif in gifs:
        assert f"src='{gif}'" in page and (report_dir / gif).is_file()
    assert not re.search(r"(?:src|href)=['\"]?(?:https?:)?//", page), (
        "the page must load nothing remote"
    )


def test_xdist_workers_write_the_gifs_and_traces_of_every_played_episode(report):
    report_dir, records, _ = report
    for r in records:
        directory = (
            report_dir.parent / "traces" / trace.episode_path(r["eval"], r["model"], r["seed"])
        )
        if r["outcome"] == "skipped":
            assert r.get("gif") is None and not directory.exists()
            continue
        steps = (directory / "steps.jsonl").read_text().splitlines()
        answered = r["steps"] - (r["outcome"] == "error")  # a failed request has no step line
        assert len(steps) == answered == len(list((directory / "frames").glob("*.png")))
        if not answered:
            assert r["gif"] is None
            continue
        assert r["gif"] == f"episodes/{trace.episode_path(r['eval'], r['model'], r['seed'])}.gif"
        # one frame per step; Pillow merges equal consecutive frames into a longer one
        assert 1 <= Image.open(report_dir / r["gif"]).n_frames <= r["steps"]


def test_heatmap_cells_are_the_success_rates(report):
    _, records, summary = report
    page = render_html(records, summary)
    smoke = re.search(r"<section id='eval-smoke'>.*?</section>", page).group(0)
    rates = summary["evals"]["smoke"]["models"]["local/heuristic"]["metrics"]["success_rates"]
    row = re.search(
        r"<th class=model>local/heuristic<small>2 ep.</small></th>(.*?)</tr>", smoke
    ).group(1)
    cells = re.findall(r">(\d+)</td>", row)
    assert len(cells) == len(ACHIEVEMENTS) == 22
    played = [r for r in records if r["eval"] == "smoke" and r["model"] == "local/heuristic"]
    for achievement, cell in zip(ACHIEVEMENTS, cells):
        share = sum(1 for r in played if r["achievements"].get(achievement)) / len(played)
        assert int(cell) == round(100 * share) == round(rates[achievement]["value"])
    assert any(int(c) > 0 for c in cells)


def test_a_missing_gif_is_a_placeholder_not_a_broken_image(report, tmp_path):
    _, records, summary = report
    record = next(r for r in records if r.get("gif"))
    text = write_html(tmp_path, [record], summary).read_text()
    assert "<img class=film" not in text and "no frames" in text


def test_the_report_renders_in_headless_chromium(report, chromium, tmp_path):
    report_dir, records, _ = report
    index = report_dir / "index.html"
    browser = chromium()
    try:
        browser.get(index.as_uri())
        browser.execute_async_script(  # wait until every image has loaded or failed
            "const done = arguments[arguments.length - 1];"
            "Promise.all([...document.images].map(i => i.decode().catch(() => null))).then(done);"
        )
        rows = browser.execute_script("return document.querySelectorAll('tr.ep').length")
        assert rows == len(records)
        images = browser.execute_script(
            "return [...document.images].map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"
        )
        gifs = [r["gif"] for r in records if r.get("gif")]
        assert sorted(src for src, _, _ in images) == sorted(gifs)
        broken = [src for src, complete, width in images if not (complete and width > 0)]
        assert not broken, f"broken images: {broken}"
        assert {width for _, _, width in images} == {64}
        icons = browser.execute_script(
            "return [...document.querySelectorAll('.ic')].map(e => getComputedStyle(e).backgroundImage)"
        )
        assert icons and all(i.startswith('url("data:image/png;base64,') for i in icons)
        fetched = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        remote = [url for url in fetched if not url.startswith(("file:", "data:"))]
        assert not remote, f"the page fetched {remote}"
        # the failing gate's reasons stay in their cell, and no card's content spills out of
        # it (a table wider than a narrow window scrolls inside its card)
        check = (
            "const out = [];"
            "for (const e of document.querySelectorAll('.gatewhy')) {"
            "  const cell = e.closest('td').getBoundingClientRect(), r = e.getBoundingClientRect();"
            "  if (r.right > cell.right + 0.5 || r.left < cell.left - 0.5) out.push(e.textContent);"
            "}"
            "for (const c of document.querySelectorAll('.card'))"
            "  if (c.scrollWidth > c.clientWidth + 1"
            "      && !['auto', 'scroll'].includes(getComputedStyle(c).overflowX))"
            "    out.push('card: ' + c.querySelector('h3').textContent);"
            "return [document.querySelectorAll('.gatewhy').length, out]"
        )
        for width in (1280, 720):  # a desktop window, and half a laptop's screen
            browser.set_window_size(width, 900)
            reasons, spilled = browser.execute_script(check)
            assert reasons >= 1 and spilled == [], (width, spilled)
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1280, min(height, 6000))
        shot = tmp_path / "html-report.png"
        assert browser.get_screenshot_as_file(str(shot)) and shot.stat().st_size > 10_000
        if os.environ.get("CRAFTER_REPORT_SCREENSHOT"):
            shutil.copy(shot, os.environ["CRAFTER_REPORT_SCREENSHOT"])
    finally:
        browser.quit()


def _record(model, seed, outcome="passed", steps=10, tool_calls=10, achievements=None):
    return {
        "nodeid": f"evals/e.yaml::{model}[seed={seed}]",
        "path": "evals/e.yaml",
        "eval": "e",
        "model": model,
        "seed": seed,
        "outcome": outcome,
        "steps": steps,
        "tool_calls": tool_calls,
        "achievements": achievements or {},
        "reward": float(len(achievements or {})),
    }


def test_the_page_shows_the_summarys_numbers_and_computes_none():
    from pytest_crafter_eval.report import summary as report

    # pooled over steps 10/11 = 91 %; the summary's mean of per-episode rates is 50 %
    records = [_record("m", 0, steps=10, tool_calls=10), _record("m", 1, steps=1, tool_calls=0)]
    summary = report.summarize(records)
    assert summary["evals"]["e"]["models"]["m"]["metrics"]["tool_call_rate"]["value"] == 0.5
    page = render_html(records, summary)
    board = re.search(r"<table class=board>.*?</table>", page).group(0)
    # a share 0-1 with two digits, as the terminal and summary.md show it
    assert "<td class=num>0.50" in board and "0.91" not in page
    with pytest.raises(TypeError):
        render_html(records)  # type: ignore[call-arg]  # no summary, no page


def test_medals_go_only_to_models_that_passed_and_the_order_is_fixed():
    from pytest_crafter_eval.report import summary as report

    wood = {"collect_wood": 1, "place_table": 1, "collect_sapling": 1}
    records = [
        # strong scores, but every episode failed (no gate): no medal
        _record("failing", s, outcome="failed", achievements=wood)
        for s in (0, 1)
    ] + [_record("passing", s, achievements={"collect_wood": 1}) for s in (0, 1)]
    pages = {
        render_html(order, report.summarize(order)).split("<footer")[0].split("</header>")[1]
        for order in (records, records[::-1])
    }
    assert len(pages) == 1  # the order episodes ended in changes nothing
    orders = {tuple(report.summarize(o)["evals"]["e"]["models"]) for o in (records, records[::-1])}
    assert orders == {("failing", "passing")}  # the summary's too (no file here: by name)
    board = re.search(r"<table class=board>.*?</table>", pages.pop()).group(0)
    rows = re.findall(r"<tr[^>]*>.*?</tr>", board.split("<tbody>")[1])
    # the summary's order; the failing model gets no medal, and the passing one has no
    # eligible rival to beat, so it gets none either (`medals`)
    assert "failing" in rows[0] and "class=unranked" in rows[0] and "rank r" not in rows[0]
    assert "passing" in rows[1] and "rank r" not in rows[1]


def test_medals_need_a_rival_beaten_beyond_the_intervals_and_counts_read_right():
    from pytest_crafter_eval.report import html as page_module
    from pytest_crafter_eval.report import summary as report

    every = dict.fromkeys(page_module.ACHIEVEMENTS, 1)
    # a lone model that passed: nothing to beat, no medal (a random agent got gold alone)
    alone = [_record("random", s) for s in range(3)]
    page = render_html(alone, report.summarize(alone))
    assert "class='rank" not in page
    # two models whose score intervals overlap (2 episodes each): a tie, no medal
    two = [_record("a", s, achievements=every) for s in range(2)] + [
        _record("b", s, achievements={"collect_wood": 1}) for s in range(2)
    ]
    assert "class='rank" not in render_html(two, report.summarize(two))
    # 40 episodes each: the intervals separate, the better model gets gold, the other none
    many = [_record("a", s, achievements=every) for s in range(40)] + [
        _record("b", s, achievements={}) for s in range(40)
    ]
    summary = report.summarize(many)
    board = re.search(r"<table class=board>.*?</table>", render_html(many, summary)).group(0)
    assert "<span class='rank r1'>1</span></td><td class=model>a</td>" in board
    assert "rank r2" not in board
    # the leaderboard lists models in the summary's order, as the terminal does
    order = list(summary["evals"]["e"]["models"])
    assert list(re.findall(r"<td class=model>(.+?)</td>", board)) == order
    # "2 errors", not "2 error"; the header counts distinct models over evals
    errors = [_record("a", 0, outcome="error"), _record("a", 1, outcome="error")]
    other = [{**r, "eval": "f", "path": "evals/f.yaml"} for r in many[:2]]
    page = render_html(errors + other, report.summarize(errors + other))
    assert "<b>2</b> errors</span>" in page and "2 error<" not in page
    assert "· 1 model ·" in page


def test_reports_say_how_episodes_ended_and_how_models_answered():
    from pytest_crafter_eval.report import summary as report

    records = [
        {**_record("m", 0), "end": "steps", "noops": 3, "invalid_answers": {"bad_json": 2}},
        {**_record("m", 1), "end": "no_tool_call", "text_tool_calls": 4},
    ]
    summary = report.summarize(records)
    values = summary["evals"]["e"]["models"]["m"]["metrics"]
    assert values["ends"] == {"no_tool_call": 1, "steps": 1}
    assert (values["noops"], values["text_tool_calls"]) == (3, 4)
    assert values["invalid_answers"] == {"bad_json": 2}
    line = (
        "ended: no_tool_call 1, steps 1; invalid answers: bad_json 2; noops 3; "
        "tool calls written as text 4"
    )
    assert f"  m: {line}" in report.terminal_lines(summary)
    assert f"- m: {line}" in report.markdown(summary)
    assert f"<small class=how>{line}</small>" in render_html(records, summary)
