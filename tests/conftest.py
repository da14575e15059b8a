"""Fixtures for every test of the suite."""
import pytest


@pytest.fixture(autouse=True)
def _no_github_step_summary(monkeypatch):
    """Plugin runs inside tests must not append to the CI job's real step summary."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
