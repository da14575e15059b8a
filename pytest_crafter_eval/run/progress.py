"""Stage: run (progress). A live progress line on the controller while episodes run:

    crafter-eval: 37/128 episodes done, 64 in flight, 27 waiting, 1204 model calls, 2.1M tokens, $0.4200, 2 errors, ETA 1m05s

Episodes done and errors are the controller's own records; episodes in flight, model
calls, tokens and cost are the sum of every process's `runstate.Tally` in the run
directory (xdist workers included). A thread of the controller writes the line every
`every_s` seconds, only when something changed, to the terminal (past pytest's capture of
the test running meanwhile in this process).
On a terminal each line replaces the one before when nothing else was written since.
On by default only when the output is a terminal; `--progress` turns it on anyway
(a CI log), `-q` turns it off. `line`, `eta` and `in_place` are pure.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pytest

from .items import EPISODE_ID, EpisodeItem


def line(
    *, done: int, total: int | None, counts: Mapping[str, float], errors: int, eta_s: float | None
) -> str:
    """The progress line. Episodes done, in flight and waiting add up to the total (the
    in-flight count is capped at what is left); the cost is left out while it is 0 (free
    or unpriced models)."""
    in_flight = max(0, int(counts.get("in_flight", 0)))
    if total is not None:
        in_flight = min(in_flight, max(0, total - done))
    parts = [
        f"{done}/{total if total is not None else '?'} episodes done",
        f"{in_flight} in flight",
    ]
    if total is not None:
        parts.append(f"{max(0, total - done - in_flight)} waiting")
    parts += [
        f"{int(counts.get('calls', 0))} model calls",
        f"{_tokens(int(counts.get('tokens', 0)))} tokens",
    ]
    cost = float(counts.get("cost_usd", 0.0) or 0.0)
    if cost > 0:
        parts.append(f"${cost:.4f}")
    parts.append(f"{errors} error{'s' if errors != 1 else ''}")
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


def eta(durations_s: Sequence[float], waiting: int, in_flight: int, parallel: int) -> float | None:
    """Seconds left: the episodes still waiting go `parallel` at a time, each taking the
    mean duration of the episodes played so far, and those in flight are half done on
    average. None before the first played episode ends. (The elapsed time over episodes
    done overestimated it: it counts start-up, and the first wave of a parallel run
    ends all at once.)"""
    if not durations_s or waiting < 0:
        return None
    mean = sum(durations_s) / len(durations_s)
    left = math.ceil(waiting / max(1, parallel)) * mean
    if in_flight > 0:
        left += mean / 2
    return left


def in_place(tty: bool, unchanged: bool) -> bool:
    """Whether the next progress line replaces the last one: on a terminal, when nothing
    else was written since it."""
    return tty and unchanged


# Back to the start of the line above and clear it (the last progress line).
REWRITE = "\x1b[F\x1b[2K"


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
        self.parallel = 1  # the most episodes seen in flight at once
        self._mark: tuple[int, int] | None = None  # the terminal's state after our last line
        # The terminal, as it is now (pytest_configure, capture suspended): while a test
        # runs in this process, pytest captures file descriptor 1, and the line would
        # land in the test's captured output.
        try:
            self._fd: int | None = os.dup(sys.stdout.fileno())
        except (AttributeError, OSError, ValueError):  # no real stdout (an in-process run)
            self._fd = None
        self._tty = self._fd is not None and os.isatty(self._fd)

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
        thread = threading.Thread(target=self._loop, name="crafter-progress", daemon=True)
        thread.start()
        try:
            return (yield)
        finally:
            self._stop.set()
            thread.join()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            text = self.snapshot()
            if text == self._last or text is None:
                continue
            self._last = text
            self._write(text)

    def _write(self, text: str) -> None:
        writer = self.config.get_terminal_writer()
        mark = (self._reported(), writer.width_of_current_line)
        rewrite = in_place(self._tty, mark == self._mark)
        self._mark = mark
        if rewrite:
            text = REWRITE + text
        elif writer.width_of_current_line:  # after a row of dots: a line of its own
            text = "\n" + text
        if self._fd is None:
            writer.line(text)
            return
        writer.flush()
        with contextlib.suppress(OSError):
            os.write(self._fd, (text + "\n").encode())

    def _reported(self) -> int:
        """How many reports the terminal has shown: it changes when pytest writes."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        stats = getattr(reporter, "stats", None) or {}
        return sum(len(v) for v in stats.values())

    def snapshot(self) -> str | None:
        """The progress line now; None before any episode has started."""
        records = list(self.records())
        counts = self.counts()
        if not records and not counts.get("in_flight") and not counts.get("calls"):
            return None
        played = [
            float(r.get("duration_s") or 0.0)
            for r in records
            if not r.get("resumed")
            and r.get("outcome") not in ("skipped", None)
            and r.get("duration_s")
        ]
        errors = sum(1 for r in records if r.get("outcome") == "error")
        total = self.total
        in_flight = max(0, int(counts.get("in_flight", 0)))
        if total is not None:
            in_flight = min(in_flight, max(0, total - len(records)))
        self.parallel = max(self.parallel, in_flight)
        waiting = total - len(records) - in_flight if total is not None else -1
        return line(
            done=len(records),
            total=total,
            counts=counts,
            errors=errors,
            eta_s=eta(played, waiting, in_flight, self.parallel),
        )


def _is_episode(nodeid: str) -> bool:
    return EPISODE_ID.search(nodeid) is not None
