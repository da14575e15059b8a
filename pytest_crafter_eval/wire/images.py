"""Stage: wire (images). How a request's image shows where bodies are printed, snapshot
or used as cassette keys: its format, pixel size and a digest of its decoded pixels.

The digest is of the pixels, not of the PNG bytes, which change with the zlib build, so a
description compares across machines. Pure, apart from decoding the image.

    describe_image("data:image/png;base64,...")
    # '<image/png 64x64, 1234 bytes, pixels sha256:0123456789abcdef>'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io

__all__ = ["describe_image"]


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
