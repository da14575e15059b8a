"""Stage: payload. The first request body of an episode, as data to look at and snapshot.

`redact(body, api=...)` replaces every image's data (wherever the wire API's adapter
puts images) with its format, pixel size and a digest of its
pixels, so a body prints in a few lines and compares across machines: the digest is of
the decoded pixels, not of the PNG bytes, which change with the zlib build.
`snapshot_view(body)` is what payload snapshots compare: `redact(body)` without the
encoded byte count and without per-request ids. Pure, apart from decoding images.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from typing import Any

# Parts of a body that change from run to run without changing what the model is asked.
VOLATILE_KEYS = ("user", "metadata", "safety_identifier", "prompt_cache_key", "stream_options")


def redact(body: dict[str, Any], *, byte_count: bool = True, api: str = "chat") -> dict[str, Any]:
    """A copy of `body` (a request of wire API `api`) with each image's data replaced by a
    stable description; the adapter of `api` knows where the images are."""
    from . import adapters

    return adapters.get(api).redact(body, byte_count)


def snapshot_view(body: dict[str, Any], api: str = "chat") -> dict[str, Any]:
    """What a payload snapshot stores: the redacted body without volatile parts."""
    view = redact(body, byte_count=False, api=api)
    for key in VOLATILE_KEYS:
        view.pop(key, None)
    return view


def describe_image(url: str, byte_count: bool = True) -> str:
    """`data:image/png;base64,...` -> `<image/png 64x64, 1234 bytes, pixels sha256:...>`;
    anything that is not a base64 data URL is kept as it is."""
    head, sep, data = url.partition(",")
    if not (url.startswith("data:") and sep and head.endswith(";base64")):
        return url
    mime = head[len("data:") : -len(";base64")] or "application/octet-stream"
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return f"<{mime}, invalid base64 of {len(data)} characters>"
    size, digest = _pixels(raw)
    what = f"{mime} {size}" if size else mime
    if byte_count:
        what += f", {len(raw)} bytes"
    return f"<{what}, {digest}>"


def _pixels(raw: bytes) -> tuple[str | None, str]:
    """(WxH, digest of the decoded pixels); the digest of the bytes if they do not decode."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(raw)) as image:
            image.load()
            size = f"{image.width}x{image.height}"
            pixels = image.mode.encode() + b":" + image.tobytes()
        return size, "pixels sha256:" + hashlib.sha256(pixels).hexdigest()[:16]
    except Exception:  # not an image PIL reads: fall back to the bytes
        return None, "sha256:" + hashlib.sha256(raw).hexdigest()[:16]
