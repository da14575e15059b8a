"""Stage: cli. The `crafter-eval` command.

    crafter-eval serve --model local/heuristic --port 8000
        Serve a built-in model over the OpenAI chat-completions and Responses APIs on 127.0.0.1.
    crafter-eval payload --model gpt-5-nano [--eval evals/smoke.yaml] [--seed 0] [--redact]
                         [--step K [--answer-with local/heuristic]] [--api chat|responses]
        Print the JSON body of an episode's first request to that model (or of step K,
        steps 0..K-1 answered in-process by a local model); no network.
    crafter-eval report DIR [DIR ...] --out DIR [--rootdir DIR] [--baseline PATH]
        Merge the results.jsonl of several runs (shards) into one report; exit 1 on a
        failed gate.
    crafter-eval compare BASE CAND [--models A,B] [--metric M ...] [--out DIR]
                         [--max-drop D [--alpha A]] [--allow-different-settings]
        Compare two runs (report dirs or results.jsonl files; several of one side
        joined with commas), or two models of one run, seed by seed; exit 1 when a
        regression gate fails.
    crafter-eval plan PILOT [PILOT ...] [--drop D] [--power P] [--metric M] [--baseline PATH]
        From pilot runs: the seeds a paired comparison needs to detect a drop of D, and
        how often each absolute gate passes at n seeds (resampling the pilot).
    crafter-eval export TRACE_DIR [TRACE_DIR ...] --out DIR [options]
        Turn --trace-dir traces into fine-tuning files (train/val JSONL + manifest.json).

Exit codes follow pytest's: 0 success, 1 a failed gate, 2 a request that cannot be served,
4 usage error (bad arguments, a missing results.jsonl, an episode recorded twice);
export exits 2 on bad input traces.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .wire import adapters

USAGE_ERROR = 4
CANNOT_SERVE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 4, like pytest's usage errors
        self.exit(USAGE_ERROR, f"crafter-eval: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="crafter-eval", description="Crafter evals for vision-language agents.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    serve = sub.add_parser(
        "serve",
        help="serve a built-in local model over loopback HTTP",
        description="Serve a built-in local/* model over the OpenAI chat-completions and "
        "Responses APIs, for other tools or a --base-url run; Ctrl-C stops it.",
    )
    serve.add_argument(
        "--model", default="local/heuristic", help="a local/* model (default: %(default)s)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    payload = sub.add_parser(
        "payload",
        help="print the JSON body of an episode's first request (or of --step K)",
        description="Print the JSON body of the first request an episode sends to a model "
        "(or of step K), built offline: no key, no network.",
    )
    payload.add_argument(
        "--model", required=True, help="the model to build the request for (required)"
    )
    payload.add_argument(
        "--eval",
        metavar="FILE",
        help="eval file whose settings to use (default: the built-in defaults)",
    )
    payload.add_argument(
        "--seed", type=_seed, help="the episode's seed (default: the eval's first)"
    )
    payload.add_argument(
        "--step",
        type=_step,
        default=0,
        help="print the request of this step (default: 0, the first); the steps before "
        "it are answered in-process by --answer-with, so the body holds their history",
    )
    payload.add_argument(
        "--answer-with",
        metavar="MODEL",
        default="local/heuristic",
        help="the local model that answers the steps before --step (default: %(default)s)",
    )
    payload.add_argument(
        "--redact",
        action="store_true",
        help="replace image data with its size and a digest of its pixels",
    )
    payload.add_argument(
        "--api",
        choices=adapters.names(),
        help="the wire API (default: the eval file's request.api, else the model profile's)",
    )
    payload.add_argument(
        "--profiles",
        metavar="FILE",
        help="YAML file of model profiles overriding the built-in ones",
    )
    report = sub.add_parser(
        "report",
        help="merge the results.jsonl of several runs (shards) into one report",
        description="Merge the results.jsonl of several runs (shards of one matrix) into "
        "one report: summary.json, summary.md, index.html; exit 1 on a failed gate.",
    )
    report.add_argument(
        "sources", nargs="+", metavar="DIR", help="report directories (or results.jsonl files)"
    )
    report.add_argument("--out", required=True, metavar="DIR", help="where the reports go")
    report.add_argument(
        "--rootdir",
        default=".",
        metavar="DIR",
        help="the runs' rootdir: eval file paths in the records are relative to it "
        "(default: the current directory)",
    )
    report.add_argument(
        "--baseline",
        metavar="PATH",
        help="the report directory (or results.jsonl) every regression gate compares with",
    )
    _add_compare(sub)
    _add_plan(sub)
    _add_export(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-crafter-eval")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _add_compare(sub) -> None:
    from .report.compare import DEFAULT_METRICS, METRICS

    def models(text: str) -> tuple[str, str]:
        names = tuple(n.strip() for n in text.split(","))
        if len(names) != 2 or not all(names):
            raise argparse.ArgumentTypeError(f"expected BASE_MODEL,CANDIDATE_MODEL, got {text!r}")
        return names[0], names[1]

    def share(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0 < value < 0.5:
            raise argparse.ArgumentTypeError(f"expected a number between 0 and 0.5, got {text!r}")
        return value

    def drop(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not value >= 0:
            raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
        return value

    compare = sub.add_parser(
        "compare",
        help="compare two runs, or two models of one run, seed by seed",
        description="Pair the episodes of BASE and CAND by eval and seed and compare them: "
        "per metric the difference (CAND - BASE) with its 95%% interval and one-sided "
        "p-values (exact sign-flip test), per achievement McNemar's exact test. Exit 1 "
        "when a regression gate (--max-drop, or gate: regression: in CAND's eval files) "
        "fails.",
    )
    compare.add_argument(
        "base", metavar="BASE", help="report directories or results.jsonl files, comma-joined"
    )
    compare.add_argument(
        "cand",
        metavar="CAND",
        nargs="?",
        help="the same for the candidate (default with --models: BASE again)",
    )
    compare.add_argument(
        "--models",
        type=models,
        metavar="A,B",
        help="compare model A (of BASE) with model B (of CAND, or of BASE again)",
    )
    compare.add_argument(
        "--metric",
        action="append",
        choices=tuple(METRICS),
        metavar="M",
        help=f"a metric to compare (repeatable; the first is plotted and gated; default: "
        f"{', '.join(DEFAULT_METRICS)})",
    )
    compare.add_argument("--out", metavar="DIR", help="write compare.json, .md and .html here")
    compare.add_argument(
        "--max-drop",
        type=drop,
        metavar="D",
        help="a regression gate on the first metric for every eval: fail when CAND is "
        "shown lower than BASE by more than D",
    )
    compare.add_argument(
        "--alpha",
        type=share,
        default=0.025,
        help="the regression gate's one-sided level (default: %(default)s)",
    )
    compare.add_argument(
        "--allow-different-settings",
        action="store_true",
        help="compare episodes played with different settings (they are named)",
    )
    compare.add_argument(
        "--rootdir",
        default=".",
        metavar="DIR",
        help="the runs' rootdir, where CAND's eval files (and their regression gates) are "
        "(default: the current directory)",
    )


def _add_plan(sub) -> None:
    from .report.compare import METRICS

    def positive(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
        return value

    def share(text: str) -> float:
        value = positive(text)
        if not value < 1:
            raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
        return value

    plan = sub.add_parser(
        "plan",
        help="the seeds a decision needs, from pilot runs",
        description="From pilot runs (report directories or results.jsonl files): the seeds "
        "a paired comparison needs to detect a drop of D with the given power (paired "
        "spread when the pilot has two models, or with --baseline; unpaired otherwise), "
        "and for each absolute gate of the eval files how often it passes at n seeds.",
    )
    plan.add_argument("pilots", nargs="+", metavar="PILOT", help="report dirs or results.jsonl")
    plan.add_argument(
        "--drop", type=positive, default=3.0, help="the drop to detect (default: %(default)s)"
    )
    plan.add_argument(
        "--power", type=share, default=0.8, help="the power to reach (default: %(default)s)"
    )
    plan.add_argument(
        "--metric",
        choices=tuple(METRICS),
        default="progression",
        metavar="M",
        help="the metric of the drop (default: %(default)s)",
    )
    plan.add_argument(
        "--baseline", metavar="PATH", help="an earlier run to pair each model with (itself)"
    )
    plan.add_argument(
        "--rootdir",
        default=".",
        metavar="DIR",
        help="the runs' rootdir, where their eval files are (default: the current directory)",
    )


def plan(args) -> int:
    """`crafter-eval plan`: the seeds needed and the gates' chances, one line each."""
    from .report import merge
    from .report import plan as planning

    try:
        records = merge.load(args.pilots)[0]
        baseline = merge.load([args.baseline])[0] if args.baseline else None
    except merge.MergeError as exc:
        print(f"crafter-eval plan: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    if not records:
        print("crafter-eval plan: error: no records in " + ", ".join(args.pilots), file=sys.stderr)
        return USAGE_ERROR
    runs, notes = merge.gate_runs(args.rootdir, records)
    for note in notes:
        print(f"crafter-eval plan: warning: {note}", file=sys.stderr)
    result = planning.plan(
        records, runs, drop=args.drop, target=args.power, metric=args.metric, baseline=baseline
    )
    for line in planning.lines(result):
        print(line)
    return 0


def compare(args) -> int:
    """`crafter-eval compare`: the table per eval; 1 when a regression gate fails."""
    from .config import spec
    from .report import compare as comparing
    from .report import files, merge

    def fail(message: str) -> int:
        print(f"crafter-eval compare: error: {message}", file=sys.stderr)
        return USAGE_ERROR

    if args.cand is None and args.models is None:
        return fail("give BASE and CAND, or one run and --models A,B")
    sides = [args.base, args.cand or args.base]
    loaded = []
    for side in sides:
        try:
            records, _ = merge.load([s for s in side.split(",") if s])
        except merge.MergeError as exc:
            return fail(str(exc))
        if not records:
            return fail(f"no records in {side}")
        loaded.append(records)
    names = tuple(dict.fromkeys(args.metric or comparing.DEFAULT_METRICS))
    regressions: dict[tuple[str, str], object] = {}
    runs, notes = merge.gate_runs(args.rootdir, loaded[1])
    for note in notes:
        print(f"crafter-eval compare: warning: {note}", file=sys.stderr)
    for key, run in runs.items():
        if run.gate.regression is not None:
            regressions[key] = run.gate.regression
    if args.max_drop is not None:
        gate = spec.Regression(metric=names[0], max_drop=args.max_drop, alpha=args.alpha)
        regressions = {(r["eval"], r["model"]): gate for r in loaded[1]}
    labels = (sides[0], sides[1]) if args.cand else ("base", "candidate")
    try:
        comparison = comparing.compare(
            loaded[0],
            loaded[1],
            models=args.models,
            names=names,
            regressions=regressions,
            allow_different_settings=args.allow_different_settings,
            labels=labels,
        )
    except comparing.CompareError as exc:
        return fail(str(exc))
    for line in comparing.terminal_lines(comparison):
        print(line)
    if args.out:
        files.write_comparison(args.out, comparison)
        print(f"comparison: {args.out}/compare.json, compare.md, compare.html")
    failed = comparison["failed_gates"]
    if failed:
        print(f"crafter-eval compare: regression gates failed for {len(failed)} comparison(s)")
    return 1 if failed else 0


def _seed(text: str) -> int:
    if not text.isdigit() or int(text) >= 2**31:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 2**31-1, got {text!r}")
    return int(text)


def _step(text: str) -> int:
    if not text.isdigit() or int(text) > 10_000:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 10000, got {text!r}")
    return int(text)


def payload(args) -> int:
    """`crafter-eval payload`: the body on stdout, normalisation warnings on stderr."""
    import json
    import warnings
    from dataclasses import replace

    from .agent import episode
    from .config import profiles, spec
    from .wire import adapters
    from .wire.payload import redact

    def fail(code: int, message: str) -> int:
        print(f"crafter-eval payload: error: {message}", file=sys.stderr)
        return code

    try:
        spec.check_model_name(args.model, lambda msg: spec.SpecError("--model", None, "", msg))
        user = spec.load_profiles(args.profiles) if args.profiles else ()
        if args.eval:
            loaded = spec.load(args.eval)
        else:
            loaded = spec.EvalSpec(
                name="default",
                path="",
                seeds=(0,),
                runs=(),
                defaults=spec.Run(
                    model="",
                    steps=50,
                    observation=spec.Observation(),
                    request=spec.Request(),
                    expect=spec.Expect(),
                ),
            )
    except spec.SpecError as exc:
        return fail(USAGE_ERROR, str(exc))
    loaded = loaded.with_overrides(profiles=user, api=args.api)
    run = next((r for r in loaded.runs if r.model == args.model), None) or replace(
        loaded.defaults, model=args.model
    )
    if args.api:
        run = replace(run, request=replace(run.request, api=args.api))
    seed = args.seed if args.seed is not None else loaded.seeds[0]
    profile = profiles.for_run(run)
    try:
        profiles.check_capabilities(run, profile)
    except profiles.Unsupported as exc:
        return fail(CANNOT_SERVE, str(exc))
    from .wire.local import ModelError

    with warnings.catch_warnings():  # the notes are printed below, as plain lines
        warnings.simplefilter("ignore", profiles.CrafterEvalWarning)
        try:
            body = episode.request_at(
                run,
                seed,
                args.step,
                loaded.instructions,
                answer_with=args.answer_with,
                eval_name=loaded.name,
            )
        except ModelError as exc:
            return fail(USAGE_ERROR, f"--answer-with {args.answer_with}: {exc.message}")
        except episode.StepNotReached as exc:
            return fail(CANNOT_SERVE, str(exc))
    adapter = adapters.for_run(run, profile)
    prompt = episode.system_prompt(loaded.instructions, run.answer.format)
    notes = adapter.prepare(run, profile, prompt).notes
    for line in ([profile.assumed] if profile.assumed else []) + [str(n) for n in notes]:
        print(f"crafter-eval payload: warning: {line}", file=sys.stderr)
    print(json.dumps(redact(body, api=adapter.name) if args.redact else body, indent=2))
    return 0


def report(args) -> int:
    """`crafter-eval report`: the merged summary table; 1 on a failed gate."""
    from .report import files, merge
    from .report import summary as reports

    try:
        records, origin = merge.load(args.sources)
    except merge.MergeError as exc:
        print(f"crafter-eval report: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    if not records:
        print(
            "crafter-eval report: error: no records in " + ", ".join(args.sources), file=sys.stderr
        )
        return USAGE_ERROR
    runs, notes = merge.gate_runs(args.rootdir, records)
    for note in notes:
        print(f"crafter-eval report: warning: {note}", file=sys.stderr)
    baselines = merge.baselines(runs, args.baseline, args.rootdir)
    summary = reports.summarize(records, runs, baselines=baselines)
    merge.write(args.out, records, origin)
    files.write_reports(args.out, records, summary)
    for line in reports.terminal_lines(summary):
        print(line)
    failed = reports.gate_failure_lines(summary)
    if failed:
        print(f"crafter-eval gates failed for {len(summary['failed_gates'])} model(s)")
        print(reports.GATE_TABLE_NOTE)
        for line in failed:
            print(line)
    print(f"reports: {args.out} ({len(records)} episodes from {len(args.sources)} run(s))")
    return 1 if summary["failed_gates"] else 0


def _add_export(sub) -> None:
    def names(text: str) -> tuple[str, ...]:
        return tuple(n.strip() for n in text.split(",") if n.strip())

    def count(text: str) -> int:
        if not text.isdigit():
            raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
        return int(text)

    export = sub.add_parser(
        "export",
        help="turn --trace-dir traces into fine-tuning files",
        description="Turn the traces of one or more runs (pytest --trace-dir) into chat "
        "fine-tuning files: DIR/train.jsonl, DIR/val.jsonl and DIR/manifest.json. Every "
        "filter is off by default; steps without a valid tool call are always dropped.",
    )
    export.add_argument("trace_dirs", nargs="+", metavar="TRACE_DIR", help="a --trace-dir")
    export.add_argument("--out", required=True, metavar="DIR", help="where the files go")
    export.add_argument(
        "--format",
        choices=("openai", "hf", "rollouts"),
        default="openai",
        help="openai: chat fine-tuning JSONL, images inlined; hf: messages + images "
        "(PNG files under DIR/images/) for Hugging Face datasets / TRL; rollouts: one "
        "line per episode with per-step rewards, for RL trainers (default: openai)",
    )
    export.add_argument(
        "--include-test-seeds",
        action="store_true",
        help="also export episodes of an eval file's test seeds (seeds: {test: ...})",
    )
    export.add_argument(
        "--results",
        action="append",
        default=[],
        metavar="FILE",
        help="the runs' results.jsonl (repeatable): outcomes and fingerprints",
    )
    add = export.add_argument
    add("--evals", type=names, default=(), metavar="E[,E]", help="keep these evals (globs)")
    add("--models", type=names, default=(), metavar="M[,M]", help="keep these models (globs)")
    add(
        "--outcome",
        type=names,
        default=(),
        metavar="O[,O]",
        help="keep episodes with these outcomes, e.g. passed (needs --results)",
    )
    add(
        "--min-achievements",
        type=count,
        default=0,
        metavar="N",
        help="keep episodes with at least N distinct achievements (default 0)",
    )
    add(
        "--require",
        type=names,
        default=(),
        metavar="ACH[,ACH]",
        help="keep episodes that unlocked all of these",
    )
    add(
        "--min-reward",
        type=float,
        metavar="R",
        help="keep episodes whose reward (sum of the per-step rewards) is at least R",
    )
    add(
        "--only-new-achievement",
        action="store_true",
        help="keep only steps that unlocked an achievement (and --window K before)",
    )
    add("--window", type=count, default=0, metavar="K", help="steps before each (default 0)")
    add(
        "--drop-loops",
        type=count,
        default=0,
        metavar="N",
        help="drop a step whose frame and actions repeat the N steps before it (0: off)",
    )
    add("--dedupe", action="store_true", help="drop repeats of an observation + actions")
    add(
        "--val-fraction",
        type=float,
        default=0.1,
        metavar="F",
        help="share of episodes in val.jsonl, stratified by achievement count (default 0.1)",
    )
    add(
        "--split-seed",
        "--seed",  # its old name: payload's --seed is an episode's seed, this one is not
        dest="split_seed",
        type=_seed,
        default=0,
        metavar="S",
        help="seed of the random split, --max-examples and --shuffle (default 0)",
    )
    add("--max-examples", type=int, metavar="N", help="at most N examples in all")
    add("--shuffle", action="store_true", help="shuffle each file (default: episode order)")
    add(
        "--calls",
        default="native",
        metavar="HOW",
        help="how each example's answer is written: native (tool_calls; a call written "
        "as text becomes the call it was parsed to), hermes (<tool_call> tags, for "
        "Qwen2.5-VL), llama3_json ({name, parameters}) or as-written (default: native)",
    )
    add(
        "--system-as-user",
        action="store_true",
        help="send the instructions as the first user message (Llama 3.2 Vision's chat "
        "template refuses a system message next to images)",
    )
    add(
        "--keep-invalid-history",
        action="store_true",
        help="hf: keep examples whose history holds an invalid answer (dropped by "
        "default: hf has no per-message weight, a trainer would learn them)",
    )


def export(args) -> int:
    """`crafter-eval export`: writes the files, prints one summary line (and one line
    per reward or results mismatch) on stderr."""
    from .data import export as exporting

    options = exporting.Options(
        format=args.format,
        include_test_seeds=args.include_test_seeds,
        evals=args.evals,
        models=args.models,
        outcome=args.outcome,
        min_achievements=args.min_achievements,
        require=args.require,
        min_reward=args.min_reward,
        only_new_achievement=args.only_new_achievement,
        window=args.window,
        drop_loops=args.drop_loops,
        dedupe=args.dedupe,
        val_fraction=args.val_fraction,
        seed=args.split_seed,
        max_examples=args.max_examples,
        shuffle=args.shuffle,
        calls=args.calls,
        system_as_user=args.system_as_user,
        keep_invalid_history=args.keep_invalid_history,
    )
    problems = options.problems(bool(args.results))
    if problems:
        print(f"crafter-eval export: error: {problems[0]}", file=sys.stderr)
        return USAGE_ERROR
    try:
        manifest = exporting.export(args.trace_dirs, args.out, options, args.results)
    except (exporting.ExportError, OSError) as exc:
        print(f"crafter-eval export: error: {exc}", file=sys.stderr)
        return CANNOT_SERVE
    for mismatch in manifest["mismatches"]:
        where = Path(args.trace_dirs[mismatch["source"]], mismatch["trace"]).as_posix()
        for problem in mismatch["problems"]:
            print(f"crafter-eval export: warning: {where}: {problem}", file=sys.stderr)
    for warning in manifest["warnings"]:
        print(f"crafter-eval export: warning: {warning}", file=sys.stderr)
    counts = manifest["counts"]
    print(
        f"crafter-eval export: {counts['episodes']['kept']} of {counts['episodes']['found']} "
        f"episodes, {counts['examples']['train']} train + {counts['examples']['val']} val "
        f"examples -> {args.out}",
        file=sys.stderr,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        from .wire.local import ModelError, serve

        try:
            serve(args.model, args.host, args.port)
        except KeyboardInterrupt:
            return 0
        except (ModelError, ValueError, OSError) as exc:
            print(f"crafter-eval serve: error: {exc}", file=sys.stderr)
            return USAGE_ERROR
    elif args.command == "payload":
        return payload(args)
    elif args.command == "report":
        return report(args)
    elif args.command == "compare":
        return compare(args)
    elif args.command == "plan":
        return plan(args)
    elif args.command == "export":
        return export(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
