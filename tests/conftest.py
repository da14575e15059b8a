"""Fixtures for every test of the suite."""

import os
import shutil

import openai
import pytest

from pytest_crafter_eval.wire.local import LocalServer


@pytest.fixture(autouse=True)
def _no_github_step_summary(monkeypatch):
    """Plugin runs inside tests must not append to the CI job's real step summary."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture(scope="module")
def server():
    """The built-in models on a loopback server of the test module's own, logging requests."""
    with LocalServer(log=True) as server:
        yield server


@pytest.fixture(scope="module")
def sdk(server):
    """The real openai SDK pointed at `server`, with the SDK's own retries off."""
    with openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0) as sdk:
        yield sdk


# tests/data holds eval files that tests copy and run in their own pytester directories
# (tests/data/evals/responses.yaml); the suite does not collect them itself.
collect_ignore = ["data"]


@pytest.fixture
def chromium(tmp_path):
    """Opens headless Chromium (selenium on the system chromium): `browser = chromium()`;
    skips, or fails in CI, when it is missing."""
    return lambda: _browser(tmp_path)


def _browser(tmp_path):
    """Selenium's Chrome on the system chromium; fails in CI when it is missing."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        driver = None
    if not (chromium and driver):
        why = (
            "headless Chromium is needed: apt-get install chromium chromium-driver "
            "(.ci/run does) and pip install -e '.[test]'"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(f"NOT TESTED: {why}")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)
