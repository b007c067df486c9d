"""Downloads of a session: every image and video of a task, and a grid cut in four.

The session mixes these in. The fetching itself (address checks, size caps,
safe names, all-or-nothing writes, cures for dead links) is in ``_media``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from ._errors import InvalidArgument
from ._grid import write_tiles
from ._http import CallOptions
from ._media import fetch_bytes, safe_name, save_task_media
from ._models import Task
from ._transport import Transport, call_options

if TYPE_CHECKING:
    from ._handle import TaskHandle

__all__ = ["DownloadMethods"]


class DownloadMethods:
    """The download methods of :class:`MidjourneySession`."""

    _transport: Transport
    _options: CallOptions | None

    if TYPE_CHECKING:
        # Provided by the session.
        async def fetch(self, task_id: str) -> Task: ...

        def notify(self, task: Task) -> bool: ...

    async def download(
        self,
        task: Task | TaskHandle,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = 100 * 1024 * 1024,
        timeout: float = 300.0,
    ) -> list[Path]:
        """Save every image and video of ``task`` into ``directory``; returns the paths.

        A handle is waited on first. Files are named from the task id and
        index (``<id>.png``, ``<id>_1.png``..., ``<id>_video_1.mp4``) with the
        extension from the content type. Only http(s) URLs are fetched, each
        body is capped at ``max_bytes``, and nothing a server sends can place a
        file outside ``directory``.

        A link that fails is tried again another way, each step logged at
        warning: a relay's ``/mj/image/<id>`` link on a wrong host is read from
        the base URL, then the task is fetched again for fresh links (Discord
        links expire). A loopback link from a server that is not on loopback
        is never fetched as given.
        """
        snapshot = task if isinstance(task, Task) else await task.wait()

        async def refetch() -> Task:
            fresh = await self.fetch(snapshot.id)
            self.notify(fresh)
            return fresh

        with call_options(self._options):
            return await save_task_media(
                self._transport,
                snapshot,
                Path(directory),
                max_bytes=max_bytes,
                timeout=timeout,
                refetch=refetch,
            )

    async def split_grid(
        self,
        task: Task | TaskHandle,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = 50 * 1024 * 1024,
        timeout: float = 300.0,
    ) -> list[Path]:
        """Cut a finished grid into its four images, saved as ``<id>_grid_<1-4>.png``.

        Costs one download and no Midjourney job; needs the ``images`` extra (Pillow).

        Example::

            tiles = await mj.split_grid(await handle, "out/")
        """
        snapshot = task if isinstance(task, Task) else await task.wait()
        if not snapshot.image_url:
            raise InvalidArgument(f"task {snapshot.id} has no image to split")
        with call_options(self._options):
            data = await fetch_bytes(
                self._transport, snapshot.image_url, max_bytes=max_bytes, timeout=timeout
            )
        return await anyio.to_thread.run_sync(
            write_tiles, data, Path(directory), safe_name(snapshot.id)
        )
