"""Shared fixtures: the recording server of :mod:`mj_support` and a session factory.

The support code lives in ``mj_support.py`` (a uniquely named module the test
files import) rather than here, so that other ``conftest.py`` files in
sub-directories can never shadow it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from mj_support import KEY, RecordingServer

from midjourney_async import MidjourneySession, RetryPolicy


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MJ_* variable of the machine running the tests leaks into a session."""
    for name in ("MJ_BASE_URL", "MJ_API_KEY", "MJ_PROVIDER", "MJ_MODE"):
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
