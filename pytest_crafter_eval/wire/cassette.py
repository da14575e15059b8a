"""Stage: wire (cassette). Record model traffic to cassette files; replay it through the loopback server.

A cassette is a directory of readable JSON files, one per request/response pair:

    {"key": "5f0c...", "model": "gpt-4o-mini",
     "request": {...the normalised request body...},
     "response": {"status": 200, "body": {...}}}

The key is a hash of the normalised request: keys sorted, null values and tracking fields
(`user`, `metadata`) dropped, and each base64 image replaced by its SHA-256 digest and
size, so the key covers the images while the file stays small and readable. Headers are
never part of a request or a file (they hold the key and SDK versions).

`Recorder.hook` is an httpx response hook on the SDK's HTTP client: it sees what went over
the wire for any model, local or remote, and any wire API (`adapters.by_endpoint`). The last attempt of a retried request wins.
`Cassette.respond(body)` answers a request body from the files; `LocalServer(responder=...)`
serves it, so a replay goes through the real SDK and HTTP. A request that is not in the
cassette gets HTTP 400 whose message starts with `MISS` and names the closest recorded
request and how it differs (`temperature: 0.6 recorded, 0.7 now`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

from . import adapters, redact
from .adapters import Adapter
from .images import describe_image

MISS = "replay: request not in cassette"
VOLATILE_KEYS = frozenset({"user", "metadata"})  # tracking fields, dropped at the top level
_MAX_DIFFS = 3


# --- normalising and keys (pure) ---------------------------------------------------------


def normalise(body: Any, adapter: Adapter | None = None) -> Any:
    """`body` with volatile parts dropped and images replaced by their digests (where
    `adapter`, the wire API's, says images are; and any data:image URI anywhere)."""
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in VOLATILE_KEYS}
        if adapter is not None:
            body = adapter.redact(body, byte_count=False)
    return _normalise(body)


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in sorted(value.items()) if v is not None}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, str) and value.startswith("data:image/"):
        return image_digest(value)
    return value


def image_digest(uri: str) -> str:
    """An image's size and pixel digest (see `images.describe_image`); the text itself if
    it is not a data URI. Pixels, not PNG bytes: those change with the zlib build, and a
    cassette recorded on one machine must replay on another."""
    return describe_image(uri, byte_count=False)


def key(normalised: Any) -> str:
    """The cassette key of a normalised request: independent of key order."""
    text = json.dumps(normalised, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of a JSON value by path: {'messages[1].content[0].text': '...'}."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def differences(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Readable differences between two flattened requests, in path order."""
    out = []
    for path in sorted(set(recorded) | set(now)):
        if path not in now:
            out.append(f"{path}: {_show(recorded[path])} recorded, absent now")
        elif path not in recorded:
            out.append(f"{path}: absent in recording, {_show(now[path])} now")
        elif recorded[path] != now[path] or type(recorded[path]) is not type(now[path]):
            out.append(f"{path}: {_show_pair(recorded[path], now[path])}")
    return out


def _show(value: Any, width: int = 40) -> str:
    if isinstance(value, str) and value.startswith("<image/"):
        return value
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 3] + '..."'


def _show_pair(old: Any, new: Any) -> str:
    if (
        isinstance(old, str)
        and isinstance(new, str)
        and not old.startswith("<image/")
        and max(len(old), len(new)) > 40
    ):
        at = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
        start = max(0, at - 12)
        return (
            f"text differs at char {at}: ...{old[start : at + 20]!r} recorded, "
            f"...{new[start : at + 20]!r} now"
        )
    return f"{_show(old)} recorded, {_show(new)} now"


def miss_message(
    directory: str, now: Any, entries: dict[str, dict[str, Any]], flat: dict[str, dict[str, Any]]
) -> str:
    """One line: the request is missing, and how it differs from the closest recorded one."""
    if not entries:
        return f"{MISS} {directory}: the cassette is empty"
    flat_now = flatten(now)
    best_name, best = None, None
    for name in sorted(entries):
        diff = differences(flat[name], flat_now)
        if best is None or len(diff) < len(best):
            best_name, best = name, diff
    assert best is not None
    shown = "; ".join(best[:_MAX_DIFFS])
    more = f" (and {len(best) - _MAX_DIFFS} more)" if len(best) > _MAX_DIFFS else ""
    return (
        f"{MISS} {directory} (a payload change, or a request never recorded): closest "
        f"recorded request {best_name} differs at {shown}{more}"
    )


def is_miss(message: str | None) -> bool:
    return message is not None and MISS in message


# --- files (the side effects) -----------------------------------------------------------


def _slug(model: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", str(model)).strip("_")[:60] or "request"


def entry_name(entry: dict[str, Any]) -> str:
    return f"{_slug(entry.get('model'))}-{entry['key'][:16]}.json"


def make_entry(
    body: Any, status: int, response_text: str, adapter: Adapter | None = None
) -> dict[str, Any]:
    """A cassette entry for one request body (of `adapter`'s API) and its response."""
    normalised = normalise(body, adapter)
    try:
        response: dict[str, Any] = {"status": status, "body": json.loads(response_text)}
    except ValueError:
        response = {"status": status, "text": response_text}
    model = normalised.get("model") if isinstance(normalised, dict) else None
    return {"key": key(normalised), "model": model, "request": normalised, "response": response}


def write_entry(directory: Path, entry: dict[str, Any]) -> Path:
    """Write atomically (workers may record the same request at once); secrets redacted."""
    text = redact.text(json.dumps(entry, indent=2, ensure_ascii=False, sort_keys=False)) + "\n"
    path = directory / entry_name(entry)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


class Recorder:
    """Writes each exchange the SDK makes with a wire adapter's endpoint into `directory`."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def hook(self, response) -> None:
        """An httpx(2) `response` event hook."""
        request = response.request
        adapter = adapters.by_endpoint(request.url.path) if request.method == "POST" else None
        if adapter is None:
            return
        try:
            body = json.loads(request.content)
        except ValueError:
            return  # not a JSON request: nothing the harness sends
        response.read()
        write_entry(self.directory, make_entry(body, response.status_code, response.text, adapter))


class Cassette:
    """The recorded exchanges in `directory`, answering request bodies."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.entries: dict[str, dict[str, Any]] = {}  # file name -> entry
        self._by_key: dict[str, dict[str, Any]] = {}
        self._flat: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.load()

    def load(self) -> None:
        """Read every *.json file; a file that is not a cassette entry raises ValueError."""
        for path in sorted(self.directory.glob("*.json")):
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
                entry["key"], entry["request"], entry["response"]["status"]
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(
                    f"{path}: not a cassette entry ({type(exc).__name__}: {exc})"
                ) from None
            self.entries[path.name] = entry
            self._by_key[entry["key"]] = entry
            self._flat[path.name] = flatten(entry["request"])

    def __len__(self) -> int:
        return len(self.entries)

    def respond(self, body: Any, endpoint: str = "/chat/completions") -> tuple[int, Any]:
        """(status, JSON body or raw text) recorded for `body`, POSTed to `endpoint`, or a
        400 naming the miss."""
        normalised = normalise(body, adapters.by_endpoint(endpoint))
        entry = self._by_key.get(key(normalised))
        if entry is None:
            with self._lock:
                message = miss_message(str(self.directory), normalised, self.entries, self._flat)
            return 400, {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "cassette_miss",
                }
            }
        response = entry["response"]
        return response["status"], response["body"] if "body" in response else response.get(
            "text", ""
        )
