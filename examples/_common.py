"""Shared by the examples: a session on a real provider, or on the built-in emulator.

With MJ_BASE_URL (and MJ_API_KEY, MJ_PROVIDER, MJ_MODE) set, the examples talk to
that provider. Without it they start the emulator on 127.0.0.1, so every example
runs out of the box. MJ_EXAMPLE_SPEED picks the emulator speed ("demo" by default;
the test suite uses "instant").
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from midjourney_async import MidjourneySession


@asynccontextmanager
async def open_session(**options: Any) -> AsyncIterator[MidjourneySession]:
    """A session on the provider MJ_* names, or on the built-in emulator without MJ_BASE_URL.

    ``provider`` is the example's choice for the emulator (and the default
    when MJ_PROVIDER is unset); ``emulator`` holds options for the built-in one only.
    """
    if os.environ.get("MJ_BASE_URL"):
        options.pop("emulator", None)
        if os.environ.get("MJ_PROVIDER"):
            options.pop("provider", None)  # the user's choice wins
        async with MidjourneySession(**options) as mj:
            yield mj
        return
    from midjourney_async.testing import Emulator

    speed = os.environ.get("MJ_EXAMPLE_SPEED", "demo")
    profile = options.pop("provider", "midjourney-proxy")
    emulator_options = options.pop("emulator", {})
    async with Emulator(profile=profile, speed=speed, **emulator_options) as emu:
        print(f"(no MJ_BASE_URL set: using the built-in emulator at {emu.base_url})")
        poll = 0.05 if speed == "instant" else 0.5
        options.setdefault("poll_interval", poll)
        async with MidjourneySession(
            emu.base_url, emu.api_key, provider=profile, **options
        ) as mj:
            yield mj


@contextmanager
def connection(profile: str = "midjourney-proxy") -> Iterator[dict[str, Any]]:
    """For blocking code: the MJ_* provider, or the built-in emulator on a thread of its own.

    Yields the arguments to give the client: none when MJ_BASE_URL is set (the
    client reads MJ_*), the emulator's URL and key otherwise.
    """
    if os.environ.get("MJ_BASE_URL"):
        yield {}
        return
    from midjourney_async.testing import Emulator

    speed = os.environ.get("MJ_EXAMPLE_SPEED", "demo")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    emu = Emulator(profile=profile, speed=speed)
    asyncio.run_coroutine_threadsafe(emu.start(), loop).result()
    print(f"(no MJ_BASE_URL set: using the built-in emulator at {emu.base_url})")
    try:
        yield {
            "base_url": emu.base_url,
            "api_key": emu.api_key,
            "provider": profile,
            "poll_interval": 0.05 if speed == "instant" else 0.5,
        }
    finally:
        asyncio.run_coroutine_threadsafe(emu.close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
