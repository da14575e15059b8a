"""pytest-crafter-eval: evaluate vision-language agents on Crafter as pytest tests.

The pytest plugin is `pytest_crafter_eval.plugin` (registered through the `pytest11`
entry point). The names below are the public Python API, for use without pytest:

    from pytest_crafter_eval import Connections, load, run_episode

    spec = load("evals/smoke.yaml")
    run = spec.runs[0]
    with Connections() as connections:  # the built-in local models need no key
        result = run_episode(run, 0, connections.for_model(run.model), eval_name=spec.name)

Each name is imported on first use, so that importing the package (as pytest does for
the plugin) stays cheap: the openai SDK alone takes about 0.5 s to import.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("pytest-crafter-eval")
except PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0.0.0+unknown"

# public name -> the module that defines it
_EXPORTS = {
    # eval files
    "load": "spec",
    "EvalSpec": "spec",
    "Run": "spec",
    "SpecError": "spec",
    # playing episodes
    "run_episode": "episode",
    "check": "episode",
    "EpisodeResult": "episode",
    "Connections": "client",
    "CrafterEnv": "env",
    "LocalServer": "local.server",
    # metrics and reports
    "success_rates": "metrics",
    "crafter_score": "metrics",
    "progression": "metrics",
    "render_html": "html_report",
    # traces
    "sft_examples": "trace",
}

__all__ = [
    "Connections",
    "CrafterEnv",
    "EpisodeResult",
    "EvalSpec",
    "LocalServer",
    "Run",
    "SpecError",
    "__version__",
    "check",
    "crafter_score",
    "load",
    "progression",
    "render_html",
    "run_episode",
    "sft_examples",
    "success_rates",
]

if TYPE_CHECKING:
    from .client import Connections
    from .env import CrafterEnv
    from .episode import EpisodeResult, check, run_episode
    from .html_report import render_html
    from .local.server import LocalServer
    from .metrics import crafter_score, progression, success_rates
    from .spec import EvalSpec, Run, SpecError, load
    from .trace import sft_examples


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
