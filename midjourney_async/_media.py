"""Images in (bytes, files, data URLs) and images out (safe downloads to disk)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio

from ._errors import DecodeError, InvalidRequestError
from ._models import TaskStatus

if TYPE_CHECKING:
    from ._models import Task
    from ._transport import Transport

__all__ = [
    "as_data_url",
    "extension_for",
    "fetch_bytes",
    "safe_name",
    "save_task_media",
]

logger = logging.getLogger("midjourney_async")
_CHUNK = 256 * 1024

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


def resolve_url(url: str, base_url: str) -> str:
    """The absolute http(s) URL to fetch; anything else is refused before any I/O.

    A URL with a scheme is taken as is (so ``data:``, ``file:/x``... are
    refused); only a scheme-less path (new-api's ``/mj/image/{id}``) is
    resolved against the provider's base URL.
    """
    absolute = url if urlsplit(url).scheme else base_url + "/" + url.lstrip("/")
    scheme = urlsplit(absolute).scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidRequestError(
            f"refusing to download {scheme or 'a relative'} URL {url!r}: only http(s)",
            code=None,
        )
    return absolute


async def _capped(resp: Any, url: str, max_bytes: int) -> AsyncIterator[bytes]:
    """The body of ``resp`` in chunks, stopping with DecodeError past ``max_bytes``."""
    length = resp.content_length
    if length is not None and length > max_bytes:
        raise DecodeError(
            f"download of {url} refused: {length} bytes is over the {max_bytes}-byte cap"
        )
    size = 0
    async for chunk in resp.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise DecodeError(f"download of {url} stopped: over the {max_bytes}-byte cap")
        yield chunk


async def fetch_bytes(
    transport: Transport, url: str, *, max_bytes: int, timeout: float | None = None
) -> bytes:
    """The whole body at ``url``, capped at ``max_bytes``."""
    absolute = resolve_url(url, transport.base_url)
    async with transport.stream(absolute, timeout=timeout) as resp:
        return b"".join([chunk async for chunk in _capped(resp, absolute, max_bytes)])


async def save_url(
    transport: Transport,
    url: str,
    directory: Path,
    name: str,
    *,
    max_bytes: int,
    timeout: float | None = None,
) -> Path:
    """Stream ``url`` into ``directory/name<ext>`` (via a ``.part`` file); the path."""
    absolute = resolve_url(url, transport.base_url)
    async with transport.stream(absolute, timeout=timeout) as resp:
        path = directory / (name + extension_for(resp.headers.get("Content-Type"), absolute))
        partial = path.with_name(path.name + ".part")
        size = 0
        try:
            # Disk writes go to a worker thread so the poller never stalls on I/O.
            async with await anyio.open_file(partial, "wb") as out:
                async for chunk in _capped(resp, absolute, max_bytes):
                    size += len(chunk)
                    await out.write(chunk)
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
    logger.info("saved %s (%d bytes)", path, size)
    return path


async def save_task_media(
    transport: Transport,
    task: Task,
    directory: Path,
    *,
    max_bytes: int,
    timeout: float | None = None,
) -> list[Path]:
    """Save the image, the separate images and the videos of ``task``; their paths.

    Only a finished task is saved: an unfinished one has at most a progress
    preview, which would otherwise land under the final name.
    """
    if task.status != TaskStatus.SUCCESS:
        raise InvalidRequestError(
            f"task {task.id} is not finished ({task.status}): wait for it before downloading",
            code=None,
        )
    await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
    stem = safe_name(task.id)
    jobs: list[tuple[str, str]] = []
    if task.image_url:
        jobs.append((task.image_url, stem))
    jobs += [(url, f"{stem}_{i}") for i, url in enumerate(task.image_urls, 1)]
    jobs += [(url, f"{stem}_video_{i}") for i, url in enumerate(task.video_urls, 1)]
    saved = await asyncio.gather(
        *(
            save_url(transport, url, directory, name, max_bytes=max_bytes, timeout=timeout)
            for url, name in jobs
        )
    )
    return list(saved)
