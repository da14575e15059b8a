"""The package's public API (`__all__`): every name resolves, importing the package stays
cheap, and the docstring's plain-script example plays an episode without pytest."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest_crafter_eval


def test_every_public_name_resolves_and_is_listed():
    assert pytest_crafter_eval.__version__[0].isdigit()
    for name in pytest_crafter_eval.__all__:
        assert getattr(pytest_crafter_eval, name) is not None, name
    assert set(pytest_crafter_eval.__all__) <= set(dir(pytest_crafter_eval))


def test_an_unknown_name_is_an_attribute_error():
    try:
        pytest_crafter_eval.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_the_package_ships_its_type_information():
    assert (Path(pytest_crafter_eval.__file__).parent / "py.typed").is_file()


def test_importing_the_package_imports_neither_the_sdk_nor_crafter_nor_gymnasium():
    code = (
        "import sys, pytest_crafter_eval; "
        "print(*(m in sys.modules for m in ('openai', 'crafter', 'gymnasium')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_the_documented_plain_script_plays_an_episode(tmp_path):
    (tmp_path / "smoke.yaml").write_text("models: [local/heuristic]\nseeds: 1\nsteps: 3\n")
    script = textwrap.dedent(
        """
        from pytest_crafter_eval import Connections, load, run_episode

        spec = load("smoke.yaml")
        run = spec.runs[0]
        with Connections() as connections:
            result = run_episode(run, 0, connections.for_model(run.model), eval_name=spec.name)
        print(result.steps, result.tool_calls, result.end, "pytest" in __import__("sys").modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "3", "steps", "False"]


def test_all_lists_exactly_the_lazy_exports():
    assert set(pytest_crafter_eval.__all__) == {"__version__", *pytest_crafter_eval._EXPORTS}
