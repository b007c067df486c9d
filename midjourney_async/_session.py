"""MidjourneySession: configuration, every endpoint, and the handles it returns."""

from __future__ import annotations

import copy
import logging
import os
import ssl as _ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from functools import partial
from types import TracebackType
from typing import Any, Literal, overload

import msgspec

from ._backend import SharedBackend
from ._config import Settings, check_call_options
from ._dialects import Dialect, make_dialect
from ._dialects._base import ListRows
from ._downloads import DownloadMethods
from ._endpoints import SubmitEndpoints, need_text
from ._errors import (
    ConfigurationError,
    MidjourneyError,
)
from ._handle import CompletedHandle, TaskHandle
from ._http import CallOptions
from ._journal import Journal, JournalEntry, JournalKeeper, SQLiteJournal
from ._models import (
    SubmitResult,
    Task,
)
from ._providers import Provider
from ._reader import TaskReader
from ._state import StateTable, TaskState
from ._submitter import Submitter
from ._tracker import Tracker, TrackerStats
from ._transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    HttpRequest,
    HttpResponse,
    RetryPolicy,
    Transport,
    call_options,
    status_error,
)
from ._waiting import Waits
from ._webhook import WebhookConfig, WebhookReceiver

__all__ = ["MidjourneySession"]

logger = logging.getLogger("midjourney_async")

_DIMENSIONS = ("PORTRAIT", "SQUARE", "LANDSCAPE")
_CHANGE_ACTIONS = ("UPSCALE", "VARIATION", "REROLL")


class MidjourneySession(SubmitEndpoints, DownloadMethods):
    """An asyncio session with one Midjourney provider.

    Arguments left out are read from ``MJ_BASE_URL``, ``MJ_API_KEY``,
    ``MJ_PROVIDER`` and ``MJ_MODE``; ``base_url`` defaults to the provider
    preset's own URL where it has one.

    Example::

        async with MidjourneySession(api_key="hk-...", provider="openai-hk", mode="fast") as mj:
            handle = await mj.imagine("a red fox in snow --ar 3:2")
            task = await handle.wait(timeout=600)
            print(task.image_url, [b.name for b in task.buttons])

    Main options: ``timeout`` per HTTP request; ``wait_timeout`` the default
    deadline of ``wait()``; ``poll_interval`` the base tick of the shared
    poller (3 s, or ``MJ_POLL_INTERVAL``; queued tasks are asked half as often);
    ``chunk_size`` ids per list-by-condition (by default 100, growing up to 1,000
    when a sweep holds more than 10,000 ids); ``retry`` the :class:`RetryPolicy`; ``max_in_flight``
    caps tasks submitted and not yet finished (further submits wait for a
    slot, at most ``timeout``); ``webhook`` starts a callback receiver (see
    :class:`WebhookConfig`); ``journal`` keeps every accepted id on disk (see
    :meth:`resume`); ``backend`` shares the journal, the in-flight cap, snapshots
    and webhook callbacks with other workers (``midjourney_async.redis.RedisBackend``);
    ``download_allow`` lists hosts or networks (``"10.0.0.0/8"``)
    that downloads may reach although private; ``max_response_bytes`` caps an
    API answer (32 MiB).

    Proxies and headers: ``HTTP_PROXY``, ``HTTPS_PROXY`` and ``NO_PROXY`` are
    honoured as by requests and httpx (``trust_env=False`` ignores them);
    ``proxy="http://proxy.lan:3128"`` sends every request through that proxy
    instead, image downloads included. ``headers`` are added to every request
    to the base URL's server (never to other hosts); the provider's auth
    header wins over one of the same name.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        provider: str | None = None,
        mode: str | None = None,
        auth_header: str | None = None,
        auth_scheme: str | None = None,
        mode_prefix: str | None = None,
        timeout: float = 30.0,
        wait_timeout: float = 900.0,
        poll_interval: float | None = None,
        chunk_size: int | None = None,
        not_found_grace: float = 30.0,
        retry: RetryPolicy | None = None,
        max_in_flight: int | None = None,
        webhook: WebhookConfig | bool | None = None,
        ssl: _ssl.SSLContext | bool | None = None,
        max_connections: int = 100,
        journal: str | os.PathLike[str] | Journal | None = None,
        download_allow: Iterable[str] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        proxy: str | None = None,
        trust_env: bool = True,
        headers: Mapping[str, str] | None = None,
        backend: SharedBackend | None = None,
    ) -> None:
        cfg = Settings.resolve(
            base_url=base_url,
            api_key=api_key,
            provider=provider,
            mode=mode,
            auth_header=auth_header,
            auth_scheme=auth_scheme,
            mode_prefix=mode_prefix,
            timeout=timeout,
            wait_timeout=wait_timeout,
            poll_interval=poll_interval,
            chunk_size=chunk_size,
            not_found_grace=not_found_grace,
            retry=retry,
            max_in_flight=max_in_flight,
            webhook=webhook,
            ssl=ssl,
            max_connections=max_connections,
            max_response_bytes=max_response_bytes,
            proxy=proxy,
            trust_env=trust_env,
            headers=headers,
        )
        self.settings = cfg
        self.provider: Provider = cfg.provider
        self.mode = cfg.mode
        self.base_url = cfg.base_url
        self.wait_timeout = cfg.wait_timeout
        self.poll_interval = cfg.poll_interval
        self.retry = cfg.retry
        self.max_in_flight = cfg.max_in_flight
        self.dialect: Dialect = make_dialect(
            cfg.provider.dialect, root=cfg.provider.root(cfg.mode), mode=cfg.mode
        )
        self._transport = Transport(
            cfg.base_url,
            headers=_merge_headers(cfg.headers, cfg.provider.auth_headers(cfg.api_key)),
            api_key=cfg.api_key,
            timeout=cfg.timeout,
            retry=cfg.retry,
            ssl=cfg.ssl,
            max_connections=cfg.max_connections,
            max_response_bytes=cfg.max_response_bytes,
            download_allow=download_allow,
            proxy=cfg.proxy,
            trust_env=cfg.trust_env,
        )
        self._poll_retry = cfg.poll_retry
        self._table = StateTable()
        self._reader = TaskReader(
            list_tasks=self._list_for_poller if self.dialect.supports_list else None,
            decode=self.dialect.decode_row,
            decode_head=self.dialect.decode_head,
            fetch=self._fetch_for_poller,
            chunk_size=cfg.chunk_size,
        )
        self._tracker = Tracker(
            self._table,
            self._reader,
            interval=cfg.tracker_interval,
            not_found_grace=cfg.not_found_grace,
        )
        self._backend = backend
        if backend is not None:
            if journal is not None:
                raise ConfigurationError(
                    "give journal= or backend= (which brings its own journal), not both"
                )
            journal = backend.journal()
        keeper: JournalKeeper | None = None
        if journal is not None:
            store = journal if isinstance(journal, Journal) else SQLiteJournal(journal)
            keeper = JournalKeeper(store, cfg.provider.name)
        self._journal = keeper
        self._webhook: WebhookReceiver | None = None
        if cfg.webhook is not None:
            self._webhook = WebhookReceiver(
                cfg.webhook,
                parse=self._parse_notification,
                notify=self._notify_callback,
                confirm=self._confirm,
                known=backend.knows if backend is not None else None,
            )
        self._submitter = Submitter(
            self._transport,
            self.dialect,
            self._tracker,
            make_handle=self._new_handle,
            max_in_flight=cfg.max_in_flight,
            wait_timeout=cfg.wait_timeout,
            journal=keeper,
            webhook=self._webhook,
            make_slots=backend.slot_limiter if backend is not None else None,
        )
        self._slots = self._submitter.slots
        self._waits = Waits(
            self._table,
            self._tracker,
            answer=self._submitter.answer_modal,
            handle_for=self._handle_for,
            default_timeout=cfg.wait_timeout,
            gave_up=self._submitter.gave_up,
        )
        self._open = False
        self._options: CallOptions | None = None
        self._root = self

    def with_options(
        self, *, timeout: float | None = None, retry: RetryPolicy | None = None
    ) -> MidjourneySession:
        """A view of this session whose calls use another ``timeout`` or ``retry``.

        The view shares everything else: one HTTP session, one poller, the
        same tasks and slots; making one costs nothing. Handles it returns
        press their buttons with its options too. The shared poller keeps the
        session's own settings. Closing a view closes the session.

        Example::

            patient = mj.with_options(timeout=120, retry=RetryPolicy(max_tries=8))
            handle = await patient.imagine("a red fox in snow")
            task = await mj.with_options(retry=RetryPolicy.never()).fetch(handle.id)
        """
        options = check_call_options(timeout, retry).over(self._options)
        view = copy.copy(self)
        view._options = options
        view.retry = options.retry or self.retry
        return view

    def __repr__(self) -> str:
        mode = f" mode={self.mode}" if self.mode else ""
        return f"<MidjourneySession {self.provider.name} {self.base_url}{mode}>"

    @property
    def journal(self) -> Journal | None:
        """Where accepted task ids are kept until they end (``journal=``), if any."""
        return self._journal.journal if self._journal is not None else None

    # -- lifecycle ----------------------------------------------------------

    async def open(self) -> MidjourneySession:
        """Open the HTTP session (and the webhook receiver). ``async with`` does this."""
        if self._root is not self:
            await self._root.open()
            return self
        if not self._open:
            await self._transport.open()
            if self._webhook is not None:
                try:
                    if self._backend is not None:
                        self._webhook.share_token(await self._backend.webhook_token())
                    await self._webhook.start()
                except BaseException:
                    await self._transport.close()
                    raise
                self._submitter.callback_url = self._webhook.url
                if not self.settings.callbacks_can_arrive:
                    logger.warning(
                        "webhook callbacks cannot reach this process: the callback URL %s "
                        "is on loopback while the server %s is not (set "
                        "WebhookConfig(public_url=...)); polling goes on every %g s",
                        self._webhook.url.rsplit("/", 1)[0] + "/***",
                        self.base_url,
                        self._tracker.interval,
                    )
                elif not self.provider.callbacks:
                    logger.warning(
                        "%s relays drop notifyHook unless their operator enabled it; "
                        "polling goes on every %g s",
                        self.provider.name,
                        self._tracker.interval,
                    )
            if self._backend is not None:
                await self._backend.attach(
                    self._table, self._tracker, poll_floor=self.settings.poll_floor
                )
            self._tracker.restart()
            self._waits.bind_loop()
            if self._slots is not None:
                self._slots.reopen()
            self._open = True
        return self

    async def close(self) -> None:
        """Stop the poller and the receiver and close the HTTP session."""
        if self._root is not self:
            await self._root.close()
            return
        self._open = False
        self._submitter.callback_url = None
        self._submitter.close()
        if self._slots is not None:
            self._slots.close()
        # Callbacks first: a late confirm must not touch a closed tracker or journal.
        if self._webhook is not None:
            await self._webhook.stop()
        await self._tracker.close()
        if self._journal is not None:
            await self._journal.close()
        if self._backend is not None:
            await self._backend.detach()
        await self._transport.close()

    async def __aenter__(self) -> MidjourneySession:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def tracker_stats(self) -> TrackerStats:
        """Counters of the shared poller (ticks, list and fetch requests, errors)."""
        return self._tracker.stats

    @property
    def pending(self) -> int:
        """Tasks the shared poller is watching right now."""
        return self._tracker.pending

    @property
    def webhook_url(self) -> str | None:
        """The callback URL put into every submit, when the receiver runs."""
        if self._webhook is None or not self._open:
            return None
        return self._webhook.url

    # -- plumbing -----------------------------------------------------------

    async def _submit(
        self,
        op: str,
        body: msgspec.Struct,
        extra: dict[str, Any] | None = None,
        *,
        continues: str | None = None,
    ) -> TaskHandle:
        if self._options is None:
            return await self._submitter.submit(op, body, extra, continues=continues)
        with call_options(self._options):
            handle = await self._submitter.submit(op, body, extra, continues=continues)
        # Its buttons are pressed through this view, with its options.
        handle._session = self
        return handle

    def _new_handle(self, state: TaskState, result: SubmitResult) -> TaskHandle:
        return TaskHandle(
            self, state, self._waits, submit_code=result.code, task_ids=result.task_ids
        )

    def _notify_callback(self, task: Task) -> bool:
        applied = self._table.apply(task)
        if not applied and self._backend is not None and self._table.get(task.id) is None:
            # Another worker's task: its waiter is there.
            self._backend.share(task)
        return applied

    def _parse_notification(self, body: bytes) -> Task:
        return self.dialect.parse_notification(body)

    def _handle_for(self, state: TaskState) -> TaskHandle:
        return TaskHandle(self, state, self._waits)

    async def _confirm(self, task_id: str) -> None:
        # A state even for a task whose handle was dropped, so that its end still
        # reaches the journal; it lives as long as this confirmation.
        state = self._tracker.state(task_id)
        await self._tracker.refresh([state.id])

    async def resume(self) -> list[TaskHandle]:
        """Handles for every task of this provider the journal holds as unfinished.

        Example::

            async with MidjourneySession(..., journal="tasks.db") as mj:
                for task in await mj.wait_all(await mj.resume(), return_exceptions=True):
                    print(task)
        """
        if self._journal is None:
            raise ConfigurationError("resume() needs a journal: MidjourneySession(journal=...)")
        handles = []
        for entry in await self._journal.unfinished():
            if self._webhook is not None:
                self._webhook.allow(entry.task_id)
            handles.append(self.handle(entry.task_id))
        return handles

    async def unconfirmed_submits(self) -> list[JournalEntry]:
        """Submits that were sent but whose answer never came (the process died, or
        the connection dropped after sending): their tasks may exist on the server.

        Each entry names the operation, the prompt and the ``state`` tag the
        server got with the request; look for that tag in the server's task
        list (``list-by-condition`` shows it) to find the task.
        """
        if self._journal is None:
            raise ConfigurationError(
                "unconfirmed_submits() needs a journal: MidjourneySession(journal=...)"
            )
        return await self._journal.unconfirmed()

    async def _read(self, req: HttpRequest, parse: Any, retry: RetryPolicy | None = None) -> Any:
        if self._options is None:
            return await self._transport.call(req, parse, retry=retry)
        with call_options(self._options):
            return await self._transport.call(req, parse, retry=retry)

    async def _list_for_poller(self, ids: list[str]) -> ListRows:
        answer: ListRows = await self._read(
            self.dialect.list_tasks(ids), self.dialect.parse_list_answer, self._poll_retry
        )
        return answer

    async def _fetch_for_poller(self, task_id: str) -> Task:
        task: Task = await self._read(
            self.dialect.fetch(task_id),
            partial(self.dialect.parse_fetch, task_id),
            self._poll_retry,
        )
        return task

    # -- queries ------------------------------------------------------------

    async def fetch(self, task_id: str) -> Task:
        """The task's current snapshot. Raises :class:`TaskNotFound` for an unknown id."""
        task_id = need_text(task_id, "task_id")
        task: Task = await self._read(
            self.dialect.fetch(task_id), partial(self.dialect.parse_fetch, task_id)
        )
        return task

    async def fetch_many(self, ids: Iterable[str]) -> list[Task]:
        """Snapshots of many tasks in as few requests as the provider allows.

        The result follows the order of ``ids``; ids the server does not know
        are left out.
        """
        wanted = list(dict.fromkeys(str(i) for i in ids))
        with call_options(self._options):
            found = await self._reader.read_many(wanted)
        return [found[i] for i in wanted if i in found]

    async def image_seed(self, task_id: str) -> str:
        """The seed of a finished task's image."""
        task_id = need_text(task_id, "task_id")
        seed: str = await self._read(
            self.dialect.image_seed(task_id), partial(self.dialect.parse_image_seed, task_id)
        )
        return seed

    async def cancel(self, task_id: str) -> None:
        """Cancel a task (trueai; admin tokens only). The task then ends in FAILURE."""
        req = self.dialect.cancel(need_text(task_id, "task_id"))

        def parse(resp: HttpResponse) -> None:
            if resp.status >= 400:
                raise status_error(resp, f"cancel {task_id}")

        with call_options(self._options):
            await self._transport.call(req, parse)

    async def image(self, task_id: str) -> bytes:
        """The image of a task as the relay serves it (new-api's ``/mj/image/{id}``)."""
        def parse(resp: HttpResponse) -> bytes:
            if resp.status == 200:
                return resp.body
            raise status_error(resp, f"image {task_id}")

        data: bytes = await self._read(self.dialect.image(task_id), parse)
        return data

    # -- handles ------------------------------------------------------------

    def handle(self, task_id: str) -> TaskHandle:
        """Re-attach to a task submitted earlier (another process, before a restart).

        Example::

            task = await mj.handle("1730621826053455").wait()
        """
        task_id = need_text(task_id, "task_id")
        state = self._tracker.state(task_id)
        # Nothing known yet: ask on the next tick rather than after a full interval.
        self._tracker.ask_soon(state)
        return TaskHandle(self, state, self._waits)

    def notify(self, task: Task) -> bool:
        """Feed a snapshot from your own webhook endpoint; True if it moved the task on.

        Snapshots of tasks nobody tracks, and stale or duplicate ones, are ignored
        (with a shared ``backend``, one of a task this worker does not track goes to
        the other workers).
        """
        return self._notify_callback(task)

    def as_completed(
        self, handles: Iterable[TaskHandle], *, timeout: float | None = None
    ) -> AsyncIterator[TaskHandle]:
        """Yield handles as their tasks end (success, failure or timeout).

        ``await`` the yielded handle to get its task or its error at once.

        Example::

            async for h in mj.as_completed(handles, timeout=900):
                try:
                    print((await h).image_url)
                except MidjourneyError as exc:
                    print(h.id, exc)
        """
        return self._as_completed(list(handles), timeout)

    async def _as_completed(
        self, handles: list[TaskHandle], timeout: float | None
    ) -> AsyncIterator[TaskHandle]:
        states = [h._state for h in handles]
        async for i, outcome in self._waits.outcomes(states, timeout):
            yield CompletedHandle(handles[i], outcome)

    @overload
    async def wait_all(
        self,
        handles: Iterable[TaskHandle],
        *,
        timeout: float | None = None,
        return_exceptions: Literal[False] = False,
    ) -> list[Task]: ...

    @overload
    async def wait_all(
        self,
        handles: Iterable[TaskHandle],
        *,
        timeout: float | None = None,
        return_exceptions: Literal[True],
    ) -> list[Task | MidjourneyError]: ...

    @overload
    async def wait_all(
        self,
        handles: Iterable[TaskHandle],
        *,
        timeout: float | None = None,
        return_exceptions: bool,
    ) -> list[Task] | list[Task | MidjourneyError]: ...

    async def wait_all(
        self,
        handles: Iterable[TaskHandle],
        *,
        timeout: float | None = None,
        return_exceptions: bool = False,
    ) -> list[Task] | list[Task | MidjourneyError]:
        """Wait for every handle; the tasks come back in the order given.

        With ``return_exceptions=True`` a failed task gives its error in its
        place; otherwise the first error is raised and the other waits stop
        (their tasks go on on the server).
        """
        states = [h._state for h in handles]
        if return_exceptions:
            return await self._waits.wait_all_settled(states, timeout)
        return await self._waits.wait_all(states, timeout)


def _merge_headers(extra: dict[str, str], auth: dict[str, str]) -> dict[str, str]:
    """``extra`` with the auth headers on top (names compared without case)."""
    taken = {name.lower() for name in auth}
    return {**{k: v for k, v in extra.items() if k.lower() not in taken}, **auth}
