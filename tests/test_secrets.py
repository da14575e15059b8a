"""Secrets: a run made with a sentinel API key (and sentinel URL credentials) writes neither
anywhere: cassettes, payload snapshots, reports, traces, junitxml, log files, output. The API on
loopback answers one model and, like the real API, echoes the credentials it got in a 401
for another; the run goes through real pytest, xdist, the SDK and HTTP."""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pytest_crafter_eval.wire.local.models import complete

KEY = "sk-SENTINEL-7f3a9c2e5b1d4f60a8"
PASSWORD = "PW-SENTINEL-41c2e9"
LEAKS = [b"SENTINEL", b"SENTI", b"7f3a9c2e", base64.b64encode(f"user:{PASSWORD}".encode())]
EVAL = """\
models:
  - gpt-4o-mini-2024-07-18: {expect: {min_achievements: 0}}
  - gpt-4.1-nano
  - local/random: {expect: {min_achievements: 0}}
seeds: 1
steps: 2
"""


class _API(BaseHTTPRequestHandler):
    """gpt-4o-mini is answered by local/heuristic; any other model gets the 401 the real API
    gives to a wrong key, with the credentials in its message."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        auth = self.headers.get("Authorization", "")
        self.server.seen.append(auth)
        if body["model"].startswith("gpt-4o-mini"):
            status, answer = 200, complete({**body, "model": "local/heuristic"})
        else:
            scheme, _, token = auth.partition(" ")
            if scheme == "Basic":
                token = base64.b64decode(token).decode()
            status, answer = (
                401,
                {
                    "error": {
                        "message": f"Incorrect API key provided: {token}. You can find your API key at "
                        "https://platform.openai.com/account/api-keys.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
            )
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _API)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def scan(root, *texts) -> list[str]:
    """Every file under `root` (and each text) that holds a piece of a secret."""
    found = [
        f"{path.relative_to(root)}: {leak!r}"
        for path in sorted(root.rglob("*"))
        if path.is_file()
        for leak in LEAKS
        if leak in path.read_bytes()
    ]
    return found + [
        f"output: {leak!r}" for text in texts for leak in LEAKS if leak in text.encode()
    ]


@pytest.mark.slow
@pytest.mark.parametrize("credentials", ["key", "key and url"])
def test_sentinel_secrets_are_written_nowhere(pytester, monkeypatch, api, credentials):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_LOG", "debug")  # the SDK's own debug logging, to stderr
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "step_summary.md"))
    pytester.makefile(".yaml", **{"evals/secrets": EVAL})
    host = f"127.0.0.1:{api.server_address[1]}"
    url = f"http://user:{PASSWORD}@{host}/v1" if "url" in credentials else f"http://{host}/v1"
    result = pytester.runpytest_subprocess(
        "evals",
        "-n",
        "2",
        "-rA",
        "-v",
        "--base-url",
        url,
        "--record",
        "cassette",
        "--snapshot-update",
        "--junitxml",
        "junit.xml",
        "-o",
        "junit_logging=all",
        "--log-level",
        "DEBUG",
        "--log-file",
        "run.log",
        "--log-file-level",
        "DEBUG",
        "--report-dir",
        "reports",
        "--trace-dir",
        "traces",
    )
    # 3 payload snapshots written; 2 episodes pass; gpt-4.1-nano errors with HTTP 401
    result.assert_outcomes(passed=5, errors=1)
    assert len(list((pytester.path / "evals" / "__snapshots__").rglob("*.ambr"))) == 1
    # The secrets were really used, and the 401 message (which echoed them) was reported.
    assert any(
        KEY in seen or PASSWORD in base64.b64decode(seen[6:] or b"").decode(errors="replace")
        for seen in api.seen
        if seen
    )
    result.stdout.fnmatch_lines(
        ["*gpt-4.1-nano seed 0: step 0: HTTP 401: Incorrect API key provided: *"]
    )
    assert len(list((pytester.path / "cassette").glob("gpt-4.1-nano-*.json"))) == 1
    assert len(list((pytester.path / "traces").rglob("steps.jsonl"))) >= 2
    reports = {p.name for p in (pytester.path / "reports").iterdir()}
    assert {"results.jsonl", "summary.json", "summary.md", "index.html"} <= reports
    assert (pytester.path / "step_summary.md").exists()
    assert "Incorrect API key provided: " in (pytester.path / "reports/results.jsonl").read_text()
    assert "HTTP Request: POST" in (pytester.path / "run.log").read_text()  # httpx2 logged its URLs
    assert scan(pytester.path, result.stdout.str(), result.stderr.str()) == []
