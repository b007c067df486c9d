"""Counters a test reads to prove what a client did (``emu.stats``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class EmulatorStats:
    """Request and task counters. Missing keys read as 0 (every mapping is a ``Counter``).

    Attributes:
        requests: Requests per route name (``"submit/imagine"``, ``"task/fetch"``,
            ``"task/list-by-condition"``, ``"files"`` ...), counted before auth and faults.
        responses: Responses per HTTP status.
        submits_by_prompt: Tasks created per prompt: proves a prompt was submitted once.
        submit_attempts_by_prompt: Submit requests per prompt, accepted or not.
        submits_by_code: Submit answers per code (1, 21, 22, 23, 24, 9, 4 ...).
        submits_by_action: Tasks created per action (``IMAGINE``, ``UPSCALE`` ...).
        submits_by_custom_id: Tasks created per pressed customId: proves a button (say U2
            of one grid) was pressed once.
        tasks_by_status: Live gauge: how many tasks are in each status now (not reset).
        tasks_created: Tasks created since the last reset.
        most_in_flight: The most tasks the account held at once (running or queued)
            since the last reset: proves that clients kept to a cap across processes.
        fetch_ids: Ids asked for with ``task/fetch`` (ohmygpt: ``query``).
        list_ids: Ids asked for with ``task/list-by-condition``, summed over calls.
        auth_failures: Requests refused for a missing or wrong key.
        faults: Faults injected per kind.
        webhooks_sent: Callbacks posted (any answer, including non-2xx).
        webhooks_failed: Callbacks answered non-2xx or that failed to connect.
        webhooks_dropped: Callbacks not sent: dropped by ``drop_rate``, refused
            (non-local URL) or over the backlog cap.
        webhooks_refused: The subset of drops refused for a non-local URL.
        webhooks_duplicated: Extra copies sent because of ``duplicate_rate``.
        webhooks_reordered: Callbacks held back and delivered late because of ``reorder``.
    """

    requests: Counter[str] = field(default_factory=Counter)
    responses: Counter[int] = field(default_factory=Counter)
    submits_by_prompt: Counter[str] = field(default_factory=Counter)
    submit_attempts_by_prompt: Counter[str] = field(default_factory=Counter)
    submits_by_code: Counter[int] = field(default_factory=Counter)
    submits_by_action: Counter[str] = field(default_factory=Counter)
    submits_by_custom_id: Counter[str] = field(default_factory=Counter)
    tasks_by_status: Counter[str] = field(default_factory=Counter)
    tasks_created: int = 0
    most_in_flight: int = 0
    fetch_ids: int = 0
    list_ids: int = 0
    auth_failures: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    webhooks_sent: int = 0
    webhooks_failed: int = 0
    webhooks_dropped: int = 0
    webhooks_refused: int = 0
    webhooks_duplicated: int = 0
    webhooks_reordered: int = 0

    def reset(self) -> None:
        """Zero every counter except the live ``tasks_by_status`` gauge."""
        gauge = self.tasks_by_status
        fresh = EmulatorStats()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))
        self.tasks_by_status = gauge

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (what ``GET /_emulator/stats`` serves)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, Counter):
                items = sorted(value.items(), key=lambda kv: str(kv[0]))
                value = {str(k): v for k, v in items if v}
            out[name] = value
        return out
