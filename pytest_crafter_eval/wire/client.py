"""Stage: wire (client). The official `openai` SDK client: base URLs, keys, timeouts, retries, errors.

`Connections.for_model(name)` gives a `ModelClient` for a model: built-in `local/*`
models are answered by the loopback server in `local/`, started on first use; any other
model goes to `--base-url` (default: OPENAI_BASE_URL, else the SDK's default) with the
key from the configured environment variable. With `record=DIR` every exchange is also
written to a cassette; with `replay=DIR` every model, local or not, is answered from the
cassette by a loopback server and needs no key (see `cassette.py`). Error messages are
redacted (`redact.py`): no key or URL credentials in them. `ModelClient.complete(body,
adapter)` POSTs one request to the wire adapter's endpoint (default: chat completions)
and returns the response body as a plain dict.

Retries are ours, not the SDK's (its `max_retries` is 0), so that they are bounded,
counted and testable. `RetryPolicy` says how: capped exponential backoff with jitter, at
most `max_retries` retries and `deadline_s` seconds per call. `classify` says what:

- retried: 429 rate limits (waiting as long as Retry-After / retry-after-ms say, and
  at least the backoff), 408, 409, 5xx, timeouts, dropped connections, and a 200 whose
  body is not JSON; every retried attempt, a 429 too, counts against `max_retries`;
- not retried, failing at once with the API's own message: 400 (with the parameter the
  API names), 401, 403, 404 (unknown model), a 429 whose code is `insufficient_quota`,
  any other 4xx, and anything the server marks `x-should-retry: false`.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import openai

from ..config.spec import LOCAL_PREFIX, is_local  # noqa: F401  (defined with the model names)
from . import adapters, redact
from .conversation import Usage

if TYPE_CHECKING:
    from .local.server import LocalServer


class MissingKey(Exception):
    """No API key for a model that needs one."""


@dataclass(frozen=True)
class Retry:
    """One retried attempt: why, and how long we waited before the next one."""

    cause: str  # "429", "500", "timeout", "connection", "not_json", ...
    wait_s: float


class ModelCallError(Exception):
    """A request that failed for good. Every such failure stops the episode as an error,
    never as a verdict on the model. `infra` is True for transient causes (network, rate
    limits, server errors) that outlived the retries, False for a request the API
    refuses (bad parameter, key, model name, quota). `param` is the request parameter a
    400 names; `retries` are the attempts retried before giving up."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        infra: bool = True,
        cause: str = "",
        param: str | None = None,
        code: str | None = None,
        retries: tuple[Retry, ...] = (),
    ):
        super().__init__(redact.text(message))  # the API echoes keys in 401 messages
        self.status, self.infra, self.cause = status, infra, cause
        self.param, self.code, self.retries = param, code, retries


@dataclass(frozen=True)
class Reply:
    body: dict[str, Any]
    latency_s: float  # of the attempt that succeeded
    retries: tuple[Retry, ...] = ()


# -- what to retry, and how long to wait (pure) --------------------------------------


@dataclass(frozen=True)
class Attempt:
    """The verdict on one failed attempt."""

    message: str
    cause: str
    retryable: bool
    status: int | None = None
    retry_after_s: float | None = None  # what the server asked us to wait
    param: str | None = None
    code: str | None = None


QUOTA_CODES = ("insufficient_quota",)


def classify(status: int, body: Any, headers: Mapping[str, str]) -> Attempt:
    """The verdict on an HTTP error response: its message, and whether to retry."""
    error = body.get("error", body) if isinstance(body, Mapping) else None
    error = error if isinstance(error, Mapping) else {}
    text = error.get("message") or (body if isinstance(body, str) else "") or "(no message)"
    code = error.get("code") if isinstance(error.get("code"), str) else None
    param = error.get("param") if isinstance(error.get("param"), str) else None
    message = f"HTTP {status}: {_one_line(str(text))}"
    if code:
        message += f" (code {code})"
    retry_after = parse_retry_after(headers)
    if (status == 429 and code in QUOTA_CODES) or str(
        headers.get("x-should-retry", "")
    ).lower() == "false":
        retryable = False
    else:
        retryable = status in (408, 409, 429) or status >= 500
    return Attempt(
        message,
        str(status),
        retryable,
        status=status,
        retry_after_s=retry_after,
        param=param,
        code=code,
    )


def parse_retry_after(
    headers: Mapping[str, str], now: Callable[[], float] = time.time
) -> float | None:
    """Seconds the server asks us to wait: `retry-after-ms`, else `Retry-After` as
    seconds (fractions allowed) or an HTTP date. None if absent or unreadable."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw) / scale
        except ValueError:
            continue
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get("retry-after")
    if raw:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when is not None and when.tzinfo is not None:
            return max(0.0, when.timestamp() - now())
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """At most `max_retries` retries and `deadline_s` seconds for one model call
    (every attempt, wait and timeout included). Backoff doubles from `backoff_s` up to
    `max_backoff_s` (the openai SDK's own 0.5 s and 8 s), with equal jitter (half fixed,
    half random) so that workers hit by the same fault spread out. A server's
    Retry-After is honoured, and the backoff is its floor: `Retry-After: 0`, or a tiny
    wait, does not make a tight loop."""

    max_retries: int = 4
    deadline_s: float = 300.0
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    def wait(self, retry: int, attempt: Attempt, rng: random.Random) -> float:
        """Seconds to wait before retry number `retry` (0-based) after `attempt`."""
        ceiling = min(self.max_backoff_s, self.backoff_s * 2**retry)
        backoff = ceiling / 2 + ceiling / 2 * rng.random()
        if attempt.retry_after_s is None:
            return backoff
        return max(attempt.retry_after_s * (1 + 0.1 * rng.random()), backoff)


# -- the client ----------------------------------------------------------------------


class ModelClient:
    """Sends requests for one model through a shared SDK client.

    `slot(timeout, check)` is entered around each attempt (not the waits between them):
    the per-model concurrency cap (a `runstate.Slots`), waited for within the step
    deadline. `check()` runs before each attempt is sent, and while waiting for a slot;
    it raises to stop the call (the run is stopping). `on_reply(model, usage)` is told
    of every successful response's tokens (`conversation.Usage`, read by the wire
    adapter). `pace` (a `runstate.Pacer`), if given, is shared by all clients of the
    model: a 429 with a wait holds back every request to it."""

    def __init__(
        self,
        sdk: openai.OpenAI,
        *,
        timeout: float = 60.0,
        policy: RetryPolicy = RetryPolicy(),
        model: str = "",
        slot: Callable[..., AbstractContextManager[Any]] | None = None,
        on_reply: Callable[[str, Usage], None] | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        pace: Any = None,
        check: Callable[[], None] | None = None,
    ):
        self._sdk = sdk
        self.timeout, self.policy, self.model = timeout, policy, model
        self._slot, self._on_reply, self._check = slot, on_reply, check
        self._pace = pace
        self._rng = rng or random.Random()
        self._sleep = sleep

    def complete(self, body: dict[str, Any], adapter: adapters.Adapter | None = None) -> Reply:
        """POST one request to `adapter`'s endpoint (default: chat completions), retrying
        as `policy` says; raise `ModelCallError` when it fails for good."""
        adapter = adapter or adapters.get(adapters.DEFAULT)
        policy = self.policy
        deadline = time.monotonic() + policy.deadline_s
        retries: list[Retry] = []
        while True:
            placed = None  # the spacing of this attempt's place in the model's queue
            if self._pace is not None:  # a 429 to any worker or thread holds back all
                place = self._pace.place(deadline - time.monotonic())
                if place is None:  # its place in the queue is beyond the deadline
                    raise self._held(retries)
                held, placed = place
                if held > 0:
                    self._sleep(held)
            with self._held_slot(deadline, retries):
                if self._check is not None:
                    self._check()  # nothing is sent once the run stops
                remaining = deadline - time.monotonic()
                start = time.perf_counter()
                outcome = self._attempt(adapter, body, max(0.001, min(self.timeout, remaining)))
                latency = time.perf_counter() - start
            if isinstance(outcome, dict):
                if self._on_reply is not None:
                    self._on_reply(self.model or str(body.get("model")), adapter.usage(outcome))
                return Reply(outcome, latency, tuple(retries))
            if not outcome.retryable:
                raise self._error(outcome, outcome.message, retries)
            # Every failed attempt counts, a 429 too: a provider that keeps refusing
            # ends the call at --max-retries, whatever it asks to wait.
            if len(retries) >= policy.max_retries:
                raise self._error(
                    outcome,
                    f"{outcome.message} (gave up after {len(retries) + 1} attempts: "
                    f"--max-retries {policy.max_retries})",
                    retries,
                )
            wait = policy.wait(len(retries), outcome, self._rng)
            left = deadline - time.monotonic()
            if wait >= left:
                told = outcome.retry_after_s
                asked = (
                    f"Retry-After {told:g} s"
                    if told is not None and wait <= told * 1.1 + 1e-9
                    else f"backoff {wait:.2g} s"
                )
                raise self._error(
                    outcome,
                    f"{outcome.message} (gave up after {len(retries) + 1} attempts: "
                    f"{asked} is beyond the step deadline of "
                    f"{policy.deadline_s:g} s)",
                    retries,
                )
            retries.append(Retry(outcome.cause, wait))
            if self._pace is not None and outcome.status == 429 and outcome.retry_after_s:
                # every request waits, in turn; a place that far apart was too close
                self._pace.limited(outcome.retry_after_s, place_spacing=placed)
            self._sleep(wait)

    @contextmanager
    def _held_slot(self, deadline: float, retries: list[Retry]) -> Iterator[None]:
        """The model's request slot, waited for until `deadline`."""
        if self._slot is None:
            yield
            return
        try:
            slot = self._slot(max(0.0, deadline - time.monotonic()), self._check)
            slot.__enter__()
        except TimeoutError as exc:
            raise ModelCallError(
                f"{exc} for {self.policy.deadline_s:g} s, the step deadline "
                "(--max-concurrency, --step-deadline); not sent",
                cause="slot",
                retries=tuple(retries),
            ) from None
        try:
            yield
        finally:
            slot.__exit__(None, None, None)

    def _held(self, retries: list[Retry]) -> ModelCallError:
        """The error of a call whose turn in the model's rate-limit queue comes after its
        step deadline: nothing is sent."""
        return ModelCallError(
            f"rate limited: the provider's 429s hold every request to {self.model or 'the model'} "
            f"in a queue that would reach this one after the step deadline of "
            f"{self.policy.deadline_s:g} s (--step-deadline); not sent",
            status=429,
            cause="429",
            retries=tuple(retries),
        )

    def _attempt(
        self, adapter: adapters.Adapter, body: dict[str, Any], timeout: float
    ) -> dict[str, Any] | Attempt:
        """One request: the response body, or the verdict on its failure."""
        try:
            # The SDK's low-level post: same timeouts and errors as chat.completions.create
            # or responses.create, without re-walking the finished body against the SDK's
            # type hints (about 1 ms a step, a third of the harness's cost).
            headers = adapter.headers(self._sdk.api_key)  # an API's own, if any
            text = self._sdk.post(
                adapter.endpoint,
                body=body,
                cast_to=str,
                options={"timeout": timeout, "headers": headers}
                if headers
                else {"timeout": timeout},
            )
        except openai.APIStatusError as exc:
            body_json: Any = exc.body
            with suppress(Exception):  # not JSON: keep what the SDK made of it
                body_json = exc.response.json()
            return classify(exc.status_code, body_json, exc.response.headers)
        except openai.APITimeoutError:
            return Attempt(
                f"request timed out after {timeout:.3g} s (--request-timeout)", "timeout", True
            )
        except openai.APIConnectionError as exc:
            reason = exc.__cause__ or exc
            where = str(self._sdk.base_url).rstrip("/")
            return Attempt(
                f"connection to {where} failed: {_one_line(str(reason)) or type(reason).__name__}",
                "connection",
                True,
            )
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return Attempt(
                f"response body is not a JSON object: {_one_line(text)[:80]!r}", "not_json", True
            )
        return data

    def _error(self, attempt: Attempt, message: str, retries: list[Retry]) -> ModelCallError:
        # A server error is infrastructure even when the server asks not to retry it.
        infra = attempt.retryable or (attempt.status or 0) >= 500
        return ModelCallError(
            message,
            status=attempt.status,
            infra=infra,
            cause=attempt.cause,
            param=attempt.param,
            code=attempt.code,
            retries=tuple(retries),
        )


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Connections:
    """One SDK client per base URL and key, and the built-in local server, for one
    process: made on first use, once, though many threads ask at once, and all closed by
    `close()`.

    `slots(model)` gives the model's request slots (`ModelClient`'s `slot`, see
    `runstate.Slots`) and `pace(model)` its `runstate.Pacer`, each made once per model;
    `check` is every client's stop check; `on_reply(model, usage)` sees every successful
    response."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        policy: RetryPolicy = RetryPolicy(),
        slots: Callable[[str], Callable[..., AbstractContextManager[Any]]] | None = None,
        on_reply: Callable[[str, Usage], None] | None = None,
        record: str | None = None,
        replay: str | None = None,
        pace: Callable[[str], Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        check: Callable[[], None] | None = None,
    ):
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.policy = policy
        self._slots, self._on_reply, self._pace = slots, on_reply, pace
        self._sleep = sleep  # waits between attempts (the plugin's can be cut short)
        self._check = check
        self._lock = threading.Lock()  # episodes in flight ask for clients at once
        self._per_model: dict[str, tuple[Any, Any]] = {}  # model -> (slot, pacer)
        self._sdks: dict[str, openai.OpenAI] = {}
        self._server: LocalServer | None = None
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
        with self._lock:
            if self.replay:
                sdk = self._sdk(self._local_url(), "replay")
            elif is_local(model):
                sdk = self._sdk(self._local_url(), "local")
            else:
                key = self.api_key()
                if key is None:
                    raise MissingKey(f"no API key for {model}: set {self.api_key_env}")
                sdk = self._sdk(self.base_url, key)
            if model not in self._per_model:
                self._per_model[model] = (
                    self._slots(model) if self._slots is not None else None,
                    self._pace(model) if self._pace is not None else None,
                )
            slot, pace = self._per_model[model]
        return ModelClient(
            sdk,
            timeout=self.timeout,
            policy=self.policy,
            model=model,
            slot=slot,
            on_reply=self._on_reply,
            pace=pace,
            sleep=self._sleep,
            check=self._check,
        )

    def _sdk(self, base_url: str | None, key: str) -> openai.OpenAI:
        cache_key = f"{base_url}|{key}"
        if cache_key not in self._sdks:
            http = None
            if self._recorder is not None:
                http = openai.DefaultHttpxClient(event_hooks={"response": [self._recorder.hook]})
            # max_retries=0: ModelClient retries, so that retries are bounded and counted.
            self._sdks[cache_key] = openai.OpenAI(
                api_key=key,
                base_url=base_url,
                timeout=self.timeout,
                max_retries=0,
                http_client=http,
            )
        return self._sdks[cache_key]

    def _local_url(self) -> str:
        if self._server is None:
            from .local.server import LocalServer

            responder = None
            if self.replay:
                from .cassette import Cassette

                responder = Cassette(self.replay).respond
            self._server = LocalServer(responder=responder).start()
        return self._server.base_url

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        for sdk in self._sdks.values():
            sdk.close()
        self._sdks.clear()
        if self._server is not None:
            self._server.close()
            self._server = None
