"""Sending one submit: an in-flight slot, the request, the journal, the state to watch.

The never-pay-twice rule lives in the transport (a submit is re-sent only
when it provably never arrived). Around it, a submit here takes an in-flight
slot before it is sent (a modal step carries the slot of the task it
answers), binds the slot to the task the server returned, lets callbacks
about the new id in, writes the id to the journal before returning, and
answers a modal window kept on a MODAL state, never twice.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import msgspec

from ._dialects import Dialect
from ._errors import ConnectError, HTTPStatusError, SessionClosed, SlotTimeout, SubmitRejected
from ._journal import JournalKeeper
from ._media import as_data_url
from ._models import ModalRequest, SubmitResult
from ._slots import LocalSlots, Slot, SlotLimiter
from ._state import TaskState
from ._tracker import Tracker
from ._transport import Transport
from ._webhook import WebhookReceiver

__all__ = ["Submitter"]

logger = logging.getLogger("midjourney_async")


class Submitter:
    """The submit path of one session."""

    def __init__(
        self,
        transport: Transport,
        dialect: Dialect,
        tracker: Tracker,
        *,
        max_in_flight: int | None,
        journal: JournalKeeper | None,
        webhook: WebhookReceiver | None,
    ) -> None:
        self.transport = transport
        self.dialect = dialect
        self.tracker = tracker
        self.journal = journal
        self.webhook = webhook
        self.slots: SlotLimiter | None = None
        if max_in_flight:
            self.slots = LocalSlots(max_in_flight, keep=self._keep, drop=self._drop)
            tracker.table.observers.append(self._slot_settled)
        if journal is not None:
            tracker.table.observers.append(journal.settled)
        # Set while the receiver runs: every submit names it as its notifyHook.
        self.callback_url: str | None = None

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
    ) -> tuple[TaskState, SubmitResult]:
        """Submit, journal and track one task. ``continues`` names the MODAL task a
        modal step answers: if it still holds an in-flight slot, the step carries it
        while it is sent (a MODAL snapshot arriving meanwhile cannot free it)."""
        slots = self.slots
        slot: Slot | None = None
        if slots is not None:
            slot = slots.take(continues) if continues else None
            if slot is None:
                slot = await slots.acquire(self.transport.timeout)
        try:
            result = await self.call(op, body, extra)
        except BaseException:
            if slots is not None and slot is not None:
                slots.release(slot)
            raise
        assert result.task_id is not None
        if self.webhook is not None:
            for task_id in result.task_ids:
                self.webhook.allow(task_id)
        state = self.tracker.state(result.task_id, result.queue_position)
        if slot is not None:
            self._bind(slot, state)
        if self.journal is not None:
            prompt = getattr(body, "prompt", None) or getattr(body, "custom_id", None)
            await self.journal.record(
                op,
                prompt if isinstance(prompt, str) else None,
                getattr(body, "state", None),
                result.task_ids,
            )
        logger.info(
            "%s accepted as task %s (code %d%s)",
            op,
            result.task_id,
            result.code,
            f", {result.queue_position} ahead" if result.queue_position else "",
        )
        if continues is not None and result.task_id == continues:
            self.tracker.reopen(state)
        return state, result

    async def answer_modal(self, state: TaskState) -> TaskState:
        """Submit the modal answer kept on a MODAL state; the state it becomes."""
        assert state.modal_answer is not None
        prompt, mask = state.modal_answer
        body = ModalRequest(
            task_id=state.id, prompt=prompt, mask_base64=as_data_url(mask) if mask else None
        )
        try:
            successor, _ = await self.submit("modal", body, continues=state.id)
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
        """Let ``slot`` ride on ``state``'s task until it settles."""
        assert self.slots is not None
        if state.done:
            # Already over (trueai answers a Like with its finished parent's id).
            self.slots.release(slot)
        else:
            self.slots.bind(slot, state.id)

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
