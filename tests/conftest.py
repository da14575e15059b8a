"""Fixtures for every test of the suite."""

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
