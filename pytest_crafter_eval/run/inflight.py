"""Stage: run (episodes in flight). A per-process pool that plays episodes
ahead of pytest, so that up to N of them wait on their models at once (`--concurrency`).

Knows no pytest: `Pool(n)` runs jobs (callables) on `n` threads, first submitted first
started, and keeps each job's future under its key until someone `claim`s it. The
plugin submits the episodes of the items this process will run, in run order, and each
item's setup claims its own future and waits on it, so items still pass, fail, error and
skip one by one, in order, as pytest reports them.

Threads, not asyncio: the openai SDK call is synchronous here, an episode spends nearly
all its time waiting on the model, and Crafter's step is a short CPU burst either way.
One SDK client per base URL is shared by the threads (httpx's pool is thread-safe).

Episodes take turns (`Pool.turn`): a job holds the pool's turn while it computes, and
gives it up only while it waits on its model (`Checked`, with `Pool.waiting`: the whole
SDK call, which encodes, sends and reads, runs outside the turn). The turn is a plain
lock, not a queue: a job whose answer is back may wait behind one starting. The GIL
alone lets threads interleave at every I/O call and every numpy or PIL call that lets it
go, and 64 episodes computing at once then handed it back and forth mid-step: a model
call took about twice its CPU one at a time, and every episode's wall time paid for the
waits. In the in-flight benchmark (128 episodes of 20 calls at 1 s, `-n 2 --concurrency
64`), turns took its CPU from 5.6 to 4.1 ms a call, and in 5 pairs of runs, with and
without them in turn, the run with turns was faster in every pair (23.26 s against
23.86 s on average; identical runs move by up to 1 s with the machine's moment).
Nothing an episode does while it holds its turn waits on another episode, so turns
cannot deadlock.

`stop()` (Ctrl-C, -x, the end of the run) starts nothing more, asks the episodes in
flight to end (`Checked` wraps an episode's model client so that each model call first
checks `stopping` and raises `Cancelled`: an episode that has made its last call is
never cancelled), and joins every thread. `finished()` then lists the episodes that ran to
the end, so that the plugin can record those that were never reported.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any


class Cancelled(Exception):
    """An episode stopped because the run is stopping (Ctrl-C, -x)."""


class Pool:
    def __init__(self, n: int):
        if n < 1:
            raise ValueError("a pool needs at least one thread")
        self.stopping = threading.Event()
        self.turn = threading.Lock()  # held by the one job computing (module docstring)
        self._executor = ThreadPoolExecutor(max_workers=n, thread_name_prefix="crafter-episode")
        self._futures: dict[Hashable, Future[Any]] = {}
        self._claimed: set[Hashable] = set()
        self._lock = threading.Lock()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._futures

    def submit(self, key: Hashable, job: Callable[[], Any]) -> None:
        """Run `job` when a thread is free (at once if one is), unless stopping."""
        with self._lock:
            if self.stopping.is_set() or key in self._futures:
                return
            self._futures[key] = self._executor.submit(self._guarded, job)

    def _guarded(self, job: Callable[[], Any]) -> Any:
        with self.turn:
            self.check_stop()
            return job()

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Give up the turn while the job on this thread waits (on its model), and take
        it back after. Only inside a job of this pool."""
        self.turn.release()
        try:
            yield
        finally:
            self.turn.acquire()

    def check_stop(self) -> None:
        """Raise `Cancelled` once the pool is stopping."""
        if self.stopping.is_set():
            raise Cancelled("the run is stopping")

    def claim(self, key: Hashable) -> Future[Any] | None:
        """The future of `key`'s job, the first time only: None if it was never
        submitted or was claimed before (an item run again plays its episode again)."""
        with self._lock:
            if key in self._claimed:
                return None
            future = self._futures.get(key)
            if future is not None:
                self._claimed.add(key)
            return future

    def stop(self) -> None:
        """Start nothing more, cancel the episodes in flight at their next step, and
        wait for every thread to end."""
        with self._lock:
            self.stopping.set()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def finished(self) -> list[Hashable]:
        """Keys of the jobs that ran to the end without an exception, in submission
        order (call after `stop`)."""
        return [
            key
            for key, future in self._futures.items()
            if future.done() and not future.cancelled() and future.exception() is None
        ]


class Checked:
    """A model client (anything with `complete(...)`) whose every call first runs
    `check` (a `Pool.check_stop`), and then, when `waiting` is given (a job's
    `Pool.waiting`), waits for the answer inside it."""

    def __init__(
        self,
        client: Any,
        check: Callable[[], None],
        waiting: Callable[[], AbstractContextManager[Any]] | None = None,
    ):
        self.client, self.check, self.waiting = client, check, waiting

    def complete(self, *args: Any, **kwargs: Any) -> Any:
        self.check()
        with (self.waiting or nullcontext)():
            return self.client.complete(*args, **kwargs)
