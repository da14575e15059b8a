"""Stage: run (items). Eval files and the test items collected from them.

Each eval YAML file becomes an `EvalFile`; each (model, seed) in it one `EpisodeItem`
with an id like `evals/smoke.yaml::local/heuristic[seed=3]`. An item plays its episode
in the setup phase, so that an infrastructure failure is reported as an error, and
judges it in the call phase, so that a missing capability is reported as a failure.
Each model the file names also gets one `PayloadItem`, `evals/smoke.yaml::payload[gpt-5-nano]`:
offline, it compares the first request body with a syrupy snapshot in evals/__snapshots__/,
and with `history:` also the request of step `history.steps + 1` (a second snapshot,
`payload[gpt-5-nano].1`) and, with layout blocks, of step `2 * history.steps + 1`, the
first after a cut (`.2`); the steps before them answered in-process by local/heuristic.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..agent.episode import EpisodeResult

from ..config import spec
from ..report import results
from . import decisions, reach
from .settings import (
    LATEST,
    POOL,
    RESUMABLE,
    budget_reason,
    connections,
    limits,
    overrides,
    path_setting,
    report_dir,
    run_dir,
    run_stop,
    setting,
    tally_of,
    usage_recorder,
)

EVAL_NAMES = pytest.StashKey[dict[str, str]]()  # an eval's files' name -> "file:line"


class EvalFile(pytest.File):
    """An eval YAML file: one item per (model, seed)."""

    def _claim_name(self, loaded: spec.EvalSpec) -> None:
        """Two eval files with one name would write the same traces, GIFs and result
        ids (and corrupt them when they run together): refuse the second, naming both."""
        where = f"{self.nodeid}:{loaded.name_line or 1}"
        names = self.config.stash.setdefault(EVAL_NAMES, {})
        # the directory trace.episode_path makes of a name (spec allows only letters,
        # digits and . _ -, so only a trailing . or _ goes), as a case-blind disk sees it
        key = loaded.name.rstrip("._").casefold()
        first = names.setdefault(key, where)
        if first.rsplit(":", 1)[0] != self.nodeid:
            given = "" if loaded.name_line else " (the file's name)"
            raise self.CollectError(
                f"{where}: name: {loaded.name!r}{given} is already the name of {first}; "
                "two eval files with one name write the same traces, GIFs and results: "
                "give each its own name"
            )

    def collect(self):
        try:
            loaded = spec.load(self.path)
        except spec.SpecError as exc:  # name the file as pytest shows it
            raise self.CollectError(
                str(spec.SpecError(self.nodeid, exc.line, exc.key, exc.message))
            ) from None
        self._claim_name(loaded)
        options = overrides(self.config)
        # One payload item per model the file names, on the file's first seed. Models left
        # out by --model are deselected, not left uncollected, so that syrupy does not call
        # their snapshots unused; models named only by --model have no snapshot: no item.
        own = loaded.with_overrides(profiles=options["profiles"])
        payload_info = None
        for run in own.runs:
            payload = PayloadItem.from_parent(
                self,
                **_parametrized("payload", run.model),
                callobj=_payload,
                fixtureinfo=payload_info,
                eval_spec=own,
                run=run,
                seed=own.seeds[0],
            )
            payload_info = payload._fixtureinfo
            payload.deselect = options["models"] is not None and run.model not in options["models"]
            yield payload
        loaded = loaded.with_overrides(**options)
        fixtureinfo = None  # the same for every item of this file: compute it once
        for run in loaded.runs:
            skip = _missing_key_skip(self.config, run.model)
            for seed in loaded.seeds:
                item = EpisodeItem.from_parent(
                    self,
                    **_parametrized(run.model, f"seed={seed}"),
                    callobj=_episode,
                    fixtureinfo=fixtureinfo,
                    eval_spec=loaded,
                    run=run,
                    seed=seed,
                )
                fixtureinfo = item._fixtureinfo
                if skip is not None:
                    item.add_marker(skip)
                yield item


def _parametrized(name: str, param: str) -> dict[str, Any]:
    """The naming arguments of an item shown as `name[param]`, structured as pytest
    structures a parametrized test: base name `name`, params `param`.

    pytest (9.2) keeps node ids as (path, names, params) and compares the ids it caches
    for --lf, --ff, --sw and --nf, parsed from strings (`local/heuristic` + `seed=0`),
    with each item's; an item merely named `local/heuristic[seed=0]` has no params, so
    it never matched and those options silently ran everything (pytest issue 15045).
    The callspec gives the item the same structure as the parsed id; the id's text is
    unchanged. pytest exports no constructor for it; where `CallSpec` is missing (older
    pytest, whose ids are plain strings) the name alone is used.
    """
    try:
        from _pytest.python import CallSpec
    except ImportError:  # pragma: no cover (pytest < 9: string node ids match as they are)
        return {"name": f"{name}[{param}]"}
    return {
        "name": f"{name}[{param}]",
        "originalname": name,
        "callspec": CallSpec(_idlist=(param,)),
    }


def _resumable(config: pytest.Config) -> dict[str, dict]:
    """nodeid -> the last record with a final outcome in results.jsonl, with --resume."""
    if RESUMABLE not in config.stash:
        found: dict[str, dict] = {}
        latest: dict[str, dict] = {}
        if setting(config, "resume"):
            latest = results.latest(results.read(report_dir(config) / results.RESULTS))
            found = {k: r for k, r in latest.items() if r.get("outcome") in results.FINAL}
        config.stash[RESUMABLE], config.stash[LATEST] = found, latest
    return config.stash[RESUMABLE]


def _missing_key_skip(config: pytest.Config, model: str):
    """A skip mark for a model whose API key is missing, unless --require-api-key or --replay."""
    # spec, not client: importing the openai SDK here would cost collection half a second
    key_env = setting(config, "api_key_env")
    if (
        spec.is_local(model)
        or os.environ.get(key_env)
        or setting(config, "require_api_key")
        or setting(config, "replay")
    ):
        return None
    return pytest.mark.skip(reason=f"no API key for {model}: set {key_env} to run it")


def _episode() -> None:
    """Placeholder callable: EpisodeItem runs the episode itself."""


# An episode item's node id: `evals/smoke.yaml::local/heuristic[seed=3]`.
EPISODE_ID = re.compile(r"\.ya?ml::(?P<model>.+)\[seed=(?P<seed>\d+)\]$")
PAYLOAD_ID = re.compile(r"\.ya?ml::payload\[(?!seed=\d+\]$).+\]$")


class EpisodeItem(pytest.Function):
    """One episode of one model on one seed."""

    def __init__(self, *, eval_spec: spec.EvalSpec, run: spec.Run, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.spec, self.run, self.seed = eval_spec, run, seed
        self.result: EpisodeResult | None = None
        self.resumed_from: dict | None = None  # the earlier record --resume reuses
        self.written = False  # its record is in results.jsonl (or is left out on purpose)
        self.add_marker(pytest.mark.crafter)

    @functools.cached_property
    def fingerprint(self) -> str:
        # on first use, not at collection, where it took half the time of 20,000 items
        return results.fingerprint(self.run, self.spec.name, self.spec.instructions)

    def setup(self) -> None:
        super().setup()
        pool = self.config.stash.get(POOL, None)
        future = pool.claim(self.nodeid) if pool is not None else None
        if future is not None:  # played ahead by the in-flight pool (--concurrency)
            from .inflight import Cancelled

            try:
                future.result()  # its skip or failure is raised here, in this item's setup
            except Cancelled:  # -x or --maxfail in another xdist worker stopped the run
                stopped = run_stop(self.config) or "the run is stopping"
                self.session.shouldstop = stopped
                raise pytest.skip.Exception(
                    f"{stopped}: episode cut short", _use_item_location=True
                ) from None
        else:
            self.play()
        outcome, message = self.verdict()
        if outcome == "error":
            # Failing in setup makes pytest report an error: not a verdict on the model.
            pytest.fail(message or "", pytrace=False)
        if outcome == "skipped":  # cut by the budget: neither passed nor failed
            raise pytest.skip.Exception(message or "", _use_item_location=True)

    def play(self, check_stop=None, waiting=None) -> None:
        """Play this episode (or take it from --resume) into `self.result`. Raises
        pytest's skip (budget spent) or fail (missing key with --require-api-key).
        Needs no pytest state of the running test: the in-flight pool runs it on a
        thread, ahead of `setup`; `check_stop` is called before each model call (it raises
        `inflight.Cancelled` when the run stops), and each call waits for its answer
        inside `waiting` (the pool's `Pool.waiting`: other episodes compute then). With
        --max-tokens or --max-cost the budget is checked before each model call too: once
        it is spent the episode is cut there (`episode.Cut`), and judged skipped."""
        from ..agent.episode import Cut, EpisodeResult, run_episode
        from ..wire.client import MissingKey

        prior = _resumable(self.config).get(self.nodeid)
        if prior is not None and prior.get("fingerprint") == self.fingerprint:
            self.resumed_from, self.result = prior, EpisodeResult.from_dict(prior)
            return  # judged again in runtest, against today's expect and xfail
        decided = decisions.decided(run_dir(self.config), self.spec.name, self.run, self.spec.seeds)
        if decided is not None:  # its sequential gate needs no more episodes
            raise pytest.skip.Exception(decided, _use_item_location=True)
        budget = budget_reason(self.config)
        if budget is not None:
            # reported at the eval file, like the skips of keyless models
            raise pytest.skip.Exception(f"{budget}: episode not started", _use_item_location=True)
        dead = reach.unreachable(run_dir(self.config), self.run.model)
        if dead is not None:  # its first episodes failed to connect
            raise pytest.skip.Exception(dead, _use_item_location=True)
        try:
            client = connections(self.config).for_model(self.run.model)
        except MissingKey as exc:
            client, missing = None, str(exc)
        if client is None:  # only with --require-api-key: collection skips these otherwise
            pytest.fail(f"{missing} (--require-api-key is set)", pytrace=False)
        client = reach.Watched(client, run_dir(self.config), self.run.model)
        lim = limits(self.config)
        budgeted = lim["max_tokens"] is not None or lim["max_cost"] is not None

        def before_call() -> None:
            if check_stop is not None:
                check_stop()
            spent = budget_reason(self.config) if budgeted else None
            if spent is not None:
                raise Cut(spent)

        if check_stop is not None or budgeted or waiting is not None:
            from .inflight import Checked

            client = Checked(client, before_call, waiting)
        from ..data import trace

        where = trace.episode_path(self.spec.name, self.run.model, self.seed)
        film = trace.Filmstrip()
        writer = None
        if setting(self.config, "trace_dir"):
            writer = trace.TraceWriter(
                path_setting(self.config, "trace_dir") / where,
                seed_split=self.spec.split_of(self.seed),
            )
        tally = tally_of(self.config)
        tally.started()
        try:
            result = run_episode(
                self.run,
                self.seed,
                client,
                eval_name=self.spec.name,
                instructions=self.spec.instructions,
                on_step=trace.chain(film, writer, usage_recorder(self.config)),
            )
        finally:
            tally.ended()
            if writer is not None:
                writer.close()
        gif = Path("episodes", where).with_suffix(".gif")
        if film.save(report_dir(self.config) / gif):
            result.gif = gif.as_posix()
        self.result = result

    def verdict(self) -> tuple[str, str | None]:
        """(outcome, message) of the played episode: error (the infrastructure stopped
        it), failed, xfailed or passed. A replay miss is a failure (a payload change), and
        so is a missing capability (end: unsupported; an xfail can expect it)."""
        from ..agent.episode import check
        from ..wire.cassette import is_miss

        result = self.result
        assert result is not None, "verdict() before play()"
        if result.end == "cut":
            return "skipped", result.error
        if result.error and result.end != "unsupported":  # a missing capability: below
            message = f"{self.run.model} seed {self.seed}: {result.error}"
            return ("failed" if is_miss(result.error) else "error"), message
        problems = check(result, self.run.expect)
        if self.run.xfail:
            if problems:
                return "xfailed", f"{self.run.xfail} ({problems[0]})"
            return "failed", (
                f"capability gained: remove the xfail of {self.run.model} "
                f"({self.run.xfail!r}): {_summary(result)}"
            )
        if problems:
            return "failed", "; ".join(problems)
        return "passed", None

    def runtest(self) -> None:
        outcome, message = self.verdict()
        if outcome == "xfailed":
            pytest.xfail(message or "")
        if outcome == "failed":
            pytest.fail(message or "", pytrace=False)

    def repeats(self, record: dict[str, Any]) -> bool:
        """With --resume: whether `record`, of an episode not played, says what this
        episode's last record in results.jsonl says (a skip for the same reason), so
        that appending it would only duplicate it."""
        _resumable(self.config)
        last = self.config.stash[LATEST].get(self.nodeid)
        return (
            last is not None
            and not results.played(record)
            and all(last.get(k) == record.get(k) for k in ("outcome", "message", "fingerprint"))
        )

    def record(self, outcome: str, message: str | None) -> dict[str, Any]:
        """This episode's record (format in `results`), judged `outcome`; secrets in
        its messages are redacted."""
        from ..agent.episode import EpisodeResult
        from ..wire import redact

        result = self.result or EpisodeResult(
            eval=self.spec.name, model=self.run.model, seed=self.seed, end="not_run"
        )
        result.outcome = outcome
        result.error = result.error and redact.text(result.error)
        return results.make_record(
            result,
            outcome=outcome,
            message=message and redact.text(message),
            nodeid=self.nodeid,
            path=self.nodeid.split("::")[0],
            fingerprint=self.fingerprint,
            resumed=self.resumed_from is not None,
            settings=results.settings(self.run, self.spec.instructions),
        )

    def reportinfo(self):
        return self.path, (self.run.line or 1) - 1, f"{self.run.model}[seed={self.seed}]"


# user_properties of a payload item's report: it compared every request with its snapshot;
# it wrote a missing snapshot (the value: where).
COMPARED_KEY = "crafter_payload_compared"
CREATED_KEY = "crafter_payload_created"


def in_ci() -> bool:
    """Whether this is a CI run: $CI set, and not to 0, false or no (as CI services set it,
    and as Jest reads it: outside CI a missing snapshot is written, in CI it fails)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _payload(snapshot) -> None:
    """Placeholder callable: it asks for syrupy's `snapshot` fixture; PayloadItem runs."""


class PayloadItem(pytest.Function):
    """The first request body of one model in one eval file, against its snapshot.
    Needs no network and no key; images are redacted to size and pixel digest."""

    def __init__(self, *, eval_spec: spec.EvalSpec, run: spec.Run, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.spec, self.run, self.seed = eval_spec, run, seed
        self.deselect = False  # True for a model --model leaves out
        self.add_marker(pytest.mark.crafter_payload)

    def runtest(self) -> None:
        """Compare each snapshot request with its snapshot, all of them before failing (a
        request not compared would look unused to syrupy). A missing snapshot is written
        and reported, outside CI (Jest's rule; `in_ci`); in CI it fails."""
        from ..agent.episode import StepNotReached, api_name, request_at
        from ..config.profiles import Unsupported
        from ..wire.payload import snapshot_view

        snapshot: Any = self.funcargs["snapshot"]  # syrupy's SnapshotAssertion
        if not in_ci():
            snapshot.update_new_snapshots_only = True  # syrupy's --snapshot-update-new-only
        problems: list[str] = []
        where = f"__snapshots__/{self.path.stem}.ambr"
        for step in self.steps:
            try:  # built here, not at collection: it resets and renders the env
                body, unsupported = (
                    request_at(
                        self.run,
                        self.seed,
                        step,
                        self.spec.instructions,
                        eval_name=self.spec.name,
                    ),
                    None,
                )
            except (Unsupported, StepNotReached) as exc:
                body, unsupported = {}, str(exc)
            if unsupported:  # failed outside the except block: no chained traceback
                pytest.fail(unsupported, pytrace=False)
            which = "first request" if step == 0 else f"request of step {step}"
            what = f"the {which} of {self.run.model} (eval {self.spec.name}, seed {self.seed})"
            matched = snapshot == snapshot_view(body, api=api_name(self.run))
            executions = getattr(snapshot, "executions", None) or {}
            last = executions[max(executions)] if executions else None
            if last is not None and last.created and not self.config.option.update_snapshots:
                ambr = Path(self.nodeid.split("::")[0]).parent / where
                self.user_properties.append((CREATED_KEY, [ambr.as_posix(), last.snapshot_name]))
            if matched:
                continue
            if last is not None and last.recalled_data is None:
                problems.append(
                    f"{what} has no snapshot yet in {where}, and CI is set, so it is not "
                    "written: create it with pytest --snapshot-update (or a run outside CI) "
                    "and commit it"
                )
            else:
                problems.append(
                    f"{what} does not match its snapshot in {where}; if the change is "
                    f"intended, run pytest --snapshot-update\n{self._diff(snapshot)}"
                )
        self.user_properties.append((COMPARED_KEY, True))
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)

    @property
    def steps(self) -> tuple[int, ...]:
        """The steps whose request is snapshot: the first, and with `history` one whose
        request holds a full history, `history.steps + 1`; with layout blocks also the
        first request after a cut, `2 * history.steps + 1`, when the episode gets there
        (steps before them answered by local/heuristic)."""
        history, last = self.run.history, self.run.steps - 1
        if not history.steps or last < 1:
            return (0,)
        cut = 2 * history.steps + 1
        after_cut = (cut,) if history.layout == "blocks" and cut <= last else ()
        return (0, min(history.steps + 1, last), *after_cut)

    def _diff(self, snapshot) -> str:
        from syrupy.terminal import disable_color

        color = self.config.get_terminal_writer().hasmarkup and not self.config.option.no_colors
        with contextlib.nullcontext() if color else disable_color():
            return "\n".join(snapshot.get_assert_diff(diff_mode=self.config.option.diff_mode))

    def reportinfo(self):
        return self.path, (self.run.line or 1) - 1, f"payload[{self.run.model}]"


def _summary(result) -> str:
    names = ", ".join(result.achievements) or "none"
    return (
        f"{len(result.achievements)} achievement(s) ({names}), tool-call rate "
        f"{result.tool_call_rate:.2f} over {result.steps} step(s)"
    )
