"""Stage: run (settings). The run's settings, from the command line or the ini file,
each checked once: a bad value is a one-line usage error (exit 4), never a traceback.

Also the per-process state the settings imply: the report and run directories, the model
connections and the budget. Touches the environment (API key names) and, through
`runstate` and `client`, the run directory and the network; nothing else.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import threading
from pathlib import Path
from typing import Any

import pytest

from ..config import spec

OVERRIDES = pytest.StashKey[dict]()
CONNECTIONS = pytest.StashKey[Any]()
RECORDS = pytest.StashKey[dict[str, dict[str, Any]]]()  # nodeid -> record
RESUMABLE = pytest.StashKey[dict]()
SUMMARY = pytest.StashKey[dict]()
ROTATED = pytest.StashKey[bool]()
LATEST = pytest.StashKey[dict[str, dict[str, Any]]]()  # nodeid -> last record, with --resume
EXPECTED = pytest.StashKey[set[str]]()  # node ids of the episodes selected to run
STOPPED = pytest.StashKey[str]()  # why the run stopped early (-x, --maxfail, Ctrl-C)
NOTE = pytest.StashKey[str]()  # a line for the terminal summary


LIMITS = pytest.StashKey[dict]()  # the checked resilience and budget settings
SHARD = pytest.StashKey[Any]()  # --shard as a shard.Shard, or None
POOL = pytest.StashKey[Any]()  # this process's inflight.Pool, with --episodes-per-process > 1
TALLY = pytest.StashKey[Any]()  # this process's runstate.Tally (live progress counts)
STOP = pytest.StashKey[Any]()  # this process's runstate.Stop (it keeps "no stop" 50 ms)
RUN_DIR = pytest.StashKey[Path]()
OWN_RUN_DIR = pytest.StashKey[bool]()
RUN_DIR_KEY = "crafter_run_dir"  # in xdist's workerinput


# Options renamed to say what they count: setting name -> its flag; the old flag
# (`--` + the name) stays an alias, and so does its ini key (`crafter_` + the name).
FLAGS = {
    "concurrency": "--episodes-per-process",
    "max_concurrency": "--requests-per-model",
}
# setting name -> further ini keys (without `crafter_`) read when its own is unset
INI_ALIASES = {
    "concurrency": ("episodes_per_process",),
    "max_concurrency": ("requests_per_model",),
}


def flag_of(name: str) -> str:
    """The command-line flag of setting `name`, as messages name it."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def setting(config: pytest.Config, name: str) -> Any:
    """A setting from the command line, else from the ini file."""
    value = config.getoption(f"crafter_{name}")
    if value in (None, False, []):
        for alias in INI_ALIASES.get(name, ()):  # the new ini names (no default) come first
            value = config.getini(f"crafter_{alias}")
            if value not in (None, "", False, []):
                return value
        value = config.getini(f"crafter_{name}")
    return value


# pytest.UsageError is final: a bad option is reported through it directly.
UsageError = pytest.UsageError


def path_setting(config: pytest.Config, name: str) -> Path:
    """A directory setting: relative to the invocation directory when given on the
    command line, to the ini file's directory when set there."""
    value = config.getoption(f"crafter_{name}")
    if value:
        return Path(config.invocation_params.dir, value)
    base = config.inipath.parent if config.inipath else config.rootpath
    return Path(base, config.getini(f"crafter_{name}"))


def overrides(config: pytest.Config) -> dict[str, Any]:
    """Command-line overrides of every eval file, checked once."""
    cached = config.stash.get(OVERRIDES, None)
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
        raw_steps = str(setting(config, "steps"))
        if not raw_steps.isdigit() or not 1 <= int(raw_steps) <= 10_000:
            raise UsageError(f"--steps: expected a whole number from 1 to 10000, got {raw_steps!r}")
        steps = int(raw_steps)
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
    api = setting(config, "api") or None
    if api is not None:
        from ..wire import adapters

        if api not in adapters.names():
            raise UsageError(
                f"--api: expected one of {', '.join(adapters.names())}, got {str(api)!r}"
            )
    result = {
        "models": models,
        "seeds": seeds,
        "steps": steps,
        "profiles": user_profiles,
        "api": api,
        "until_decided": bool(setting(config, "until_decided")),
    }
    config.stash[OVERRIDES] = result
    return result


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def workerinput(config: pytest.Config) -> dict[str, Any]:
    """What the xdist controller sent this worker (empty on the controller)."""
    return getattr(config, "workerinput", {})


def report_dir(config: pytest.Config) -> Path:
    """The report directory (a `path_setting`; default reports/ next to the ini file, or
    in the rootdir). xdist workers get the controller's, as it resolved it."""
    sent = workerinput(config).get("crafter_report_dir")
    if sent is not None:
        return Path(sent)
    return path_setting(config, "report_dir")


def _number(
    config: pytest.Config,
    name: str,
    kind: type,
    *,
    low: float,
    high: float | None = None,
    what: str,
) -> Any:
    """A numeric setting checked once: None if unset, else a `kind` in [low, high]."""
    raw = setting(config, name)
    if raw in (None, ""):
        return None
    flag = flag_of(name)
    try:
        value = kind(str(raw).strip())
        if (
            value != value
            or value < low
            or (high is not None and value > high)
            or value == float("inf")
        ):
            raise ValueError
    except ValueError:
        raise UsageError(f"{flag}: expected {what}, got {str(raw)!r}") from None
    return value


def limits(config: pytest.Config) -> dict[str, Any]:
    """The resilience and budget settings, checked once (usage errors on bad values)."""
    if LIMITS in config.stash:
        return config.stash[LIMITS]
    timeout = _number(
        config, "request_timeout", float, low=1e-3, what="a positive number of seconds"
    )
    if timeout is None:
        raise UsageError("--request-timeout: expected a positive number of seconds, got ''")
    deadline = _number(
        config, "step_deadline", float, low=1e-3, what="a positive number of seconds"
    )
    result = {
        "request_timeout": timeout,
        "max_retries": _number(
            config, "max_retries", int, low=0, high=100, what="a whole number from 0 to 100"
        ),
        "step_deadline": deadline if deadline is not None else max(300.0, 2 * timeout),
        "max_concurrency": _number(
            config, "max_concurrency", int, low=1, high=1000, what="a whole number from 1 to 1000"
        ),
        "fail_on_error": _number(
            config, "fail_on_error", float, low=0, high=1, what="a share from 0 to 1, like 0.05"
        ),
        "max_cost": _number(config, "max_cost", float, low=0, what="a number of USD, like 2.50"),
        "max_tokens": _number(config, "max_tokens", int, low=1, what="a whole number of tokens"),
        "concurrency": _number(
            config, "concurrency", int, low=1, high=1000, what="a whole number from 1 to 1000"
        ),
    }
    if result["concurrency"] is None:
        result["concurrency"] = 1
    if result["max_retries"] is None:
        result["max_retries"] = 4
    from . import runstate

    if runstate.fcntl is None:
        for name in ("max_concurrency", "max_tokens", "max_cost"):
            if result[name] is not None:
                raise UsageError(
                    f"{flag_of(name)}: needs POSIX file locks (fcntl), which this platform lacks"
                )
    config.stash[LIMITS] = result
    return result


def shard_setting(config: pytest.Config):
    """--shard K/N as a `shard.Shard`, or None when unset; checked once."""
    if SHARD not in config.stash:
        raw = setting(config, "shard")
        value = None
        if raw not in (None, ""):
            from . import shard

            try:
                value = shard.parse(str(raw))
            except ValueError as exc:
                raise UsageError(f"--shard: {exc}") from None
        config.stash[SHARD] = value
    return config.stash[SHARD]


def check_cassette_options(config: pytest.Config) -> None:
    record, replay = setting(config, "record"), setting(config, "replay")
    if record and replay:
        raise UsageError(
            "--record and --replay: choose one (replaying while recording "
            "would record the cassette into itself)"
        )
    if record:
        path = Path(record)
        if path.exists() and not path.is_dir():
            raise UsageError(f"--record: {record} exists and is not a directory")
    if replay:
        from ..wire.cassette import Cassette

        if not Path(replay).is_dir():
            raise UsageError(f"--replay: no such directory: {replay}")
        try:
            if not len(Cassette(replay)):
                raise UsageError(f"--replay: no cassette files (*.json) in {replay}")
        except ValueError as exc:
            raise UsageError(f"--replay: {exc}") from None


def run_dir(config: pytest.Config) -> Path:
    """The directory shared by the controller and all xdist workers of this run."""
    return config.stash[RUN_DIR]


def freeze_gc() -> None:
    """Move every object alive now (imported modules, the collected items) into the
    garbage collector's permanent generation (`gc.freeze`), once a run holds episodes:
    the collector's full passes during the run, and the five pytest makes at exit, then
    walk only what the run makes. Before, they walked the imports of openai, numpy,
    PIL and pytest again and again: ~2 s of CPU over the 3 processes of a 128-episode
    `-n 2` run. Called after collection, and again once the SDK and the game are
    imported (`connections`): openai's types alone are ~50,000 objects, and pytest's
    passes at exit took 0.3 s a worker, the run waiting on them. Freezing what was made
    since is harmless."""
    import gc

    gc.freeze()


@functools.cache
def prefetch_reports() -> None:
    """For the xdist controller, which waits idle while its workers play: import the
    report writers (numpy with them) in the background, once, so that the run's end does
    not wait on them (~0.15 s of the last 0.25 s of a 128-episode `-n 2` run)."""
    import_in_background("pytest_crafter_eval.report.files")


def import_in_background(module: str) -> threading.Thread:
    """Import `module` on a daemon thread, and return the thread. An import that fails
    here is tried again where the module is needed, and fails there with its error.

    At normal priority: it takes ~0.15 s of CPU from the workers' start, once. A thread at
    nice 19 took none, but held the GIL while the OS left it waiting, and with the CPUs
    busy the controller's main thread stalled behind it for up to 0.9 s at a time."""

    def work() -> None:
        with contextlib.suppress(Exception):  # see the docstring
            importlib.import_module(module)

    thread = threading.Thread(target=work, name="crafter-eval-import", daemon=True)
    thread.start()
    return thread


def connections(config: pytest.Config):
    """The process's model connections, made on first use (then `freeze_gc`: the SDK
    and the game are imported by then)."""
    if CONNECTIONS not in config.stash:
        from ..wire.client import Connections, RetryPolicy
        from . import runstate

        lim = limits(config)
        slots = None
        if lim["max_concurrency"] is not None:
            limit = lim["max_concurrency"]
            slots = lambda model: runstate.Slots(run_dir(config), model, limit)  # noqa: E731
        config.stash[CONNECTIONS] = Connections(
            base_url=setting(config, "base_url"),
            api_key_env=setting(config, "api_key_env"),
            timeout=lim["request_timeout"],
            policy=RetryPolicy(max_retries=lim["max_retries"], deadline_s=lim["step_deadline"]),
            slots=slots,
            record=setting(config, "record"),
            replay=setting(config, "replay"),
            pace=(lambda model: runstate.Pacer(run_dir(config), model))
            if runstate.fcntl is not None
            else None,
            sleep=lambda seconds: _wait(config, seconds),
            check=lambda: check_stop(config),
        )
        from ..agent import episode  # noqa: F401  (crafter, numpy, PIL: frozen too)

        freeze_gc()
    return config.stash[CONNECTIONS]


def _wait(config: pytest.Config, seconds: float) -> None:
    """A wait between attempts; with --episodes-per-process, the run's stop (Ctrl-C,
    -x, another worker's -x) cuts it short and cancels the episode (`inflight.Cancelled`)."""
    import time

    pool = config.stash.get(POOL, None)
    if pool is None:
        time.sleep(seconds)
        return
    end = time.monotonic() + seconds
    while True:
        check_stop(config)
        left = end - time.monotonic()
        if left <= 0:
            return
        pool.stopping.wait(min(left, 0.25))


def run_stop(config: pytest.Config) -> str | None:
    """Why the run stops, once the controller has said so (-x, --maxfail: `runstate.Stop`)."""
    return stop_of(config).reason()


def stop_of(config: pytest.Config):
    """This process's `runstate.Stop` of the run, made once."""
    if STOP not in config.stash:
        from . import runstate

        config.stash[STOP] = runstate.Stop(run_dir(config))
    return config.stash[STOP]


def check_stop(config: pytest.Config) -> None:
    """With --episodes-per-process, raise `inflight.Cancelled` once the run stops (here,
    or in the controller for every worker): checked before each episode, before each
    request is sent and while a request waits for a slot."""
    pool = config.stash.get(POOL, None)
    if pool is None:
        return
    if not pool.stopping.is_set() and run_stop(config) is not None:
        pool.stopping.set()
    pool.check_stop()


def tally_of(config: pytest.Config):
    """This process's live counts (`runstate.Tally`), made in pytest_configure."""
    if TALLY not in config.stash:
        from . import runstate

        config.stash[TALLY] = runstate.Tally(run_dir(config))
    return config.stash[TALLY]


def usage_recorder(config: pytest.Config):
    """An episode's `on_step` that adds each response's tokens and cost, priced by the
    episode with its run's profile (eval file `profiles:`, --profiles), as its record
    is, to this process's live tally and, with --max-tokens or --max-cost, to the run's
    usage (a locked file write per response: only with a budget)."""
    from . import runstate

    lim = limits(config)
    tally = tally_of(config)
    usage = None
    if lim["max_tokens"] is not None or lim["max_cost"] is not None:
        usage = runstate.recorder(runstate.Usage(run_dir(config)))

    def on_step(step: dict[str, Any]) -> None:
        tally.reply(
            int(step.get("tokens_in") or 0) + int(step.get("tokens_out") or 0), step.get("cost_usd")
        )
        if usage is not None:
            usage(step)

    return on_step


def budget_reason(config: pytest.Config) -> str | None:
    from . import runstate

    lim = limits(config)
    budget = runstate.Budget(lim["max_tokens"], lim["max_cost"])
    if not budget.active:
        return None
    return budget.exceeded(runstate.Usage(run_dir(config)).totals())
