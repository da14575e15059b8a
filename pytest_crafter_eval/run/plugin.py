"""Stage: run (plugin). The pytest hooks only: options, collection, result gathering, summary.

Collection and the items are in `items`, the settings in `settings`. Results: once an
item's outcome is settled (setup for skips and errors, call otherwise) the process that
ran it appends its record (`results`) to `<report-dir>/results.jsonl` and puts it in
`user_properties` under RESULT_KEY, so the item's teardown report carries it to the
controller, under xdist too. The controller gathers the records (`add_record`), then once
at the end checks the gates and writes the reports (`report`), and fails the run on a
failed gate.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
from pathlib import Path
from typing import Any, cast

import pytest

from ..config import spec
from ..report import results
from . import decisions
from .items import (
    COMPARED_KEY,
    CREATED_KEY,
    EPISODE_ID,
    PAYLOAD_ID,
    EpisodeItem,
    EvalFile,
    PayloadItem,
)
from .settings import (
    CONNECTIONS,
    EXPECTED,
    INI_ALIASES,
    NOTE,
    OWN_RUN_DIR,
    RECORDS,
    ROTATED,
    RUN_DIR,
    RUN_DIR_KEY,
    STOPPED,
    SUMMARY,
    UsageError,
    check_cassette_options,
    flag_of,
    freeze_gc,
    is_worker,
    limits,
    overrides,
    path_setting,
    prefetch_reports,
    report_dir,
    run_dir,
    setting,
    shard_setting,
    stop_of,
    tally_of,
)

GROUP = "crafter-eval"
_METAVARS = {
    "model": "NAME",
    "record": "DIR",
    "replay": "DIR",
    "profiles": "FILE",
    "concurrency": "N",
    "max_concurrency": "N",
}
RESULT_KEY = "crafter_episode"

# name -> (help, default); each option is also an ini key `crafter_<name>`.
_OPTIONS: dict[str, tuple[str, Any]] = {
    "model": ("model(s) to run instead of each eval file's list; repeat or comma-separate", None),
    "seeds": (
        "seeds instead of each file's: a count (10 = 0..9), a range 0-99 or a list 3,5,8",
        None,
    ),
    "steps": ("model calls per episode at most, instead of each file's", None),
    "base_url": (
        "OpenAI-compatible base URL for non-local models (default: $OPENAI_BASE_URL)",
        None,
    ),
    "api_key_env": ("environment variable that holds the API key", "OPENAI_API_KEY"),
    "api": (
        (
            "wire API for every model instead of its eval file's request.api and its "
            "profile's: chat or responses"
        ),
        None,
    ),
    "request_timeout": ("seconds before one model request times out", "60"),
    "record": ("write every model request/response pair to cassette files in DIR", None),
    "replay": (
        "answer every model from the cassette files in DIR, over loopback HTTP, no key needed",
        None,
    ),
    "profiles": (
        "YAML file of model profiles (profiles: name -> fields) overriding the built-in ones",
        None,
    ),
    "trace_dir": ("save each episode's frames (PNG) and steps (JSONL) under this directory", None),
    "max_retries": (
        (
            "retries of a failed model request (429, 408, 409, 5xx, timeouts, dropped "
            "connections) before the episode errors"
        ),
        "4",
    ),
    "step_deadline": (
        (
            "seconds one model call may take, retries and waits included "
            "(default: 300, or 2 x --request-timeout if longer)"
        ),
        None,
    ),
    "max_concurrency": (
        "requests in flight to one model at most, across all xdist workers (default: no cap)",
        None,
    ),
    "fail_on_error": (
        (
            "fail the run only if more than this share (0..1) of episodes error; "
            "default: any error fails it"
        ),
        None,
    ),
    "max_cost": (
        "stop starting episodes once the run's estimated cost reaches this many USD",
        None,
    ),
    "max_tokens": ("stop starting episodes once the run has used this many tokens", None),
    "concurrency": (
        "episodes in flight at once in each process (with -n N: N times as many)",
        "1",
    ),
    "shard": (
        (
            "run only the K-th of N disjoint parts of the episodes (1-based, like 2/4); "
            "merge the parts' reports with `crafter-eval report`"
        ),
        None,
    ),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "crafter-eval: Crafter episodes as tests")
    for name, (help_text, default) in _OPTIONS.items():
        flags = [flag_of(name)]
        if flags[0] != "--" + name.replace("_", "-"):  # the old name, kept as an alias
            flags.append("--" + name.replace("_", "-"))
        if default is not None and "(default" not in help_text:
            help_text = f"{help_text} (default: {default})"
        metavar = _METAVARS.get(name, name.upper())
        if name == "model":
            group.addoption(
                *flags, action="append", dest="crafter_model", metavar=metavar, help=help_text
            )
        else:
            group.addoption(*flags, dest=f"crafter_{name}", metavar=metavar, help=help_text)
        parser.addini(f"crafter_{name}", help_text, default=default)
        for alias in INI_ALIASES.get(name, ()):
            parser.addini(f"crafter_{alias}", f"the same as crafter_{name}", default=None)
    group.addoption(
        "--require-api-key",
        action="store_true",
        dest="crafter_require_api_key",
        help="fail, instead of skip, episodes of models whose API key is missing",
    )
    parser.addini("crafter_require_api_key", "see --require-api-key", type="bool", default=False)
    group.addoption(
        "--report-dir",
        dest="crafter_report_dir",
        metavar="DIR",
        help="where results.jsonl, summary.json and summary.md go (default: reports)",
    )
    parser.addini(
        "crafter_report_dir", "see --report-dir (relative to the ini file)", default="reports"
    )
    group.addoption(
        "--resume",
        action="store_true",
        dest="crafter_resume",
        help="reuse episodes recorded in <report-dir>/results.jsonl with a final "
        "outcome (passed, failed, xfailed) and the same settings",
    )
    parser.addini("crafter_resume", "see --resume", type="bool", default=False)
    group.addoption(
        "--until-decided",
        action="store_true",
        dest="crafter_until_decided",
        help="judge every gate again after each round of 10 seeds (confidence sequences) "
        "and skip a model's remaining episodes once its gate is decided",
    )
    parser.addini("crafter_until_decided", "see --until-decided", type="bool", default=False)
    group.addoption(
        "--baseline",
        dest="crafter_baseline",
        metavar="PATH",
        help="the report directory (or results.jsonl) every regression gate "
        "(gate: regression:) compares with; sets or overrides the eval files' baseline",
    )
    group.addoption(
        "--progress",
        nargs="?",
        const="5",
        dest="crafter_progress",
        metavar="SECONDS",
        help="print a progress line (episodes, calls, tokens, cost, ETA) every SECONDS "
        "(default 5) even when the output is not a terminal; -q turns it off",
    )
    parser.addini("crafter_progress", "see --progress: seconds between lines", default=None)
    parser.addini(
        "crafter_eval_dirs",
        "directory names whose YAML files are eval files",
        type="args",
        default=["evals"],
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "crafter: a Crafter episode collected from an eval file")
    config.addinivalue_line(
        "markers", "crafter_payload: an offline snapshot of a model's first request"
    )
    limits(config)
    shard_setting(config)
    if (
        setting(config, "trace_dir")
        and path_setting(config, "trace_dir").exists()
        and not path_setting(config, "trace_dir").is_dir()
    ):
        raise UsageError(f"--trace-dir: {path_setting(config, 'trace_dir')} is not a directory")
    overrides(config)
    check_cassette_options(config)
    from ..wire import redact

    redact.add_secret(os.environ.get(setting(config, "api_key_env")))
    redact.add_url(setting(config, "base_url") or os.environ.get("OPENAI_BASE_URL"))
    redact.install_log_filter()
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and workerinput.get(RUN_DIR_KEY):
        config.stash[RUN_DIR] = Path(workerinput[RUN_DIR_KEY])
    else:
        from .runstate import make_run_dir

        config.stash[RUN_DIR] = make_run_dir()
        config.stash[OWN_RUN_DIR] = True
    if workerinput is None:
        config.pluginmanager.register(
            _ErrorRate(limits(config)["fail_on_error"]), "crafter-eval-error-rate"
        )
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(config), "crafter-eval-xdist")
    if not str(
        config.getoption("crafter_report_dir") or config.getini("crafter_report_dir")
    ).strip():
        raise UsageError("--report-dir: expected a directory, got an empty value")
    if not is_worker(config):
        config.stash[RECORDS] = {}
        config.pluginmanager.register(_Controller(config), "crafter-eval-controller")
        config.pluginmanager.register(_SnapshotGuard(config), "crafter-eval-snapshots")
    tally_of(config)
    every = _progress_every(config)
    if every is not None and not is_worker(config):
        from . import runstate
        from .progress import Progress

        config.pluginmanager.register(
            Progress(
                config,
                every,
                records=lambda: list(config.stash.get(RECORDS, {}).values()),
                counts=lambda: runstate.tallies(run_dir(config)),
            ),
            "crafter-eval-progress",
        )
    if limits(config)["concurrency"] > 1:
        from .scheduling import InflightHooks

        hooks = InflightHooks(config, limits(config)["concurrency"], record_unreported)
        config.pluginmanager.register(hooks, "crafter-eval-inflight")


def _progress_every(config: pytest.Config) -> float | None:
    """Seconds between progress lines, or None for none: on when asked (--progress) or
    when the output is a terminal; never with -q or --collect-only."""
    if config.option.verbose < 0 or config.option.collectonly:
        return None
    raw = setting(config, "progress")
    if raw in (None, ""):
        import sys

        return 5.0 if sys.stdout.isatty() else None
    try:
        every = float(str(raw))
        if not 0.1 <= every <= 3600:
            raise ValueError
    except ValueError:
        raise UsageError(f"--progress: expected seconds from 0.1 to 3600, got {raw!r}") from None
    return every


class _XdistHooks:
    """Hooks that exist only with pytest-xdist (registered when it is loaded)."""

    def __init__(self, config: pytest.Config):
        self.config = config

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        """Hand the controller's run directory to each worker."""
        node.workerinput[RUN_DIR_KEY] = str(node.config.stash[RUN_DIR])

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log):
        """With --episodes-per-process, each worker must know its items in advance to play them
        ahead: `scheduling.StaticScheduling` sends each its whole share at once."""
        if limits(config)["concurrency"] <= 1:
            return None
        if config.getvalue("dist") not in ("load", "worksteal"):
            # a line of the run's own, not a Python warning: none of the plugin's code or
            # the eval files is at fault, so there is no line to point at
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(
                    f"crafter-eval: warning: {flag_of('concurrency')} needs --dist load (the "
                    f"default of -n); with --dist {config.getvalue('dist')} each worker plays "
                    "one episode at a time",
                    yellow=True,
                )
            return None
        from .scheduling import StaticScheduling

        return StaticScheduling(config, log, self.config.stash[RUN_DIR])

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report, sched) -> None:
        """A worker died mid-episode (killed, out of memory): report that episode as an
        error, not a failure, saying so. The run goes on with a new worker."""
        match = EPISODE_ID.search(crashitem)
        if match is None:
            return
        worker = getattr(getattr(getattr(report, "node", None), "gateway", None), "id", "?")
        message = (
            f"{match['model']} seed {match['seed']}: the xdist worker {worker} running this "
            "episode died (killed or crashed); its result is lost: rerun it "
            "(--resume re-runs only missing episodes)"
        )
        report.when = "setup"
        report.longrepr = message
        report.location = (report.location[0], None, crashitem.split("::", 1)[1])
        record = _crash_record(self.config, crashitem, match["model"], int(match["seed"]), message)
        report.user_properties = [(RESULT_KEY, record)]


class _Controller:
    """Controller-only hooks: hand workers the report directory, gather the records."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.failures = 0

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        node.workerinput["crafter_report_dir"] = str(report_dir(self.config))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == RESULT_KEY:
                add_record(self.config, cast("dict[str, Any]", value))
        if report.failed:  # -x and --maxfail stop every xdist worker, as xdist counts
            self.failures += 1
            maxfail = self.config.getoption("maxfail", 0) or 0
            if maxfail and self.failures >= maxfail:
                stop_of(self.config).request(f"stopping after {self.failures} failures")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The episodes selected to run (without xdist: the workers report theirs)."""
        selected = {item.nodeid for item in session.items if isinstance(item, EpisodeItem)}
        self.config.stash.setdefault(EXPECTED, set()).update(selected)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids: list[str]) -> None:
        selected = {nodeid for nodeid in ids if EPISODE_ID.search(nodeid)}
        self.config.stash.setdefault(EXPECTED, set()).update(selected)
        if selected:
            freeze_gc()
            prefetch_reports()  # the controller waits idle from here

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        """-x, --maxfail (pytest's and xdist's `Interrupted`, with the reason) or Ctrl-C."""
        reason = str(excinfo.value).strip()
        if type(excinfo.value) is KeyboardInterrupt or not reason:
            reason = "interrupted (Ctrl-C)"
        self.config.stash[STOPPED] = reason


class _SnapshotGuard:
    """Controller-only: payload snapshots of items that did not run are never deleted.

    syrupy calls a snapshot unused when no test asserted it, and `--snapshot-update`
    deletes unused ones. It handles deselected items (-k, -m, --lf, --shard, --model), but
    an item selected and not run (--collect-only; -x, --maxfail or Ctrl-C stopping the run
    first; a failure before its comparison) looks like a test whose snapshot is gone, and
    `pytest evals/ --collect-only --snapshot-update` deleted every payload snapshot. So
    once the run loop ends, unless every selected payload item compared its requests,
    syrupy's unused-snapshot detection is turned off for the run (its public option
    --snapshot-disable-unused), before syrupy looks at it. Also reports the snapshots that
    payload items wrote because they were missing (`items.in_ci`)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.selected: set[str] = set()
        self.compared: set[str] = set()
        self.created: dict[str, set[str]] = {}  # .ambr file -> snapshot names written
        self.note: str | None = None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.selected.update(item.nodeid for item in session.items if isinstance(item, PayloadItem))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids: list[str]) -> None:
        self.selected.update(nodeid for nodeid in ids if PAYLOAD_ID.search(nodeid))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "setup" and report.skipped:
            self.compared.add(report.nodeid)  # syrupy keeps a skipped item's snapshots
        for name, value in report.user_properties:
            if name == COMPARED_KEY:
                self.compared.add(report.nodeid)
            elif name == CREATED_KEY:
                path, snapshot = cast("list[str]", value)
                self.created.setdefault(path, set()).add(snapshot)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session):
        try:
            return (yield)
        finally:  # before pytest_sessionfinish, where syrupy deletes unused snapshots
            self._guard()

    def _guard(self) -> None:
        option = self.config.option
        if not hasattr(option, "disable_unused_snapshots"):
            return  # syrupy is not loaded
        not_run = self.selected - self.compared
        if option.collectonly:
            why = "--collect-only runs no payload item"
        elif not_run:
            why = f"{len(not_run)} selected payload item(s) did not compare their requests"
        else:
            return
        option.disable_unused_snapshots = True
        if not self.selected:
            return  # no payload item in this run: nothing of ours to explain
        self.note = (
            f"{why}: no snapshot is reported unused or deleted in this run (a run of every "
            "payload item does that)"
        )

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.note:
            terminalreporter.write_line(f"crafter-eval: {self.note}", yellow=True)
        if self.created:
            count = sum(len(names) for names in self.created.values())
            where = "; ".join(
                f"{path}: {', '.join(sorted(names))}"
                for path, names in sorted(self.created.items())
            )
            terminalreporter.write_line(
                f"crafter-eval: {count} payload snapshot(s) created (missing, and CI is not "
                f"set): {where}; commit them",
                yellow=True,
            )


def add_record(config: pytest.Config, record: dict) -> None:
    """Count `record` in this run's reports (controller only), once per episode: the
    call and teardown reports carry the same record."""
    key = (
        record.get("nodeid")
        or f"{record.get('eval')}::{record.get('model')}[seed={record.get('seed')}]"
    )
    records = config.stash.setdefault(RECORDS, {})
    if record.get("crashed") and key in records:
        return  # the episode ended, and reported, before its worker died
    records[key] = record


def _crash_record(config: pytest.Config, nodeid: str, model: str, seed: int, message: str) -> dict:
    """The error record of an episode whose worker died, appended to results.jsonl by the
    controller (so --resume runs it again)."""
    from ..agent.episode import EpisodeResult

    path = nodeid.split("::")[0]
    try:
        eval_name = spec.load(config.rootpath / path).name
    except spec.SpecError:
        eval_name = Path(path).stem
    result = EpisodeResult(
        eval=eval_name, model=model, seed=seed, end="error", error=message, infra_error=True
    )
    record = results.make_record(
        result, outcome="error", message=message, nodeid=nodeid, path=path, fingerprint=""
    )
    record["crashed"] = True
    with contextlib.suppress(OSError):  # the report still carries it
        results.append(report_dir(config), record)
    return record


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if not is_worker(config) and not config.option.collectonly:
        config.stash[ROTATED] = results.start(
            report_dir(config), resume=bool(setting(config, "resume"))
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if isinstance(item, EpisodeItem):
        outcome = _final_outcome(report)
        if outcome is not None:
            record = item.record(outcome, _message(call, report))
            decisions.note(run_dir(item.config), item.run, record)
            # On this report and the ones after it (teardown, which junitxml writes out).
            item.user_properties.append((RESULT_KEY, record))
            report.user_properties.append((RESULT_KEY, record))
            _write_result(item, record)
    return report


def _write_result(item: EpisodeItem, record: dict) -> None:
    """Append `record` to results.jsonl, unless --resume reused an earlier record that
    says the same; then mark the item written."""
    prior = item.resumed_from
    if (prior is None or prior.get("outcome") != record["outcome"]) and not item.repeats(record):
        results.append(report_dir(item.config), record)
    item.written = True


def record_unreported(item: EpisodeItem) -> None:
    """Make sure a played episode is recorded, though the run stopped (Ctrl-C, -x) before
    pytest reported it, or while it did: judged as `runtest` would, in results.jsonl,
    and in this run's reports when this process is the controller."""
    made = [v for name, v in item.user_properties if name == RESULT_KEY and isinstance(v, dict)]
    if made:
        record = made[-1]  # reported, perhaps stopped before the controller counted it
    else:
        record = item.record(*item.verdict())
        decisions.note(run_dir(item.config), item.run, record)
    if not item.written:  # Ctrl-C came before (or while) its report wrote it
        _write_result(item, record)
    if not is_worker(item.config):
        add_record(item.config, record)


def _final_outcome(report: pytest.TestReport) -> str | None:
    """The episode's outcome, on the report that settles it; None on the others."""
    if report.when == "setup" and not report.passed:
        if hasattr(report, "wasxfail"):
            return "xfailed"
        return "skipped" if report.skipped else "error"
    if report.when == "call":
        if report.skipped:
            return "xfailed" if hasattr(report, "wasxfail") else "skipped"
        return "failed" if report.failed else "passed"
    return None


def _message(call: pytest.CallInfo, report: pytest.TestReport) -> str | None:
    if report.passed:
        return None
    if getattr(report, "wasxfail", None):
        return report.wasxfail
    if call.excinfo is not None:
        msg = getattr(call.excinfo.value, "msg", None)
        return str(msg) if msg else call.excinfo.exconly()
    return report.longreprtext or None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if is_worker(config):
        return
    recorded = config.stash.get(RECORDS, {})
    records = list(recorded.values())
    unplayed = _unplayed(config, set(recorded))
    played = any(results.played(r) for r in records)
    if not played:  # only a run that plays an episode replaces the results and reports
        if config.stash.get(ROTATED, False):
            results.unstart(report_dir(config))
        if records or unplayed:
            config.stash[NOTE] = (
                "no episode played: results.jsonl and the reports are left as they were"
            )
        if not records:
            return
    from ..report import files
    from ..report import summary as report

    stopped = (  # -x and --maxfail set shouldfail; xdist's stop, and Ctrl-C, interrupt
        config.stash.get(STOPPED, None)
        or str(session.shouldfail or session.shouldstop or "")
        or "not run"
    )
    from ..report.merge import baselines

    runs = _runs(config, records + unplayed)
    summary = report.summarize(
        records,
        runs,
        unplayed=unplayed,
        incomplete_reason=stopped if unplayed else None,
        baselines=baselines(runs, config.getoption("crafter_baseline"), config.rootpath),
    )
    if played:
        files.write_reports(report_dir(config), records, summary)
    config.stash[SUMMARY] = summary
    if summary["failed_gates"] and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _unplayed(config: pytest.Config, recorded: set[str]) -> list[dict[str, Any]]:
    """The episodes selected to run that have no record: {nodeid, path, eval, model,
    seed} each, in node id order."""
    names: dict[str, str] = {}
    out = []
    for nodeid in sorted(config.stash.get(EXPECTED, set()) - recorded):
        match = EPISODE_ID.search(nodeid)
        if match is None:
            continue
        path = nodeid.split("::")[0]
        if path not in names:
            try:
                names[path] = spec.load(config.rootpath / path).name
            except (spec.SpecError, OSError):
                names[path] = Path(path).stem
        out.append(
            {
                "nodeid": nodeid,
                "path": path,
                "eval": names[path],
                "model": match["model"],
                "seed": int(match["seed"]),
            }
        )
    return out


def _runs(config: pytest.Config, records: list[dict]) -> dict[tuple[str, str], spec.Run]:
    """(eval, model) -> Run, from the eval files the records came from, read again: under
    xdist the controller collects nothing itself (`merge.gate_runs`, as `crafter-eval
    report` does; a file that no longer loads had its collection error reported)."""
    from ..report.merge import gate_runs

    runs = gate_runs(config.rootpath, records)[0]
    if setting(config, "until_decided"):
        runs = {key: spec.until_decided_run(run) for key, run in runs.items()}
    return runs


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    passed_over = _passed_over_line(config)
    if passed_over and not is_worker(config):
        terminalreporter.write_line(f"crafter-eval: {passed_over}", yellow=True)
    summary = config.stash.get(SUMMARY, None)
    note = config.stash.get(NOTE, None)
    if summary is None:
        if note:
            terminalreporter.write_sep("-", f"crafter-eval: {note}", yellow=True)
        return
    from ..report import summary as report

    tr = terminalreporter
    tr.write_sep("=", "crafter-eval summary")
    incomplete = report.incomplete_line(summary)
    if incomplete:
        tr.write_line(f"crafter-eval: {incomplete}", red=True, bold=True)
    for line in report.terminal_lines(summary):
        tr.write_line(line)
    gate_lines = report.gate_failure_lines(summary)
    failed = len(summary["failed_gates"])
    if gate_lines:
        title = (
            f"crafter-eval gates failed for {failed} model(s)" if failed else "crafter-eval gates"
        )
        tr.write_sep("=", title, red=bool(failed), bold=True)
        tr.write_line(report.GATE_TABLE_NOTE)
        for line in gate_lines:
            tr.write_line(line)
    tr.write_line(f"crafter-eval: {note}" if note else f"reports: {report_dir(config)}")
    if failed:
        _count_in_last_line(tr, failed)


def _count_in_last_line(terminalreporter, failed: int) -> None:
    """Put the failed gates in pytest's last line ("3 passed, 1 gate failed in 2.1s"), which
    is then yellow, not green: the tests passed but the run fails. Each entry of `stats`
    counts once in that line; its main color is set from the keys it has seen."""
    key = "gate failed" if failed == 1 else "gates failed"
    terminalreporter.stats.setdefault(key, []).extend(_GateFailed() for _ in range(failed))
    recolor = getattr(terminalreporter, "_set_main_color", None)  # pytest private, cached
    if recolor is not None:
        recolor()


class _GateFailed:
    """A failed gate's entry in the terminal reporter's stats (counted in the last line)."""

    count_towards_summary = True


def pytest_unconfigure(config: pytest.Config) -> None:
    connections = config.stash.get(CONNECTIONS, None)
    if connections is not None:
        connections.close()
    if config.stash.get(OWN_RUN_DIR, False):
        from .runstate import remove_run_dir

        remove_run_dir(config.stash[RUN_DIR])


class _ErrorRate:
    """--fail-on-error RATE, in the controller (or the only process): tallies episode
    outcomes; at the end, errors at or below RATE of the episodes run do not fail the
    run, and above it they do."""

    def __init__(self, rate: float | None):
        self.rate = rate
        self.ran: set[str] = set()
        self.errors: set[str] = set()
        self.note: str | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not EPISODE_ID.search(report.nodeid):
            return
        if report.when == "setup" and report.failed:
            self.errors.add(report.nodeid)
            self.ran.add(report.nodeid)
        elif report.when == "call":
            self.ran.add(report.nodeid)

    @pytest.hookimpl(trylast=True)  # after syrupy, which ORs the old exit status back in
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.rate is None or not self.errors:
            return
        errors, ran = len(self.errors), len(self.ran)
        share = errors / ran
        if share > self.rate:
            self.note = (
                f"{errors} of {ran} episodes errored ({share:.0%}), above "
                f"--fail-on-error {self.rate:g}: the run fails"
            )
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        else:
            self.note = (
                f"{errors} of {ran} episodes errored ({share:.0%}), within "
                f"--fail-on-error {self.rate:g}: errors alone do not fail the run"
            )
            gates_failed = session.config.stash.get(SUMMARY, {}).get("failed_gates")
            if (
                session.exitstatus == pytest.ExitCode.TESTS_FAILED
                and session.testsfailed == errors
                and not gates_failed
            ):
                session.exitstatus = pytest.ExitCode.OK

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.note:
            terminalreporter.write_sep("-", f"crafter-eval: {self.note}")
        config = terminalreporter.config
        if limits(config)["max_cost"] is not None:
            from .runstate import Usage

            unpriced = Usage(run_dir(config)).totals().unpriced_tokens
            if unpriced:
                terminalreporter.write_sep(
                    "-",
                    f"crafter-eval: {unpriced} tokens of models without "
                    "prices are not in --max-cost (add price: to their "
                    "profiles)",
                    yellow=True,
                )


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(isinstance(item, EpisodeItem) for item in session.items):
        freeze_gc()  # in every process that collected episodes: see freeze_gc


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix not in (".yaml", ".yml") or file_path.name.startswith(("_", ".")):
        return None
    dirs = parent.config.getini("crafter_eval_dirs")
    in_eval_dir = any(fnmatch.fnmatch(part, d) for part in file_path.parent.parts for d in dirs)
    if "__snapshots__" in file_path.parts:
        return None
    if not (in_eval_dir or parent.session.isinitpath(file_path)):
        if _looks_like_eval(file_path):
            parent.config.stash.setdefault(PASSED_OVER, []).append(file_path)
        return None
    return EvalFile.from_parent(parent, path=file_path)


PASSED_OVER = pytest.StashKey[list[Path]]()  # YAML files with `models:` not collected


def _looks_like_eval(path: Path) -> bool:
    """A YAML file with a top-level `models:` key: an eval file, by the look of it."""
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            head = file.read(20_000)
    except OSError:
        return False
    return any(line.startswith("models:") for line in head.splitlines())


def _passed_over_line(config: pytest.Config) -> str | None:
    """Why YAML files that look like eval files were not collected, and how to collect
    them (a first run in a directory not named evals collects nothing)."""
    files = config.stash.get(PASSED_OVER, [])
    if not files:
        return None
    shown = ", ".join(_rel(config, f) for f in files[:3])
    more = f" and {len(files) - 3} more" if len(files) > 3 else ""
    dirs = " ".join(config.getini("crafter_eval_dirs"))
    return (
        f"not collected: {shown}{more}: YAML files are eval files only in a directory named "
        f"like {dirs} (ini crafter_eval_dirs); name the file (pytest {_rel(config, files[0])}) "
        "or add its directory's name to crafter_eval_dirs"
    )


def _rel(config: pytest.Config, path: Path) -> str:
    try:
        return path.relative_to(config.invocation_params.dir).as_posix()
    except ValueError:
        return str(path)


@pytest.hookimpl(trylast=True)  # after syrupy has seen every collected item
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the payload items of models that --model leaves out, and with --shard K/N
    the episodes of the other shards (payload items and other tests run in shard 1)."""
    dropped = [item for item in items if getattr(item, "deselect", False)]
    if dropped:
        items[:] = [item for item in items if not getattr(item, "deselect", False)]
        config.hook.pytest_deselected(items=dropped)
    chosen = shard_setting(config)
    if chosen is None:
        return
    from . import shard

    episodes = [item for item in items if isinstance(item, EpisodeItem)]
    parts = shard.assign(
        [(item.nodeid.split("::")[0], item.run.model, item.seed) for item in episodes],
        chosen.count,
    )
    others = {id(item) for item, part in zip(episodes, parts) if part != chosen.index}
    if chosen.index != 1:
        others |= {id(item) for item in items if not isinstance(item, EpisodeItem)}
    if others:
        config.hook.pytest_deselected(items=[item for item in items if id(item) in others])
        items[:] = [item for item in items if id(item) not in others]
