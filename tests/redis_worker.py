"""One worker of a namespace, for tests/test_redis_workers.py.

    python redis_worker.py REDIS_URL NAMESPACE BASE_URL API_KEY MODE [ARGS...]

Modes (each prints ``ready <worker id>`` once its session is open):
  submit N           submit N imagines, print ``submitted <ids>``, wait on them, print
                     ``finished <list requests this worker sent>``
  receiver PORT      run the webhook receiver on PORT and only listen
  burst N CAP        on ``go`` (stdin), submit N imagines under a shared cap of CAP,
                     wait for all, print ``done <ok> <errors>``
The worker ends when its stdin closes (or when it is killed).
"""

from __future__ import annotations

import asyncio
import sys

from midjourney_async import MidjourneyError, MidjourneySession, WebhookConfig
from midjourney_async.redis import RedisBackend


async def stdin_line() -> str:
    line: str = await asyncio.to_thread(sys.stdin.readline)
    return line.strip()


async def main(url: str, namespace: str, base: str, key: str, mode: str, *args: str) -> None:
    backend = RedisBackend(url, namespace=namespace, lease_ttl=1.0)
    options: dict[str, object] = {"poll_interval": 0.05}
    if mode == "receiver":
        options = {
            "poll_interval": 60.0,
            "webhook": WebhookConfig(port=int(args[0]), poll_interval=60.0),
        }
    if mode == "burst":
        options["max_in_flight"] = int(args[1])
    async with MidjourneySession(base, key, backend=backend, **options) as mj:  # type: ignore[arg-type]
        print("ready", backend.worker, flush=True)
        if mode == "submit":
            handles = [await mj.imagine(f"worker task {i}") for i in range(int(args[0]))]
            print("submitted", *(h.id for h in handles), flush=True)
            await mj.wait_all(handles, timeout=600)
            print("finished", mj.tracker_stats.list_requests, flush=True)
        elif mode == "burst":
            await stdin_line()
            outcomes = await asyncio.gather(
                *(mj.imagine(f"burst {namespace} {i}") for i in range(int(args[0]))),
                return_exceptions=True,
            )
            ok = [h for h in outcomes if not isinstance(h, BaseException)]
            errors = [h for h in outcomes if isinstance(h, BaseException)]
            results = await mj.wait_all(ok, timeout=60, return_exceptions=True)
            bad = [r for r in results if isinstance(r, MidjourneyError)]
            for err in errors + bad:
                print("error", repr(err), flush=True)
            print("done", len(results) - len(bad), len(errors) + len(bad), flush=True)
        await stdin_line()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
