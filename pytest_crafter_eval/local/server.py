"""Stage: local models. Loopback OpenAI-compatible server; touches only 127.0.0.1.

    with LocalServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="local")
        client.chat.completions.create(model="local/random", messages=[...], tools=[TOOL])

Endpoints: POST /v1/chat/completions, GET /v1/models, GET /v1/models/{id} (also without
the /v1 prefix). HTTP/1.1 keep-alive, so the SDK's connection pool reuses connections.
Errors are OpenAI-style JSON bodies. Nothing is printed unless `verbose=True`; with
`log=True` every chat request is appended to `.requests` as (time.monotonic(), model, status).
"""
from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from .models import ModelError, complete, list_models, parse_model


class LocalServer:
    """A ThreadingHTTPServer in a daemon thread, answering with the local models.

    `model`, if given, answers requests whose `model` is not a `local/...` name (so any
    OpenAI client can point at it); `local/...` names are always served as named.
    `responder`, if given, answers every chat request instead of the local models: a
    callable `body -> (status, JSON body or raw text)`, such as `cassette.Cassette.respond`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, model: str | None = None,
                 responder: Callable[[Any], tuple[int, Any]] | None = None,
                 log: bool = False, verbose: bool = False):
        if model is not None:
            parse_model(model)  # fail now, not on the first request
        self.host, self.model, self.verbose = host, model, verbose
        self.responder = responder
        self.requests: list[tuple[float, str, int]] | None = [] if log else None
        self.connections = 0          # TCP connections accepted so far
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

    def start(self) -> "LocalServer":
        if self._httpd is None:
            self._httpd = _HTTPServer((self.host, self._port), _Handler)
            self._httpd.owner = self
            self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                            name=f"LocalServer:{self.port}", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        for conn in list(httpd.open_sockets):  # idle keep-alive connections
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> "LocalServer":
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
    owner: LocalServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn, a reverse DNS lookup; skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
        self.open_sockets: set[socket.socket] = set()

    def process_request(self, request, client_address) -> None:  # runs in the serving thread
        self.owner.connections += 1
        self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        self.open_sockets.discard(request)
        super().shutdown_request(request)


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

    def _send(self, status: int, body: dict[str, Any] | str, extra: str = "") -> None:
        """Send a JSON body, or a str as it is (a recorded body that was not JSON)."""
        data = body.encode() if isinstance(body, str) else json.dumps(body, separators=(",", ":")).encode()
        head = (f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                f"Server: {self.server_version}\r\n{extra}")
        if self.close_connection:
            head += "Connection: close\r\n"
        self.wfile.write(head.encode() + b"\r\n" + data)  # one write: no Nagle stalls
        self.log_request(status, len(data))

    def _error(self, status: int, message: str, type: str = "invalid_request_error") -> None:
        self._send(status, ModelError(status, message, type).body())

    def do_GET(self) -> None:
        path = self._path()
        if path == "/models":
            self._send(200, {"object": "list", "data": [_model_card(m) for m in list_models()]})
        elif path.startswith("/models/"):
            name = path[len("/models/"):]
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
        if self._path() != "/chat/completions":
            return self._error(404, f"Unknown path {self.command} {self.path}.")
        model = "?"
        responder = self.server.owner.responder
        if responder is not None:
            try:
                body = json.loads(raw)
                model = str(body.get("model")) if isinstance(body, dict) else "?"
                status, response = responder(body)
            except Exception as error:  # a bad request or a broken cassette: say so, keep serving
                status, response = 400, ModelError(400, f"{type(error).__name__}: {error}").body()
            if self.server.owner.requests is not None:
                self.server.owner.requests.append((time.monotonic(), model, status))
            # A replayed answer is the same on every attempt: tell the SDK not to retry.
            return self._send(status, response, "x-should-retry: false\r\n" if status >= 400 else "")
        try:
            try:
                body = json.loads(raw)
            except ValueError as error:
                raise ModelError(400, f"The request body is not valid JSON: {error}.") from None
            if isinstance(body, dict):
                model = str(body.get("model"))
                if self.server.owner.model and not model.startswith("local/"):
                    body = {**body, "model": self.server.owner.model}
            status, response = 200, complete(body)
            response["model"] = model
        except ModelError as error:
            status, response = error.status, error.body()
        except Exception as error:  # a model bug: report it to the client, keep serving
            status, response = 500, ModelError(500, f"{type(error).__name__}: {error}", "server_error").body()
        if self.server.owner.requests is not None:
            self.server.owner.requests.append((time.monotonic(), model, status))
        self._send(status, response)

    def do_PUT(self) -> None:
        self.close_connection = True  # the body, if any, is left unread
        self._error(405, f"Method {self.command} is not allowed.")

    do_DELETE = do_PATCH = do_PUT


def _model_card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "local"}
