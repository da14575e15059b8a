"""The package's stages and which may import which (README "Layout").

Every module belongs to one stage folder; imports go one way. The table below is the
whole rule: a stage imports itself and the stages listed, nothing else. Imports inside
functions count (a lazy import is still an import); imports under `if TYPE_CHECKING:`
do not (they only name types). No two modules import each other, directly or around
a circle.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import pytest_crafter_eval

PACKAGE = "pytest_crafter_eval"
ROOT = Path(pytest_crafter_eval.__file__).parent

# stage -> the stages it may import (besides itself). "" is the package root
# (`__init__`, lazy public names) and `cli`: the top, which may import everything.
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "report": {"config"},
    "wire": {"config"},
    "agent": {"config", "wire", "report"},
    "data": {"config", "wire", "agent"},
    "run": {"config", "wire", "agent", "report", "data"},
    "rl": {"config", "wire", "agent"},  # the optional extra [rl]: nothing imports it
    "": {"config", "wire", "agent", "report", "data", "run"},
}
TOP_LEVEL = {PACKAGE, f"{PACKAGE}.cli"}  # the root's own modules


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join((PACKAGE, *parts))] = path
    return found


MODULES = _modules()


def _stage(module: str) -> str:
    parts = module.split(".")
    return "" if module in TOP_LEVEL else parts[1]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> list[ast.ImportFrom | ast.Import]:
    found: list[ast.ImportFrom | ast.Import] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append(child)
            visit(child)

    visit(tree)
    return found


def _targets(module: str, path: Path) -> set[str]:
    """The project modules `module` imports at run time."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    targets = set()
    for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
            targets |= {n for n in names if n in MODULES}
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            base_name = ".".join([*base, *([node.module] if node.module else [])])
        else:
            base_name = node.module or ""
        if not base_name.startswith(PACKAGE):
            continue
        for alias in node.names:
            sub = f"{base_name}.{alias.name}"
            targets.add(sub if sub in MODULES else base_name)
    targets.discard(module)
    return targets


GRAPH = {module: _targets(module, path) for module, path in MODULES.items()}


def test_every_module_sits_in_a_stage_folder():
    loose = [m for m in MODULES if _stage(m) not in ALLOWED]
    assert not loose, f"modules outside the stage folders: {loose}"
    assert {_stage(m) for m in MODULES} == set(ALLOWED)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports(module):
    importlib.import_module(module)


def test_stages_import_only_what_the_table_allows():
    wrong = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in sorted(targets)
        if _stage(target) != _stage(module) and _stage(target) not in ALLOWED[_stage(module)]
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_circles():
    # Tarjan's strongly connected components: a component of two or more is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            connect(node)
    assert not circles, f"import circles: {circles}"


def test_the_table_has_no_circle_between_stages():
    def reaches(stage: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(
            s == goal or (s not in seen and reaches(s, goal, seen | {s})) for s in ALLOWED[stage]
        )

    assert not [stage for stage in ALLOWED if reaches(stage, stage)]


def test_the_checks_see_a_wrong_import(tmp_path):
    """The rule catches what it is for: an upward import, lazy or not, and a circle."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ..run import plugin\n"
        "def f():\n    from ..agent import episode\n    from . import spec\n"
    )
    assert _targets(f"{PACKAGE}.config.bad", bad) == {
        f"{PACKAGE}.agent.episode",
        f"{PACKAGE}.config.spec",
    }


def test_stage_packages_import_light(tmp_path):
    """Importing the package or any stage folder loads neither the SDK nor crafter (nor
    gymnasium); importing rl (which registers its Gymnasium env) loads neither either."""
    import subprocess
    import sys

    # rl registers its Gymnasium env on import: gymnasium (and so numpy) is its weight
    stages = [f"{PACKAGE}.{stage}" for stage in ALLOWED if stage and stage != "rl"]
    code = (
        "import sys\n"
        f"for name in {[PACKAGE, *stages]!r}:\n"
        "    __import__(name)\n"
        "heavy = [m for m in ('openai', 'crafter', 'numpy', 'PIL', 'gymnasium') if m in sys.modules]\n"
        "print(heavy)\n"
        f"__import__('{PACKAGE}.rl')\n"
        "print([m for m in ('openai', 'crafter', 'PIL') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "[]"], out.stdout + out.stderr
