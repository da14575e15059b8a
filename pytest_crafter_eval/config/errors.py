"""Stage: config (errors). The one error of a bad eval or profiles file, and how its
message names a YAML value. Imports nothing of the project.

    raise SpecError("evals/smoke.yaml", 7, "models[2]", "duplicate model 'local/random'")
    # evals/smoke.yaml:7: models[2]: duplicate model 'local/random'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["SpecError", "type_name"]


class SpecError(ValueError):
    """A problem in an eval file, reported as `file:line: key: message`."""

    def __init__(self, path: str | Path, line: int | None, key: str, message: str):
        self.path, self.line, self.key, self.message = str(path), line, key, message
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


def type_name(value: Any) -> str:
    """How an error message names the kind of a YAML value."""
    if value is None:
        return "nothing (null)"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: f"the string {value!r}",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)
