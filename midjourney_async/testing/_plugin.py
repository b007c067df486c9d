"""pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:
    ``mj_emulator``: a started :class:`~midjourney_async.testing.Emulator` with
        ``speed="instant"``; its profile comes from the ``mj_profile`` fixture (override it)
        or a ``@pytest.mark.mj_profile("trueai")`` marker, default ``"midjourney-proxy"``
        (an alias of the plus edition; ``"midjourney-proxy-open"`` is novicezk's open one).
    ``mj_session``: a ``MidjourneySession`` connected to that emulator (with the client
        preset ``mj_emulator.provider``).
    ``mj_profile``: the profile name (override to change it for a module or class).

This module loads in every pytest run of any project that installs midjourney_async, so it
imports nothing heavy at import time and never fails: the async fixtures exist only when
pytest-asyncio is installed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._emulator import Emulator

DEFAULT_PROFILE = "midjourney-proxy"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``mj_profile`` marker so ``--strict-markers`` runs accept it."""
    config.addinivalue_line(
        "markers", "mj_profile(name): emulator profile for the mj_emulator fixture"
    )


@pytest.fixture
def mj_profile(request: pytest.FixtureRequest) -> str:
    """Profile for ``mj_emulator``: the ``mj_profile`` marker's argument or the default."""
    marker = request.node.get_closest_marker("mj_profile")
    if marker is not None and marker.args:
        return str(marker.args[0])
    return DEFAULT_PROFILE


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - depends on the user's environment
    pytest_asyncio = None  # type: ignore[assignment]


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def mj_emulator(mj_profile: str) -> AsyncIterator[Emulator]:
        """A started instant-speed emulator for ``mj_profile``, closed after the test."""
        from ._emulator import Emulator

        async with Emulator(profile=mj_profile, speed="instant") as emu:
            yield emu

    @pytest_asyncio.fixture
    async def mj_session(mj_emulator: Emulator) -> AsyncIterator[Any]:
        """A ``MidjourneySession`` for ``mj_emulator`` with a 10 ms poll interval."""
        # Imported here, not at module level: the emulator itself never depends on the client.
        from midjourney_async import MidjourneySession

        async with MidjourneySession(
            base_url=mj_emulator.base_url,
            api_key=mj_emulator.api_key,
            provider=mj_emulator.provider,
            poll_interval=0.01,
        ) as session:
            yield session

else:  # pragma: no cover - depends on the user's environment

    @pytest.fixture
    def mj_emulator() -> Any:
        """Needs pytest-asyncio: skips the test with a hint when it is missing."""
        pytest.skip("mj_emulator needs pytest-asyncio (pip install pytest-asyncio)")

    @pytest.fixture
    def mj_session() -> Any:
        """Needs pytest-asyncio: skips the test with a hint when it is missing."""
        pytest.skip("mj_session needs pytest-asyncio (pip install pytest-asyncio)")
