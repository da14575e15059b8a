"""Stage: run (reach). A model whose endpoint does not answer: its remaining episodes are
skipped, across the processes of one run.

Without it every episode of a dead endpoint retried on its own (5-7 s each: 8 episodes
took 48 s) to the same error. `Watched` wraps an episode's model client: a model call that
gives up on a connection failure (`ModelCallError.cause == "connection"`, the client's
message names the base URL) appends one line to `reach/<digest>.jsonl` in the run
directory; a reply writes `reach/<digest>.ok` once per process. Once `FAILED_EPISODES`
episodes of a model failed to connect and none got a reply in this run, `unreachable`
gives the skip reason of its later episodes. Episodes in flight finish on their own.
A model that answered once is never skipped: its later failures are transient.

Touches only files under the run directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["FAILED_EPISODES", "Watched", "unreachable"]

# Episodes of a model that must fail to connect (with no reply in between) before the
# rest are skipped: one could be a blip the retries did not outlast.
FAILED_EPISODES = 2


def _store(run_dir: Path, model: str) -> Path:
    digest = hashlib.sha256(model.encode()).hexdigest()[:20]
    return Path(run_dir) / "reach" / digest


def unreachable(run_dir: Path, model: str) -> str | None:
    """The skip reason of `model`'s next episode, or None while it may still answer."""
    store = _store(run_dir, model)
    if store.with_suffix(".ok").exists():
        return None
    try:
        lines = store.with_suffix(".jsonl").read_text().splitlines()
    except OSError:
        return None
    failures = []
    for line in lines:
        with contextlib.suppress(ValueError):
            failures.append(json.loads(line))
    if len(failures) < FAILED_EPISODES:
        return None
    return (
        f"not started: the first {len(failures)} episodes of {model} failed to connect "
        f"({failures[0].get('message', '?')}); its remaining episodes are skipped: check "
        "--base-url or $OPENAI_BASE_URL"
    )


class Watched:
    """A model client (anything with `complete(...)`) whose connection failures and
    replies are noted for `unreachable`."""

    def __init__(self, client: Any, run_dir: Path, model: str):
        self.client, self.model = client, model
        self._store = _store(run_dir, model)
        self._reached = False

    def complete(self, *args: Any, **kwargs: Any) -> Any:
        try:
            reply = self.client.complete(*args, **kwargs)
        except Exception as exc:  # a `wire.client.ModelCallError` says its cause
            if getattr(exc, "cause", None) == "connection":
                self._note(str(exc))
            raise
        if not self._reached:
            self._reached = True
            with contextlib.suppress(OSError):
                self._store.parent.mkdir(parents=True, exist_ok=True)
                self._store.with_suffix(".ok").touch()
        return reply

    def _note(self, message: str) -> None:
        """One line, appended whole (O_APPEND): processes may note at once."""
        line = json.dumps({"message": message, "pid": os.getpid()}) + "\n"
        with contextlib.suppress(OSError):
            self._store.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._store.with_suffix(".jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
