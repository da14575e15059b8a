"""Stage: client. The official `openai` SDK client: base URLs, keys, timeouts, errors.

`Connections.for_model(name)` gives a `ModelClient` for a model: built-in `local/*`
models are answered by the loopback server in `local/`, started on first use; any other
model goes to `--base-url` (default: OPENAI_BASE_URL, else the SDK's default) with the
key from the configured environment variable. With `record=DIR` every exchange is also
written to a cassette; with `replay=DIR` every model, local or not, is answered from the
cassette by a loopback server and needs no key (see `cassette.py`). Error messages are
redacted (`redact.py`): no key or URL credentials in them. `ModelClient.complete(body)` sends one
chat-completions request and returns the response body as a plain dict.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

import openai

from . import redact
from .spec import LOCAL_PREFIX, is_local  # noqa: F401  (defined with the model names)


class MissingKey(Exception):
    """No API key for a model that needs one."""


class ModelCallError(Exception):
    """A request that failed. `infra` is True when the cause is not the model's
    capability (network, rate limits, server errors): the episode is an error, not a
    failure."""

    def __init__(self, message: str, *, status: int | None = None, infra: bool = True):
        super().__init__(redact.text(message))  # the API echoes keys in 401 messages
        self.status = status
        self.infra = infra


@dataclass(frozen=True)
class Reply:
    body: dict[str, Any]
    latency_s: float


class ModelClient:
    def __init__(self, sdk: openai.OpenAI):
        self._sdk = sdk

    def complete(self, body: dict[str, Any]) -> Reply:
        """Send one chat-completions request; raise `ModelCallError` on failure."""
        start = time.perf_counter()
        try:
            # The SDK's low-level post: same retries, timeouts and errors as
            # chat.completions.create, without re-walking the finished body against the
            # SDK's type hints (about 1 ms a step, a third of the harness's cost).
            text = self._sdk.post("/chat/completions", body=body, cast_to=str)
        except openai.APIStatusError as exc:
            status = exc.status_code
            infra = status in (408, 409, 429) or status >= 500
            raise ModelCallError(f"HTTP {status}: {_api_message(exc)}", status=status,
                                 infra=infra) from None
        except openai.APIConnectionError as exc:  # includes timeouts
            raise ModelCallError(f"{type(exc).__name__}: {exc}") from None
        latency = time.perf_counter() - start
        try:
            data = json.loads(text)
        except ValueError:
            raise ModelCallError(f"response body is not JSON: {text[:80]!r}") from None
        if not isinstance(data, dict):
            raise ModelCallError(f"response body is not a JSON object: {text[:80]!r}")
        return Reply(data, latency)


def _api_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(exc.message)


class Connections:
    """One SDK client per base URL, and the built-in local server, for one process."""

    def __init__(self, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 60.0, max_retries: int = 2, record: str | None = None,
                 replay: str | None = None):
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = max_retries
        self._clients: dict[str, ModelClient] = {}
        self._server = None
        self._recorder = None
        self.replay = replay
        if record:
            from .cassette import Recorder
            self._recorder = Recorder(record)
        redact.add_secret(self.api_key())
        redact.add_url(self.base_url)

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None

    def for_model(self, model: str) -> ModelClient:
        if self.replay:
            return self._client(self._local_url(), "replay")
        if is_local(model):
            return self._client(self._local_url(), "local")
        key = self.api_key()
        if key is None:
            raise MissingKey(f"no API key for {model}: set {self.api_key_env}")
        return self._client(self.base_url, key)

    def _client(self, base_url: str | None, key: str) -> ModelClient:
        cache_key = f"{base_url}|{key}"
        if cache_key not in self._clients:
            http = None
            if self._recorder is not None:
                http = openai.DefaultHttpxClient(event_hooks={"response": [self._recorder.hook]})
            sdk = openai.OpenAI(api_key=key, base_url=base_url, timeout=self.timeout,
                                max_retries=self.max_retries, http_client=http)
            self._clients[cache_key] = ModelClient(sdk)
        return self._clients[cache_key]

    def _local_url(self) -> str:
        if self._server is None:
            from .local.server import LocalServer
            responder = None
            if self.replay:
                from .cassette import Cassette
                responder = Cassette(self.replay).respond
            self._server = LocalServer(responder=responder).start()
        return self._server.base_url

    def close(self) -> None:
        for client in self._clients.values():
            client._sdk.close()
        self._clients.clear()
        if self._server is not None:
            self._server.close()
            self._server = None
