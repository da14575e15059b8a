"""Stage: cli. The `crafter-eval` command.

    crafter-eval serve --model local/heuristic --port 8000
        Serve a built-in model over the OpenAI chat-completions protocol on 127.0.0.1.
    crafter-eval payload --model gpt-5-nano [--eval evals/smoke.yaml] [--seed 0] [--redact]
        Print the JSON body of an episode's first request to that model; no network.

Exit codes follow pytest's: 0 success, 2 a request that cannot be served, 4 usage error.
"""

from __future__ import annotations

import argparse
import sys

USAGE_ERROR = 4
CANNOT_SERVE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 4, like pytest's usage errors
        self.exit(USAGE_ERROR, f"crafter-eval: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="crafter-eval", description="Crafter evals for vision-language agents.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    serve = sub.add_parser("serve", help="serve a built-in local model over loopback HTTP")
    serve.add_argument(
        "--model", default="local/heuristic", help="a local/* model (default: %(default)s)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    payload = sub.add_parser("payload", help="print the JSON body of an episode's first request")
    payload.add_argument("--model", required=True, help="the model to build the request for")
    payload.add_argument(
        "--eval",
        metavar="FILE",
        help="eval file whose settings to use (default: the built-in defaults)",
    )
    payload.add_argument(
        "--seed", type=_seed, help="the episode's seed (default: the eval's first)"
    )
    payload.add_argument(
        "--redact",
        action="store_true",
        help="replace image data with its size and a digest of its pixels",
    )
    payload.add_argument(
        "--profiles",
        metavar="FILE",
        help="YAML file of model profiles overriding the built-in ones",
    )
    return parser


def _seed(text: str) -> int:
    if not text.isdigit() or int(text) >= 2**31:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 2**31-1, got {text!r}")
    return int(text)


def payload(args) -> int:
    """`crafter-eval payload`: the body on stdout, normalisation warnings on stderr."""
    import json
    import warnings
    from dataclasses import replace

    from . import episode, profiles, spec
    from .payload import redact

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
    loaded = loaded.with_overrides(profiles=user)
    run = next((r for r in loaded.runs if r.model == args.model), None) or replace(
        loaded.defaults, model=args.model
    )
    seed = args.seed if args.seed is not None else loaded.seeds[0]
    profile = profiles.for_run(run)
    try:
        profiles.check_capabilities(run, profile)
    except profiles.Unsupported as exc:
        return fail(CANNOT_SERVE, str(exc))
    with warnings.catch_warnings():  # the notes are printed below, as plain lines
        warnings.simplefilter("ignore", profiles.CrafterEvalWarning)
        body = episode.first_request(run, seed, loaded.instructions)
    _, notes = profiles.normalise(run, profile, body["messages"])
    for line in ([profile.assumed] if profile.assumed else []) + [str(n) for n in notes]:
        print(f"crafter-eval payload: warning: {line}", file=sys.stderr)
    print(json.dumps(redact(body) if args.redact else body, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        from .local import ModelError, serve

        try:
            serve(args.model, args.host, args.port)
        except KeyboardInterrupt:
            return 0
        except (ModelError, ValueError, OSError) as exc:
            print(f"crafter-eval serve: error: {exc}", file=sys.stderr)
            return USAGE_ERROR
    elif args.command == "payload":
        return payload(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
