"""Shared fixtures: the recording server of :mod:`mj_support`, session and emulator factories.

The support code lives in ``mj_support.py`` (a uniquely named module the test
files import) rather than here, so that other ``conftest.py`` files in
sub-directories can never shadow it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from emu_support import EmuFactory, Wire, WireFactory
from mj_support import KEY, Emulated, RecordingServer

from midjourney_async import MidjourneySession, RetryPolicy
from midjourney_async.testing import Emulator


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MJ_* variable of the machine running the tests leaks into a session, and
    no proxy of the machine carries the tests' traffic to 127.0.0.1 elsewhere."""
    for name in ("MJ_BASE_URL", "MJ_API_KEY", "MJ_PROVIDER", "MJ_MODE", "MJ_POLL_INTERVAL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def server() -> AsyncIterator[RecordingServer]:
    srv = RecordingServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


SessionFactory = Callable[..., Awaitable[MidjourneySession]]


@pytest.fixture
async def make_session(server: RecordingServer) -> AsyncIterator[SessionFactory]:
    """Open sessions against the recording server; all are closed at teardown.

    Defaults: the test key, no waits between retries, a near-zero poll tick.
    """
    opened: list[MidjourneySession] = []

    async def factory(**kwargs: Any) -> MidjourneySession:
        kwargs.setdefault("base_url", server.url)
        kwargs.setdefault("api_key", KEY)
        kwargs.setdefault("retry", RetryPolicy.without_waits())
        kwargs.setdefault("poll_interval", 0.01)
        kwargs.setdefault("timeout", 5.0)
        session = MidjourneySession(**kwargs)
        await session.open()
        opened.append(session)
        return session

    try:
        yield factory
    finally:
        for session in opened:
            await session.close()


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


@asynccontextmanager
async def _emulated(
    profile: str = "midjourney-proxy",
    *,
    emulator: Mapping[str, Any] | None = None,
    **session: Any,
) -> AsyncIterator[tuple[Emulator, MidjourneySession]]:
    session.setdefault("provider", None)
    session.setdefault("poll_interval", 0.01)
    session.setdefault("retry", RetryPolicy.without_waits())
    async with Emulator(profile, **(emulator or {})) as emu:
        session["provider"] = session["provider"] or emu.provider
        async with MidjourneySession(emu.base_url, emu.api_key, **session) as mj:
            yield emu, mj


@pytest.fixture
def emulated() -> Emulated:
    """An emulator and a session on it, both closed when the ``async with`` block ends.

    ``emulator`` holds the :class:`Emulator` arguments, the rest goes to the session.
    Defaults: the emulator's own provider preset, a 10 ms poll tick, retries without
    waits. A context manager rather than a plain fixture, so a test can assert what
    holds after the session closed, and open one with the arguments it is about.
    """
    return _emulated
