"""Proxies and extra headers, end to end through a forward proxy on 127.0.0.1.

The proxy is a small aiohttp server that takes plain-http proxy requests
(absolute URIs in the request line), records each one and forwards it to the
emulator. ``HTTP_PROXY`` must be honoured as requests and httpx honour it,
``NO_PROXY`` must still reach the emulator directly, and ``proxy=`` must
carry the API calls and the image downloads alike.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from mj_support import KEY, RecordingServer, Reply, mask_png, task_json

from midjourney_async import ConfigurationError, MidjourneyError, MidjourneySession, RetryPolicy
from midjourney_async.testing import Emulator

_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization",
        "transfer-encoding", "content-length", "content-encoding"}


class ForwardProxy:
    """An HTTP forward proxy on 127.0.0.1 that records the absolute URIs it forwarded."""

    def __init__(self) -> None:
        self.forwarded: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        # Its own onward client ignores the environment: it must not loop to itself.
        self._client = aiohttp.ClientSession(trust_env=False, auto_decompress=False)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        target = request.raw_path  # a proxy request carries the absolute URI here
        if not target.startswith("http://"):
            return web.Response(status=400, text="not a proxy request")
        self.forwarded.append(target)
        self.headers.append(dict(request.headers))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        assert self._client is not None
        async with self._client.request(
            request.method, target, headers=headers, data=await request.read(),
            allow_redirects=False,
        ) as resp:
            body = await resp.read()
            out = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP}
            return web.Response(status=resp.status, body=body, headers=out)


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    fp = ForwardProxy()
    await fp.start()
    try:
        yield fp
    finally:
        await fp.close()


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
                 "http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


async def _imagine_and_download(emu: Emulator, tmp_path: Path, **options: object) -> list[Path]:
    async with MidjourneySession(
        emu.base_url, emu.api_key, poll_interval=0.01, retry=RetryPolicy.without_waits(),
        **options,  # type: ignore[arg-type]
    ) as mj:
        task = await (await mj.imagine("a lighthouse at dusk")).wait(timeout=30)
        return await mj.download(task, tmp_path)


async def test_http_proxy_variable_carries_api_calls_and_downloads(
    proxy: ForwardProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with Emulator(profile="midjourney-proxy") as emu:
        saved = await _imagine_and_download(emu, tmp_path)
    assert saved and saved[0].stat().st_size > 0
    paths = [u.removeprefix(emu.base_url) for u in proxy.forwarded]
    assert all(u.startswith(emu.base_url) for u in proxy.forwarded)
    assert "/mj/submit/imagine" in paths
    assert any(p.startswith("/mj/task/") for p in paths)
    # The image itself came through the proxy too.
    assert any("/mj/task/" not in p and "/submit/" not in p for p in paths), paths


async def test_no_proxy_reaches_loopback_directly(
    proxy: ForwardProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with Emulator(profile="midjourney-proxy") as emu:
        saved = await _imagine_and_download(emu, tmp_path)
    assert saved
    assert proxy.forwarded == []


async def test_trust_env_false_ignores_the_environment(
    proxy: ForwardProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    async with Emulator(profile="midjourney-proxy") as emu:
        assert await _imagine_and_download(emu, tmp_path, trust_env=False)
    assert proxy.forwarded == []


async def test_proxy_option_carries_everything_and_headers_reach_the_api(
    proxy: ForwardProxy, tmp_path: Path
) -> None:
    async with Emulator(profile="midjourney-proxy") as emu:
        saved = await _imagine_and_download(
            emu, tmp_path, proxy=proxy.url, headers={"X-Team": "design", "user-agent": "mine/1"}
        )
    assert saved
    sent = dict(zip(proxy.forwarded, proxy.headers, strict=True))
    submit = next(h for u, h in sent.items() if u.endswith("/mj/submit/imagine"))
    assert submit["X-Team"] == "design"
    assert submit["User-Agent"] == "mine/1"
    image = [h for u, h in sent.items() if "/mj/" not in u.removeprefix(emu.base_url)]
    assert image, proxy.forwarded


async def test_proxy_password_is_not_echoed_in_errors() -> None:
    with pytest.raises(ConfigurationError) as info:
        MidjourneySession("https://api.example.com", "k", proxy="socks5://u:hunter22@h:1")
    assert "hunter22" not in str(info.value)
    with pytest.raises(ConfigurationError, match="line break"):
        MidjourneySession("https://api.example.com", "k", headers={"X-A": "1\r\nX-B: 2"})


async def test_a_netrc_entry_never_replaces_the_key(
    server: RecordingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aiohttp's own trust_env would send ~/.netrc's login as Basic auth over the key.
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password elsewhere\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    server.add("GET", "/mj/task/7/fetch", Reply.json({"id": "7", "status": "SUCCESS"}))
    async with MidjourneySession(server.url, KEY, provider="new-api") as mj:
        assert (await mj.fetch("7")).id == "7"
    assert server.last.headers["Authorization"] == f"Bearer {KEY}"


async def test_a_proxy_password_from_the_environment_is_not_echoed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A proxy that refuses connections: the error names it without its password.
    monkeypatch.setenv("HTTP_PROXY", "http://user:s3cr3t-pw@127.0.0.1:9")
    async with MidjourneySession(
        "http://127.0.0.1:8", "k", retry=RetryPolicy.never(), timeout=5
    ) as mj:
        with pytest.raises(MidjourneyError) as info:
            await mj.fetch("7")
    assert "s3cr3t-pw" not in str(info.value) + repr(info.value)


async def test_an_image_on_another_host_goes_through_the_proxy_without_key_or_headers(
    proxy: ForwardProxy, server: RecordingServer, tmp_path: Path
) -> None:
    cdn = RecordingServer()
    await cdn.start()
    try:
        png = base64.b64decode(mask_png().split(",", 1)[1])
        cdn.add("GET", "/a.png", Reply(body=png, headers={"Content-Type": "image/png"}))
        image = f"{cdn.url}/a.png"
        server.add("GET", "/mj/task/7/fetch", Reply.json(task_json("7", imageUrl=image)))
        async with MidjourneySession(
            server.url, KEY, proxy=proxy.url, headers={"X-Team": "design"},
            download_allow=["127.0.0.1"], retry=RetryPolicy.never(),
        ) as mj:
            [saved] = await mj.download(await mj.fetch("7"), tmp_path)
        assert saved.read_bytes() == png
        assert image in proxy.forwarded
        sent = proxy.headers[proxy.forwarded.index(image)]
        assert "X-Team" not in sent and KEY not in str(sent)
        assert "X-Team" not in cdn.last.headers and KEY not in str(cdn.last.headers)
    finally:
        await cdn.close()
