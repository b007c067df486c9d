"""The API key goes to the provider only: never to the hosts images are served from."""

from __future__ import annotations

from pathlib import Path

from mj_support import KEY, LOCAL_HOSTS, RecordingServer, Reply

from midjourney_async import MidjourneySession, Task

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def test_downloads_from_other_hosts_carry_no_credentials(
    server: RecordingServer, tmp_path: Path
) -> None:
    cdn = RecordingServer()
    await cdn.start()
    try:
        cdn.add("GET", "/grid.png", Reply.raw(PNG, content_type="image/png"))
        server.add("GET", "/mj/image/1", Reply.raw(PNG, content_type="image/png"))
        styles = (("midjourney-proxy", "mj-api-secret"), ("new-api", "Authorization"))
        for provider, header in styles:
            # The CDN is another port on 127.0.0.1.
            async with MidjourneySession(
                server.url, KEY, provider=provider, download_allow=LOCAL_HOSTS
            ) as mj:
                task = Task(id="1", status="SUCCESS", image_url=f"{cdn.url}/grid.png")
                own = Task(id="1", status="SUCCESS", image_url="/mj/image/1")
                [saved] = await mj.download(task, tmp_path / provider)
                await mj.download(own, tmp_path / provider / "own")
            assert saved.read_bytes() == PNG
            [to_cdn] = cdn.calls("GET", "/grid.png")[-1:]
            assert header not in to_cdn.headers
            assert all(KEY not in value for value in to_cdn.headers.values())
            [to_provider] = server.calls("GET", "/mj/image/1")[-1:]
            assert KEY in to_provider.headers[header]
    finally:
        await cdn.close()
