"""--concurrency: episodes in flight per process (inflight.Pool), with and without xdist,
through real pytest runs and the loopback server; results identical to one at a time;
Ctrl-C stops promptly and records every finished episode."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from pytest_crafter_eval.run import inflight, runstate

EVAL = """\
models:
  - local/heuristic:
      expect: {min_achievements: 0}
  - local/random?latency_ms=20:
      expect: {min_achievements: 0}
  - local/silent: {xfail: "answers in text"}
seeds: 0-5
steps: 4
"""

TIMINGS = ("finished_at", "duration_s", "latencies_s", "latency_p50_s", "latency_p95_s")


def _results(path):
    out = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        for key in TIMINGS:
            record.pop(key)
        out[record["nodeid"]] = record
    return out


def test_pool_runs_jobs_in_order_and_stop_cancels_the_rest():
    pool = inflight.Pool(2)
    release = threading.Event()
    started = []

    def job(n):
        def run():
            started.append(n)
            pool.check_stop()  # what the Checked client does before each model call
            with pool.waiting():  # and it waits for the model without the turn
                release.wait(10)
            return n

        return run

    for n in range(6):
        pool.submit(n, job(n))
    time.sleep(0.1)
    assert sorted(started) == [0, 1]  # two threads, first submitted first started
    release.set()
    assert pool.claim(0).result(timeout=5) == 0
    pool.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("crafter-episode")]
    assert pool.claim(99) is None
    finished = pool.finished()  # the ones that ran to the end, not the cancelled ones
    assert 0 in finished and 1 in finished and set(finished) <= set(range(6))
    pool.submit(7, job(7))  # nothing starts once stopping
    assert 7 not in pool


def test_checked_client_raises_cancelled_once_stopping():
    pool = inflight.Pool(1)

    class Client:
        def complete(self, body):
            return body

    client = inflight.Checked(Client(), pool.check_stop)
    assert client.complete({"a": 1}) == {"a": 1}
    pool.stop()
    with pytest.raises(inflight.Cancelled):
        client.complete({"a": 1})


def test_episodes_take_turns_computing_and_compute_while_others_wait():
    pool = inflight.Pool(3)
    computing: list[int] = []  # the jobs computing now
    overlaps = []
    waited = threading.Barrier(3, timeout=10)  # every job waits on its model at once

    def job(n):
        def run():
            for step in range(3):
                computing.append(n)
                if len(computing) > 1:
                    overlaps.append((step, list(computing)))
                time.sleep(0.01)  # a step's CPU, as far as the other threads can tell
                computing.remove(n)
                with pool.waiting():  # the model call
                    if step == 0:
                        waited.wait()  # only possible if waiting gives up the turn
                    time.sleep(0.005)
            if n == 1:
                raise ValueError("an episode that fails gives its turn back")
            return n

        return run

    for n in range(3):
        pool.submit(n, job(n))
    assert pool.claim(0).result(timeout=10) == 0
    with pytest.raises(ValueError):
        pool.claim(1).result(timeout=10)
    assert pool.claim(2).result(timeout=10) == 2
    assert overlaps == []  # never two computing at once
    assert not pool.turn.locked()
    pool.stop()


def test_checked_client_waits_for_the_answer_without_the_turn():
    pool = inflight.Pool(1)
    held = []

    class Client:
        def complete(self, body):
            held.append(pool.turn.locked())
            if body == "fail":
                raise inflight.Cancelled("the run is stopping")
            return body

    def job():
        client = inflight.Checked(Client(), pool.check_stop, pool.waiting)
        held.append(pool.turn.locked())
        assert client.complete("a") == "a"
        with pytest.raises(inflight.Cancelled):
            client.complete("fail")
        held.append(pool.turn.locked())  # back, after an answer and after an error

    pool.submit("j", job)
    pool.claim("j").result(timeout=10)
    assert held == [True, False, False, True]
    pool.stop()


@pytest.mark.slow
def test_xdist_with_concurrency_gives_the_results_of_one_at_a_time(pytester):
    pytester.makefile(".yaml", **{"evals/few": EVAL})
    base = ("-p", "no:cacheprovider", "-m", "not crafter_payload", "evals", "-n", "2")
    one = pytester.runpytest_subprocess(*base, "--report-dir", "one", "--trace-dir", "t1")
    one.assert_outcomes(passed=12, xfailed=6)
    many = pytester.runpytest_subprocess(
        *base, "--concurrency", "8", "--report-dir", "many", "--trace-dir", "t8"
    )
    many.assert_outcomes(passed=12, xfailed=6)
    a, b = (
        _results(pytester.path / "one" / "results.jsonl"),
        _results(pytester.path / "many" / "results.jsonl"),
    )
    assert len(a) == 18 and a == b
    gifs = sorted(
        p.relative_to(pytester.path / "one") for p in (pytester.path / "one").rglob("*.gif")
    )
    assert len(gifs) == 18
    for gif in gifs:
        assert (pytester.path / "one" / gif).read_bytes() == (
            pytester.path / "many" / gif
        ).read_bytes()
    for steps in (pytester.path / "t1").rglob("steps.jsonl"):
        other = pytester.path / "t8" / steps.relative_to(pytester.path / "t1")
        assert len(other.read_text().splitlines()) == len(steps.read_text().splitlines())
    # --resume with concurrency (and without xdist) plays nothing again
    again = pytester.runpytest_subprocess(
        *base[:-2], "--concurrency", "8", "--report-dir", "many", "--resume"
    )
    again.assert_outcomes(passed=12, xfailed=6)
    assert len((pytester.path / "many" / "results.jsonl").read_text().splitlines()) == 18


SLOW = """\
models:
  - local/random?latency_ms=150:
      expect: {min_achievements: 0}
seeds: 0-63
steps: 12
"""


def test_ctrl_c_stops_promptly_and_records_every_finished_episode(pytester):
    pytester.makefile(".yaml", **{"evals/slow": SLOW})
    results = pytester.path / "reports" / "results.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", "not crafter_payload"]
        + ["evals", "--concurrency", "16", "--trace-dir", "traces", "-q"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while not (results.exists() and results.read_text().count("\n") >= 3):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        interrupted = time.monotonic()
        out, _ = proc.communicate(timeout=60)
        stopped_in = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = out.decode()
    assert proc.returncode == 2, text  # pytest's "interrupted"
    assert "KeyboardInterrupt" in text
    assert stopped_in < 10, (stopped_in, text)  # a model call takes 0.15 s
    recorded = {json.loads(line)["seed"] for line in results.read_text().splitlines()}
    complete = {
        int(steps.parent.name.split("-")[1])
        for steps in (pytester.path / "traces").rglob("steps.jsonl")
        if len(steps.read_text().splitlines()) == 12
    }
    assert complete and complete <= recorded  # every episode that finished is recorded
    assert len(recorded) < 64  # and the run did stop
    for line in results.read_text().splitlines():
        record = json.loads(line)  # only finished ones: all 12 calls, or the game ended
        assert record["steps"] == 12 or record["end"] == "done", record
    summary = json.loads((pytester.path / "reports" / "summary.json").read_text())
    assert summary["episodes"] == len(recorded)


STOPS = """\
models:
  - local/silent
  - local/random?latency_ms=100:
      expect: {min_achievements: 0}
seeds: 0-7
steps: 6
"""


def test_x_stops_at_the_first_failure_and_records_what_finished(pytester):
    pytester.makefile(".yaml", **{"evals/stops": STOPS})
    done = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-m", "not crafter_payload", "evals", "-x", "--concurrency", "4"
    )
    assert done.ret == 1
    done.assert_outcomes(failed=1)  # local/silent seed 0, then the run stopped
    lines = (pytester.path / "reports" / "results.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0]["model"] == "local/silent" and records[0]["outcome"] == "failed"
    assert len(records) < 16  # the episodes not started were not played
    for record in records:  # those that finished before the stop are recorded, judged
        assert record["steps"] == 6 or record["end"] in ("done", "no_tool_call"), record


def _servers():
    return [t for t in threading.enumerate() if t.name.startswith("LocalServer:")]


def test_connections_are_made_once_though_episodes_ask_at_once():
    """8 episodes in flight ask for their model's client at once: one loopback server
    and one SDK client for them all (it was 2-3 servers and 8 clients, each server
    loading the whole cassette with --replay), and close() closes all of it."""
    from pytest_crafter_eval.wire.client import Connections

    before = len(_servers())
    connections = Connections()
    start = threading.Barrier(8)
    clients = []

    def ask():
        start.wait()
        clients.append(connections.for_model("local/random"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(_servers()) == before + 1
    assert len({id(c._sdk) for c in clients}) == 1
    body = {"model": "local/random", "messages": [{"role": "user", "content": "x"}]}
    assert all(c.complete(body).body["choices"] for c in clients)
    connections.close()
    assert len(_servers()) == before


def test_slot_waits_are_first_come_first_served_without_busy_polling(tmp_path):
    """One slot held; 32 threads line up for it, one after the other: they get it in the
    order they came, and waiting costs almost no CPU (it was 0.48 s of CPU in 3 s,
    polling every 5 ms)."""
    slots = runstate.Slots(tmp_path, "m", 1)
    holder = slots(1)
    holder.__enter__()
    order, threads = [], []
    waited_cpu = []  # each thread's own CPU from its first check to its slot
    for i in range(32):
        queued = threading.Event()  # set by the first check: the thread is in line

        def wait(i=i, queued=queued):
            started = []

            def check():
                if not started:
                    started.append(time.thread_time())
                    queued.set()

            with slots(30, check):
                waited_cpu.append(time.thread_time() - started[0])
                order.append(i)

        threads.append(threading.Thread(target=wait))
        threads[-1].start()
        assert queued.wait(10)
    time.sleep(1.0)  # all 32 wait
    holder.__exit__(None, None, None)
    for t in threads:
        t.join(30)
    assert order == list(range(32))
    # the waiting threads' own CPU (not the process's: other tests' threads may run in
    # this xdist worker); polling every 5 ms cost about 0.16 s a second
    assert sum(waited_cpu) < 0.08, sum(waited_cpu)


def test_a_slot_wait_ends_at_the_step_deadline_and_a_stop_sends_nothing(server, sdk, tmp_path):
    """--max-concurrency 1 with the slot taken: a call waits for it no longer than its
    step deadline; and on a stop, the calls waiting for it send nothing (each used to send
    one full request after the stop)."""
    from pytest_crafter_eval.wire.client import ModelCallError, ModelClient, RetryPolicy

    slots = runstate.Slots(tmp_path, "local/random", 1)
    stop = threading.Event()

    def check():
        if stop.is_set():
            raise inflight.Cancelled("the run is stopping")

    def client(deadline):
        return ModelClient(
            sdk,
            model="local/random",
            policy=RetryPolicy(deadline_s=deadline),
            slot=slots,
            check=check,
        )

    body = {"model": "local/random", "messages": [{"role": "user", "content": "wait"}]}
    holder = slots(1)
    holder.__enter__()
    before = len(server.log)
    with pytest.raises(ModelCallError, match=r"no request slot free .* step deadline"):
        client(0.3).complete(body)
    errors = []

    def call():
        try:
            client(60).complete(body)
        except Exception as exc:  # checked below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    stop.set()
    holder.__exit__(None, None, None)
    for t in threads:
        t.join(30)
    assert len(errors) == 5 and all(isinstance(e, inflight.Cancelled) for e in errors), errors
    assert len(server.log) == before  # nothing sent


def test_malloc_arenas_are_capped_on_glibc_and_left_alone_elsewhere():
    import platform

    from pytest_crafter_eval.run.scheduling import few_malloc_arenas

    assert few_malloc_arenas() == (platform.libc_ver()[0] == "glibc")


def test_a_pools_future_is_claimed_once():
    pool = inflight.Pool(1)
    pool.submit("a", lambda: 1)
    assert pool.claim("a").result(timeout=5) == 1
    assert pool.claim("a") is None  # a second setup (a rerun) plays the episode itself
    pool.stop()


def test_a_dead_workers_episodes_leave_the_in_flight_count(tmp_path):
    """A worker killed with two episodes in flight: the progress line no longer counts
    them (it showed 6 in flight where 4 was the most); its calls were made, and stay."""
    code = (
        "import os, signal, sys\n"
        "from pytest_crafter_eval.run import runstate\n"
        "t = runstate.Tally(sys.argv[1])\n"
        "t.started(); t.started(); t.reply(100, None)\n"
        "t._add(force=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], timeout=60)
    assert done.returncode == -signal.SIGKILL
    mine = runstate.Tally(tmp_path)
    mine.started()
    counts = runstate.tallies(tmp_path)
    assert counts["in_flight"] == 1 and counts["calls"] == 1 and counts["tokens"] == 100


def test_a_failure_to_record_does_not_replace_the_interrupt(pytester):
    """The run stops (Ctrl-C) and recording a finished episode fails: the interrupt is
    what propagates (the recording error replaced it), the others are still recorded, and
    the failure is a warning."""
    from pytest_crafter_eval.run.scheduling import InflightHooks
    from pytest_crafter_eval.run.settings import POOL

    config = pytester.parseconfigure("-p", "no:cacheprovider")
    recorded = []

    def finish(item):
        recorded.append(item)
        if item == "first":
            raise OSError("disk full")

    hooks = InflightHooks(config, 2, finish)
    loop = hooks.pytest_runtestloop(pytest.Session.from_config(config))
    next(loop)  # the pool is up
    pool = config.stash[POOL]
    for key in ("first", "second"):
        hooks.items[key] = key
        pool.submit(key, lambda: None)
        pool.claim(key).result(timeout=5)
    with (
        pytest.warns(UserWarning, match="first: its result could not be recorded: disk full"),
        pytest.raises(KeyboardInterrupt),
    ):
        loop.throw(KeyboardInterrupt())
    assert recorded == ["first", "second"]


def test_x_under_xdist_stops_every_worker(pytester):
    """-x with two xdist workers and 4 episodes in flight each: the first failure, in
    one worker, stops the other too, before its next item or model call (each worker had
    its whole share queued and the other played all 20 of its episodes)."""
    pytester.makefile(".yaml", **{"evals/a_fails": "models: [local/silent]\nseeds: 1\nsteps: 1\n"})
    pytester.makefile(
        ".yaml",
        **{
            "evals/b_slow": "models: ['local/random?latency_ms=150']\nseeds: 0-39\nsteps: 6\n"
            "expect: {min_achievements: 0}\n"
        },
    )
    done = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-m",
        "not crafter_payload",
        "evals",
        "-x",
        "-n",
        "2",
        "--episodes-per-process",
        "4",
    )
    assert done.ret == pytest.ExitCode.INTERRUPTED  # xdist stops so
    records = [
        json.loads(line)
        for line in (pytester.path / "reports" / "results.jsonl").read_text().splitlines()
    ]
    assert [r["model"] for r in records if r["outcome"] == "failed"] == ["local/silent"]
    played = [r for r in records if r["outcome"] == "passed"]
    assert len(played) <= 10, len(played)  # of 40: the other worker did not play its 20
    done.stdout.fnmatch_lines(["*stopping after 1 failures*"])


def test_a_stop_from_another_process_is_seen_within_its_freshness_window(tmp_path):
    """`Stop.reason()` is asked before every model call: "no stop" is kept for
    FRESH_S (50 ms), so another process's stop shows up that late at most, and a stop,
    once seen, is kept."""
    clock = [0.0]
    here = runstate.Stop(tmp_path, clock=lambda: clock[0])
    assert here.reason() is None
    runstate.Stop(tmp_path).request("stopping after 1 failures")  # the controller
    clock[0] += runstate.Stop.FRESH_S / 2
    assert here.reason() is None  # not read again yet
    clock[0] += runstate.Stop.FRESH_S / 2
    assert here.reason() == "stopping after 1 failures"
    (tmp_path / "stop").unlink()
    clock[0] += 10
    assert here.reason() == "stopping after 1 failures"  # for good
    own = runstate.Stop(tmp_path / "x", clock=lambda: clock[0])
    (tmp_path / "x").mkdir()
    assert own.reason() is None
    own.request("interrupted")
    assert own.reason() == "interrupted"  # its own stop at once


def test_a_background_import_imports_on_its_own_thread_and_fails_quietly(tmp_path, monkeypatch):
    from pytest_crafter_eval.run.settings import import_in_background

    (tmp_path / "crafter_eval_probe_import.py").write_text(
        "import threading\nNAME = threading.current_thread().name\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    raised = []
    monkeypatch.setattr(threading, "excepthook", raised.append)
    import_in_background("crafter_eval_probe_import").join(10)
    assert sys.modules.pop("crafter_eval_probe_import").NAME == "crafter-eval-import"
    # a module that fails to import fails quietly here (and loudly where it is needed)
    import_in_background("crafter_eval_no_such_module").join(10)
    assert raised == [] and "crafter_eval_no_such_module" not in sys.modules


def test_episodes_in_flight_wait_on_their_models_at_once(pytester):
    """The plugin's pool gives an episode's turn up while it waits on its model: 4
    episodes of 2 calls at 1 s take about 2 s in flight. Were the turn held through the
    call, they would take 8 s, one after another."""
    pytester.makefile(
        ".yaml",
        **{
            "evals/slow_model": (
                "models:\n"
                "  - local/random?latency_ms=1000:\n"
                "      expect: {min_achievements: 0}\n"
                "seeds: 0-3\nsteps: 2\n"
            )
        },
    )
    done = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-m", "not crafter_payload", "evals", "--concurrency", "4"
    )
    done.assert_outcomes(passed=4)
    last = done.stdout.lines[-1]  # "4 passed, 1 deselected in 2.80s"
    seconds = float(re.search(r" in ([\d.]+)s", last).group(1))
    assert seconds < 6, seconds


def test_a_ctrl_c_while_a_report_writes_results_jsonl_loses_no_record(pytester):
    """Ctrl-C lands while pytest reports the second episode, as results.jsonl is opened
    for its record (simulated at `os.open`, once): the record, made but not written, is
    written when the run stops, with every other finished episode's."""
    pytester.makefile(
        ".yaml",
        **{
            "evals/few": (
                "models:\n  - local/random:\n      expect: {min_achievements: 0}\n"
                "seeds: 0-3\nsteps: 2\n"
            )
        },
    )
    pytester.makeconftest(
        """
        import os, threading

        _open, opened = os.open, []

        def interrupted_open(path, *args, **kwargs):
            if str(path).endswith("results.jsonl") and threading.current_thread() is threading.main_thread():
                opened.append(path)
                if len(opened) == 2:  # the second episode's report
                    raise KeyboardInterrupt
            return _open(path, *args, **kwargs)

        os.open = interrupted_open
        """
    )
    done = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-m",
        "not crafter_payload",
        "evals",
        "--concurrency",
        "4",
        "--trace-dir",
        "traces",
    )
    assert done.ret == pytest.ExitCode.INTERRUPTED
    results = pytester.path / "reports" / "results.jsonl"
    seeds = [json.loads(line)["seed"] for line in results.read_text().splitlines()]
    finished = {
        int(steps.parent.name.split("-")[1])
        for steps in (pytester.path / "traces").rglob("steps.jsonl")
        if len(steps.read_text().splitlines()) == 2
    }
    assert {0, 1} <= finished == set(seeds)  # seed 1's too, though its report was cut
    assert len(seeds) == len(set(seeds))  # each once
