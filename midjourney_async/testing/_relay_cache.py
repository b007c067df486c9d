"""new-api's database copy of each task, refreshed from its upstream on a cadence.

A relay answers fetch and list-by-condition from its own rows, which its poller updates
every few seconds; it fails a task its upstream has not finished within an hour.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from . import _http
from ._render import relay_dict

if TYPE_CHECKING:
    from ._emulator import Emulator
    from ._engine import Engine
    from ._task import EmuTask

RELAY_TIMEOUT_MS = 3600 * 1000.0
"""new-api fails a task its upstream has not finished after this long (nominal ms)."""


class RelayCache:
    """The relay's rows: which tasks changed since the last refresh, and the refresh timer."""

    def __init__(self, emu: Emulator, engine: Engine, interval: float) -> None:
        self.emu = emu
        self.engine = engine
        self.interval = interval
        """Real seconds between refreshes (0 = no cache, inf = only when asked)."""
        self.dirty: set[EmuTask] = set()
        self.open: deque[EmuTask] = deque()
        self.last = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def refresh(self) -> int:
        """Copy the live state of changed tasks into the relay rows; returns how many."""
        self.expire()
        emu = self.emu
        dirty, self.dirty = self.dirty, set()
        base, profile = emu.relay_base(), emu.profile_info
        for task in dirty:
            if task.id in emu.tasks:
                task.extra["relay_json"] = _http.encode(
                    relay_dict(task, base, profile, refreshed=True)
                )
        self.last = self.engine.now()
        return len(dirty)

    def expire(self) -> None:
        """Time out the tasks submitted over an hour ago and not finished."""
        pending = self.open
        if not pending:
            return
        emu = self.emu
        oldest_ok = emu.now_ms() - RELAY_TIMEOUT_MS / emu.speed
        while pending and pending[0].submit_time <= oldest_ok:
            task = pending.popleft()
            if task.terminal or emu.tasks.get(task.id) is not task:
                continue
            task.extra["relay_timeout"] = True
            task.extra.pop("json", None)
            self.dirty.add(task)

    def due(self) -> bool:
        """Whether a timed refresh is overdue (after the clock jumped forward)."""
        return (
            self.interval != float("inf") and self.engine.now() - self.last >= self.interval
        )

    def arm(self) -> None:
        """(Re)start the refresh timer for the current interval."""
        self.cancel()
        interval = self.interval
        if not self.emu.profile_info.relay_cache or interval in (0, float("inf")):
            return
        loop = asyncio.get_running_loop()

        def tick() -> None:
            self.refresh()
            self._timer = loop.call_later(interval, tick)

        self._timer = loop.call_later(interval, tick)

    def cancel(self) -> None:
        """Stop the refresh timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
