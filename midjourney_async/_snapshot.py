"""Pending snapshots kept packed: a few hundred bytes instead of a decoded Task.

A task that runs for minutes is held as its last snapshot by every pending
handle, thousands of them at once. A decoded :class:`Task` with its strings
and properties costs about 1.1 KB; the same values packed with msgpack cost
about 400 bytes, and nothing reads them until someone asks for the task. The
id and status are left out: the task state holds them already.

Only snapshots that come back field for field equal are packed: plain JSON
values in the containers, no buttons or media structs, times already in
milliseconds (``Task.__post_init__`` runs again on unpacking, and its
conversion of seconds must be a no-op). Anything else stays a Task.

A row the poller just read is kept as it came in (:class:`Fresh`) instead: a
running task's row changes nearly every tick, and decoding and packing each
one nobody reads would cost several times what reading its status does. It
is packed once the task is found where it stood a tick later (it holds
still), so a task that runs for minutes is held packed all the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec

from ._models import MS_FLOOR, Task, TaskAction, TaskStatus

__all__ = ["Fresh", "pack", "unpack"]

_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder()
_SCALARS: Final = frozenset({str, int, float, bool, type(None), TaskStatus, TaskAction})


def _plain(value: Any) -> bool:
    """Whether ``value`` comes back from msgpack as an equal value of the same types."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is list:
        return all(map(_plain, value))
    if kind is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    return False


def pack(task: Task, *, from_json: bool = False) -> bytes | None:
    """``task`` packed but for its id and status, or None when unpacking would not
    give it back exactly.

    ``from_json``: the task was just decoded from a JSON answer, so its properties
    hold plain JSON values and need no checking (the poller's hot path).
    """
    try:
        if task.buttons:
            return None
        for t in (task.submit_time, task.start_time, task.finish_time):
            if t is not None and t < MS_FLOOR:
                return None
        values = msgspec.structs.astuple(task)[2:]
        if from_json:
            # Decoded by msgspec: the scalars have their declared types and the
            # properties hold JSON values; only the media lists may hold structs.
            plain = _plain(task.image_url_refs) and _plain(task.video_url_refs)
        else:
            # Made by hand: any field may hold what msgpack cannot give back as it was.
            plain = all(map(_plain, values))
        if not plain:
            return None
        packed = _encoder.encode(values)
    except (RecursionError, OverflowError, TypeError, ValueError, msgspec.EncodeError):
        # ValueError: a lone surrogate in a string (UnicodeEncodeError).
        return None
    # The encoder's bytes keep its whole write buffer (512 bytes and up): an
    # exact copy held for minutes costs a quarter less.
    return bytes(memoryview(packed))


def unpack(packed: bytes, task_id: str, status: str) -> Task:
    """The Task ``pack`` packed, with its id and status."""
    return Task(task_id, status, *_decoder.decode(packed))


class Fresh:
    """A pending snapshot as the list row it came in, decoded on first read."""

    __slots__ = ("decode", "row")

    def __init__(self, row: bytes, decode: Callable[[bytes], Task | None]) -> None:
        self.row = row
        self.decode = decode

    def read(self, task_id: str, status: str, percent: int | None) -> Task:
        """The row as a Task; its id, status and percentage are those read before."""
        task = self.decode(self.row)
        if task is None or task.id != task_id or task.status != status:
            # The head said otherwise than the whole row (no server was seen to send
            # such a row): what the waits went by stands.
            return Task(task_id, status, progress_percent=percent)
        return task
