"""Stage: run (scheduling). `--concurrency N`: each process plays up to N episodes at
once, ahead of pytest's run order, with or without xdist.

`InflightHooks` (in every process that runs tests) submits the episodes this process
will run to an `inflight.Pool`, in run order, at its first item; each `EpisodeItem`'s
setup claims its own episode and waits for it, so reports still come one by one, in
order. Without xdist the process runs `session.items`. Under xdist a worker knows only
the items the scheduler has sent it, so with --concurrency the controller uses
`StaticScheduling` (through xdist's public `pytest_xdist_make_scheduler` hook): it deals
the collection out to the workers at once, in turn (which spreads every model over every
worker), and writes each worker's share to `<run dir>/schedule/<worker id>` before
sending it; the worker reads that file. Items of a crashed worker go to its replacement,
whose file says so.

Before the pool's threads start, glibc's malloc is capped at 2 arenas (`few_malloc_arenas`):
by default it gives threads up to 8 arenas per core, and with dozens of episode threads
their fragmentation cost a worker about 30 MB in the in-flight benchmark.

When the loop ends (done, -x, Ctrl-C) the pool stops: nothing more starts, episodes in
flight end at their next step, threads are joined, and episodes that finished but were
not reported yet are still judged and recorded in results.jsonl.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from . import inflight
from .items import EpisodeItem
from .settings import POOL, check_stop, is_worker, run_dir, run_stop

SCHEDULE_DIR = "schedule"


def schedule_file(run_directory: Path, worker_id: str) -> Path:
    return Path(run_directory) / SCHEDULE_DIR / worker_id


def few_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (mallopt M_ARENA_MAX) for threads that start later in
    this process. In the in-flight benchmark (2 workers, 64 episodes in flight each) the
    workers peaked at 236 and 238 MB with glibc's default (up to 8 arenas per core), 217
    and 192 MB with 2, at the same speed. False where there is no glibc (macOS, musl):
    nothing changes there."""
    try:
        return bool(ctypes.CDLL(None).mallopt(-8, arenas))  # -8: M_ARENA_MAX in malloc.h
    except (OSError, AttributeError):
        return False


class InflightHooks:
    """Plays this process's episodes on an `inflight.Pool` of `n` threads. At the end,
    `finish(item)` is called for every episode that ran to the end (to record those the
    run stopped before reporting)."""

    def __init__(self, config: pytest.Config, n: int, finish: Callable[[Any], None]):
        self.config, self.n, self.finish = config, n, finish
        self.session: pytest.Session | None = None
        self.known: set[str] = set()
        self.items: dict[str, EpisodeItem] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session):
        if session.config.option.collectonly or session.config.pluginmanager.has_plugin(
            "dsession"  # the xdist controller runs no test itself
        ):
            return (yield)
        from .settings import connections

        connections(self.config)  # made once, here, not by racing threads
        self.session = session
        if self.n > 1:
            few_malloc_arenas()
        pool = inflight.Pool(self.n)
        self.config.stash[POOL] = pool
        try:
            result = yield
        except BaseException:
            self._end(pool, stopping=True)
            raise
        self._end(pool, stopping=False)
        return result

    def _end(self, pool: inflight.Pool, stopping: bool) -> None:
        """Stop the pool and `finish` every episode that ran to the end, each though
        another fails. A failure to finish one never replaces the exception that is
        stopping the run (Ctrl-C): it is a warning then; otherwise the first is raised."""
        pool.stop()
        del self.config.stash[POOL]
        failures = []
        for key in pool.finished():
            try:
                self.finish(self.items[str(key)])
            except Exception as exc:  # the others are still recorded
                failures.append((str(key), exc))
        if failures and stopping:
            import warnings

            for key, error in failures:
                warnings.warn(f"{key}: its result could not be recorded: {error}", stacklevel=1)
        elif failures:
            raise failures[0][1]

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        pool = self.config.stash.get(POOL, None)
        if pool is None:
            return None
        stopped = run_stop(self.config)
        if stopped is not None:  # -x or --maxfail, reached in another worker
            pool.stopping.set()
            item.session.shouldstop = stopped
            return True  # not run, not reported: the controller lists it as not run
        if item.nodeid in self.known:
            return None
        for other in self._own_items():
            if other.nodeid in self.known:
                continue
            self.known.add(other.nodeid)
            if isinstance(other, EpisodeItem) and _prefetchable(other):
                self.items[other.nodeid] = other
                pool.submit(
                    other.nodeid,
                    functools.partial(
                        other.play,
                        check_stop=lambda: check_stop(self.config),
                        waiting=pool.waiting,
                    ),
                )

    def _own_items(self) -> Sequence[pytest.Item]:
        """The items this process runs, in order, as far as it knows them now."""
        assert self.session is not None
        items = self.session.items
        if not is_worker(self.config):
            return items
        worker = str(self.config.workerinput.get("workerid"))  # type: ignore[attr-defined]
        try:
            lines = schedule_file(run_dir(self.config), worker).read_text().split()
        except OSError:
            return []  # another --dist mode: played one at a time
        return [items[int(i)] for i in lines if i.isdigit() and int(i) < len(items)]


def _prefetchable(item: EpisodeItem) -> bool:
    """An episode pytest will set up: not one skipped by a mark (a missing key)."""
    return not any(item.iter_markers("skip")) and not any(item.iter_markers("skipif"))


class StaticScheduling:
    """An xdist scheduler (the `xdist.scheduler.protocol.Scheduling` protocol) that
    sends every worker its whole share at once and writes it to the run directory."""

    def __init__(self, config: pytest.Config, log: Any, run_directory: Path):
        from xdist.workermanage import parse_tx_spec_config

        self.config, self.log, self.run_dir = config, log, Path(run_directory)
        self.numnodes = len(parse_tx_spec_config(config))
        self.node2collection: dict[Any, list[str]] = {}
        self.node2pending: dict[Any, list[int]] = {}
        self.pending: list[int] = []
        self.collection: list[str] | None = None

    @property
    def nodes(self) -> list[Any]:
        return list(self.node2pending)

    @property
    def collection_is_completed(self) -> bool:
        return len(self.node2collection) >= self.numnodes

    @property
    def tests_finished(self) -> bool:
        if not self.collection_is_completed or self.pending:
            return False
        return all(len(p) < 2 for p in self.node2pending.values())

    @property
    def has_pending(self) -> bool:
        return bool(self.pending) or any(self.node2pending.values())

    def add_node(self, node: Any) -> None:
        self.node2pending[node] = []

    def add_node_collection(self, node: Any, collection: Sequence[str]) -> None:
        if self.collection is not None and list(collection) != self.collection:
            self.log(f"{node.gateway.id} collected different tests; it gets none")
            return
        self.node2collection[node] = list(collection)

    def mark_test_complete(self, node: Any, item_index: int, duration: float = 0) -> None:
        self.node2pending[node].remove(item_index)

    def mark_test_pending(self, item: str) -> None:
        assert self.collection is not None
        self.pending.insert(0, self.collection.index(item))
        self._send_pending()

    def remove_pending_tests_from_node(self, node: Any, indices: Sequence[int]) -> None:
        raise NotImplementedError

    def remove_node(self, node: Any) -> str | None:
        pending = self.node2pending.pop(node)
        if not pending or self.collection is None:
            return None
        self.pending.extend(pending[1:])  # to the worker that replaces it
        self._send_pending()
        return self.collection[pending[0]]

    def schedule(self) -> None:
        if self.collection is None:
            collections = list(self.node2collection.values())
            if any(c != collections[0] for c in collections[1:]):
                self.log("**Different tests collected, aborting run**")
                for node in self.nodes:
                    node.shutdown()
                return
            self.collection = collections[0]
            self.pending = list(range(len(self.collection)))
        self._send_pending()

    def _send_pending(self) -> None:
        """Deal the pending items out, in turn, to the workers not shutting down; each
        then gets its shutdown (it runs what it got, then ends)."""
        nodes = sorted(
            (n for n in self.node2pending if not n.shutting_down), key=lambda n: _order(n)
        )
        if not nodes:
            return
        shares: dict[Any, list[int]] = {n: [] for n in nodes}
        for position, index in enumerate(self.pending):
            shares[nodes[position % len(nodes)]].append(index)
        self.pending = []
        for node, share in shares.items():
            if share:
                path = schedule_file(self.run_dir, node.gateway.id)
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a", encoding="ascii") as f:  # before the worker gets them
                    f.write("".join(f"{i}\n" for i in share))
                self.node2pending[node].extend(share)
                node.send_runtest_some(share)
            node.shutdown()


def _order(node: Any) -> tuple[int, str]:
    gateway_id = str(node.gateway.id)
    digits = gateway_id.lstrip("gw")
    return (int(digits) if digits.isdigit() else 1 << 30, gateway_id)
