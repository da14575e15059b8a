"""cli: `crafter-eval serve` serves a built-in model to other tools over loopback HTTP."""

import socket
import subprocess
import sys
import time

import openai
import pytest

from pytest_crafter_eval.agent.env import CrafterEnv
from pytest_crafter_eval.wire.adapters.chat import parse_message as parse_tool_calls
from pytest_crafter_eval.wire.tools import TOOL


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served():
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest_crafter_eval.cli",
            "serve",
            "--model",
            "local/heuristic",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    proc.terminate()
    proc.wait(timeout=10)


def test_serve_answers_any_model_name_with_the_served_model(served):
    env = CrafterEnv(seed=1)
    env.reset()
    client = openai.OpenAI(base_url=served, api_key="unused", max_retries=0)
    response = client.chat.completions.create(
        model="my-teacher",
        tools=[TOOL],
        messages=[{"role": "user", "content": [{"type": "text", "text": env.text()}]}],
    )
    assert response.model == "my-teacher"
    parsed = parse_tool_calls(response.choices[0].message.model_dump())
    assert parsed.ok and 1 <= len(parsed.actions) <= 8


def test_serve_rejects_an_unknown_model_with_usage_exit_code():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_crafter_eval.cli",
            "serve",
            "--model",
            "local/nope",
            "--port",
            str(_free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 4
    assert "local/nope" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bad_arguments_exit_4_in_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_crafter_eval.cli", "serve", "--port", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 4
    assert proc.stderr.strip().startswith("crafter-eval: error:")
    assert len(proc.stderr.strip().splitlines()) == 1
