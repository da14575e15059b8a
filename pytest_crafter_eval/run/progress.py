"""Stage: run (progress). A live progress line on the controller while episodes run:

    crafter-eval: 37/128 episodes done, 64 in flight, 1204 model calls, 2.1M tokens, $0.4200, 2 errors, ETA 1m05s

Episodes done and errors are the controller's own records; episodes in flight, model
calls, tokens and cost are the sum of every process's `runstate.Tally` in the run
directory (xdist workers included). A thread of the controller writes the line every
`every_s` seconds, only when something changed, to the terminal (past pytest's capture of
the test running meanwhile in this process).
On by default only when the output is a terminal; `--progress` turns it on anyway
(a CI log), `-q` turns it off. `line` is pure.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest

from .items import EPISODE_ID, EpisodeItem


def line(
    *, done: int, total: int | None, counts: Mapping[str, float], errors: int, eta_s: float | None
) -> str:
    parts = [
        f"{done}/{total if total is not None else '?'} episodes done",
        f"{int(counts.get('in_flight', 0))} in flight",
        f"{int(counts.get('calls', 0))} model calls",
        f"{_tokens(int(counts.get('tokens', 0)))} tokens",
        f"${counts.get('cost_usd', 0.0):.4f}",
        f"{errors} error{'s' if errors != 1 else ''}",
    ]
    if eta_s is not None:
        parts.append(f"ETA {_duration(eta_s)}")
    return "crafter-eval: " + ", ".join(parts)


def _tokens(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    return str(n)


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def eta(done_played: int, remaining: int, elapsed_s: float) -> float | None:
    """Seconds left at the rate so far; None before the first played episode ends."""
    if done_played <= 0 or remaining < 0:
        return None
    return remaining * elapsed_s / done_played


class Progress:
    """Controller hooks: counts the episodes to run, and writes `line` every `every_s`
    seconds from a thread while the run loop runs."""

    def __init__(
        self,
        config: pytest.Config,
        every_s: float,
        records: Callable[[], Iterable[Mapping[str, Any]]],
        counts: Callable[[], Mapping[str, float]],
    ):
        self.config, self.every_s = config, every_s
        self.records, self.counts = records, counts
        self.total: int | None = None
        self._stop = threading.Event()
        self._last = ""
        # The terminal, as it is now (pytest_configure, capture suspended): while a test
        # runs in this process, pytest captures file descriptor 1, and the line would
        # land in the test's captured output.
        try:
            self._fd: int | None = os.dup(sys.stdout.fileno())
        except (AttributeError, OSError, ValueError):  # no real stdout (an in-process run)
            self._fd = None

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.total is None and session.items:
            self.total = sum(1 for item in session.items if isinstance(item, EpisodeItem))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        if self.total is None:
            self.total = sum(1 for nodeid in ids if _is_episode(nodeid))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session):
        if session.config.option.collectonly:
            return (yield)
        started = time.monotonic()
        thread = threading.Thread(
            target=self._loop, args=(started,), name="crafter-progress", daemon=True
        )
        thread.start()
        try:
            return (yield)
        finally:
            self._stop.set()
            thread.join()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _loop(self, started: float) -> None:
        while not self._stop.wait(self.every_s):
            text = self.snapshot(time.monotonic() - started)
            if text == self._last or text is None:
                continue
            self._last = text
            self._write(text)

    def _write(self, text: str) -> None:
        writer = self.config.get_terminal_writer()
        if writer.width_of_current_line:  # after a row of dots: a line of its own
            text = "\n" + text
        if self._fd is None:
            writer.line(text)
            return
        writer.flush()
        with contextlib.suppress(OSError):
            os.write(self._fd, (text + "\n").encode())

    def snapshot(self, elapsed_s: float) -> str | None:
        """The progress line now; None before any episode has started."""
        records = list(self.records())
        counts = self.counts()
        if not records and not counts.get("in_flight") and not counts.get("calls"):
            return None
        played = sum(1 for r in records if not r.get("resumed") and r.get("outcome") != "skipped")
        errors = sum(1 for r in records if r.get("outcome") == "error")
        total = self.total
        remaining = total - len(records) if total is not None else -1
        return line(
            done=len(records),
            total=total,
            counts=counts,
            errors=errors,
            eta_s=eta(played, remaining, elapsed_s),
        )


def _is_episode(nodeid: str) -> bool:
    return EPISODE_ID.search(nodeid) is not None
