"""What a session asks of a backend shared by many workers (see ``midjourney_async.redis``).

The session knows the backend only through this protocol: a journal, a slot
limiter for the in-flight cap, the webhook token and allow-list of the
namespace, and sharing the state table's snapshots while the session is open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._journal import Journal
    from ._models import Task
    from ._slots import SlotLimiter
    from ._state import StateTable
    from ._tracker import Tracker

__all__ = ["SharedBackend"]


@runtime_checkable
class SharedBackend(Protocol):
    """A place where the workers of one account share their bookkeeping."""

    def journal(self) -> Journal:
        """The journal every worker writes to."""

    def slot_limiter(
        self, limit: int, *, keep: Callable[[str], None], drop: Callable[[str], None]
    ) -> SlotLimiter:
        """The in-flight cap of ``limit`` tasks, counted across workers."""

    async def webhook_token(self) -> str:
        """The callback token every worker's receiver accepts."""

    async def knows(self, task_id: str) -> bool:
        """Whether some worker submitted ``task_id``."""

    def share(self, task: Task) -> None:
        """Hand ``task`` to the other workers."""

    async def attach(self, table: StateTable, tracker: Tracker, *, poll_floor: float) -> None:
        """Start sharing ``table``'s snapshots both ways, and ``tracker``'s polling,
        never polling faster than ``poll_floor`` seconds whatever other workers ask."""

    async def detach(self) -> None:
        """Stop sharing and release the backend."""
