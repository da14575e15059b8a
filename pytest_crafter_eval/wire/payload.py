"""Stage: wire (payload). The first request body of an episode, as data to look at and snapshot.

`redact(body, api=...)` replaces every image's data (wherever the wire API's adapter
puts images) with its format, pixel size and a digest of its
pixels, so a body prints in a few lines and compares across machines: the digest is of
the decoded pixels, not of the PNG bytes, which change with the zlib build.
`snapshot_view(body)` is what payload snapshots compare: `redact(body)` without the
encoded byte count and without per-request ids. Pure, apart from decoding images.
"""

from __future__ import annotations

from typing import Any

from . import adapters
from .images import describe_image

__all__ = ["VOLATILE_KEYS", "describe_image", "redact", "snapshot_view"]

# Parts of a body that change from run to run without changing what the model is asked.
VOLATILE_KEYS = ("user", "metadata", "safety_identifier", "prompt_cache_key", "stream_options")


def redact(body: dict[str, Any], *, byte_count: bool = True, api: str = "chat") -> dict[str, Any]:
    """A copy of `body` (a request of wire API `api`) with each image's data replaced by a
    stable description; the adapter of `api` knows where the images are."""
    return adapters.get(api).redact(body, byte_count)


def snapshot_view(body: dict[str, Any], api: str = "chat") -> dict[str, Any]:
    """What a payload snapshot stores: the redacted body without volatile parts."""
    view = redact(body, byte_count=False, api=api)
    for key in VOLATILE_KEYS:
        view.pop(key, None)
    return view
