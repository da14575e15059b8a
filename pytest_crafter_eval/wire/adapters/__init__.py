"""Stage: wire (adapters). One adapter per wire API, behind the `Adapter` protocol.

An adapter owns everything that depends on a wire format, and nothing else knows it:

- `prepare(run, profile, instructions)`: the parts of a request body that stay the same
  for a whole episode (model, instructions, tools, token budget, sampling, reasoning),
  built from the model-independent settings as `profiles.normalise_settings` maps them
  onto the model, with the notes of what changed, and the body key of the episode's
  prompt cache key when the model takes one (`prepare(..., cache_key=...)` sets it);
- `body(template, turns, keep_images)`: the request body of one step: the template plus
  the turns of the conversation rendered (earlier turns first, then the current
  observation; only the last `keep_images` earlier turns keep their frame);
- `endpoint`: the path the body is POSTed to, below the base URL; `headers(api_key)`
  the API's own headers, if any (a version header; a key header besides the SDK's
  `Authorization: Bearer`);
- `parse(response)`: a response body as a format-neutral `conversation.Reply`;
- `usage(response)`: its tokens, cheaply (for the run's budget);
- `diagnose(reply, request, parsed)`: why a reply had no usable tool call, in the API's words;
- `redact(body, byte_count)`: the body with each image's data replaced by a description
  (payload display, snapshots, cassette keys);
- `chat_form(request)`: the request as chat-completions `messages`, `tools` and the other
  `params` (the canonical trace and fine-tuning form, whatever the API), and
  `chat_response(response)` / `from_chat_response(chat, request)` to translate answers
  (the local server answers every API with the same local models);
- `profile_fields(param)`: the profile fields behind a request parameter a 400 names.

Adapters are registered by name in `config.apis.REGISTRY` (module path, imported on first
use, so that collection imports none of them). A new wire API is one module defining
`ADAPTER` plus one line there.

    adapter = adapters.for_run(run, profile)     # request.api, else the profile's api
    prepared = adapters.prepare(adapter, run, profile, instructions)  # warns once per note
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ...config.apis import DEFAULT, REGISTRY, names
from ...config.profiles import warn_note

__all__ = [
    "DEFAULT",
    "REGISTRY",
    "Adapter",
    "Prepared",
    "by_endpoint",
    "for_run",
    "get",
    "names",
    "prepare",
    "read_usage",
]

if TYPE_CHECKING:
    from ...config import profiles, spec
    from ..conversation import Reply, Turn, Usage
    from ..tools import ParsedCalls

# The registry (name -> module defining ADAPTER) is config's: the registration lines
# live in `config/apis.py`, so that the config stage validates names without importing
# an adapter.


@dataclass(frozen=True)
class Prepared:
    """An episode's fixed request parts: `template` (the body without the turns), the
    notes of settings the model's profile changed, and `cache_key_param`: the body key
    that carries the episode's prompt cache key, when the model takes one (None: none
    is sent)."""

    template: dict[str, Any]
    notes: tuple[profiles.Note, ...] = ()
    cache_key_param: str | None = None


class Adapter(Protocol):
    name: str
    endpoint: str

    def prepare(self, run: spec.Run, profile: profiles.Profile, instructions: str) -> Prepared: ...

    def body(
        self, template: dict[str, Any], turns: Sequence[Turn], keep_images: int = 0
    ) -> dict[str, Any]: ...

    def headers(self, api_key: str | None) -> dict[str, str]: ...

    def parse(self, response: dict[str, Any]) -> Reply: ...

    def usage(self, response: dict[str, Any]) -> Usage: ...

    def diagnose(
        self, reply: Reply, request: dict[str, Any], parsed: ParsedCalls | None
    ) -> tuple[str, str]: ...

    def redact(self, body: dict[str, Any], byte_count: bool = True) -> dict[str, Any]: ...

    def chat_form(self, request: dict[str, Any]) -> dict[str, Any]: ...

    def chat_response(self, response: dict[str, Any]) -> dict[str, Any]: ...

    def from_chat_response(
        self, chat: dict[str, Any], request: dict[str, Any]
    ) -> dict[str, Any]: ...

    def profile_fields(self, param: str) -> tuple[str, ...]: ...


def get(name: str) -> Adapter:
    """The adapter registered as `name`; KeyError naming the known ones."""
    try:
        module = REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown API {name!r}; known: {', '.join(REGISTRY)}") from None
    return importlib.import_module(module).ADAPTER


def for_run(run: spec.Run, profile: profiles.Profile) -> Adapter:
    """The run's adapter: `request.api` (the eval file or --api), else the profile's."""
    return get(getattr(run.request, "api", None) or profile.api or DEFAULT)


def by_endpoint(path: str) -> Adapter | None:
    """The adapter whose endpoint `path` ends with (`/v1/chat/completions`), if any."""
    path = path.rstrip("/")
    for name in REGISTRY:
        adapter = get(name)
        if path.endswith(adapter.endpoint):
            return adapter
    return None


def prepare(
    adapter: Adapter,
    run: spec.Run,
    profile: profiles.Profile,
    instructions: str,
    cache_key: str | None = None,
) -> Prepared:
    """`adapter.prepare`, warning once per process for each note and an assumed profile;
    the template carries `cache_key` (the episode's) where the adapter says the model
    takes one."""
    if profile.assumed:  # at the eval file's line (the model's entry, or the setting's)
        warn_note(run, profile.assumed)
    prepared = adapter.prepare(run, profile, instructions)
    for note in prepared.notes:
        warn_note(run, str(note))
    if cache_key is not None and prepared.cache_key_param:
        template = {**prepared.template, prepared.cache_key_param: cache_key}
        prepared = Prepared(template, prepared.notes, prepared.cache_key_param)
    return prepared


def read_usage(response: dict[str, Any], keys: tuple[str, str], details: tuple[str, str]) -> Usage:
    """A response's `usage` as `Usage`: `keys` names its input and output token counts,
    `details` the objects holding `cached_tokens` (input) and `reasoning_tokens`
    (output), in the API's own words. Missing, negative or non-integer counts are 0."""
    from ..conversation import Usage

    usage = response.get("usage")
    if not isinstance(usage, Mapping):
        return Usage()
    into, out = (_mapping(usage.get(key)) for key in details)
    return Usage(
        input=_count(usage.get(keys[0])),
        output=_count(usage.get(keys[1])),
        reasoning=_count(out.get("reasoning_tokens")),
        cached=_count(into.get("cached_tokens")),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
