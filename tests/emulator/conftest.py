"""Fixtures for the emulator tests: emulators started on demand and a raw HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from emu_support import Wire

from midjourney_async.testing import Emulator

EmuFactory = Callable[..., Awaitable[Emulator]]
WireFactory = Callable[..., Awaitable[Wire]]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def emulators() -> AsyncIterator[EmuFactory]:
    """Start emulators (instant speed unless told otherwise); all closed at teardown."""
    started: list[Emulator] = []

    async def factory(profile: str = "midjourney-proxy-plus", **kwargs: Any) -> Emulator:
        kwargs.setdefault("speed", "instant")
        emu = Emulator(profile, **kwargs)
        await emu.start()
        started.append(emu)
        return emu

    try:
        yield factory
    finally:
        for emu in started:
            await emu.close()


@pytest.fixture
def wire(emulators: EmuFactory, http: aiohttp.ClientSession) -> WireFactory:
    """``await wire(profile, **emulator_kwargs)`` -> a :class:`Wire` on a fresh emulator."""

    async def factory(profile: str = "midjourney-proxy-plus", **kwargs: Any) -> Wire:
        return Wire(http, await emulators(profile, **kwargs))

    return factory
