"""TaskHandle: an awaitable submitted task, and the follow-up button helpers."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator, Generator
from typing import TYPE_CHECKING, Any, Literal

import anyio

from ._errors import (
    ButtonNotFound,
    ConnectError,
    HTTPStatusError,
    InvalidRequestError,
    ModalRequired,
    SessionClosed,
    SubmitRejected,
    TaskFailed,
    TaskTimeout,
)
from ._models import Button, Task, TaskStatus

if TYPE_CHECKING:
    from ._session import MidjourneySession
    from ._tracker import TaskState

__all__ = ["TaskHandle"]


def _deadline(limit: float) -> contextlib.AbstractAsyncContextManager[object]:
    """``wait()``'s deadline: asyncio.timeout on 3.11+, a mere timer handle.

    anyio's cancel scope costs several times the CPU per wait and ~1 KB more
    per waiting handle (benchmarks/bench_polling.py); it remains for 3.10.
    """
    if sys.version_info >= (3, 11):
        return asyncio.timeout(limit)
    return _fail_after(limit)  # pragma: no cover


@contextlib.asynccontextmanager
async def _fail_after(limit: float) -> AsyncIterator[None]:  # pragma: no cover
    with anyio.fail_after(limit):
        yield


Direction = Literal["left", "right", "up", "down"]
_DIRECTIONS = ("left", "right", "up", "down")


def _check(task: Task, handle: TaskHandle) -> Task | None:
    """The SUCCESS task, an error for FAILURE/CANCEL/MODAL, or None while running."""
    status = task.status
    if status == TaskStatus.SUCCESS:
        return task
    if status in (TaskStatus.FAILURE, TaskStatus.CANCEL):
        raise TaskFailed(task)
    if status == TaskStatus.MODAL:
        raise ModalRequired(handle)
    return None


class TaskHandle:
    """A task the server accepted. Await it for the finished :class:`Task`.

    Example::

        handle = await mj.imagine("a red fox in snow --ar 3:2")
        task = await handle.wait(timeout=600)       # or: task = await handle
        up = await (await handle.upscale(2)).wait()

    Handles are cheap: many handles on one id share one state, and a handle
    nobody waits on costs no requests.
    """

    __slots__ = (
        "_expired",
        "_follow",
        "_modal_answer",
        "_session",
        "_state",
        "submit_code",
        "task_ids",
    )

    def __init__(
        self,
        session: MidjourneySession,
        state: TaskState,
        *,
        submit_code: int | None = None,
        task_ids: list[str] | None = None,
    ) -> None:
        self._session = session
        self._state = state
        self.submit_code = submit_code
        #: Every id the submit returned (trueai may return several for one press).
        self.task_ids = task_ids or [state.id]
        # The prompt and mask to answer a modal window with, should one open later
        # (new-api reports a remix modal only through the task's status).
        self._modal_answer: tuple[str | None, str | None] | None = None
        # Set by as_completed when this handle's deadline passed there: the next
        # wait() without a timeout reports that at once.
        self._expired: float | None = None
        # The task a modal step answered from wait() turned into, when it got a new id.
        self._follow: TaskHandle | None = None

    def __repr__(self) -> str:
        task = self._state.task
        status = f"{task.status} {task.progress or ''}".rstrip() if task else "unknown"
        return f"<TaskHandle {self.id} {status}>"

    @property
    def id(self) -> str:
        """The task id (always a str)."""
        return self._state.id

    @property
    def task(self) -> Task | None:
        """The last snapshot seen, or None before the first one."""
        return self._state.task

    @property
    def queue_position(self) -> int | None:
        """Tasks ahead of this one when the server queued it (code 22), if known."""
        return self._state.queue_position

    @property
    def session(self) -> MidjourneySession:
        return self._session

    def __await__(self) -> Generator[Any, None, Task]:
        return self.wait().__await__()

    async def wait(self, timeout: float | None = None) -> Task:
        """Wait for the task to finish and return it.

        Raises :class:`TaskFailed` on FAILURE or cancel, :class:`ModalRequired`
        when the task waits for a modal step, :class:`TaskNotFound` when the
        server forgets the id, and :class:`TaskTimeout` (a ``TimeoutError``)
        after ``timeout`` seconds (default: the session's ``wait_timeout``).
        The task goes on on the server after a timeout; wait again any time.
        """
        if self._follow is not None:
            return await self._follow.wait(timeout)
        limit = self._session.wait_timeout if timeout is None else timeout
        reported = limit
        if timeout is None and self._expired is not None:
            limit, reported = 0.0, self._expired
        self._expired = None
        [task] = await settle([self], limit, reported)
        return task

    async def _answer_modal(self) -> TaskHandle:
        assert self._modal_answer is not None
        prompt, mask = self._modal_answer
        try:
            follow = await self._session.modal(self.id, prompt=prompt, mask_base64=mask)
        except (SubmitRejected, HTTPStatusError, ConnectError, SessionClosed):
            # Provably not accepted: the next wait() answers the window again.
            raise
        except BaseException:
            # It may have been accepted: never send the paid step twice.
            self._modal_answer = None
            raise
        self._modal_answer = None
        return follow

    async def updates(self) -> AsyncIterator[Task]:
        """Yield a snapshot at each change of status or progress, ending at a terminal one.

        Example::

            async for task in handle.updates():
                print(task.status, task.progress)

        The last snapshot may be a FAILURE: the iterator does not raise for it.
        A task the server forgets raises :class:`TaskNotFound`.
        """
        if self._follow is not None:
            async for snapshot in self._follow.updates():
                yield snapshot
            return
        state = self._state
        tracker = self._session._tracker
        tracker.watch(state)
        try:
            last: Task | None = None
            while True:
                task = state.task
                if task is not None and task is not last:
                    last = task
                    yield task
                    if task.is_terminal:
                        return
                    continue
                if state.error is not None:
                    raise state.error
                if tracker.closed:
                    raise SessionClosed(self.id)
                await state.changed()
        finally:
            tracker.unwatch(state)

    async def refresh(self) -> Task:
        """Fetch the task now, record the snapshot and return the newest one known."""
        task = await self._session.fetch(self.id)
        self._session._tracker.apply(task)
        return self._state.task or task

    async def cancel(self) -> None:
        """Ask the server to cancel the task (trueai only; admins only there)."""
        await self._session.cancel(self.id)

    # -- buttons ------------------------------------------------------------

    async def _finished(self) -> Task:
        task = self._state.task
        if task is not None and task.status == TaskStatus.SUCCESS:
            return task
        return await self.wait()

    async def _button(self, wanted: str, match: Any) -> tuple[Task, Button]:
        task = await self._finished()
        for button in task.buttons:
            if match(button):
                return task, button
        raise ButtonNotFound(self.id, wanted, [b.name for b in task.buttons])

    async def press(
        self,
        label_or_custom_id: str,
        *,
        prompt: str | None = None,
        mask_base64: str | None = None,
    ) -> TaskHandle:
        """Press a button by custom id, label ("U1", "Vary (Strong)") or emoji ("🔄").

        When the server answers with a modal window (Custom Zoom, Vary
        (Region), remix) and ``prompt`` or ``mask_base64`` is given, the modal
        step is submitted too and the handle of the final task returned.
        """
        wanted = label_or_custom_id.strip()
        folded = wanted.casefold()

        def match(b: Button) -> bool:
            return (
                b.custom_id == wanted
                or (bool(b.label) and b.label.casefold() == folded)
                or (not b.label and bool(b.emoji) and b.emoji == wanted)
            )

        task, button = await self._button(wanted, match)
        return await self._press(task, button, prompt=prompt, mask_base64=mask_base64)

    async def _press(
        self,
        task: Task,
        button: Button,
        *,
        prompt: str | None = None,
        mask_base64: str | None = None,
    ) -> TaskHandle:
        session = self._session
        child = await session.action(task.id, button.custom_id)
        if prompt is None and mask_base64 is None:
            return child
        if child.submit_code == 21 or (
            child.task is not None and child.task.status == TaskStatus.MODAL
        ):
            return await session.modal(child.id, prompt=prompt, mask_base64=mask_base64)
        # A relay that rewrites code 21 to 1 shows the modal only in the status:
        # the child answers it when its wait() sees MODAL.
        child._modal_answer = (prompt, mask_base64)
        return child

    async def upscale(self, index: int | str) -> TaskHandle:
        """U1-U4 on a grid (``index`` 1-4), or "subtle" / "creative" / "2x" / "4x" on an upscale."""
        if isinstance(index, int):
            _index(index)
            label = f"U{index}"
            token = f"::upsample::{index}::"
            return await self._press_match(
                label, lambda b: b.label == label or token in b.custom_id
            )
        kind = index.strip().lower()
        return await self._press_match(
            f"Upscale ({kind})",
            lambda b: "::upsample_" in b.custom_id and b.custom_id.split("::")[2].endswith(kind),
        )

    async def variation(self, index: int | str, *, prompt: str | None = None) -> TaskHandle:
        """V1-V4 on a grid (``index`` 1-4), or "subtle" / "strong" on an upscale.

        ``prompt`` answers a remix modal if the server asks for one.
        """
        if isinstance(index, int):
            _index(index)
            label = f"V{index}"
            token = f"::variation::{index}::"
            return await self._press_match(
                label, lambda b: b.label == label or token in b.custom_id, prompt=prompt
            )
        kind = {"subtle": "low_variation", "strong": "high_variation"}.get(index.strip().lower())
        if kind is None:
            raise InvalidRequestError(
                f"variation takes 1-4, 'subtle' or 'strong', not {index!r} (nothing was sent)",
                code=None,
            )
        token = f"::{kind}::"
        return await self._press_match(
            f"Vary ({index})", lambda b: token in b.custom_id, prompt=prompt
        )

    async def reroll(self, *, prompt: str | None = None) -> TaskHandle:
        """The 🔄 button: the same prompt again."""
        return await self._press_match(
            "reroll 🔄", lambda b: "::reroll::" in b.custom_id, prompt=prompt
        )

    async def zoom_out(self, factor: float = 2.0, *, prompt: str | None = None) -> TaskHandle:
        """Zoom Out 2x or 1.5x; any other factor (1-2) uses Custom Zoom with a modal step."""
        if factor in (2, 1.5):
            token = "::Outpaint::50::" if factor == 2 else "::Outpaint::75::"
            return await self._press_match(
                f"Zoom Out {factor:g}x", lambda b: token in b.custom_id, prompt=prompt
            )
        if not 1.0 < factor <= 2.0:
            raise InvalidRequestError(
                f"zoom factor must be above 1 and at most 2, not {factor!r} (nothing was sent)",
                code=None,
            )
        task, button = await self._button(
            "Custom Zoom", lambda b: "::CustomZoom::" in b.custom_id
        )
        text = prompt or task.final_prompt or task.prompt or ""
        text = re.sub(r"\s--zoom\s+\S+", "", text)
        text = f"{text} --zoom {factor:g}".strip()
        if not re.search(r"--(ar|aspect)\s", text + " "):
            # The Custom Zoom window wants both --zoom and --ar; 1:1 is Midjourney's default.
            text += " --ar 1:1"
        return await self._press(task, button, prompt=text)

    async def pan(self, direction: Direction, *, prompt: str | None = None) -> TaskHandle:
        """Pan ``"left"``, ``"right"``, ``"up"`` or ``"down"``."""
        if direction not in _DIRECTIONS:
            raise InvalidRequestError(
                f"pan direction must be one of {', '.join(_DIRECTIONS)}, not {direction!r} "
                "(nothing was sent)",
                code=None,
            )
        tokens = (f"::pan_{direction}::", f"::{direction}_pan")
        return await self._press_match(
            f"pan {direction}",
            lambda b: any(t in b.custom_id for t in tokens),
            prompt=prompt,
        )

    async def vary_region(self, mask_base64: str, *, prompt: str | None = None) -> TaskHandle:
        """Vary (Region): repaint the white part of ``mask_base64`` (a PNG data URL)."""
        if not mask_base64:
            raise InvalidRequestError(
                "vary_region needs a mask (a PNG data URL, white = repaint); nothing was sent",
                code=None,
            )
        task, button = await self._button("Vary (Region)", lambda b: "::Inpaint::" in b.custom_id)
        text = prompt or task.final_prompt or task.prompt or ""
        return await self._press(task, button, prompt=text, mask_base64=mask_base64)

    async def _press_match(
        self, wanted: str, match: Any, *, prompt: str | None = None
    ) -> TaskHandle:
        task, button = await self._button(wanted, match)
        return await self._press(task, button, prompt=prompt)


def _index(index: int) -> None:
    if isinstance(index, bool) or not 1 <= index <= 4:
        raise InvalidRequestError(
            f"index must be 1, 2, 3 or 4, not {index!r} (nothing was sent)", code=None
        )


async def settle(handles: list[TaskHandle], limit: float, reported: float) -> list[Task]:
    """Wait until every handle's task succeeded; raise the first error met.

    The one loop behind ``wait()`` and ``wait_all()``: a single event serves
    every handle (no asyncio task, deadline or event per handle, which was most
    of what waiting on thousands of them cost). A handle whose task waits in
    MODAL with a modal answer ready submits it and follows the result;
    ``reported`` is the timeout a TaskTimeout names.
    """
    if not handles:
        return []
    items = list(handles)
    tracker = items[0].session._tracker
    woke = asyncio.Event()
    results: list[Task | None] = [None] * len(items)
    watched: list[TaskState] = []

    def attach(state: TaskState) -> None:
        tracker.watch(state)
        if state.listeners is None:
            state.listeners = []
        state.listeners.append(woke)
        watched.append(state)

    for handle in items:
        attach(handle._state)
    pending = list(range(len(items)))
    try:
        async with _deadline(limit):
            while pending:
                woke.clear()
                still: list[int] = []
                for i in pending:
                    handle = items[i]
                    state = handle._state
                    task = state.task
                    if (
                        task is not None
                        and task.status == TaskStatus.MODAL
                        and handle._modal_answer is not None
                    ):
                        follow = await handle._answer_modal()
                        if follow.id != handle.id:
                            handle._follow = follow
                            items[i] = follow
                            attach(follow._state)
                        still.append(i)
                        continue
                    done = _check(task, handle) if task is not None else None
                    if done is not None:
                        results[i] = done
                    elif state.error is not None:
                        raise state.error
                    else:
                        still.append(i)
                pending = still
                if pending:
                    if tracker.closed:
                        raise SessionClosed(items[pending[0]].id)
                    await woke.wait()
    except TimeoutError as exc:
        if isinstance(exc, TaskTimeout):
            raise
        first = items[pending[0]]
        raise TaskTimeout(first.id, reported, first.task) from None
    finally:
        for state in watched:
            tracker.unwatch(state)
            if state.listeners is not None and woke in state.listeners:
                state.listeners.remove(woke)
    return [task for task in results if task is not None]
