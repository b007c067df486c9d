"""Images in (bytes, files, data URLs) and images out (safe downloads to disk)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import logging
import os
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio

from ._errors import (
    DownloadRefused,
    DownloadTooLarge,
    HTTPStatusError,
    InvalidArgument,
    MidjourneyError,
    TransportError,
)
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
            raise InvalidArgument("an image is empty (nothing was sent)")
        data = bytes(image)
        return f"data:{_sniff(data)};base64,{base64.b64encode(data).decode('ascii')}"
    if isinstance(image, os.PathLike):
        path = Path(image)
        if not path.is_file():
            raise InvalidArgument(f"no image file at {path} (nothing was sent)")
        return as_data_url(path.read_bytes())
    text = image.strip()
    if not text:
        raise InvalidArgument("an image is empty (nothing was sent)")
    if text.startswith("data:"):
        return text
    if text.startswith(("http://", "https://")):
        if allow_url:
            return text
        raise InvalidArgument(
            "this endpoint takes image data, not a link: pass the bytes or a data URL "
            "(nothing was sent)",
        )
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(
            "an image string is neither a data URL, a link nor base64 (nothing was sent)",
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
    try:
        absolute = url if urlsplit(url).scheme else base_url + "/" + url.lstrip("/")
        scheme = urlsplit(absolute).scheme.lower()
    except ValueError:
        raise DownloadRefused(f"refusing to download {url!r}: not a valid URL", url=url) from None
    if scheme not in ("http", "https"):
        raise DownloadRefused(
            f"refusing to download {scheme or 'a relative'} URL {url!r}: only http(s)",
            url=url,
        )
    return absolute


def _media_type(content_type: str | None, first: bytes, url: str) -> str:
    """The media type of a download, or DownloadRefused for anything but an image or video.

    ``application/octet-stream`` (or no type at all), as some object stores
    answer, passes only when the first bytes are a known image or video format.
    """
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared.startswith(("image/", "video/")):
        return declared
    if declared in ("", "application/octet-stream", "binary/octet-stream"):
        sniffed = _sniff_media(first)
        if sniffed:
            return sniffed
    shown = declared or "no content type"
    raise DownloadRefused(
        f"refusing to save {url}: the server sent {shown}, not an image or a video",
        url=url,
    )


def _sniff_media(data: bytes) -> str | None:
    for signature, mime in _SIGNATURES:
        if data.startswith(signature):
            return mime
    if data[4:8] == b"ftyp":
        return "video/mp4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    return None


def _too_large(url: str, max_bytes: int, size: int | None = None) -> DownloadTooLarge:
    if size is not None:
        what = f"refused: {size} bytes is over the {max_bytes}-byte cap"
    else:
        what = f"stopped: the body is over the {max_bytes}-byte cap"
    return DownloadTooLarge(
        f"download of {url} {what}; nothing was saved",
        url=url,
        max_bytes=max_bytes,
        size=size,
    )


async def _first(chunks: AsyncIterator[bytes]) -> bytes:
    async for chunk in chunks:
        if chunk:
            return chunk
    return b""


async def fetch_bytes(
    transport: Transport, url: str, *, max_bytes: int, timeout: float | None = None
) -> bytes:
    """The whole body at ``url``, capped at ``max_bytes``; only images and videos."""
    absolute = resolve_url(url, transport.base_url)

    async def consume(
        final: str, headers: Mapping[str, str], length: int | None, chunks: AsyncIterator[bytes]
    ) -> bytes:
        if length is not None and length > max_bytes:
            raise _too_large(final, max_bytes, length)
        first = await _first(chunks)
        _media_type(headers.get("Content-Type"), first, final)
        parts = [first]
        size = len(first)
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(final, max_bytes)
            parts.append(chunk)
        if size > max_bytes:
            raise _too_large(final, max_bytes)
        return b"".join(parts)

    return await transport.download(absolute, consume, timeout=timeout)


def _create_part(directory: Path, final_name: str) -> tuple[int, Path]:
    """A new, exclusively created temporary file next to ``final_name``: (fd, path).

    The name is unpredictable and the file is created with O_EXCL (and
    O_NOFOLLOW where the platform has it), so a file or symlink planted in the
    directory is never opened, let alone written through.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    partial = directory / f".{final_name}.{secrets.token_hex(8)}.part"
    return os.open(partial, flags, 0o666), partial


async def save_url(
    transport: Transport,
    url: str,
    directory: Path,
    name: str,
    *,
    max_bytes: int,
    timeout: float | None = None,
) -> Path:
    """Stream ``url`` into ``directory/name<ext>`` (via a temporary file); the path."""
    absolute = resolve_url(url, transport.base_url)

    async def consume(
        final: str, headers: Mapping[str, str], length: int | None, chunks: AsyncIterator[bytes]
    ) -> tuple[Path, int]:
        if length is not None and length > max_bytes:
            raise _too_large(final, max_bytes, length)
        first = await _first(chunks)
        content_type = headers.get("Content-Type")
        media = _media_type(content_type, first, final)
        ext = extension_for(content_type, final)
        if ext == ".bin":
            ext = _EXTENSIONS.get(media, ".bin")
        path = directory / (name + ext)
        fd, partial = _create_part(directory, path.name)
        size = len(first)
        raw = os.fdopen(fd, "wb")
        try:
            # Disk writes go to a worker thread so the poller never stalls on I/O.
            async with anyio.wrap_file(raw) as out:
                if size > max_bytes:
                    raise _too_large(final, max_bytes)
                await out.write(first)
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise _too_large(final, max_bytes)
                    await out.write(chunk)
            # A rename replaces a symlink planted at the final name, never its target.
            os.replace(partial, path)
        finally:
            # A task cancelled again while aclose() waits for its worker thread never closes
            # the file; closing a closed file does nothing.
            raw.close()
            partial.unlink(missing_ok=True)
        return path, size

    path, size = await transport.download(absolute, consume, timeout=timeout)
    logger.info("saved %s (%d bytes)", path, size)
    return path


Refetch = Callable[[], Awaitable["Task"]]

# new-api serves a task's image at /mj/image/<id> and writes links to it on its
# configured ServerAddress, which is sometimes wrong (http://localhost:3000).
_RELAY_IMAGE = re.compile(r"/mj/image/[^/?#]+$")
# Failures a link can have that another link to the same image may cure; a body
# over the size cap stays over it whatever the link.
_LINK_FAILURES = (HTTPStatusError, TransportError, DownloadRefused)


def _is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def on_base_url(url: str, base_url: str) -> str | None:
    """The relay image link ``url`` moved onto ``base_url``, when it is a relay's
    ``/mj/image/<id>`` link on another host; None otherwise."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    match = _RELAY_IMAGE.search(parts.path)
    if not parts.scheme or match is None or _origin(url) == _origin(base_url):
        return None
    query = f"?{parts.query}" if parts.query else ""
    return base_url.rstrip("/") + match.group(0) + query


def loopback_from_remote(url: str, base_url: str) -> bool:
    """Whether ``url`` names this machine while the server does not: such a link
    can only be a relay's misconfiguration, never the image."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    return _is_loopback_host(host) and not _is_loopback_host(_origin(base_url)[1])


def _jobs(task: Task) -> list[tuple[str, str]]:
    stem = safe_name(task.id)
    jobs: list[tuple[str, str]] = []
    if task.image_url:
        jobs.append((task.image_url, stem))
    jobs += [(url, f"{stem}_{i}") for i, url in enumerate(task.image_urls, 1)]
    jobs += [(url, f"{stem}_video_{i}") for i, url in enumerate(task.video_urls, 1)]
    return jobs


class _LinkMender:
    """Saves one task's media, curing dead links: a relay link on a wrong host is
    read from the base URL, and a dead link is replaced by the one a fresh fetch of
    the task hands out (shared by every file of the task). Each step logs a warning."""

    def __init__(
        self,
        transport: Transport,
        directory: Path,
        *,
        max_bytes: int,
        timeout: float | None,
        refetch: Refetch | None,
    ) -> None:
        self.transport = transport
        self.directory = directory
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.refetch = refetch
        self._fresh: asyncio.Future[Task] | None = None

    async def _save(self, url: str, name: str) -> Path:
        return await save_url(
            self.transport, url, self.directory, name,
            max_bytes=self.max_bytes, timeout=self.timeout,
        )

    async def _try(self, url: str, name: str) -> Path | MidjourneyError:
        """Save from ``url``, or the error of a link that may be cured by another."""
        base = self.transport.base_url
        moved = on_base_url(url, base)
        if loopback_from_remote(url, base):
            if moved is None:
                logger.warning(
                    "not downloading %s: a link on this machine from a server that is not "
                    "here cannot be the image", url,
                )
                return DownloadRefused(f"refusing to download {url}: a loopback link "
                                       "from a remote server", url=url)
            logger.warning("image link %s is on this machine: fetching it from the "
                           "session's base URL instead (%s)", url, moved)
            url, moved = moved, None
        try:
            return await self._save(url, name)
        except DownloadTooLarge:
            raise
        except _LINK_FAILURES as exc:
            if moved is None:
                return exc
            logger.warning("image link %s failed (%s): fetching it from the session's "
                           "base URL instead (%s)", url, exc, moved)
        try:
            return await self._save(moved, name)
        except DownloadTooLarge:
            raise
        except _LINK_FAILURES as exc:
            return exc

    async def _renewed(self, name: str) -> str | None:
        """The link a fresh fetch of the task gives for the file ``name``."""
        if self.refetch is None:
            return None
        if self._fresh is None:
            self._fresh = asyncio.ensure_future(self.refetch())
        try:
            task = await asyncio.shield(self._fresh)
        except MidjourneyError as exc:
            logger.warning("fetching the task again for fresh links failed: %s", exc)
            return None
        return dict((n, u) for u, n in _jobs(task)).get(name)

    async def save(self, url: str, name: str) -> Path:
        # A link that is not http(s) is refused at once: no fetch can cure it.
        resolve_url(url, self.transport.base_url)
        outcome = await self._try(url, name)
        if isinstance(outcome, Path):
            return outcome
        logger.warning("download of %s failed (%s): fetching the task again for fresh "
                       "links", url, outcome)
        fresh = await self._renewed(name)
        if fresh is None or fresh == url:
            raise outcome
        logger.warning("trying the fresh link %s", fresh)
        again = await self._try(fresh, name)
        if isinstance(again, Path):
            return again
        raise again

    def close(self) -> None:
        if self._fresh is not None and not self._fresh.done():
            self._fresh.cancel()


async def save_task_media(
    transport: Transport,
    task: Task,
    directory: Path,
    *,
    max_bytes: int,
    timeout: float | None = None,
    refetch: Refetch | None = None,
) -> list[Path]:
    """Save the image, the separate images and the videos of ``task``; their paths.

    A link that fails is cured where it can be: a relay's ``/mj/image/<id>``
    link on a wrong or loopback host is read from the base URL, and with
    ``refetch`` (a fresh read of the task) a dead link is replaced by the new
    one the server hands out. A loopback link from a server that is not on
    loopback is never fetched as given.

    All or nothing: the first failure cancels the other downloads and removes
    what they saved, then raises; no temporary file is left behind.

    Only a finished task is saved: an unfinished one has at most a progress
    preview, which would otherwise land under the final name.
    """
    if task.status != TaskStatus.SUCCESS:
        raise InvalidArgument(
            f"task {task.id} is not finished ({task.status}): wait for it before downloading",
        )
    await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
    jobs = _jobs(task)
    if not jobs:
        return []
    mender = _LinkMender(
        transport, directory, max_bytes=max_bytes, timeout=timeout, refetch=refetch
    )
    running = [asyncio.ensure_future(mender.save(url, name)) for url, name in jobs]
    outcomes: list[Path | BaseException] = []
    try:
        await asyncio.wait(running, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        # Also when the caller is cancelled: no download goes on writing after we
        # return, and a failed call leaves none of its files behind.
        for job in running:
            job.cancel()
        outcomes = await asyncio.gather(*running, return_exceptions=True)
        mender.close()
        if any(isinstance(outcome, BaseException) for outcome in outcomes):
            for outcome in outcomes:
                if isinstance(outcome, Path):
                    outcome.unlink(missing_ok=True)
    paths: list[Path] = []
    for outcome in outcomes:
        if isinstance(outcome, asyncio.CancelledError):
            continue
        if isinstance(outcome, BaseException):
            raise outcome
        paths.append(outcome)
    return paths
