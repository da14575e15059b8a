"""Stage: plugin. The pytest hooks only: options, collection, running items, results.

Each eval YAML file becomes an `EvalFile`; each (model, seed) in it one `EpisodeItem`
with an id like `evals/smoke.yaml::local/heuristic[seed=3]`. An item plays its episode
in the setup phase, so that an infrastructure failure is reported as an error, and
judges it in the call phase, so that a missing capability is reported as a failure.
Each model the file names also gets one `PayloadItem`, `evals/smoke.yaml::payload[gpt-5-nano]`:
offline, it compares the first request body with a syrupy snapshot in evals/__snapshots__/.

Results: once an item's outcome is settled (setup for skips and errors, call otherwise)
the process that ran it appends its record (`results`) to `<report-dir>/results.jsonl`
and puts it in `user_properties` under RESULT_KEY, so the item's teardown report carries
it to the controller, under xdist too. The controller gathers the records
(`add_record`), then once at the end checks the gates and writes the reports (`report`),
and fails the run on a failed gate.
"""
from __future__ import annotations

import contextlib
import fnmatch
import functools
import os
import re
from pathlib import Path
from typing import Any

import pytest

from . import results, spec

GROUP = "crafter-eval"
RESULT_KEY = "crafter_episode"

# name -> (help, default); each option is also an ini key `crafter_<name>`.
_OPTIONS: dict[str, tuple[str, Any]] = {
    "model": ("model(s) to run instead of each eval file's list; repeat or comma-separate", None),
    "seeds": ("seeds instead of each file's: a count (10 = 0..9), a range 0-99 or a list 3,5,8", None),
    "steps": ("model calls per episode at most, instead of each file's", None),
    "base_url": ("OpenAI-compatible base URL for non-local models (default: $OPENAI_BASE_URL)", None),
    "api_key_env": ("environment variable that holds the API key", "OPENAI_API_KEY"),
    "request_timeout": ("seconds before one model request times out", "60"),
    "record": ("write every model request/response pair to cassette files in DIR", None),
    "replay": ("answer every model from the cassette files in DIR, over loopback HTTP, no key needed", None),
    "profiles": ("YAML file of model profiles (profiles: name -> fields) overriding the built-in ones", None),
    "trace_dir": ("save each episode's frames (PNG) and steps (JSONL) under this directory", None),
    "max_retries": ("retries of a failed model request (429, 408, 409, 5xx, timeouts, dropped "
                    "connections) before the episode errors", "4"),
    "step_deadline": ("seconds one model call may take, retries and waits included "
                      "(default: 300, or 2 x --request-timeout if longer)", None),
    "max_concurrency": ("requests in flight to one model at most, across all xdist workers", None),
    "fail_on_error": ("fail the run only if more than this share (0..1) of episodes error; "
                      "default: any error fails it", None),
    "max_cost": ("stop starting episodes once the run's estimated cost reaches this many USD", None),
    "max_tokens": ("stop starting episodes once the run has used this many tokens", None),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "crafter-eval: Crafter episodes as tests")
    for name, (help_text, default) in _OPTIONS.items():
        flag = "--" + name.replace("_", "-")
        metavar = name.upper()
        if name == "model":
            group.addoption(flag, action="append", dest="crafter_model", metavar="NAME", help=help_text)
        elif name in ("record", "replay"):
            group.addoption(flag, dest=f"crafter_{name}", metavar="DIR", help=help_text)
        elif name == "profiles":
            group.addoption(flag, dest=f"crafter_{name}", metavar="FILE", help=help_text)
        else:
            group.addoption(flag, dest=f"crafter_{name}", metavar=metavar, help=help_text)
        parser.addini(f"crafter_{name}", help_text, default=default)
    group.addoption("--require-api-key", action="store_true", dest="crafter_require_api_key",
                    help="fail, instead of skip, episodes of models whose API key is missing")
    parser.addini("crafter_require_api_key", "see --require-api-key", type="bool", default=False)
    group.addoption("--report-dir", dest="crafter_report_dir", metavar="DIR",
                    help="where results.jsonl, summary.json and summary.md go (default: reports)")
    parser.addini("crafter_report_dir", "see --report-dir (relative to the ini file)",
                  default="reports")
    group.addoption("--resume", action="store_true", dest="crafter_resume",
                    help="reuse episodes recorded in <report-dir>/results.jsonl with a final "
                         "outcome (passed, failed, xfailed) and the same settings")
    parser.addini("crafter_resume", "see --resume", type="bool", default=False)
    parser.addini("crafter_eval_dirs", "directory names whose YAML files are eval files",
                  type="args", default=["evals"])


def setting(config: pytest.Config, name: str) -> Any:
    """A setting from the command line, else from the ini file."""
    value = config.getoption(f"crafter_{name}")
    if value in (None, False, []):
        value = config.getini(f"crafter_{name}")
    return value


class UsageError(pytest.UsageError):
    pass


def _path_setting(config: pytest.Config, name: str) -> Path:
    """A directory setting: relative to the invocation directory when given on the
    command line, to the ini file's directory when set there."""
    value = config.getoption(f"crafter_{name}")
    if value:
        return Path(config.invocation_params.dir, value)
    base = config.inipath.parent if config.inipath else config.rootpath
    return Path(base, config.getini(f"crafter_{name}"))


def _overrides(config: pytest.Config) -> dict[str, Any]:
    """Command-line overrides of every eval file, checked once."""
    cached = config.stash.get(_OVERRIDES, None)
    if cached is not None:
        return cached
    models: list[str] | None = None
    raw_models = setting(config, "model")
    if raw_models:
        raw = raw_models if isinstance(raw_models, list) else [raw_models]
        models = [m.strip() for item in raw for m in str(item).split(",") if m.strip()]
        for m in models:
            spec.check_model_name(m, lambda msg: UsageError(f"--model: {msg}"))
        if len(set(models)) != len(models):
            raise UsageError(f"--model: a model is named twice: {', '.join(models)}")
    seeds = None
    if setting(config, "seeds"):
        try:
            seeds = spec.parse_seeds(str(setting(config, "seeds")))
        except ValueError as exc:
            raise UsageError(f"--seeds: {exc}") from None
    steps = None
    if setting(config, "steps"):
        raw = str(setting(config, "steps"))
        if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
            raise UsageError(f"--steps: expected a whole number from 1 to 10000, got {raw!r}")
        steps = int(raw)
    user_profiles = ()
    profiles_file = setting(config, "profiles")
    if profiles_file:
        path = Path(str(profiles_file))
        if not config.getoption("crafter_profiles") and not path.is_absolute():
            path = (config.inipath.parent if config.inipath else config.rootpath) / path
        try:
            user_profiles = spec.load_profiles(path)
        except spec.SpecError as exc:
            raise UsageError(f"--profiles: {exc}") from None
    result = {"models": models, "seeds": seeds, "steps": steps, "profiles": user_profiles}
    config.stash[_OVERRIDES] = result
    return result


_OVERRIDES = pytest.StashKey[dict]()
_CONNECTIONS = pytest.StashKey[Any]()
_RECORDS = pytest.StashKey[list]()
_RESUMABLE = pytest.StashKey[dict]()
_SUMMARY = pytest.StashKey[dict]()
_ROTATED = pytest.StashKey[bool]()


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def report_dir(config: pytest.Config) -> Path:
    """The report directory (a `_path_setting`; default reports/ next to the ini file, or
    in the rootdir). xdist workers get the controller's, as it resolved it."""
    if is_worker(config) and "crafter_report_dir" in config.workerinput:
        return Path(config.workerinput["crafter_report_dir"])
    return _path_setting(config, "report_dir")
_LIMITS = pytest.StashKey[dict]()
_RUN_DIR = pytest.StashKey[Path]()
_OWN_RUN_DIR = pytest.StashKey[bool]()
RUN_DIR_KEY = "crafter_run_dir"  # in xdist's workerinput


def _number(config: pytest.Config, name: str, kind: type, *, low: float, high: float | None = None,
            what: str) -> Any:
    """A numeric setting checked once: None if unset, else a `kind` in [low, high]."""
    raw = setting(config, name)
    if raw in (None, ""):
        return None
    flag = "--" + name.replace("_", "-")
    try:
        value = kind(str(raw).strip())
        if value != value or value < low or (high is not None and value > high) \
                or value == float("inf"):
            raise ValueError
    except ValueError:
        raise UsageError(f"{flag}: expected {what}, got {str(raw)!r}") from None
    return value


def limits(config: pytest.Config) -> dict[str, Any]:
    """The resilience and budget settings, checked once (usage errors on bad values)."""
    if _LIMITS in config.stash:
        return config.stash[_LIMITS]
    timeout = _number(config, "request_timeout", float, low=1e-3,
                      what="a positive number of seconds")
    if timeout is None:
        raise UsageError("--request-timeout: expected a positive number of seconds, got ''")
    deadline = _number(config, "step_deadline", float, low=1e-3, what="a positive number of seconds")
    result = {
        "request_timeout": timeout,
        "max_retries": _number(config, "max_retries", int, low=0, high=100,
                               what="a whole number from 0 to 100"),
        "step_deadline": deadline if deadline is not None else max(300.0, 2 * timeout),
        "max_concurrency": _number(config, "max_concurrency", int, low=1, high=1000,
                                   what="a whole number from 1 to 1000"),
        "fail_on_error": _number(config, "fail_on_error", float, low=0, high=1,
                                 what="a share from 0 to 1, like 0.05"),
        "max_cost": _number(config, "max_cost", float, low=0, what="a number of USD, like 2.50"),
        "max_tokens": _number(config, "max_tokens", int, low=1, what="a whole number of tokens"),
    }
    if result["max_retries"] is None:
        result["max_retries"] = 4
    from . import runstate
    if runstate.fcntl is None:
        for name in ("max_concurrency", "max_tokens", "max_cost"):
            if result[name] is not None:
                raise UsageError(f"--{name.replace('_', '-')}: needs POSIX file locks (fcntl), "
                                 "which this platform lacks")
    config.stash[_LIMITS] = result
    return result


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "crafter: a Crafter episode collected from an eval file")
    config.addinivalue_line("markers", "crafter_payload: an offline snapshot of a model's first request")
    limits(config)
    if setting(config, "trace_dir") and _path_setting(config, "trace_dir").exists() \
            and not _path_setting(config, "trace_dir").is_dir():
        raise UsageError(f"--trace-dir: {_path_setting(config, 'trace_dir')} is not a directory")
    _overrides(config)
    _check_cassette_options(config)
    from . import redact
    redact.add_secret(os.environ.get(setting(config, "api_key_env")))
    redact.add_url(setting(config, "base_url") or os.environ.get("OPENAI_BASE_URL"))
    redact.install_log_filter()
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and workerinput.get(RUN_DIR_KEY):
        config.stash[_RUN_DIR] = Path(workerinput[RUN_DIR_KEY])
    else:
        from .runstate import make_run_dir
        config.stash[_RUN_DIR] = make_run_dir()
        config.stash[_OWN_RUN_DIR] = True
    if workerinput is None:
        config.pluginmanager.register(_ErrorRate(limits(config)["fail_on_error"]),
                                      "crafter-eval-error-rate")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(config), "crafter-eval-xdist")
    if not str(config.getoption("crafter_report_dir") or config.getini("crafter_report_dir")).strip():
        raise UsageError("--report-dir: expected a directory, got an empty value")
    if not is_worker(config):
        config.stash[_RECORDS] = {}
        config.pluginmanager.register(_Controller(config), "crafter-eval-controller")


def _check_cassette_options(config: pytest.Config) -> None:
    record, replay = setting(config, "record"), setting(config, "replay")
    if record and replay:
        raise UsageError("--record and --replay: choose one (replaying while recording "
                         "would record the cassette into itself)")
    if record:
        path = Path(record)
        if path.exists() and not path.is_dir():
            raise UsageError(f"--record: {record} exists and is not a directory")
    if replay:
        from .cassette import Cassette
        if not Path(replay).is_dir():
            raise UsageError(f"--replay: no such directory: {replay}")
        try:
            if not len(Cassette(replay)):
                raise UsageError(f"--replay: no cassette files (*.json) in {replay}")
        except ValueError as exc:
            raise UsageError(f"--replay: {exc}") from None


class _XdistHooks:
    """Hooks that exist only with pytest-xdist (registered when it is loaded)."""

    def __init__(self, config: pytest.Config):
        self.config = config

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        """Hand the controller's run directory to each worker."""
        node.workerinput[RUN_DIR_KEY] = str(node.config.stash[_RUN_DIR])

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report, sched) -> None:
        """A worker died mid-episode (killed, out of memory): report that episode as an
        error, not a failure, saying so. The run goes on with a new worker."""
        match = _EPISODE_ID.search(crashitem)
        if match is None:
            return
        worker = getattr(getattr(getattr(report, "node", None), "gateway", None), "id", "?")
        message = (f"{match['model']} seed {match['seed']}: the xdist worker {worker} running this "
                   "episode died (killed or crashed); its result is lost: rerun it "
                   "(--resume re-runs only missing episodes)")
        report.when = "setup"
        report.longrepr = message
        report.location = (report.location[0], None, crashitem.split("::", 1)[1])
        record = _crash_record(self.config, crashitem, match["model"], int(match["seed"]), message)
        report.user_properties = [(RESULT_KEY, record)]


_EPISODE_ID = re.compile(r"\.ya?ml::(?P<model>.+)\[seed=(?P<seed>\d+)\]$")


class _Controller:
    """Controller-only hooks: hand workers the report directory, gather the records."""

    def __init__(self, config: pytest.Config):
        self.config = config

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        node.workerinput["crafter_report_dir"] = str(report_dir(self.config))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == RESULT_KEY:
                add_record(self.config, value)


def add_record(config: pytest.Config, record: dict) -> None:
    """Count `record` in this run's reports (controller only), once per episode: the
    call and teardown reports carry the same record."""
    key = record.get("nodeid") or f"{record.get('eval')}::{record.get('model')}[seed={record.get('seed')}]"
    records = config.stash.setdefault(_RECORDS, {})
    if record.get("crashed") and key in records:
        return  # the episode ended, and reported, before its worker died
    records[key] = record


def _crash_record(config: pytest.Config, nodeid: str, model: str, seed: int, message: str) -> dict:
    """The error record of an episode whose worker died, appended to results.jsonl by the
    controller (so --resume runs it again)."""
    from .episode import EpisodeResult
    path = nodeid.split("::")[0]
    try:
        eval_name = spec.load(config.rootpath / path).name
    except spec.SpecError:
        eval_name = Path(path).stem
    result = EpisodeResult(eval=eval_name, model=model, seed=seed, end="error", error=message,
                           infra_error=True)
    record = results.make_record(result, outcome="error", message=message, nodeid=nodeid,
                                 path=path, fingerprint="")
    record["crashed"] = True
    try:
        results.append(report_dir(config), record)
    except OSError:
        pass  # the report still carries it
    return record


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if not is_worker(config) and not config.option.collectonly:
        config.stash[_ROTATED] = results.start(report_dir(config),
                                               resume=bool(setting(config, "resume")))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if isinstance(item, EpisodeItem):
        outcome = _final_outcome(report)
        if outcome is not None:
            record = item.record(outcome, _message(call, report))
            # On this report and the ones after it (teardown, which junitxml writes out).
            item.user_properties.append((RESULT_KEY, record))
            report.user_properties.append((RESULT_KEY, record))
            prior = item.resumed_from
            if prior is None or prior.get("outcome") != record["outcome"]:
                results.append(report_dir(item.config), record)
    return report


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
    records = list(config.stash.get(_RECORDS, {}).values())
    if is_worker(config):
        return
    if not records:
        if config.stash.get(_ROTATED, False):
            results.unstart(report_dir(config))
        return
    from . import report
    summary = report.summarize(records, _runs(config, records))
    report.write_reports(report_dir(config), records, summary)
    config.stash[_SUMMARY] = summary
    if summary["failed_gates"] and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _runs(config: pytest.Config, records: list[dict]) -> dict[tuple[str, str], spec.Run]:
    """(eval, model) -> Run, from the eval files the records came from, read again: under
    xdist the controller collects nothing itself."""
    runs: dict[tuple[str, str], spec.Run] = {}
    for path in sorted({r["path"] for r in records if r.get("path")}):
        try:
            loaded = spec.load(config.rootpath / path).with_overrides(**_overrides(config))
        except spec.SpecError:
            continue  # collection reported it; the records still go into the reports
        for run in loaded.runs:
            runs[(loaded.name, run.model)] = run
    return runs


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    summary = config.stash.get(_SUMMARY, None)
    if summary is None:
        return
    from . import report
    tr = terminalreporter
    tr.write_sep("=", "crafter-eval summary")
    for line in report.terminal_lines(summary):
        tr.write_line(line)
    gate_lines = report.gate_failure_lines(summary)
    if gate_lines:
        failed = len(summary["failed_gates"])
        title = f"crafter-eval gates failed for {failed} model(s)" if failed else "crafter-eval gates"
        tr.write_sep("=", title, red=bool(failed), bold=True)
        for line in gate_lines:
            tr.write_line(line)
    tr.write_line(f"reports: {report_dir(config)}")


def pytest_unconfigure(config: pytest.Config) -> None:
    connections = config.stash.get(_CONNECTIONS, None)
    if connections is not None:
        connections.close()
    if config.stash.get(_OWN_RUN_DIR, False):
        from .runstate import remove_run_dir
        remove_run_dir(config.stash[_RUN_DIR])


def run_dir(config: pytest.Config) -> Path:
    """The directory shared by the controller and all xdist workers of this run."""
    return config.stash[_RUN_DIR]


def connections(config: pytest.Config):
    """The process's model connections, made on first use."""
    if _CONNECTIONS not in config.stash:
        from . import runstate
        from .client import Connections, RetryPolicy
        lim = limits(config)
        slots = None
        if lim["max_concurrency"] is not None:
            def slots(model: str, _n=lim["max_concurrency"]):
                return runstate.Slots(run_dir(config), model, _n)
        on_reply = None  # counting costs a locked file write per response: only with a budget
        if lim["max_tokens"] is not None or lim["max_cost"] is not None:
            on_reply = runstate.recorder(runstate.Usage(run_dir(config)), price_usd)
        config.stash[_CONNECTIONS] = Connections(
            base_url=setting(config, "base_url"), api_key_env=setting(config, "api_key_env"),
            timeout=lim["request_timeout"],
            policy=RetryPolicy(max_retries=lim["max_retries"], deadline_s=lim["step_deadline"]),
            slots=slots, on_reply=on_reply,
            record=setting(config, "record"), replay=setting(config, "replay"))
    return config.stash[_CONNECTIONS]


def price_usd(model: str, tokens_in: int, tokens_out: int) -> float | None:
    """Estimated cost of one response from the model's profile prices (`Profile.cost`);
    None when they are unknown. Built-in local models are free."""
    from . import profiles
    from .client import is_local
    cost = getattr(profiles.resolve(model), "cost", None)
    value = cost(tokens_in, tokens_out) if callable(cost) else None
    return 0.0 if value is None and is_local(model) else value


def _budget_reason(config: pytest.Config) -> str | None:
    from . import runstate
    lim = limits(config)
    budget = runstate.Budget(lim["max_tokens"], lim["max_cost"])
    if not budget.active:
        return None
    return budget.exceeded(runstate.Usage(run_dir(config)).totals())


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
        if not _EPISODE_ID.search(report.nodeid):
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
            self.note = (f"{errors} of {ran} episodes errored ({share:.0%}), above "
                         f"--fail-on-error {self.rate:g}: the run fails")
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        else:
            self.note = (f"{errors} of {ran} episodes errored ({share:.0%}), within "
                         f"--fail-on-error {self.rate:g}: errors alone do not fail the run")
            gates_failed = session.config.stash.get(_SUMMARY, {}).get("failed_gates")
            if session.exitstatus == pytest.ExitCode.TESTS_FAILED and session.testsfailed == errors \
                    and not gates_failed:
                session.exitstatus = pytest.ExitCode.OK

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.note:
            terminalreporter.write_sep("-", f"crafter-eval: {self.note}")
        config = terminalreporter.config
        if limits(config)["max_cost"] is not None:
            from .runstate import Usage
            unpriced = Usage(run_dir(config)).totals().unpriced_tokens
            if unpriced:
                terminalreporter.write_sep("-", f"crafter-eval: {unpriced} tokens of models without "
                                                "prices are not in --max-cost (add price: to their "
                                                "profiles)", yellow=True)


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix not in (".yaml", ".yml") or file_path.name.startswith(("_", ".")):
        return None
    dirs = parent.config.getini("crafter_eval_dirs")
    in_eval_dir = any(fnmatch.fnmatch(part, d) for part in file_path.parent.parts for d in dirs)
    if "__snapshots__" in file_path.parts or not (in_eval_dir or parent.session.isinitpath(file_path)):
        return None
    return EvalFile.from_parent(parent, path=file_path)


class EvalFile(pytest.File):
    """An eval YAML file: one item per (model, seed)."""

    def collect(self):
        try:
            loaded = spec.load(self.path)
        except spec.SpecError as exc:  # name the file as pytest shows it
            raise self.CollectError(str(spec.SpecError(self.nodeid, exc.line, exc.key, exc.message)))
        overrides = _overrides(self.config)
        # One payload item per model the file names, on the file's first seed. Models left
        # out by --model are deselected, not left uncollected, so that syrupy does not call
        # their snapshots unused; models named only by --model have no snapshot: no item.
        own = loaded.with_overrides(profiles=overrides["profiles"])
        payload_info = None
        for run in own.runs:
            item = PayloadItem.from_parent(
                self, name=f"payload[{run.model}]", callobj=_payload, fixtureinfo=payload_info,
                eval_spec=own, run=run, seed=own.seeds[0])
            payload_info = item._fixtureinfo
            item.deselect = overrides["models"] is not None and run.model not in overrides["models"]
            yield item
        loaded = loaded.with_overrides(**overrides)
        fixtureinfo = None  # the same for every item of this file: compute it once
        for run in loaded.runs:
            skip = _missing_key_skip(self.config, run.model)
            for seed in loaded.seeds:
                item = EpisodeItem.from_parent(
                    self, name=f"{run.model}[seed={seed}]", callobj=_episode,
                    fixtureinfo=fixtureinfo, eval_spec=loaded, run=run, seed=seed)
                fixtureinfo = item._fixtureinfo
                if skip is not None:
                    item.add_marker(skip)
                yield item


@pytest.hookimpl(trylast=True)  # after syrupy has seen every collected item
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the payload items of models that --model leaves out."""
    dropped = [item for item in items if getattr(item, "deselect", False)]
    if dropped:
        items[:] = [item for item in items if not getattr(item, "deselect", False)]
        config.hook.pytest_deselected(items=dropped)


def _resumable(config: pytest.Config) -> dict[str, dict]:
    """nodeid -> the last record with a final outcome in results.jsonl, with --resume."""
    if _RESUMABLE not in config.stash:
        found: dict[str, dict] = {}
        if setting(config, "resume"):
            latest = results.latest(results.read(report_dir(config) / results.RESULTS))
            found = {k: r for k, r in latest.items() if r.get("outcome") in results.FINAL}
        config.stash[_RESUMABLE] = found
    return config.stash[_RESUMABLE]


def _missing_key_skip(config: pytest.Config, model: str):
    """A skip mark for a model whose API key is missing, unless --require-api-key or --replay."""
    # spec, not client: importing the openai SDK here would cost collection half a second
    key_env = setting(config, "api_key_env")
    if spec.is_local(model) or os.environ.get(key_env) or setting(config, "require_api_key") \
            or setting(config, "replay"):
        return None
    return pytest.mark.skip(reason=f"no API key for {model}: set {key_env} to run it")


def _episode() -> None:
    """Placeholder callable: EpisodeItem runs the episode itself."""


class EpisodeItem(pytest.Function):
    """One episode of one model on one seed."""

    def __init__(self, *, eval_spec: spec.EvalSpec, run: spec.Run, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.spec, self.run, self.seed = eval_spec, run, seed
        self.result = None
        self.resumed_from: dict | None = None  # the earlier record --resume reuses
        self.add_marker(pytest.mark.crafter)

    @functools.cached_property
    def fingerprint(self) -> str:
        # on first use, not at collection, where it took half the time of 20,000 items
        return results.fingerprint(self.run, self.spec.name, self.spec.instructions)

    def setup(self) -> None:
        super().setup()
        from .client import MissingKey
        from .episode import EpisodeResult, run_episode
        prior = _resumable(self.config).get(self.nodeid)
        if prior is not None and prior.get("fingerprint") == self.fingerprint:
            self.resumed_from, self.result = prior, EpisodeResult.from_dict(prior)
            return  # judged again in runtest, against today's expect and xfail
        budget = _budget_reason(self.config)
        if budget is not None:
            # reported at the eval file, like the skips of keyless models
            raise pytest.skip.Exception(f"{budget}: episode not started", _use_item_location=True)
        try:
            client = connections(self.config).for_model(self.run.model)
        except MissingKey as exc:
            client, missing = None, str(exc)
        if client is None:  # only with --require-api-key: collection skips these otherwise
            pytest.fail(f"{missing} (--require-api-key is set)", pytrace=False)
        from . import trace
        where = trace.episode_path(self.spec.name, self.run.model, self.seed)
        film = trace.Filmstrip()
        writer = None
        if setting(self.config, "trace_dir"):
            writer = trace.TraceWriter(_path_setting(self.config, "trace_dir") / where)
        try:
            self.result = run_episode(self.run, self.seed, client, eval_name=self.spec.name,
                                      instructions=self.spec.instructions,
                                      on_step=trace.chain(film, writer))
        finally:
            if writer is not None:
                writer.close()
        gif = Path("episodes", where).with_suffix(".gif")
        if film.save(report_dir(self.config) / gif):
            self.result.gif = gif.as_posix()
        from .cassette import is_miss
        if self.result.error and not is_miss(self.result.error):  # a miss fails in runtest
            # Failing in setup makes pytest report an error: not a verdict on the model.
            pytest.fail(f"{self.run.model} seed {self.seed}: {self.result.error}", pytrace=False)

    def runtest(self) -> None:
        from .episode import check
        if self.result.error:  # only a replay miss gets here: a payload change is a failure
            pytest.fail(f"{self.run.model} seed {self.seed}: {self.result.error}", pytrace=False)
        problems = check(self.result, self.run.expect)
        if self.run.xfail:
            if problems:
                pytest.xfail(f"{self.run.xfail} ({problems[0]})")
            pytest.fail(f"capability gained: remove the xfail of {self.run.model} "
                        f"({self.run.xfail!r}): {_summary(self.result)}", pytrace=False)
        if problems:
            pytest.fail("; ".join(problems), pytrace=False)

    def record(self, outcome: str, message: str | None) -> dict[str, Any]:
        """This episode's record (format in `results`), judged `outcome`; secrets in
        its messages are redacted."""
        from . import redact
        from .episode import EpisodeResult
        result = self.result or EpisodeResult(eval=self.spec.name, model=self.run.model,
                                              seed=self.seed, end="not_run")
        result.outcome = outcome
        result.error = result.error and redact.text(result.error)
        return results.make_record(result, outcome=outcome,
                                   message=message and redact.text(message),
                                   nodeid=self.nodeid, path=self.nodeid.split("::")[0],
                                   fingerprint=self.fingerprint,
                                   resumed=self.resumed_from is not None,
                                   user_profiles=self.run.profiles)

    def reportinfo(self):
        return self.path, (self.run.line or 1) - 1, f"{self.run.model}[seed={self.seed}]"


def _payload(snapshot) -> None:
    """Placeholder callable: it asks for syrupy's `snapshot` fixture; PayloadItem runs."""


class PayloadItem(pytest.Function):
    """The first request body of one model in one eval file, against its snapshot.
    Needs no network and no key; images are redacted to size and pixel digest."""

    def __init__(self, *, eval_spec: spec.EvalSpec, run: spec.Run, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.spec, self.run, self.seed = eval_spec, run, seed
        self.deselect = False   # True for a model --model leaves out
        self.add_marker(pytest.mark.crafter_payload)

    def runtest(self) -> None:
        from .episode import first_request
        from .payload import snapshot_view
        from .profiles import Unsupported
        snapshot = self.funcargs["snapshot"]
        try:  # built here, not at collection: it resets and renders the env
            body, unsupported = first_request(self.run, self.seed, self.spec.instructions), None
        except Unsupported as exc:
            body, unsupported = None, str(exc)
        if unsupported:
            pytest.fail(unsupported, pytrace=False)
        if not snapshot == snapshot_view(body):
            pytest.fail(f"the first request of {self.run.model} (eval {self.spec.name}, seed "
                        f"{self.seed}) does not match its snapshot in __snapshots__/"
                        f"{self.path.stem}.ambr; if the change is intended, run pytest "
                        f"--snapshot-update\n{self._diff(snapshot)}", pytrace=False)

    def _diff(self, snapshot) -> str:
        from syrupy.terminal import disable_color
        color = self.config.get_terminal_writer().hasmarkup and not self.config.option.no_colors
        with (contextlib.nullcontext() if color else disable_color()):
            return "\n".join(snapshot.get_assert_diff(diff_mode=self.config.option.diff_mode))

    def reportinfo(self):
        return self.path, (self.run.line or 1) - 1, f"payload[{self.run.model}]"


def _summary(result) -> str:
    names = ", ".join(result.achievements) or "none"
    return (f"{len(result.achievements)} achievement(s) ({names}), tool-call rate "
            f"{result.tool_call_rate:.2f} over {result.steps} step(s)")
