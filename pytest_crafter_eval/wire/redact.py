"""Stage: wire (redact; used by every edge that writes text). Keeps API keys and URL credentials out of output.

    redact.add_secret(os.environ.get("OPENAI_API_KEY"))
    redact.text("HTTP 401: Incorrect API key provided: sk-SENT****1234")  # -> "... sk-***"
    redact.url("https://user:pass@proxy.example/v1")                  # -> "https://***@proxy.example/v1"

`text` removes the registered secrets (exact values), credentials inside URLs, bearer
tokens and OpenAI-style `sk-...` keys, including the partly masked ones the API echoes in
401 messages. `install_log_filter()` applies it to every log record made in the process,
so the SDK's and httpx's own log lines (which print request URLs) are clean wherever a
handler writes them: pytest's captured logs, --log-file, junitxml. Pure apart from the
process-wide set of secrets and the log-record factory.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from urllib.parse import urlsplit

MASK = "***"
MIN_SECRET_LENGTH = 8  # shorter values ("local", "x") would mangle ordinary text

_SECRETS: set[str] = set()
_LOCK = threading.Lock()
_URL_CREDENTIALS = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@?#'\"]+@")
_BEARER = re.compile(r"(\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=*-]+", re.IGNORECASE)
_SK_KEY = re.compile(r"\bsk-[A-Za-z0-9_*\-]{6,}")


def add_secret(value: str | None) -> None:
    """Redact `value` from now on, wherever `text` is applied."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _LOCK:
            _SECRETS.add(value)


def add_url(url: str | None) -> None:
    """Register the password of a URL with credentials (`https://user:pass@host`)."""
    if url:
        with contextlib.suppress(ValueError):
            add_secret(urlsplit(url).password)


def url(value: str | None) -> str | None:
    """`value` with any `user:password@` replaced by `***@`."""
    return None if value is None else _URL_CREDENTIALS.sub(rf"\1{MASK}@", value)


def text(value: str) -> str:
    """`value` with secrets, URL credentials, bearer tokens and sk- keys masked."""
    if not isinstance(value, str):
        return value
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in value:
            value = value.replace(secret, MASK)
    value = _URL_CREDENTIALS.sub(rf"\1{MASK}@", value)
    value = _BEARER.sub(rf"\1{MASK}", value)
    return _SK_KEY.sub(f"sk-{MASK}", value)


_installed = False


def install_log_filter() -> None:
    """Redact every log record made in this process from now on (idempotent)."""
    global _installed
    with _LOCK:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error path
            return record
        clean = text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return record

    logging.setLogRecordFactory(factory)
