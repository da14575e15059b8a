"""HTML report: real episodes (loopback local models) rendered to index.html, then opened
in headless Chromium (Debian's chromium + chromium-driver, driven by selenium)."""
import os
import re
import shutil
from pathlib import Path

import pytest

from pytest_crafter_eval import spec, trace
from pytest_crafter_eval.client import Connections
from pytest_crafter_eval.episode import check, run_episode
from pytest_crafter_eval.html_report import render_html, write_html
from pytest_crafter_eval.metrics import ACHIEVEMENTS

# local/nonexistent stands for a model the server does not know: its episodes are errors.
pytestmark = pytest.mark.filterwarnings(
    "ignore:local/nonexistent:pytest_crafter_eval.profiles.CrafterEvalWarning")

SMOKE = """\
models:
  - local/heuristic
  - local/random: {expect: {min_achievements: 0}}
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


def play(tmp: Path, name: str, text: str) -> list[dict]:
    """Records as the plugin makes them: real episodes, judged, each with its GIF."""
    path = tmp / f"{name}.yaml"
    path.write_text(text)
    loaded = spec.load(path)
    records = []
    connections = Connections()
    try:
        for run in loaded.runs:
            for seed in loaded.seeds:
                if not run.model.startswith("local/"):
                    records.append({"eval": name, "model": run.model, "seed": seed,
                                    "outcome": "skipped", "achievements": {}})
                    continue
                film = trace.Filmstrip()
                result = run_episode(run, seed, connections.for_model(run.model),
                                     eval_name=name, on_step=film)
                gif = Path("episodes", trace.episode_path(name, run.model, seed)).with_suffix(".gif")
                if film.save(tmp / "report" / gif):
                    result.gif = gif.as_posix()
                problems = check(result, run.expect)
                result.outcome = ("error" if result.error else "xfailed" if run.xfail and problems
                                  else "failed" if problems else "passed")
                records.append(result.to_dict())
    finally:
        connections.close()
    return records


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    records = play(tmp, "smoke", SMOKE) + play(tmp, "night", NIGHT)
    return tmp / "report", records


def test_the_page_has_every_episode_and_model(report):
    report_dir, records = report
    page = render_html(records)
    assert len(re.findall(r"<tr class='ep ", page)) == len(records) == 12
    for model in ("local/heuristic", "local/random", "local/silent", "gpt-4o-mini-2024-07-18"):
        assert f"<td class=model>{model}</td>" in page
    assert "local/random?seed=7&amp;latency_ms=0" in page and "seed=7&latency" not in page
    outcomes = {r["outcome"] for r in records}
    assert outcomes == {"passed", "xfailed", "error", "skipped"}, outcomes
    for record in records:
        if record.get("gif"):
            assert f"src='{record['gif']}'" in page
    assert not re.search(r"(?:src|href)=['\"]?(?:https?:)?//", page), "the page must load nothing remote"


def test_heatmap_cells_are_the_success_rates(report):
    _, records = report
    heuristic = [r for r in records if r["model"] == "local/heuristic" and r["eval"] == "smoke"]
    page = render_html(heuristic)
    row = re.search(r"<th class=model>local/heuristic<small>2 ep.</small></th>(.*?)</tr>", page).group(1)
    cells = re.findall(r">(\d+)</td>", row)
    assert len(cells) == len(ACHIEVEMENTS) == 22
    for achievement, cell in zip(ACHIEVEMENTS, cells):
        share = sum(1 for r in heuristic if r["achievements"].get(achievement)) / 2
        assert int(cell) == round(100 * share)


def test_a_missing_gif_is_a_placeholder_not_a_broken_image(report, tmp_path):
    _, records = report
    record = next(r for r in records if r.get("gif"))
    path = write_html(tmp_path, [record])
    text = path.read_text()
    assert "<img class=film" not in text and "no frames" in text


def _browser(tmp_path):
    """Selenium's Chrome on the system chromium; fails in CI when it is missing."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        driver = None
    if not (chromium and driver):
        why = ("headless Chromium is needed: apt-get install chromium chromium-driver "
               "(.ci/run does) and pip install -e '.[test]'")
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(f"NOT TESTED: {why}")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def test_the_report_renders_in_headless_chromium(report, tmp_path):
    report_dir, records = report
    index = write_html(report_dir, records)
    browser = _browser(tmp_path)
    try:
        browser.get(index.as_uri())
        browser.execute_async_script(  # wait until every image has loaded or failed
            "const done = arguments[arguments.length - 1];"
            "Promise.all([...document.images].map(i => i.decode().catch(() => null))).then(done);")
        rows = browser.execute_script("return document.querySelectorAll('tr.ep').length")
        assert rows == len(records)
        images = browser.execute_script(
            "return [...document.images].map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
        gifs = [r["gif"] for r in records if r.get("gif")]
        assert sorted(src for src, _, _ in images) == sorted(gifs)
        broken = [src for src, complete, width in images if not (complete and width > 0)]
        assert not broken, f"broken images: {broken}"
        assert {width for _, _, width in images} == {64}
        icons = browser.execute_script(
            "return [...document.querySelectorAll('.ic')].map(e => getComputedStyle(e).backgroundImage)")
        assert icons and all(i.startswith('url("data:image/png;base64,') for i in icons)
        fetched = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)")
        remote = [url for url in fetched if not url.startswith(("file:", "data:"))]
        assert not remote, f"the page fetched {remote}"
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1280, min(height, 6000))
        shot = tmp_path / "html-report.png"
        assert browser.get_screenshot_as_file(str(shot)) and shot.stat().st_size > 10_000
        if os.environ.get("CRAFTER_REPORT_SCREENSHOT"):
            shutil.copy(shot, os.environ["CRAFTER_REPORT_SCREENSHOT"])
    finally:
        browser.quit()
