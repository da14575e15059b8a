"""Stage: run (runstate). Run-wide state shared by every xdist worker of one run.

The controller makes one run directory (`make_run_dir`) and hands its path to each
worker; all state lives in files under it, guarded by `flock` locks, which the kernel
releases when a process dies (even by kill -9), so a crashed worker never holds a slot:

- `Slots(run_dir, model, n)`: at most `n` requests in flight to `model` across all
  workers (`--max-concurrency`);
- `Usage(run_dir)`: tokens and estimated cost of every response so far, summed across
  workers, and `Budget` to compare them with `--max-tokens` and `--max-cost`;
- `Pacer(run_dir, model)`: when the model answers 429 with a wait, every request to it,
  in every worker and thread, waits: the requests queue up, then go one per wait (the
  provider's own estimate of the time one request needs), so a run at the rate limit
  goes at the limit instead of hammering it;
- `Stop(run_dir)`: the run's stop (-x, --maxfail) as the controller decided it, for
  every worker to see before its next item and model call;
- `Tally(run_dir)`: this process's episodes in flight, model calls, tokens and cost, in
  its own file `tally/<pid>.json` (no lock: one writer), for the controller's live
  progress (`tallies` sums them).

Touches only files under the run directory. The locks need POSIX `fcntl`; without it
(Windows) only --max-concurrency, --max-tokens and --max-cost are unavailable.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


def make_run_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="crafter-eval-run-"))


def remove_run_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _locked(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


class Slots:
    """A counting semaphore over processes: `n` lock files, one held per request (the
    kernel frees those of a process that dies).

    `with slots(timeout, check):` waits at most `timeout` seconds for a slot (else
    `TimeoutError`), calling `check()` (which may raise, to stop) each time it wakes.
    The waiters of one process are served first come, first served: only the first in
    line tries the lock files, every `poll_s` doubling to `max_poll_s` (a release in this
    process wakes it at once), and the others sleep until they are first, waking every
    `recheck_s` only to call `check`."""

    def __init__(
        self,
        run_dir: Path,
        model: str,
        n: int,
        poll_s: float = 0.002,
        max_poll_s: float = 0.05,
        recheck_s: float = 0.1,
    ):
        digest = hashlib.sha256(model.encode()).hexdigest()[:16]
        directory = Path(run_dir) / "slots"
        directory.mkdir(parents=True, exist_ok=True)
        self.paths = [directory / f"{digest}-{i}.lock" for i in range(n)]
        self.poll_s, self.max_poll_s, self.recheck_s = poll_s, max_poll_s, recheck_s
        self._turns = threading.Condition()
        self._line: deque[object] = deque()

    @contextmanager
    def __call__(
        self, timeout: float = math.inf, check: Callable[[], None] | None = None
    ) -> Iterator[int]:
        end = time.monotonic() + timeout
        me = object()
        with self._turns:
            self._line.append(me)
            try:
                fd, index = self._wait(me, end, check)
            finally:
                self._line.remove(me)
                self._turns.notify_all()  # the next in line
        try:
            yield index
        finally:
            os.close(fd)  # closing releases the lock
            with self._turns:
                self._turns.notify_all()

    def _wait(self, me: object, end: float, check: Callable[[], None] | None) -> tuple[int, int]:
        """Called holding `_turns`: a held slot's (fd, index)."""
        poll = self.poll_s
        while True:
            if check is not None:
                check()
            if self._line[0] is me:
                held = self._take()
                if held is not None:
                    return held
                pause, poll = poll, min(2 * poll, self.max_poll_s)
            else:
                pause = self.recheck_s
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no request slot free ({len(self.paths)} in use)")
            self._turns.wait(min(pause, left))

    def _take(self) -> tuple[int, int] | None:
        for index, path in enumerate(self.paths):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return fd, index
        return None


@dataclass(frozen=True)
class Totals:
    tokens: int = 0
    cost_usd: float = 0.0
    unpriced_tokens: int = 0  # tokens of models without a price


class Usage:
    """Tokens and cost so far, in `usage.json` under the run directory."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "usage.json"
        self.lock = Path(run_dir) / "usage.lock"

    def add(self, tokens: int, cost_usd: float | None) -> Totals:
        with _locked(self.lock):
            now = self._read()
            now = Totals(
                now.tokens + tokens,
                now.cost_usd + (cost_usd or 0.0),
                now.unpriced_tokens + (tokens if cost_usd is None else 0),
            )
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(now.__dict__))
            os.replace(tmp, self.path)
            return now

    def totals(self) -> Totals:
        with _locked(self.lock):
            return self._read()

    def _read(self) -> Totals:
        try:
            return Totals(**json.loads(self.path.read_text()))
        except (OSError, ValueError, TypeError):
            return Totals()


@dataclass(frozen=True)
class Budget:
    max_tokens: int | None = None
    max_cost_usd: float | None = None

    @property
    def active(self) -> bool:
        return self.max_tokens is not None or self.max_cost_usd is not None

    def exceeded(self, totals: Totals) -> str | None:
        """Why the run's budget is spent, or None while it is not."""
        if self.max_tokens is not None and totals.tokens >= self.max_tokens:
            return (
                f"token budget reached: {totals.tokens} tokens used, --max-tokens {self.max_tokens}"
            )
        if self.max_cost_usd is not None and totals.cost_usd >= self.max_cost_usd:
            return (
                f"cost budget reached: ${totals.cost_usd:.6f} spent, "
                f"--max-cost {self.max_cost_usd:g}"
            )
        return None


def recorder(usage: Usage) -> Callable[[dict[str, Any]], None]:
    """An episode's `on_step` that adds the response's tokens and cost (the step's
    `tokens_in`, `tokens_out` and `cost_usd`, priced by the episode) to `usage`."""

    def on_step(step: dict[str, Any]) -> None:
        tokens = int(step.get("tokens_in") or 0) + int(step.get("tokens_out") or 0)
        usage.add(tokens, step.get("cost_usd"))

    return on_step


class Pacer:
    """The shared "not before" time of one model's requests, and the spacing between
    them while they queue behind it (in `pace/<digest>.json`).

    `limited(wait_s)` (a 429 that asked for `wait_s`): no request before now + wait_s,
    then one per spacing. `place(limit_s)` before each request: the seconds to wait
    first (0 when nothing queues, checked without a lock), taking the next place in the
    queue, and the spacing that place was given at (for `limited`, if the request is
    refused); None, taking nothing, when that place is more than `limit_s` away.

    The spacing is the largest wait asked for while the queue lasts (a request that came
    just before the provider's next opening is told a tiny wait, which is not the time a
    request needs). It is an estimate, and a coarse one when the provider answers in
    whole seconds, so it does not hold for ever: after `CALM_PLACES` places given without
    a 429 it halves (a 429 while the queue lasts undoes the last halving), and once the
    queue has drained requests go at full speed until the next 429.

    Halving probes for the provider's rate, and each probe below it cost a burst of 429s
    (at 16 callers on a limit of 10 a second, 46% of requests were refused and ~1.6
    calls in 600 ran out of their retries). So the spacing a refused request's place was
    given at (`place`, then `limited(..., place_spacing=)`) is remembered as too fast while
    the queue lasts: halving stops at `MARGIN` times it, a bound eased by `FORGET` at
    each calm step.

    A refused place also widens the spacing to `GROW` times its own, up to `GROW_CAP`
    times the longest wait asked while the queue lasts. The waits a token bucket asks
    for say when its next token comes, not how far apart requests must be: when the
    first 429 came with a short wait (callers that started over a second, as episodes
    do, drained the bucket slowly), the spacing stayed below the provider's rate for
    good, every wait asked being shorter still; about 45% of requests were refused all
    run long, and calls ran out of their retries (12.6 a simulated minute, README). The
    cap keeps 429s that have nothing to do with the rate (another client on the same
    key) from widening it without end: with 5% of requests refused at random the model
    went at 0.6 requests a second after 5 simulated minutes uncapped, 4.9-7.1 capped
    (limit 10; no widening: 10, but 33 calls a run out of their retries).
    """

    CALM_PLACES = 10
    CALM_FACTOR = 0.5
    GROW = 1.25  # ... and its next places go this much further apart
    GROW_CAP = 2.0  # ... but to no more than this x the longest wait asked in the queue
    MARGIN = 1.1  # the queue goes no faster than this x a spacing shown too fast
    FORGET = 0.98  # ... a bound that eases at each calm step, to probe again
    # The unlocked check ("nothing queues: go") reuses what this object last read or
    # wrote for this long: another process's 429 is seen that much later at most, and
    # 64 episode threads do not each open the file before every request.
    FRESH_S = 0.05

    def __init__(self, run_dir: Path, model: str, clock: Callable[[], float] = time.monotonic):
        digest = hashlib.sha256(model.encode()).hexdigest()[:16]
        directory = Path(run_dir) / "pace"
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{digest}.json"
        self.lock = directory / f"{digest}.lock"
        self._clock = clock
        self._seen = (-math.inf, 0.0)  # (clock() when read or written, its not_before)

    def place(
        self, limit_s: float = math.inf, now: Callable[[], float] = time.time
    ) -> tuple[float, float | None] | None:
        """(seconds to wait, the spacing the place was given at, None when nothing
        queued), or None; see the class docstring."""
        seen_at, not_before = self._seen
        if self._clock() - seen_at >= self.FRESH_S:
            not_before = self._read()["not_before"]
        if not_before <= now():
            return 0.0, None
        with _locked(self.lock):
            state = self._read()
            at = now()
            if state["not_before"] <= at:
                return 0.0, None
            held = state["not_before"] - at
            if held > limit_s:
                return None  # the caller gives up: its place stays free for the next
            spacing = state["spacing"]
            state["not_before"] += spacing
            state["calm"] += 1
            if state["calm"] >= self.CALM_PLACES:  # no 429 for a while: go faster,
                # but not as fast as a spacing a 429 has shown to be too fast
                floor = state["too_fast"] * self.MARGIN
                faster = max(spacing * self.CALM_FACTOR, min(spacing, floor))
                state["before"], state["spacing"], state["calm"] = (spacing, faster, 0)
                state["too_fast"] *= self.FORGET
            self._write(state)
            return held, spacing

    def limited(
        self,
        wait_s: float,
        now: Callable[[], float] = time.time,
        place_spacing: float | None = None,
    ) -> None:
        """A 429 asked for `wait_s`. `place_spacing`: the spacing the refused request's place
        in the queue was given at (`place`); None if it went straight away (nothing
        queued) or is not known."""
        with _locked(self.lock):
            state = self._read()
            at = now()
            spacing = state["spacing"]
            queueing = state["not_before"] > at - 5 * max(spacing, wait_s)  # or just drained
            too_fast = state["too_fast"] if queueing else 0.0
            asked = max(state["asked"], wait_s) if queueing else wait_s
            grown = 0.0
            if queueing and place_spacing is not None:  # places that far apart were too close
                too_fast = max(too_fast, place_spacing)
                grown = min(place_spacing * self.GROW, asked * self.GROW_CAP)
            self._write(
                {
                    "not_before": max(state["not_before"], at + wait_s),
                    "spacing": max(spacing, state["before"], wait_s, grown) if queueing else wait_s,
                    "before": state["before"] if queueing else 0.0,
                    "calm": 0,
                    "too_fast": too_fast,
                    "asked": asked,
                }
            )

    def _read(self) -> dict[str, float]:
        at = self._clock()
        try:
            data = json.loads(self.path.read_text())
            state = {key: float(data.get(key, 0.0)) for key in _PACE_KEYS}
        except (OSError, ValueError, TypeError, AttributeError):
            state = dict.fromkeys(_PACE_KEYS, 0.0)
        self._seen = (at, state["not_before"])
        return state

    def _write(self, state: dict[str, float]) -> None:
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.path)
        self._seen = (self._clock(), state["not_before"])


_PACE_KEYS = ("not_before", "spacing", "before", "calm", "too_fast", "asked")


class Stop:
    """The run's stop, in the file `stop` under the run directory: `request(reason)`
    (the controller, once -x or --maxfail is reached) writes it, `reason()` reads it
    (None while the run goes on).

    Every model call asks, so the answer "no stop" is kept for `FRESH_S`: another
    process's stop is seen that much later at most, and 64 episode threads do not each
    open the file at every step (every open hands the GIL over)."""

    FRESH_S = 0.05

    def __init__(self, run_dir: Path, clock: Callable[[], float] = time.monotonic):
        self.path = Path(run_dir) / "stop"
        self._clock = clock
        self._reason: str | None = None
        self._checked = -math.inf  # when the file was last found absent

    def request(self, reason: str) -> None:
        if self.path.exists():
            return
        tmp = self.path.with_name(f"stop.{os.getpid()}.tmp")
        tmp.write_text(reason)
        os.replace(tmp, self.path)
        self._reason = reason

    def reason(self) -> str | None:
        if self._reason is not None:  # a stop is for good
            return self._reason
        at = self._clock()
        if at - self._checked < self.FRESH_S:
            return None
        try:
            self._reason = self.path.read_text() or "the run is stopping"
        except OSError:
            self._checked = at
        return self._reason


class Tally:
    """This process's live counts, written to `tally/<pid>.json` when an episode starts
    or ends and at most once a second on replies (never a lock: one writer per file).
    Thread-safe within the process. While the process lives it holds a lock on
    `tally/<pid>.lock`, which the kernel frees when it dies, even by kill -9: `tallies`
    then no longer counts its episodes in flight."""

    FIELDS = ("in_flight", "calls", "tokens", "cost_usd")

    def __init__(self, run_dir: Path, every_s: float = 1.0):
        directory = Path(run_dir) / "tally"
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{os.getpid()}.json"
        self._alive = _hold(directory / f"{os.getpid()}.lock")
        self.every_s = every_s
        self.counts: dict[str, float] = dict.fromkeys(self.FIELDS, 0)
        self._lock = threading.Lock()
        self._written = 0.0

    def started(self) -> None:
        self._add(force=True, in_flight=1)

    def ended(self) -> None:
        self._add(force=True, in_flight=-1)

    def reply(self, tokens: int, cost_usd: float | None) -> None:
        self._add(calls=1, tokens=tokens, cost_usd=cost_usd or 0.0)

    def _add(self, force: bool = False, **deltas: float) -> None:
        with self._lock:
            for key, value in deltas.items():
                self.counts[key] += value
            now = time.monotonic()
            if not force and now - self._written < self.every_s:
                return
            self._written = now
            text = json.dumps(self.counts)
            tmp = self.path.with_name(f"{self.path.name}.tmp")
            try:
                tmp.write_text(text)
                os.replace(tmp, self.path)
            except OSError:  # progress is best effort: never fail an episode for it
                pass


def tallies(run_dir: Path) -> dict[str, float]:
    """The sum of every process's `Tally` of this run; a process that died (its lock is
    free) has no episode in flight, and keeps its calls, tokens and cost (spent)."""
    total: dict[str, float] = dict.fromkeys(Tally.FIELDS, 0)
    for path in (Path(run_dir) / "tally").glob("*.json"):
        try:
            counts = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        dead = not _held(path.with_suffix(".lock"))
        for key in Tally.FIELDS:
            value = counts.get(key) if isinstance(counts, dict) else None
            if isinstance(value, (int, float)) and not (dead and key == "in_flight"):
                total[key] += value
    return total


def _hold(path: Path) -> int | None:
    """An open file holding an exclusive lock on `path` for as long as it stays open
    (None without POSIX locks)."""
    if fcntl is None:
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # held already: another Tally of this process
        os.close(fd)
        return None
    return fd


def _held(path: Path) -> bool:
    """Whether a live process holds the lock on `path` (True without POSIX locks)."""
    if fcntl is None:
        return True
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
