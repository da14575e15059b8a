"""Stage: wire (local models). Built-in fake chat models on a loopback OpenAI-compatible server."""

from .models import MODELS, Answer, ModelError, Option, complete, list_models, parse_model, register
from .server import LocalServer, serve

__all__ = [
    "MODELS",
    "Answer",
    "LocalServer",
    "ModelError",
    "Option",
    "complete",
    "list_models",
    "parse_model",
    "register",
    "serve",
]
