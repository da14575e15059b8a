"""Stage: cli. The `crafter-eval` command.

    crafter-eval serve --model local/heuristic --port 8000
        Serve a built-in model over the OpenAI chat-completions protocol on 127.0.0.1.

Exit codes follow pytest's: 0 success, 2 a request that cannot be served, 4 usage error.
"""
from __future__ import annotations

import argparse
import sys

USAGE_ERROR = 4


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 4, like pytest's usage errors
        self.exit(USAGE_ERROR, f"crafter-eval: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="crafter-eval", description="Crafter evals for vision-language agents.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    serve = sub.add_parser("serve", help="serve a built-in local model over loopback HTTP")
    serve.add_argument("--model", default="local/heuristic", help="a local/* model (default: %(default)s)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    return parser


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
