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
    "load": "config.spec",
    "EvalSpec": "config.spec",
    "Run": "config.spec",
    "SpecError": "config.spec",
    # playing episodes
    "run_episode": "agent.episode",
    "check": "agent.episode",
    "EpisodeResult": "agent.episode",
    "Connections": "wire.client",
    "CrafterEnv": "agent.env",
    "LocalServer": "wire.local.server",
    # metrics and reports
    "success_rates": "report.metrics",
    "crafter_score": "report.metrics",
    "progression": "report.metrics",
    "render_html": "report.html",
    # traces
    "sft_examples": "data.trace",
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
    from .agent.env import CrafterEnv
    from .agent.episode import EpisodeResult, check, run_episode
    from .config.spec import EvalSpec, Run, SpecError, load
    from .data.trace import sft_examples
    from .report.html import render_html
    from .report.metrics import crafter_score, progression, success_rates
    from .wire.client import Connections
    from .wire.local.server import LocalServer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
