"""Images in (bytes, files, data URLs) and images out (safe downloads to disk)."""

from __future__ import annotations

import base64
import binascii
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from ._errors import InvalidRequestError

__all__ = ["as_data_url", "extension_for", "safe_name"]

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"RIFF", "image/webp"),
)

_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "video/quicktime": ".mov",
}


def _sniff(data: bytes) -> str:
    for signature, mime in _SIGNATURES:
        if data.startswith(signature):
            return mime
    return "image/png"


def as_data_url(image: str | bytes | os.PathLike[str], *, allow_url: bool = False) -> str:
    """An image as the data URL the servers expect in ``base64Array``.

    Accepts raw bytes, a path to a file, a ``data:`` URL, bare base64 text, or
    (where the endpoint takes links and ``allow_url`` is set) an http(s) URL.

    Example::

        as_data_url(Path("cat.png").read_bytes())   # 'data:image/png;base64,iVBO...'
    """
    if isinstance(image, (bytes, bytearray)):
        if not image:
            raise InvalidRequestError("an image is empty (nothing was sent)", code=None)
        data = bytes(image)
        return f"data:{_sniff(data)};base64,{base64.b64encode(data).decode('ascii')}"
    if isinstance(image, os.PathLike):
        path = Path(image)
        if not path.is_file():
            raise InvalidRequestError(f"no image file at {path} (nothing was sent)", code=None)
        return as_data_url(path.read_bytes())
    text = image.strip()
    if not text:
        raise InvalidRequestError("an image is empty (nothing was sent)", code=None)
    if text.startswith("data:"):
        return text
    if text.startswith(("http://", "https://")):
        if allow_url:
            return text
        raise InvalidRequestError(
            "this endpoint takes image data, not a link: pass the bytes or a data URL "
            "(nothing was sent)",
            code=None,
        )
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(
            "an image string is neither a data URL, a link nor base64 (nothing was sent)",
            code=None,
        ) from None
    return f"data:{_sniff(raw)};base64,{text}"


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, limit: int = 80) -> str:
    """A file-name fragment with no separators, dots-only names or odd characters."""
    cleaned = _UNSAFE.sub("_", text).strip("._")[:limit]
    return cleaned or "file"


def extension_for(content_type: str | None, url: str) -> str:
    """The file extension from the content type, else from the URL path, else .bin."""
    if content_type:
        ext = _EXTENSIONS.get(content_type.split(";")[0].strip().lower())
        if ext:
            return ext
    suffix = Path(urlsplit(url).path).suffix.lower()
    if suffix in set(_EXTENSIONS.values()) | {".jpeg"}:
        return suffix
    return ".bin"
