"""Test support: a recording HTTP server on 127.0.0.1, scripted replies and samples.

The :class:`RecordingServer` answers every request with scripted replies per
``(method, path)`` and records what it received (method, path, query,
headers, raw body, parsed JSON or form), so a test can check exactly what
the client sent and how often. Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import struct
import zlib
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import CIMultiDict

from midjourney_async import MidjourneySession
from midjourney_async.testing import Emulator

SAMPLES = Path(__file__).parent / "samples"
KEY = "sk-SECRET-4242-zz"


def sample_bytes(name: str) -> bytes:
    """The raw bytes of ``tests/samples/<name>``."""
    return (SAMPLES / name).read_bytes()


def sample(name: str) -> Any:
    """``tests/samples/<name>`` decoded as JSON."""
    return json.loads(sample_bytes(name))


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: bytes
    json: Any = None
    form: dict[str, str] | None = None


@dataclass
class Reply:
    """A scripted answer.

    ``hang`` holds the answer until the server shuts down (or ``hang`` seconds
    pass); ``drop`` reads the whole request body, then closes the connection
    without answering; ``chunked`` streams the body with no Content-Length.
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hang: float | None = None
    drop: bool = False
    chunked: bool = False

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        return cls(
            status=status,
            body=json.dumps(obj, ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    @classmethod
    def text(cls, text: str, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        return cls(status=status, body=text.encode(), headers=headers or {})

    @classmethod
    def raw(cls, body: bytes, status: int = 200, content_type: str | None = None) -> Reply:
        headers = {"Content-Type": content_type} if content_type else {}
        return cls(status=status, body=body, headers=headers)


Handler = Callable[[Recorded], "Reply | Awaitable[Reply]"]


class RecordingServer:
    """An aiohttp server on 127.0.0.1 with scripted routes and a request log.

    ``add(method, path, *replies)`` queues replies for a route: each request
    takes the next one and the last one repeats. ``on(method, path, fn)``
    answers with ``fn(recorded)`` instead. Unscripted routes get HTTP 599 so
    a test that hits one fails loudly.
    """

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._routes: dict[tuple[str, str], list[Reply] | Handler] = {}
        self._release = asyncio.Event()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.port = 0

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self.url = f"http://127.0.0.1:{self.port}"

    async def close(self) -> None:
        self._release.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- scripting ----------------------------------------------------------

    def add(self, method: str, path: str, *replies: Reply) -> RecordingServer:
        assert replies, "give at least one reply"
        self._routes[(method.upper(), path)] = list(replies)
        return self

    def on(self, method: str, path: str, handler: Handler) -> RecordingServer:
        self._routes[(method.upper(), path)] = handler
        return self

    # -- inspection ---------------------------------------------------------

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper()) and (path is None or r.path == path)
        ]

    @property
    def last(self) -> Recorded:
        assert self.requests, "the server received no request"
        return self.requests[-1]

    async def wait_for(self, count: int, path: str | None = None, timeout: float = 5.0) -> None:
        """Wait until at least ``count`` requests (to ``path``, if given) arrived."""

        async def until() -> None:
            while len(self.calls(path=path)) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(until(), timeout)

    # -- serving ------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        ctype = request.headers.get("Content-Type", "")
        parsed_json: Any = None
        form: dict[str, str] | None = None
        if "json" in ctype and body:
            try:
                parsed_json = json.loads(body)
            except ValueError:
                parsed_json = None
        elif "x-www-form-urlencoded" in ctype:
            form = dict(parse_qsl(body.decode(), keep_blank_values=True))
        rec = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=CIMultiDict(request.headers),
            body=body,
            json=parsed_json,
            form=form,
        )
        self.requests.append(rec)
        self._changed.set()
        route = self._routes.get((request.method, request.path))
        if route is None:
            reply = Reply.text(f"no scripted route for {request.method} {request.path}", 599)
        elif isinstance(route, list):
            reply = route.pop(0) if len(route) > 1 else route[0]
        else:
            result = route(rec)
            reply = await result if asyncio.iscoroutine(result) else result  # type: ignore[assignment]
        if reply.hang is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._release.wait(), reply.hang)
        if reply.drop:
            assert request.transport is not None
            request.transport.abort()  # the body was read; no answer will come
        if reply.chunked:
            stream = web.StreamResponse(status=reply.status, headers=reply.headers)
            stream.enable_chunked_encoding()
            await stream.prepare(request)
            for start in range(0, len(reply.body), 4096):
                await stream.write(reply.body[start : start + 4096])
            await stream.write_eof()
            return stream
        return web.Response(status=reply.status, body=reply.body, headers=reply.headers)


def task_json(task_id: str, status: str = "SUCCESS", progress: str = "100%", **extra: Any) -> Any:
    """A minimal proxy-style task object."""
    return {"id": task_id, "action": "IMAGINE", "status": status, "progress": progress, **extra}


def submit_ok(task_id: str = "1730621826053455", code: int = 1, **properties: Any) -> Reply:
    """A proxy submit envelope accepting ``task_id``."""
    return Reply.json(
        {"code": code, "description": "Submit success", "result": task_id, "properties": properties}
    )


def mask_png(size: int = 8) -> str:
    """A PNG data URL mask, all white (repaint everything)."""
    rows = b"".join(b"\x00" + b"\xff" * size for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return "data:image/png;base64," + base64.b64encode(png).decode()


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the loop run until ``predicate()`` holds; TimeoutError after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.001)


# What a user whose images sit on this machine passes as ``download_allow``: test
# CDNs run on other ports of 127.0.0.1, off the base URL's origin.
LOCAL_HOSTS = ["127.0.0.0/8", "::1", "localhost"]


Emulated = Callable[..., AbstractAsyncContextManager[tuple[Emulator, MidjourneySession]]]
"""The ``emulated`` fixture of ``conftest.py``:
``async with emulated(profile, emulator={...}, **session_kwargs) as (emu, mj):``."""


def default_sigint() -> None:
    """For ``preexec_fn``: give a child the default SIGINT even when the test run
    ignores it (a shell starts background jobs with SIGINT ignored, and an ignored
    signal is inherited), so that a test can press Ctrl-C in it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
