"""A small aiohttp service: POST /generate submits a prompt and answers when done.

The session runs a webhook receiver: every submit carries a callback URL with
a secret token, so the provider's callback wakes the waiting request at once,
while slow polling stays on as a safety net (callbacks are never retried).

    python examples/webhook_service.py           # runs one request against itself
    python examples/webhook_service.py --serve   # keeps serving on 127.0.0.1:8080
"""

import asyncio
import sys

from _common import open_session
from aiohttp import ClientSession, web

from midjourney_async import MidjourneyError, MidjourneySession, WebhookConfig


def make_app(mj: MidjourneySession) -> web.Application:
    async def generate(request: web.Request) -> web.Response:
        body = await request.json()
        handle = await mj.imagine(str(body["prompt"]))
        try:
            task = await handle.wait(timeout=900)
        except MidjourneyError as exc:
            return web.json_response({"id": handle.id, "error": str(exc)}, status=502)
        return web.json_response({"id": task.id, "image_url": task.image_url})

    app = web.Application()
    app.router.add_post("/generate", generate)
    return app


async def main() -> None:
    # The provider must be able to reach the receiver: on a real deployment set
    # public_url to the address it can reach (behind your reverse proxy).
    webhook = WebhookConfig(host="127.0.0.1", port=0, poll_interval=5.0)
    async with open_session(webhook=webhook) as mj:
        print("callbacks go to", mj.webhook_url.split("/callback/")[0] + "/callback/<token>")
        runner = web.AppRunner(make_app(mj))
        await runner.setup()
        serve = "--serve" in sys.argv
        site = web.TCPSite(runner, "127.0.0.1", 8080 if serve else 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            if serve:
                print(f"serving on http://127.0.0.1:{port}/generate (Ctrl-C stops)")
                await asyncio.Event().wait()
            async with ClientSession() as http, http.post(
                f"http://127.0.0.1:{port}/generate", json={"prompt": "a paper boat"}
            ) as resp:
                print("service answered:", resp.status, await resp.json())
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
