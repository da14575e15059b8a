"""Stage: config (wire API names). The registered wire APIs: name -> the module that
defines its `ADAPTER`.

The config stage validates API names (`request.api`, `--api`, a profile's `api`)
against this registry without importing any adapter; `wire.adapters` imports the module
of a name on first use. A new wire API is one module plus one line here (or a
`REGISTRY[name] = "package.module"` before the run starts).
"""

from __future__ import annotations

# name -> module defining ADAPTER: the registration lines
REGISTRY: dict[str, str] = {
    "chat": "pytest_crafter_eval.wire.adapters.chat",
    "responses": "pytest_crafter_eval.wire.adapters.responses",
}
DEFAULT = "chat"


def names() -> tuple[str, ...]:
    """The registered API names, the default first."""
    return tuple(REGISTRY)
