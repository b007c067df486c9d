"""A local Midjourney proxy emulator for tests, demos and benchmarks.

``Emulator`` serves one provider profile (novicezk midjourney-proxy open or plus edition,
trueai, new-api relays, OhMyGPT) on 127.0.0.1 with realistic task lifecycles, queues, webhooks,
PNG images and injectable faults; ``ServerQuirks`` switches on real-server behaviours::

    from midjourney_async.testing import Emulator, FaultRule

    async with Emulator(profile="trueai", speed="instant") as emu:
        emu.faults.add(FaultRule("task/fetch", "status", status=503, nth=[1]))
        ...  # point a client at emu.base_url with emu.api_key

Run one from a shell with ``python -m midjourney_async.testing --profile new-api``. The pytest
plugin (loaded automatically) provides ``mj_emulator`` and ``mj_session`` fixtures.

Names are imported lazily so that loading the pytest plugin costs nothing until used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._emulator import SPEEDS, Emulator
    from ._faults import FaultRule, FaultSet, TaskRules
    from ._profiles import PROFILE_ALIASES, PROFILES, Profile
    from ._quirks import ServerQuirks
    from ._redis import RedisServer
    from ._stats import EmulatorStats
    from ._task import EmuTask, TaskRule
    from ._webhooks import WebhookDispatcher

__all__ = [
    "PROFILES",
    "PROFILE_ALIASES",
    "SPEEDS",
    "EmuTask",
    "Emulator",
    "EmulatorStats",
    "FaultRule",
    "FaultSet",
    "Profile",
    "RedisServer",
    "ServerQuirks",
    "TaskRule",
    "TaskRules",
    "WebhookDispatcher",
]

_WHERE = {
    "PROFILES": "._profiles",
    "PROFILE_ALIASES": "._profiles",
    "ServerQuirks": "._quirks",
    "RedisServer": "._redis",
    "Profile": "._profiles",
    "SPEEDS": "._emulator",
    "Emulator": "._emulator",
    "EmulatorStats": "._stats",
    "FaultRule": "._faults",
    "FaultSet": "._faults",
    "TaskRules": "._faults",
    "EmuTask": "._task",
    "TaskRule": "._task",
    "WebhookDispatcher": "._webhooks",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
