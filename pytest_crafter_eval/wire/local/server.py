"""Stage: wire (local models). Loopback OpenAI-compatible server; touches only 127.0.0.1.

    with LocalServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="local")
        client.chat.completions.create(model="local/random", messages=[...], tools=[TOOL])

Endpoints: POST /v1/chat/completions, POST /v1/responses (every wire adapter's endpoint:
the adapter translates the request into chat form for the local models and their answer
back), GET /v1/models, GET /v1/models/{id} (also without the /v1 prefix). HTTP/1.1 keep-alive, so the SDK's connection pool reuses connections.
Errors are OpenAI-style JSON bodies. Nothing is printed unless `verbose=True`; with
`log=True` every chat request is appended to `.requests` as (time.monotonic(), model, status)
and to `.log` as a `Logged` entry that also names the request (a hash of its body) and
its attempt (how many identical requests came before it) and the client's address. A
dropped connection is logged with status 0.

Usage reports cached tokens as OpenAI does: per requested model and `prompt_cache_key`,
the longest prefix the prompt shares with an earlier one, from 1,024 tokens in steps of
128 (`prompt_cache`), in `usage.prompt_tokens_details.cached_tokens` (chat) and
`usage.input_tokens_details.cached_tokens` (Responses).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from .. import adapters
from .models import DropConnection, ModelError, RawBody, complete, list_models, parse_model
from .prompt_cache import PromptCache

MAX_REMEMBERED = 100_000  # distinct request bodies counted for attempts, then forgotten


class Logged(NamedTuple):
    time: float  # time.monotonic() when the answer was sent
    model: str
    status: int  # 0: the connection was dropped unanswered
    key: str  # sha256 of the request body, first 16 hex digits
    attempt: int  # identical requests seen before this one
    client: str = ""  # the client's "host:port": one keep-alive connection per SDK client


class LocalServer:
    """A ThreadingHTTPServer in a daemon thread, answering with the local models.

    `model`, if given, answers requests whose `model` is not a `local/...` name (so any
    OpenAI client can point at it); `local/...` names are always served as named.
    `responder`, if given, answers every request instead of the local models: a callable
    `(body, endpoint) -> (status, JSON body or raw text)`, such as `cassette.Cassette.respond`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        model: str | None = None,
        responder: Callable[[Any, str], tuple[int, Any]] | None = None,
        log: bool = False,
        verbose: bool = False,
    ):
        if model is not None:
            parse_model(model)  # fail now, not on the first request
        self.host, self.model, self.verbose = host, model, verbose
        self.responder = responder
        self.requests: list[tuple[float, str, int]] | None = [] if log else None
        self.log: list[Logged] | None = [] if log else None
        self._seen: dict[str, int] = {}
        self.cache = PromptCache()  # what `usage.prompt_tokens_details.cached_tokens` reports
        self._seen_lock = threading.Lock()
        self.connections = 0  # TCP connections accepted so far
        self._port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("LocalServer is not started")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> LocalServer:
        if self._httpd is None:
            self._httpd = _HTTPServer((self.host, self._port), _Handler)
            self._httpd.owner = self
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                args=(0.05,),
                name=f"LocalServer:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        for conn in list(httpd.open_sockets):  # idle keep-alive connections
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join()

    def _attempt(self, key: str) -> int:
        """How many times this exact request came before; counts this one."""
        with self._seen_lock:
            if len(self._seen) >= MAX_REMEMBERED:
                self._seen.clear()
            attempt = self._seen.get(key, 0)
            self._seen[key] = attempt + 1
        return attempt

    def _log(self, model: str, status: int, key: str, attempt: int, client: str = "") -> None:
        if self.requests is not None and self.log is not None:
            now = time.monotonic()
            self.requests.append((now, model, status))
            self.log.append(Logged(now, model, status, key, attempt, client))

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()


def serve(model: str = "local/heuristic", host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until interrupted; requests naming a non-local model are answered by `model`."""
    server = LocalServer(host, port, model=model, verbose=True).start()
    print(f"Serving {model} at {server.base_url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: 128 episodes opening their connections at
    # once overflowed it, and each dropped SYN cost its call a 1 s retransmit
    request_queue_size = 1024
    owner: LocalServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn, a reverse DNS lookup; skip it.
        socketserver.TCPServer.server_bind(self)
        host, self.server_port = self.server_address[:2]
        self.server_name = str(host)
        self.open_sockets: set[socket.socket] = set()

    def process_request(self, request, client_address) -> None:  # runs in the serving thread
        self.owner.connections += 1
        self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        """A client that went away mid-answer (an interrupted run, a request timeout) is
        no error of the server's: no traceback. Anything else is printed as usual."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "crafter-eval-local"
    sys_version = ""
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.owner.verbose:
            super().log_message(format, *args)

    def _path(self) -> str:
        path = self.path.split("?", 1)[0].rstrip("/")
        return path[3:] if path.startswith("/v1/") else path

    def _send(
        self, status: int, body: dict[str, Any] | str, headers: dict[str, str] | None = None
    ) -> None:
        """Send a JSON body, or a str as it is (not JSON: a broken gateway, a recorded body)."""
        if isinstance(body, str):
            data, content_type = body.encode(), "text/html; charset=utf-8"
        else:
            data, content_type = (
                json.dumps(body, separators=(",", ":")).encode(),
                "application/json",
            )
        head = (
            f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(data)}\r\n"
            f"Server: {self.server_version}\r\n"
        )
        for name, value in (headers or {}).items():
            head += f"{name}: {value}\r\n"
        if self.close_connection:
            head += "Connection: close\r\n"
        try:
            self.wfile.write(head.encode() + b"\r\n" + data)  # one write: no Nagle stalls
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timed out)
            self.close_connection = True
            return
        self.log_request(status, len(data))

    def _error(self, status: int, message: str, type: str = "invalid_request_error") -> None:
        self._send(status, ModelError(status, message, type).body())

    def do_GET(self) -> None:
        path = self._path()
        if path == "/models":
            self._send(200, {"object": "list", "data": [_model_card(m) for m in list_models()]})
        elif path.startswith("/models/"):
            name = path[len("/models/") :]
            try:
                parse_model(name)
            except ModelError as error:
                self._send(error.status, error.body())
            else:
                self._send(200, _model_card(name))
        else:
            self._error(404, f"Unknown path {self.command} {self.path}.")

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            return self._error(411, "A Content-Length header is required.")
        raw = self.rfile.read(int(length))
        endpoint = self._path()
        adapter = adapters.by_endpoint(endpoint) if endpoint else None
        if adapter is None or endpoint != adapter.endpoint:
            return self._error(404, f"Unknown path {self.command} {self.path}.")
        owner = self.server.owner
        key = hashlib.sha256(raw).hexdigest()[:16]
        attempt = owner._attempt(key)
        peer = "{}:{}".format(*self.client_address[:2])
        model, headers = "?", None
        response: dict[str, Any] | str
        responder = owner.responder
        if responder is not None:
            try:
                body = json.loads(raw)
                model = str(body.get("model")) if isinstance(body, dict) else "?"
                status, response = responder(body, endpoint)
            except Exception as error:  # a bad request or a broken cassette: say so, keep serving
                status, response = 400, ModelError(400, f"{type(error).__name__}: {error}").body()
            owner._log(model, status, key, attempt, peer)
            # A replayed answer is the same on every attempt: tell the client not to retry.
            return self._send(
                status, response, {"x-should-retry": "false"} if status >= 400 else None
            )
        try:
            try:
                body = json.loads(raw)
            except ValueError as error:
                raise ModelError(400, f"The request body is not valid JSON: {error}.") from None
            request = body
            if isinstance(body, dict):
                model = str(body.get("model"))
                if owner.model and not model.startswith("local/"):
                    body = {**body, "model": owner.model}
            # The local models speak chat completions; the adapter translates other APIs.
            if isinstance(body, dict):
                form = adapter.chat_form(body)
                body = {**form["params"], "messages": form["messages"], "tools": form["tools"]}
            scope = f"{model}\0{body.get('prompt_cache_key') if isinstance(body, dict) else ''}"
            answer = complete(body, attempt, owner.cache, scope)
            answer["model"] = model
            status, response = 200, adapter.from_chat_response(answer, request)
        except ModelError as error:
            status, response, headers = error.status, error.body(), error.headers
        except RawBody as raw_body:
            status, response = raw_body.status, raw_body.text
        except DropConnection:
            owner._log(model, 0, key, attempt, peer)
            self.close_connection = True  # the handler returns; the server closes the socket
            return
        except Exception as error:  # a model bug: report it to the client, keep serving
            status, response = (
                500,
                ModelError(500, f"{type(error).__name__}: {error}", "server_error").body(),
            )
        owner._log(model, status, key, attempt, peer)
        self._send(status, response, headers)

    def do_PUT(self) -> None:
        self.close_connection = True  # the body, if any, is left unread
        self._error(405, f"Method {self.command} is not allowed.")

    do_DELETE = do_PATCH = do_PUT


def _model_card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "local"}
