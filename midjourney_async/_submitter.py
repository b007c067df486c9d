"""Sending one submit: an in-flight slot, the request, the journal, the state to watch.

The never-pay-twice rule lives in the transport (a submit is re-sent only
when it provably never arrived). Around it, a submit here takes an in-flight
slot before it is sent (a modal step carries the slot of the task it
answers), binds the slot to the task the server returned, lets callbacks
about the new id in, writes the id to the journal before returning, and
answers a modal window kept on a MODAL state, never twice.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from ._dialects import Dialect
from ._errors import (
    ConnectError,
    HTTPStatusError,
    JournalError,
    SessionClosed,
    SlotTimeout,
    SubmitRejected,
    TransportError,
)
from ._journal import JournalKeeper
from ._media import as_data_url
from ._models import ModalRequest, SubmitResult, TaskStatus
from ._slots import LocalSlots, Slot, SlotLimiter
from ._state import TaskState
from ._tracker import Tracker
from ._transport import Transport
from ._webhook import WebhookReceiver

if TYPE_CHECKING:
    from ._handle import TaskHandle

__all__ = ["Submitter"]

HandleFn = Callable[[TaskState, SubmitResult], "TaskHandle"]


class SlotsFactory(Protocol):
    """Makes the slot limiter of a cap (a shared backend gives its own)."""

    def __call__(
        self, limit: int, *, keep: Callable[[str], None], drop: Callable[[str], None]
    ) -> SlotLimiter: ...

# novicezk with its Redis task store saves a finished task asynchronously: a press
# sent right after SUCCESS may meet the unfinished copy (code 4 "关联任务状态错误",
# or 3). Nothing was accepted, so the press is sent again over about three seconds.
_RACE_OPS = frozenset({"action", "change", "simple-change"})
_RACE_DELAYS = (0.25, 0.5, 0.75, 1.5)
_RACE_WORDS = ("关联任务状态错误",)

logger = logging.getLogger("midjourney_async")


class Submitter:
    """The submit path of one session."""

    def __init__(
        self,
        transport: Transport,
        dialect: Dialect,
        tracker: Tracker,
        *,
        make_handle: HandleFn,
        max_in_flight: int | None,
        wait_timeout: float,
        journal: JournalKeeper | None,
        webhook: WebhookReceiver | None,
        make_slots: SlotsFactory | None = None,
    ) -> None:
        self.transport = transport
        self.dialect = dialect
        self.tracker = tracker
        self.make_handle = make_handle
        self.wait_timeout = wait_timeout
        self.journal = journal
        self.webhook = webhook
        self._expiry: dict[str, asyncio.TimerHandle] = {}
        self.slots: SlotLimiter | None = None
        if max_in_flight:
            make = make_slots or LocalSlots
            self.slots = make(max_in_flight, keep=self._keep, drop=self._drop)
            tracker.table.observers.append(self._slot_settled)
        if journal is not None:
            tracker.table.observers.append(journal.settled)
        # Set while the receiver runs: every submit names it as its notifyHook.
        self.callback_url: str | None = None
        # Modal answers on their way, by the MODAL task's id: a second wait that meets
        # the same window follows this one instead of paying for the step again.
        self._answering: dict[str, asyncio.Future[TaskState]] = {}

    async def call(
        self, op: str, body: msgspec.Struct, extra: dict[str, Any] | None
    ) -> SubmitResult:
        """Send one submit request (no slot, no tracking): the server's answer."""
        if self.callback_url is not None and hasattr(body, "notify_hook"):
            body.notify_hook = self.callback_url
        req = self.dialect.submit(op, body, extra)
        return await self.transport.call(req, partial(self.dialect.parse_submit, op))

    async def submit(
        self,
        op: str,
        body: msgspec.Struct,
        extra: dict[str, Any] | None = None,
        *,
        continues: str | None = None,
    ) -> TaskHandle:
        """Submit, journal and track one task. ``continues`` names the MODAL task a
        modal step answers: if it still holds an in-flight slot, the step carries it
        while it is sent (a MODAL snapshot arriving meanwhile cannot free it)."""
        slots = self.slots
        slot: Slot | None = None
        if slots is not None:
            slot = slots.take(continues) if continues else None
            if slot is None:
                slot = await slots.acquire(self.transport.request_timeout)
        intent: str | None = None
        try:
            if self.journal is not None and self.journal.keeps_intents:
                intent = await self._intend(op, body)
            result = await self._send(op, body, extra)
        except BaseException as exc:
            if slots is not None and slot is not None:
                slots.release(slot)
            if intent is not None and self.journal is not None and _not_accepted(exc):
                await self.journal.settle_intent(intent, "NOT_ACCEPTED")
            raise
        assert result.task_id is not None
        if self.webhook is not None:
            for task_id in result.task_ids:
                self.webhook.allow(task_id)
        state = self.tracker.state(result.task_id, result.queue_position)
        if slot is not None:
            self._bind(slot, state)
        if continues is not None and result.task_id == continues:
            self.tracker.reopen(state)
        handle = self.make_handle(state, result)
        logger.info(
            "%s accepted as task %s (code %d%s)",
            op,
            result.task_id,
            result.code,
            f", {result.queue_position} ahead" if result.queue_position else "",
        )
        if self.journal is not None:
            try:
                await self.journal.record(
                    op, _prompt_of(body), getattr(body, "state", None), result.task_ids
                )
            except Exception as exc:
                raise JournalError(result.task_ids, repr(exc), handle) from exc
            if intent is not None:
                await self.journal.settle_intent(intent, "ACCEPTED")
        return handle

    async def _send(
        self, op: str, body: msgspec.Struct, extra: dict[str, Any] | None
    ) -> SubmitResult:
        """``call``, sent again while the server still refuses a press on a task this
        session saw finish (the save race above)."""
        parent = _parent_of(op, body)
        if parent is None:
            return await self.call(op, body, extra)
        delays = iter(_RACE_DELAYS if self.transport.policy.max_tries > 1 else ())
        while True:
            try:
                return await self.call(op, body, extra)
            except SubmitRejected as exc:
                if not self._raced(parent, exc):
                    raise
                delay = next(delays, None)
                if delay is None:
                    raise
                logger.info(
                    "%s on task %s refused right after it finished (%s); sending it again "
                    "in %g s (nothing was accepted)",
                    op,
                    parent,
                    exc.description or exc.code,
                    delay,
                )
                await asyncio.sleep(delay)

    def _raced(self, parent: str, exc: SubmitRejected) -> bool:
        if not (exc.code == 3 or any(w in exc.description for w in _RACE_WORDS)):
            return False
        # Only for a task known to exist and be finished: otherwise the refusal is real.
        state = self.tracker.table.get(parent)
        task = state.task if state is not None else None
        return task is not None and task.status == TaskStatus.SUCCESS

    async def _intend(self, op: str, body: msgspec.Struct) -> str:
        """Write the intent of a submit before it is sent; refuse the submit if it
        cannot be written (a task nobody could find again must not be created)."""
        assert self.journal is not None
        tag = getattr(body, "state", None)
        if not tag:
            # A unique tag the server keeps with the task: the way to find a task
            # whose answer was lost (list-by-condition and task lists show it).
            tag = f"mj-{secrets.token_hex(8)}"
            if hasattr(body, "state"):
                body.state = tag
        try:
            await self.journal.intend(op, _prompt_of(body), tag)
        except Exception as exc:
            raise JournalError([], f"{exc!r}; nothing was sent") from exc
        return tag

    async def answer_modal(self, state: TaskState) -> TaskState:
        """Submit the modal answer kept on a MODAL state; the state it becomes.

        Sent once however many waits meet the window: the others follow the first.
        """
        running = self._answering.get(state.id)
        if running is not None:
            await asyncio.wait([running])  # its outcome, without cancelling it with ours
            if running.cancelled():
                # Its sender was cancelled mid-step: it may have been sent; follow the task.
                return state
            return running.result()
        running = asyncio.get_running_loop().create_future()
        self._answering[state.id] = running
        try:
            successor = await self._answer_modal(state)
        except asyncio.CancelledError:
            running.cancel()
            raise
        except BaseException as exc:
            running.set_exception(exc)
            running.exception()  # whoever else waits reads it; nobody may, and that is fine
            raise
        else:
            running.set_result(successor)
        finally:
            del self._answering[state.id]
        return successor

    async def _answer_modal(self, state: TaskState) -> TaskState:
        assert state.modal_answer is not None
        prompt, mask = state.modal_answer
        body = ModalRequest(
            task_id=state.id, prompt=prompt, mask_base64=as_data_url(mask) if mask else None
        )
        try:
            successor = (await self.submit("modal", body, continues=state.id))._state
        except (SubmitRejected, ConnectError, SessionClosed, SlotTimeout):
            # Provably not accepted: the next wait() answers the window again.
            raise
        except HTTPStatusError as exc:
            if exc.status < 500:
                raise
            # A 5xx may come after the server took the step: never send it twice.
            state.modal_answer = None
            raise
        except BaseException:
            # It may have been accepted: never send the paid step twice.
            state.modal_answer = None
            raise
        state.modal_answer = None
        if successor is not state:
            state.successor = successor
            state.publish()
        return successor

    def _bind(self, slot: Slot, state: TaskState) -> None:
        """Let ``slot`` ride on ``state``'s task until it settles, or until nobody
        waits on it past the session's wait deadline."""
        assert self.slots is not None
        if state.done:
            # Already over (trueai answers a Like with its finished parent's id).
            self.slots.release(slot)
            return
        self.slots.bind(slot, state.id)
        if state.id not in self._expiry:
            loop = asyncio.get_running_loop()
            self._expiry[state.id] = loop.call_later(self.wait_timeout, self._expire, state.id)

    def _expire(self, task_id: str) -> None:
        self._expiry.pop(task_id, None)
        state = self.tracker.table.get(task_id)
        if state is not None and state.waiters:
            # Someone still waits: the slot comes back when that wait ends.
            loop = asyncio.get_running_loop()
            self._expiry[task_id] = loop.call_later(self.wait_timeout, self._expire, task_id)
            return
        self._give_back(task_id)

    def gave_up(self, state: TaskState) -> None:
        """The last wait on ``state`` passed its deadline: its slot comes back, and
        with nobody waiting the task is no longer polled."""
        if state.waiters == 0:
            self._give_back(state.id)

    def _give_back(self, task_id: str) -> None:
        if self.slots is not None and self.slots.holds(task_id):
            logger.info("task %s: nobody waits on it any more; its slot is given back", task_id)
            self.slots.settled(task_id)

    def _keep(self, task_id: str) -> None:
        self.tracker.hold(self.tracker.state(task_id))

    def _drop(self, task_id: str) -> None:
        state = self.tracker.table.get(task_id)
        if state is not None:
            self.tracker.unhold(state)

    def _slot_settled(self, state: TaskState) -> None:
        # A task waiting for a modal step may wait for ever (trueai never expires
        # one): it must not hold an in-flight slot meanwhile.
        assert self.slots is not None
        self.slots.settled(state.id)
        timer = self._expiry.pop(state.id, None)
        if timer is not None:
            timer.cancel()

    def close(self) -> None:
        """Stop the slot deadlines (the session is closing)."""
        for timer in self._expiry.values():
            timer.cancel()
        self._expiry.clear()


def _parent_of(op: str, body: msgspec.Struct) -> str | None:
    """The task a press or change acts on, for the save-race retry."""
    if op not in _RACE_OPS:
        return None
    task_id = getattr(body, "task_id", None)
    content = getattr(body, "content", None)
    if task_id is None and isinstance(content, str):
        # simple-change: "<task id> U2"
        words = content.split()
        task_id = words[0] if words else None
    return task_id if isinstance(task_id, str) else None


def _prompt_of(body: msgspec.Struct) -> str | None:
    prompt = getattr(body, "prompt", None) or getattr(body, "custom_id", None)
    return prompt if isinstance(prompt, str) else None


def _not_accepted(exc: BaseException) -> bool:
    """Whether a failed submit provably created nothing on the server."""
    if isinstance(exc, (SubmitRejected, SlotTimeout, SessionClosed)):
        return True
    if isinstance(exc, TransportError):
        return not exc.maybe_received
    return isinstance(exc, HTTPStatusError) and exc.status < 500
