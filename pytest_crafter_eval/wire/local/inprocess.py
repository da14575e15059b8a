"""Stage: wire (local models). A local model answering in-process, with no server and no HTTP.

    client = InProcess("local/heuristic")
    reply = client.complete(body, adapter)   # what `client.ModelClient.complete` returns

It answers a request body of any wire API like the loopback server does (the adapter
translates it into chat form for the local model, and the answer back), so that
`crafter-eval payload --step K` can play steps 0..K-1 without a network. Pure apart
from the local model's own work. Its answers are the same on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .models import ModelError, complete, parse_model

if TYPE_CHECKING:
    from ..adapters import Adapter


@dataclass(frozen=True)
class Reply:
    """The fields of `client.Reply` an episode reads."""

    body: dict[str, Any]
    latency_s: float = 0.0
    retries: tuple = ()


class InProcess:
    """A client whose every request is answered by the local model `model`."""

    def __init__(self, model: str = "local/heuristic") -> None:
        if not model.startswith("local/"):
            raise ModelError(400, f"{model!r} is not a local model (local/...)", param="model")
        parse_model(model)  # raises ModelError naming the known local models
        self.model = model

    def complete(self, body: dict[str, Any], adapter: Adapter) -> Reply:
        # The local model sees each image as the digest of its pixels, not its PNG bytes
        # (which vary with the zlib build): its answers, which are drawn from a hash of
        # the messages, are then the same on every machine (payload snapshots rely on it).
        form = adapter.chat_form(adapter.redact(body, byte_count=False))
        chat = {**form["params"], "messages": form["messages"], "tools": form["tools"]}
        answer = complete({**chat, "model": self.model})
        answer["model"] = body.get("model")
        return Reply(adapter.from_chat_response(answer, body))
