"""Progress display for the command line: rich bars on a terminal, plain lines elsewhere."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, TextIO

from ._errors import MidjourneyError
from ._handle import TaskHandle
from ._models import Task

__all__ = ["Progress", "follow"]


def _describe(task: Task | None, *, percent: bool = True) -> str:
    if task is None:
        return "waiting for the first status"
    text = str(task.status)
    if percent and task.progress:
        text += f" {task.progress}"
    return text


_STYLE = {"SUCCESS": "green", "FAILURE": "red", "CANCEL": "red", "MODAL": "yellow"}


class Progress(AbstractContextManager["Progress"]):
    """One line (or bar) per task. Rich is used when installed and writing to a terminal."""

    def __init__(self, stream: TextIO | None = None, *, plain: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self._rich: Any = None
        self._bars: dict[str, Any] = {}
        self._last: dict[str, str] = {}
        self._labels: dict[str, str] = {}
        self._escape: Any = str
        use_rich = not plain if plain is not None else self.stream.isatty()
        if use_rich:
            try:
                from rich.console import Console
                from rich.markup import escape
                from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
                from rich.progress import Progress as RichProgress
            except ImportError:  # the `cli` extra is optional
                pass
            else:
                self._escape = escape
                self._rich = RichProgress(
                    TextColumn("[bold]{task.fields[label]}"),
                    BarColumn(),
                    TextColumn("{task.percentage:>3.0f}%"),
                    # The bar's own column shows the percentage; the status stays a word.
                    TextColumn("{task.fields[status]}"),
                    TimeElapsedColumn(),
                    console=Console(file=self.stream),
                    transient=False,
                )

    def __enter__(self) -> Progress:
        if self._rich is not None:
            self._rich.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._rich is not None:
            self._rich.stop()

    @property
    def bars(self) -> bool:
        """True when drawing rich bars (a terminal), False for plain lines."""
        return self._rich is not None

    def add(self, task_id: str, label: str) -> None:
        """Start a bar or line for ``task_id``, named ``label`` (a button, a command, the id)."""
        self._labels[task_id] = label
        if self._rich is not None:
            self._bars[task_id] = self._rich.add_task(
                label, total=100, label=label, status="submitted"
            )
        else:
            self._line(task_id, f"{label}: submitted")

    def update(self, task_id: str, task: Task | None, note: str | None = None) -> None:
        """Show the newest snapshot of ``task_id`` (or a note such as an error)."""
        pct = task.progress_percent if task is not None else None
        if self._rich is not None and task_id in self._bars:
            status = self._escape(note or _describe(task, percent=False))
            style = _STYLE.get(str(task.status)) if task is not None and not note else None
            if note:
                style = "red"
            if style:
                status = f"[{style}]{status}[/]"
            fields: dict[str, Any] = {"status": status}
            if pct is not None:
                fields["completed"] = pct
            if task is not None and task.is_terminal:
                fields["completed"] = 100
            self._rich.update(self._bars[task_id], **fields)
        else:
            label = self._labels.get(task_id, task_id)
            self._line(task_id, f"{label}: {note or _describe(task)}")

    def _line(self, task_id: str, text: str) -> None:
        if self._last.get(task_id) == text:
            return
        self._last[task_id] = text
        print(text, file=self.stream, flush=True)


async def follow(
    handles: Sequence[TaskHandle],
    progress: Progress,
    *,
    timeout: float | None = None,
    labels: Sequence[str] | None = None,
) -> list[Task | MidjourneyError]:
    """Wait for every handle while drawing its progress; a result or error per handle."""

    async def one(handle: TaskHandle, label: str) -> Task | MidjourneyError:
        progress.add(handle.id, label)

        async def draw() -> None:
            async for snapshot in handle.updates():
                progress.update(handle.id, snapshot)

        drawer = asyncio.ensure_future(draw())
        try:
            task = await handle.wait(timeout)
        except MidjourneyError as exc:
            progress.update(handle.id, handle.task, note=f"{type(exc).__name__}: {exc}")
            return exc
        finally:
            drawer.cancel()
            await asyncio.gather(drawer, return_exceptions=True)
        progress.update(handle.id, task)
        return task

    names = list(labels) if labels else [f"task {i + 1}" for i in range(len(handles))]
    pairs = zip(handles, names, strict=True)
    return list(await asyncio.gather(*(one(h, n) for h, n in pairs)))
