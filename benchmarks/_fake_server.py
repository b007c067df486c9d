"""A fake proxy for load figures the emulator cannot serve fast enough (100,000 tasks a second).

Every id it is asked about is a task IN_PROGRESS at 62%, rendered from one
real answer (tests/samples) with only the id changed, so the answers are the
size and shape of a real server's and cost the server next to nothing. Run as
its own process (``FakeServerProcess`` in _common.py); it prints
``BASE_URL API_KEY`` on its first line, as the emulator does.

    python benchmarks/_fake_server.py
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import msgspec
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import in_progress_body

MARK = "@@ID@@"


class Ids(msgspec.Struct):
    ids: list[str] = []


def app() -> web.Application:
    before, after = in_progress_body(MARK).split(MARK.encode())
    decode_ids = msgspec.json.Decoder(Ids).decode
    counts = {"task/list-by-condition": 0, "task/fetch": 0}
    served = {"list_ids": 0, "fetch_ids": 0}

    async def list_by_condition(request: web.Request) -> web.Response:
        ids = decode_ids(await request.read()).ids
        counts["task/list-by-condition"] += 1
        served["list_ids"] += len(ids)
        body = b"[" + b",".join([before + i.encode() + after for i in ids]) + b"]"
        return web.Response(body=body, content_type="application/json")

    async def fetch(request: web.Request) -> web.Response:
        counts["task/fetch"] += 1
        served["fetch_ids"] += 1
        body = before + request.match_info["id"].encode() + after
        return web.Response(body=body, content_type="application/json")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"requests": counts, **served})

    application = web.Application()
    application.router.add_post("/mj/task/list-by-condition", list_by_condition)
    application.router.add_get("/mj/task/{id}/fetch", fetch)
    application.router.add_get("/_emulator/stats", stats)
    return application


async def serve() -> None:
    runner = web.AppRunner(app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"http://127.0.0.1:{port} fake-key", flush=True)
    try:
        await asyncio.Event().wait()  # until SIGTERM ends the process
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        sys.exit(0)
