"""TaskHandle: an awaitable submitted task, and the follow-up button helpers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Literal

from ._errors import (
    ButtonNotFound,
    InvalidArgument,
    MidjourneyError,
    UnsupportedOperation,
)
from ._models import Button, Task, TaskAction, TaskStatus

if TYPE_CHECKING:
    from ._session import MidjourneySession
    from ._state import TaskState
    from ._waiting import Waits

__all__ = ["TaskHandle"]


Direction = Literal["left", "right", "up", "down"]
_DIRECTIONS = ("left", "right", "up", "down")
Change = tuple[Literal["UPSCALE", "VARIATION", "REROLL"], int | None]
# What a task without buttons (novicezk's open edition) still offers, by press() label.
_CHANGE_LABELS: dict[str, Change] = {
    **{f"u{i}": ("UPSCALE", i) for i in range(1, 5)},
    **{f"v{i}": ("VARIATION", i) for i in range(1, 5)},
    "🔄": ("REROLL", None),
    "reroll": ("REROLL", None),
}


class TaskHandle:
    """A task the server accepted. Await it for the finished :class:`Task`.

    Example::

        handle = await mj.imagine("a red fox in snow --ar 3:2")
        task = await handle.wait(timeout=600)       # or: task = await handle
        up = await (await handle.upscale(2)).wait()

    Handles are cheap: many handles on one id share one state, and a handle
    nobody waits on costs no requests.
    """

    __slots__ = ("_session", "_state", "_task_ids", "_waits", "submit_code")

    def __init__(
        self,
        session: MidjourneySession,
        state: TaskState,
        waits: Waits,
        *,
        submit_code: int | None = None,
        task_ids: list[str] | None = None,
    ) -> None:
        self._session = session
        self._state = state
        self._waits = waits
        self.submit_code = submit_code
        # Kept only when the submit returned several ids: one list less per handle.
        self._task_ids = task_ids if task_ids and len(task_ids) > 1 else None

    def __eq__(self, other: object) -> bool:
        # Handles on one task are interchangeable: they share its state.
        if isinstance(other, TaskHandle):
            return other._state is self._state
        return NotImplemented

    def __hash__(self) -> int:
        return id(self._state)

    def __repr__(self) -> str:
        task = self._state.latest.task
        status = f"{task.status} {task.progress or ''}".rstrip() if task else "unknown"
        return f"<TaskHandle {self.id} {status}>"

    @property
    def id(self) -> str:
        """The task id (always a str).

        After a modal step answered by ``wait()`` created a task with a new id,
        this is the new task's id, as for every handle on the first one.
        """
        return self._state.latest.id

    @property
    def task(self) -> Task | None:
        """The last snapshot seen, or None before the first one."""
        return self._state.latest.task

    @property
    def task_ids(self) -> list[str]:
        """Every id the submit returned (trueai may return several for one press)."""
        return list(self._task_ids) if self._task_ids else [self._state.id]

    @property
    def queue_position(self) -> int | None:
        """Tasks ahead of this one when the server queued it (code 22), if known."""
        return self._state.latest.queue_position

    @property
    def session(self) -> MidjourneySession:
        return self._session

    def __await__(self) -> Generator[Any, None, Task]:
        return self.wait().__await__()

    def wait(self, timeout: float | None = None) -> Coroutine[Any, Any, Task]:
        """Wait for the task to finish and return it (``await handle.wait()``).

        Raises :class:`TaskFailed` on FAILURE or cancel, :class:`ModalRequired`
        when the task waits for a modal step, :class:`TaskNotFound` when the
        server forgets the id, and :class:`TaskTimeout` (a ``TimeoutError``)
        after ``timeout`` seconds (default: the session's ``wait_timeout``).
        The task goes on on the server after a timeout; wait again any time.
        """
        # The waiting coroutine itself, not one wrapped around it: a frame less
        # for each of thousands of waiting handles.
        return self._waits.wait(self._state, timeout)

    def updates(self, timeout: float | None = None) -> AsyncIterator[Task]:
        """Yield a snapshot at each change of status or progress, ending at a terminal one.

        Example::

            async for task in handle.updates(timeout=600):
                print(task.status, task.progress)

        The last snapshot may be a FAILURE: the iterator does not raise for it.
        A task the server forgets raises :class:`TaskNotFound`; ``timeout``
        (default: the session's ``wait_timeout``) bounds the whole iteration
        with :class:`TaskTimeout`.
        """
        return self._waits.updates(self._state, timeout)

    async def refresh(self) -> Task:
        """Fetch the task now, record the snapshot and return the newest one known."""
        task = await self._session.fetch(self.id)
        self._session.notify(task)
        return self.task or task

    async def cancel(self) -> None:
        """Ask the server to cancel the task (trueai only; admins only there)."""
        await self._session.cancel(self.id)

    # -- buttons ------------------------------------------------------------

    async def _finished(self) -> Task:
        task = self.task
        if task is not None and task.status == TaskStatus.SUCCESS:
            return task
        return await self.wait()

    async def _button(self, wanted: str, match: Any) -> tuple[Task, Button]:
        task = await self._finished()
        if not task.buttons:
            raise self._only_changes(task, wanted)
        for button in task.buttons:
            if match(button):
                return task, button
        raise ButtonNotFound(self.id, wanted, [b.name for b in task.buttons])

    def _only_changes(self, task: Task, wanted: str) -> UnsupportedOperation:
        """The error for a press the server cannot take on a task without buttons."""
        if task.action == TaskAction.UPSCALE:
            why = (
                f"task {task.id} is an upscale without buttons: novicezk's open edition "
                "refuses any change on an upscaled task"
            )
        else:
            why = (
                f"task {task.id} has no buttons: the server (novicezk's open edition) "
                "offers only U1-U4, V1-V4 and reroll, through /submit/change"
            )
        return UnsupportedOperation(
            wanted, self._session.dialect.name, f"{wanted}: {why}; nothing was sent"
        )

    async def _change(
        self, task: Task, wanted: str, change: Change, prompt: str | None
    ) -> TaskHandle:
        """U/V/reroll on a task without buttons, through ``/submit/change``."""
        if task.action == TaskAction.UPSCALE:
            raise self._only_changes(task, wanted)
        if prompt is not None:
            raise UnsupportedOperation(
                wanted,
                self._session.dialect.name,
                f"{wanted} with a prompt: task {task.id} has no buttons, and /submit/change "
                "opens no remix window; nothing was sent",
            )
        action, index = change
        return await self._session.change(task.id, action, index)

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
        change = _CHANGE_LABELS.get(folded)
        if change is not None:
            task = await self._finished()
            if not task.buttons:
                return await self._change(task, wanted, change, prompt)

        def match(b: Button) -> bool:
            return (
                b.custom_id == wanted
                or (bool(b.label) and b.label.casefold() == folded)
                or (not b.label and bool(b.emoji) and b.emoji == wanted)
            )

        task, button = await self._button(wanted, match)
        modal_by_nature = "::CustomZoom::" in button.custom_id or "::Inpaint::" in button.custom_id
        return await self._press(
            task,
            button,
            prompt=prompt,
            mask_base64=mask_base64,
            remix=prompt is not None and not modal_by_nature,
        )

    async def _press(
        self,
        task: Task,
        button: Button,
        *,
        prompt: str | None = None,
        mask_base64: str | None = None,
        remix: bool = False,
    ) -> TaskHandle:
        """Press ``button``; with ``prompt`` or a mask, answer the modal window too.

        ``remix`` asks the server to open a remix window for this press
        (trueai and new-api open one only when asked); buttons whose window
        always opens (Custom Zoom, Vary (Region)) do not ask.
        """
        session = self._session
        child = await session.action(
            task.id, button.custom_id, enable_remix=True if remix else None
        )
        if prompt is None and mask_base64 is None:
            return child
        if child.submit_code == 21 or (
            child.task is not None and child.task.status == TaskStatus.MODAL
        ):
            return await session.modal(child.id, prompt=prompt, mask_base64=mask_base64)
        # A relay that rewrites code 21 to 1 shows the modal only in the status:
        # the child answers it when its wait() sees MODAL.
        child._state.modal_answer = (prompt, mask_base64)
        return child

    async def upscale(self, index: int | str) -> TaskHandle:
        """U1-U4 on a grid (``index`` 1-4), or "subtle" / "creative" / "2x" / "4x" on an upscale.

        On a finished task without buttons (novicezk's open edition) U1-U4,
        V1-V4 and reroll go through ``/submit/change``; the other helpers
        raise :class:`UnsupportedOperation` without sending anything.
        """
        if isinstance(index, int):
            _index(index)
            label = f"U{index}"
            token = f"::upsample::{index}::"
            return await self._press_match(
                label,
                lambda b: b.label == label or token in b.custom_id,
                change=("UPSCALE", index),
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
                label,
                lambda b: b.label == label or token in b.custom_id,
                prompt=prompt,
                change=("VARIATION", index),
            )
        kind = {"subtle": "low_variation", "strong": "high_variation"}.get(index.strip().lower())
        if kind is None:
            raise InvalidArgument(
                f"variation takes 1-4, 'subtle' or 'strong', not {index!r} (nothing was sent)",
            )
        token = f"::{kind}::"
        return await self._press_match(
            f"Vary ({index})", lambda b: token in b.custom_id, prompt=prompt
        )

    async def reroll(self, *, prompt: str | None = None) -> TaskHandle:
        """The 🔄 button: the same prompt again."""
        return await self._press_match(
            "reroll 🔄",
            lambda b: "::reroll::" in b.custom_id,
            prompt=prompt,
            change=("REROLL", None),
        )

    async def zoom_out(self, factor: float = 2.0, *, prompt: str | None = None) -> TaskHandle:
        """Zoom Out 2x or 1.5x; any other factor (1-2) uses Custom Zoom with a modal step."""
        if factor in (2, 1.5):
            token = "::Outpaint::50::" if factor == 2 else "::Outpaint::75::"
            return await self._press_match(
                f"Zoom Out {factor:g}x", lambda b: token in b.custom_id, prompt=prompt
            )
        if not 1.0 < factor <= 2.0:
            raise InvalidArgument(
                f"zoom factor must be above 1 and at most 2, not {factor!r} (nothing was sent)",
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
            raise InvalidArgument(
                f"pan direction must be one of {', '.join(_DIRECTIONS)}, not {direction!r} "
                "(nothing was sent)",
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
            raise InvalidArgument(
                "vary_region needs a mask (a PNG data URL, white = repaint); nothing was sent",
            )
        task, button = await self._button("Vary (Region)", lambda b: "::Inpaint::" in b.custom_id)
        text = prompt or task.final_prompt or task.prompt or ""
        return await self._press(task, button, prompt=text, mask_base64=mask_base64)

    async def _press_match(
        self,
        wanted: str,
        match: Any,
        *,
        prompt: str | None = None,
        change: Change | None = None,
    ) -> TaskHandle:
        if change is not None:
            # A finished task without buttons (novicezk's open edition) still takes
            # U/V/reroll through /submit/change.
            finished = await self._finished()
            if not finished.buttons:
                return await self._change(finished, wanted, change, prompt)
        task, button = await self._button(wanted, match)
        return await self._press(task, button, prompt=prompt, remix=prompt is not None)


def _index(index: int) -> None:
    if isinstance(index, bool) or not 1 <= index <= 4:
        raise InvalidArgument(
            f"index must be 1, 2, 3 or 4, not {index!r} (nothing was sent)")



class CompletedHandle(TaskHandle):
    """A handle ``as_completed`` yields: its wait has ended, and awaiting it says how.

    ``await handle`` (or ``wait()`` with no timeout) returns the task or raises
    its error at once, a passed deadline included; the handle the caller
    passed in is left untouched, so a later wait on it starts afresh.
    """

    __slots__ = ("_outcome",)

    def __init__(self, handle: TaskHandle, outcome: Task | MidjourneyError) -> None:
        super().__init__(
            handle._session,
            handle._state,
            handle._waits,
            submit_code=handle.submit_code,
            task_ids=handle.task_ids,
        )
        self._outcome = outcome

    def wait(self, timeout: float | None = None) -> Coroutine[Any, Any, Task]:
        return self._wait(timeout)

    async def _wait(self, timeout: float | None) -> Task:
        if timeout is not None:
            return await super().wait(timeout)
        if isinstance(self._outcome, MidjourneyError):
            raise self._outcome
        return self._outcome
