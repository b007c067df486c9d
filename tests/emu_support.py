"""Helpers for the emulator tests: raw HTTP calls with each profile's auth, PNG decoding.

Named uniquely (not ``conftest``/``support``) so it can never shadow another test module.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from midjourney_async.testing import Emulator

RELAYS = ("new-api", "openai-hk", "zhongzhuan", "pro365")
PROXY_PROFILES = ("midjourney-proxy-plus", "trueai", *RELAYS)
JAVA_EDITIONS = ("midjourney-proxy-open", "midjourney-proxy-plus")

# A 1x1 PNG as a data URL: the smallest valid image a submit can carry.
PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4"
    "//8/AAX+Av4N70a4AAAAAElFTkSuQmCC"
)


def auth_headers(profile: str, key: str) -> dict[str, str]:
    """The header each profile expects the key in."""
    if profile.startswith("midjourney-proxy"):
        return {"mj-api-secret": key}
    if profile == "trueai":
        return {"Authorization": key}
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Resp:
    """A finished response: status, headers and raw body."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class Wire:
    """Raw aiohttp calls against one emulator, authenticated the profile's way."""

    def __init__(self, http: aiohttp.ClientSession, emu: Emulator) -> None:
        self.http = http
        self.emu = emu
        self.headers = auth_headers(emu.profile, emu.api_key)

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> Resp:
        hdrs = dict(self.headers) if auth else {}
        hdrs.update(headers or {})
        url = path if path.startswith("http") else self.emu.base_url + path
        kwargs: dict[str, Any] = {"headers": hdrs}
        if json_body is not None:
            kwargs["json"] = json_body
        if data is not None:
            kwargs["data"] = data
        async with self.http.request(method, url, **kwargs) as r:
            return Resp(r.status, await r.read(), dict(r.headers))

    async def submit(self, endpoint: str, prefix: str = "/mj", **body: Any) -> Resp:
        return await self.call("POST", f"{prefix}/submit/{endpoint}", json_body=body)

    async def imagine(self, prompt: str, **body: Any) -> str:
        """Submit an imagine that must be accepted; returns the task id as a string."""
        r = await self.submit("imagine", prompt=prompt, **body)
        assert r.status == 200, r.text
        answer = r.json()
        assert answer["code"] in (1, 22), answer
        return str(answer["result"])

    async def fetch(self, task_id: str, prefix: str = "/mj") -> Resp:
        return await self.call("GET", f"{prefix}/task/{task_id}/fetch")

    async def task(self, task_id: str) -> dict[str, Any]:
        r = await self.fetch(task_id)
        assert r.status == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    async def finished(self, task_id: str) -> dict[str, Any]:
        """Fast-forward the emulator and return the task's fetch JSON."""
        await self.emu.complete_all()
        return await self.task(task_id)

    async def press(self, task_id: str, custom_id: str, **body: Any) -> Resp:
        return await self.submit("action", taskId=task_id, customId=custom_id, **body)


def button(task: dict[str, Any], label: str = "", emoji: str = "", prefix: str = "") -> str:
    """The customId of the button with ``label`` (or ``emoji``, or customId ``prefix``)."""
    for b in task["buttons"]:
        if (label and b["label"] == label) or (emoji and b["emoji"] == emoji):
            return str(b["customId"])
        if prefix and b["customId"].startswith(prefix):
            return str(b["customId"])
    raise AssertionError(f"no button {label or emoji or prefix!r} in {task['buttons']}")


@dataclass
class Png:
    """A decoded 8-bit RGB PNG."""

    width: int
    height: int
    rows: list[bytes]

    def pixel(self, x: int, y: int) -> bytes:
        return self.rows[y][x * 3 : x * 3 + 3]

    def region(self, x0: int, y0: int, w: int, h: int) -> bytes:
        return b"".join(self.rows[y][x0 * 3 : (x0 + w) * 3] for y in range(y0, y0 + h))


def decode_png(data: bytes) -> Png:
    """Parse a PNG written by the emulator: checks signature, IHDR and CRCs; RGB only."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunk = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + chunk) & 0xFFFFFFFF == crc, f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    assert header is not None, "no IHDR"
    width, height, depth, colour, _, _, interlace = header
    assert (depth, colour, interlace) == (8, 2, 0), header
    raw = zlib.decompress(idat)
    stride = width * 3 + 1
    assert len(raw) == stride * height
    rows = []
    for y in range(height):
        line = raw[y * stride : (y + 1) * stride]
        assert line[0] == 0, "the emulator only writes filter type 0"
        rows.append(line[1:])
    return Png(width, height, rows)


EmuFactory = Callable[..., Awaitable[Emulator]]
"""``await emulators(profile, **kwargs)``: the ``emulators`` fixture of ``conftest.py``."""
WireFactory = Callable[..., Awaitable[Wire]]
"""``await wire(profile, **kwargs)``: the ``wire`` fixture of ``conftest.py``."""
