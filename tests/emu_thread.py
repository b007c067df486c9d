"""An emulator served from an event loop on a thread of its own.

For tests whose code under test blocks (the synchronous client, scripts run as
subprocesses from a plain test function): the emulator keeps answering while
the test thread waits.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from midjourney_async.testing import Emulator


@contextmanager
def serve_emulator(**options: Any) -> Iterator[Emulator]:
    """Start ``Emulator(**options)`` on a background loop; closed on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    emulator = Emulator(**options)
    try:
        asyncio.run_coroutine_threadsafe(emulator.start(), loop).result(30)
        yield emulator
    finally:
        asyncio.run_coroutine_threadsafe(emulator.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
