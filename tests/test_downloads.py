"""Downloads fetch only what they should and leave nothing half-written: links
to the user's own network are refused unless on the base URL's origin or
allowed, only images and videos are saved, the temporary file cannot be
hijacked by a planted symlink, and one failed link ends the whole download."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from mj_support import KEY, LOCAL_HOSTS, Emulated, RecordingServer, Reply

from midjourney_async import (
    ConfigurationError,
    DownloadRefused,
    MidjourneySession,
    NotFoundError,
    RetryPolicy,
    Task,
)
from midjourney_async._guard import AddressGuard
from midjourney_async._media import save_task_media
from midjourney_async._transport import Transport

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff" + b"j" * 64


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def snapshot(*urls: str, task_id: str = "7") -> Task:
    first, *rest = urls
    return Task(id=task_id, status="SUCCESS", image_url=first, image_url_refs=list(rest) or None)


@pytest.fixture
async def cdn() -> AsyncIterator[RecordingServer]:
    """A second server on 127.0.0.1: another origin than the session's base URL."""
    srv = RecordingServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture
async def transport_for(server: RecordingServer) -> AsyncIterator[Any]:
    """Transports on the recording server, with a given download allow-list."""
    opened: list[Transport] = []

    async def make(allow: list[str] | None) -> Transport:
        transport = Transport(
            server.url, headers={}, api_key=KEY, timeout=5, retry=RetryPolicy.never(),
            download_allow=allow,
        )
        await transport.open()
        opened.append(transport)
        return transport

    yield make
    for transport in opened:
        await transport.close()


# -- where a link may point --------------------------------------------------------


async def test_a_link_to_another_loopback_origin_is_refused(
    server: RecordingServer, cdn: RecordingServer, make_session: Any, tmp_path: Path
) -> None:
    cdn.add("GET", "/a.png", Reply.raw(PNG, content_type="image/png"))
    mj = await make_session()
    for url in (f"{cdn.url}/a.png", f"http://localhost:{cdn.port}/a.png"):
        with pytest.raises(DownloadRefused, match="download_allow") as info:
            await mj.download(snapshot(url), tmp_path)
        assert info.value.url == url
    assert cdn.requests == []
    assert files(tmp_path) == []


@pytest.mark.parametrize(
    "address",
    ["[::1]", "[::ffff:127.0.0.1]", "127.0.0.2", "0.0.0.0", "[::ffff:7f00:1]"],
)
async def test_links_to_loopback_literals_are_refused_before_connecting(
    cdn: RecordingServer, make_session: Any, tmp_path: Path, address: str
) -> None:
    cdn.add("GET", "/a.png", Reply.raw(PNG, content_type="image/png"))
    mj = await make_session()
    with pytest.raises(DownloadRefused):
        await mj.download(snapshot(f"http://{address}:{cdn.port}/a.png"), tmp_path)
    assert cdn.requests == []
    assert files(tmp_path) == []


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("169.254.169.254", False),  # cloud metadata
        ("10.1.2.3", False),
        ("172.16.0.9", False),
        ("192.168.0.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("127.0.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::1", False),
        ("::ffff:10.0.0.1", False),
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
    ],
)
def test_which_addresses_a_download_may_reach(address: str, allowed: bool) -> None:
    # The policy alone, with no I/O: tests never connect to anything but loopback.
    guard = AddressGuard([])
    assert (guard.host_refusal("img.example", 443, [address]) is None) is allowed
    opened = AddressGuard(["10.0.0.0/8", "fd00::/8", "images.lan"])
    assert opened.host_refusal("x", 443, ["10.1.2.3"]) is None
    assert opened.host_refusal("x", 443, ["fd00::1"]) is None
    assert opened.host_refusal("images.lan", 443, ["192.168.0.1"]) is None
    assert opened.host_refusal("x", 443, ["192.168.0.1"]) is not None
    # A name with one private address among public ones is refused whole.
    assert guard.host_refusal("x", 443, ["93.184.216.34", "10.0.0.1"]) is not None


@pytest.mark.parametrize("host", ["localhost", "[::ffff:127.0.0.1]", "127.0.0.1"])
async def test_a_redirect_to_a_private_address_is_refused(
    server: RecordingServer, cdn: RecordingServer, make_session: Any, tmp_path: Path,
    host: str,
) -> None:
    location = f"http://{host}:{cdn.port}/a.png"
    server.add("GET", "/mj/image/7", Reply(status=302, headers={"Location": location}))
    cdn.add("GET", "/a.png", Reply.raw(PNG, content_type="image/png"))
    mj = await make_session()
    with pytest.raises(DownloadRefused):
        await mj.download(snapshot("/mj/image/7"), tmp_path)
    assert len(server.calls("GET", "/mj/image/7")) == 1
    assert cdn.requests == []
    assert files(tmp_path) == []


async def test_links_on_the_base_url_origin_are_fetched(tmp_path: Path, emulated: Emulated) -> None:
    # The emulator, like a relay, serves its images on its own origin (127.0.0.1).
    async with emulated() as (emu, mj):
        task = await (await mj.imagine("a lighthouse")).wait()
        assert task.image_url and task.image_url.startswith(emu.base_url)
        paths = await mj.download(task, tmp_path)
    assert paths and all(p.read_bytes().startswith(b"\x89PNG") for p in paths)


@pytest.mark.parametrize("entry", ["127.0.0.1", "127.0.0.0/8", "localhost"])
async def test_the_allow_list_opens_a_private_host(
    cdn: RecordingServer, transport_for: Any, tmp_path: Path, entry: str
) -> None:
    cdn.add("GET", "/a.png", Reply.raw(PNG, content_type="image/png"))
    host = "localhost" if entry == "localhost" else "127.0.0.1"
    url = f"http://{host}:{cdn.port}/a.png"
    refused = await transport_for(None)
    with pytest.raises(DownloadRefused):
        await save_task_media(refused, snapshot(url), tmp_path, max_bytes=10_000)
    allowed = await transport_for([entry])
    [path] = await save_task_media(allowed, snapshot(url), tmp_path, max_bytes=10_000)
    assert path.read_bytes() == PNG
    assert len(cdn.requests) == 1


async def test_an_allow_list_entry_that_is_not_a_host_or_network_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="download_allow"):
        Transport(
            "http://127.0.0.1:9", headers={}, api_key=None, timeout=1,
            retry=RetryPolicy.never(), download_allow=["10.0.0.0/33"],
        )


# -- what may be saved -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "saved_as"),
    [
        (PNG, "application/octet-stream", "7.png"),
        (JPEG, None, "7.jpg"),
        (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 16, "binary/octet-stream", "7.mp4"),
    ],
)
async def test_untyped_bodies_are_saved_when_they_are_media(
    server: RecordingServer, make_session: Any, tmp_path: Path, body: bytes,
    content_type: str | None, saved_as: str,
) -> None:
    server.add("GET", "/blob", Reply.raw(body, content_type=content_type))
    mj = await make_session()
    [path] = await mj.download(snapshot(f"{server.url}/blob"), tmp_path)
    assert path.name == saved_as
    assert path.read_bytes() == body


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html>router admin</html>", "text/html"),
        (b'{"AccessKeyId": "x"}', "application/json"),
        (b"<html>router admin</html>", "application/octet-stream"),
        (b"plain secrets", None),
    ],
)
async def test_bodies_that_are_not_media_are_refused(
    server: RecordingServer, make_session: Any, tmp_path: Path, body: bytes,
    content_type: str | None,
) -> None:
    server.add("GET", "/blob", Reply.raw(body, content_type=content_type))
    mj = await make_session()
    with pytest.raises(DownloadRefused, match="not an image or a video"):
        await mj.download(snapshot(f"{server.url}/blob"), tmp_path)
    with pytest.raises(DownloadRefused):
        await mj.split_grid(snapshot(f"{server.url}/blob"), tmp_path)
    assert files(tmp_path) == []


# -- the temporary file ------------------------------------------------------------


async def test_a_planted_symlink_is_never_written_through(
    server: RecordingServer, make_session: Any, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    # Every name an attacker could predict: the old "<name>.part" and the final name.
    for name in ("7.png.part", ".7.png.part", "7.png"):
        os.symlink(victim, out / name)
    server.add("GET", "/a.png", Reply.raw(PNG, content_type="image/png"))
    mj = await make_session()
    [path] = await mj.download(snapshot(f"{server.url}/a.png"), out)
    assert victim.read_bytes() == b"precious"
    assert path == out / "7.png"
    assert not path.is_symlink() and path.read_bytes() == PNG
    assert files(out) == [".7.png.part", "7.png", "7.png.part"]  # planted links untouched


class _Slow:
    """An image host whose body stops half-way until released; notes disconnects."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.gone = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def slow(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        resp.content_length = len(PNG) * 2
        await resp.prepare(request)
        await resp.write(PNG)
        self.started.set()
        try:
            await asyncio.wait_for(self.release.wait(), 10)
            await resp.write(PNG)
        except (asyncio.CancelledError, ConnectionError):
            self.gone.set()
            raise
        return resp

    @staticmethod
    async def fast(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    @staticmethod
    async def expired(request: web.Request) -> web.Response:
        return web.Response(status=404, text="expired")

    async def __aenter__(self) -> _Slow:
        app = web.Application()
        app.router.add_get("/slow.png", self.slow)
        app.router.add_get("/fast.png", self.fast)
        app.router.add_get("/gone.png", self.expired)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        assert self._runner is not None
        await self._runner.cleanup()


async def test_the_temporary_file_has_an_unpredictable_name(tmp_path: Path) -> None:
    async with _Slow() as host, MidjourneySession(host.url, KEY) as mj:
        job = asyncio.create_task(mj.download(snapshot(f"{host.url}/slow.png"), tmp_path))
        await asyncio.wait_for(host.started.wait(), 5)
        for _ in range(200):  # bounded: the first chunk reaches the disk within moments
            parts = [name for name in files(tmp_path) if name.endswith(".part")]
            if parts:
                break
            await asyncio.sleep(0.01)
        [part] = parts
        assert part not in ("7.png.part", ".7.png.part")
        assert part.startswith(".7.png.") and len(part) > len(".7.png..part") + 8
        host.release.set()
        [path] = await asyncio.wait_for(job, 5)
    assert files(tmp_path) == ["7.png"]
    assert path.read_bytes() == PNG * 2


async def test_one_failed_link_ends_the_others_and_leaves_no_file(tmp_path: Path) -> None:
    async with _Slow() as host, MidjourneySession(host.url, KEY) as mj:
        task = snapshot(
            f"{host.url}/slow.png", f"{host.url}/fast.png", f"{host.url}/gone.png"
        )
        job = asyncio.create_task(mj.download(task, tmp_path))
        await asyncio.wait_for(host.started.wait(), 5)
        host_done = asyncio.create_task(host.gone.wait())
        with pytest.raises(NotFoundError):
            await asyncio.wait_for(job, 5)
        # Nothing on disk the moment the call returns: no part file, not even the
        # image that did arrive, and the slow download was stopped, not left running.
        assert files(tmp_path) == []
        await asyncio.wait_for(host_done, 5)
    assert files(tmp_path) == []


# -- links that are not URLs ----------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://[bad/x.png", "http://127.0.0.1:99999/x.png", "http://h:port/x.png"]
)
async def test_a_link_that_is_not_a_url_is_a_typed_refusal(
    make_session: Any, tmp_path: Path, url: str
) -> None:
    mj = await make_session()
    with pytest.raises(DownloadRefused, match="not a valid URL"):
        await mj.download(snapshot(url), tmp_path)
    assert files(tmp_path) == []


@pytest.mark.parametrize("location", ["http://[bad/x.png", "http://h:99999/x"])
async def test_a_redirect_to_something_that_is_not_a_url_is_a_typed_refusal(
    server: RecordingServer, make_session: Any, tmp_path: Path, location: str
) -> None:
    server.add("GET", "/mj/image/7", Reply(status=302, headers={"Location": location}))
    mj = await make_session()
    with pytest.raises(DownloadRefused, match="not a valid URL"):
        await mj.download(snapshot("/mj/image/7"), tmp_path)
    assert files(tmp_path) == []


async def test_redirect_to_another_host_never_carries_the_key(tmp_path: Path) -> None:
    seen: list[dict[str, str]] = []

    async def grab(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(body=b"\x89PNG\r\n\x1a\n....", content_type="image/png")

    other = web.Application()
    other.router.add_get("/{p:.*}", grab)
    cdn = web.AppRunner(other)
    await cdn.setup()
    await web.TCPSite(cdn, "127.0.0.1", 0).start()
    cdn_port = cdn.addresses[0][1]

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://localhost:{cdn_port}/cdn/img.png")

    base = web.Application()
    base.router.add_get("/{p:.*}", redirect)
    provider = web.AppRunner(base)
    await provider.setup()
    await web.TCPSite(provider, "127.0.0.1", 0).start()
    base_url = f"http://127.0.0.1:{provider.addresses[0][1]}"
    try:
        # The CDN is another port on 127.0.0.1.
        async with MidjourneySession(
            base_url, KEY, provider="midjourney-proxy", download_allow=LOCAL_HOSTS
        ) as mj:
            task = Task(id="1", status="SUCCESS", image_url=f"{base_url}/mj/image/1")
            [saved] = await mj.download(task, tmp_path)
        assert saved.read_bytes().startswith(b"\x89PNG")
        assert seen and all(KEY not in v for h in seen for v in h.values())
    finally:
        await provider.cleanup()
        await cdn.cleanup()
