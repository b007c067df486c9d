"""Shared by the examples: a session on a real provider, or on the built-in emulator.

With MJ_BASE_URL (and MJ_API_KEY, MJ_PROVIDER, MJ_MODE) set, the examples talk to
that provider. Without it they start the emulator on 127.0.0.1, so every example
runs out of the box. MJ_EXAMPLE_SPEED picks the emulator speed ("demo" by default;
the test suite uses "instant").
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from midjourney_async import MidjourneySession


@asynccontextmanager
async def open_session(**options: Any) -> AsyncIterator[MidjourneySession]:
    if os.environ.get("MJ_BASE_URL"):
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
