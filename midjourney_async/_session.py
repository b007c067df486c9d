"""MidjourneySession: configuration, every endpoint, and the handles it returns."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl as _ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, overload
from urllib.parse import urlsplit

import anyio
import msgspec

from ._dialects import Dialect, make_dialect
from ._errors import (
    ConfigurationError,
    InvalidRequestError,
    MidjourneyError,
    SessionClosed,
    TaskNotFound,
)
from ._grid import write_tiles
from ._handle import TaskHandle
from ._journal import Journal, JournalEntry, SQLiteJournal
from ._many import as_completed, wait_all, wait_all_settled
from ._media import as_data_url, fetch_bytes, safe_name, save_task_media
from ._models import (
    ActionRequest,
    BlendRequest,
    ChangeRequest,
    DescribeRequest,
    EditsRequest,
    ImagineRequest,
    ModalRequest,
    ShortenRequest,
    SimpleChangeRequest,
    SubmitResult,
    SwapFaceRequest,
    Task,
    UploadRequest,
    VideoRequest,
)
from ._providers import Provider, check_mode, resolve_provider
from ._tracker import TaskState, Tracker, TrackerStats
from ._transport import HttpRequest, HttpResponse, RetryPolicy, Transport, status_error
from ._webhook import WebhookConfig, WebhookReceiver

__all__ = ["MidjourneySession"]

logger = logging.getLogger("midjourney_async")

ImageInput = str | bytes | os.PathLike[str]
_DIMENSIONS = ("PORTRAIT", "SQUARE", "LANDSCAPE")
_CHANGE_ACTIONS = ("UPSCALE", "VARIATION", "REROLL")


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value.strip() if value and value.strip() else None


def _need_text(value: str | None, what: str) -> str:
    if value is None or not str(value).strip():
        raise InvalidRequestError(f"{what} must not be empty (nothing was sent)", code=None)
    return str(value)


class MidjourneySession:
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
    poller (queued tasks are asked half as often); ``chunk_size`` ids per
    list-by-condition; ``retry`` the :class:`RetryPolicy`; ``max_in_flight``
    caps tasks submitted and not yet finished (further submits wait for a
    slot); ``webhook`` starts a callback receiver (see :class:`WebhookConfig`).
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
        poll_interval: float = 3.0,
        chunk_size: int = 100,
        not_found_grace: float = 30.0,
        retry: RetryPolicy | None = None,
        max_in_flight: int | None = None,
        webhook: WebhookConfig | bool | None = None,
        ssl: _ssl.SSLContext | bool | None = None,
        max_connections: int = 100,
        journal: str | os.PathLike[str] | Journal | None = None,
    ) -> None:
        name = provider or _env("MJ_PROVIDER") or "midjourney-proxy"
        self.provider: Provider = resolve_provider(
            name, auth_header=auth_header, auth_scheme=auth_scheme, mode_prefix=mode_prefix
        )
        self.mode = check_mode(self.provider, mode if mode is not None else _env("MJ_MODE"))
        url = base_url or _env("MJ_BASE_URL") or self.provider.base_url
        if not url:
            raise ConfigurationError(
                f"no base URL: pass base_url= or set MJ_BASE_URL (provider {self.provider.name!r} "
                "has no default)"
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            # The value is not echoed: with the arguments swapped it is the key.
            raise ConfigurationError(
                "base_url must be an http(s) URL such as 'https://api.example.com' "
                "(are base_url and api_key swapped?)"
            )
        if timeout <= 0 or wait_timeout <= 0 or poll_interval < 0:
            raise ConfigurationError("timeout and wait_timeout must be positive")
        if max_in_flight is not None and max_in_flight < 1:
            raise ConfigurationError("max_in_flight must be at least 1")
        self.base_url = url.rstrip("/")
        key = api_key if api_key is not None else _env("MJ_API_KEY")
        self._api_key = key
        self.wait_timeout = wait_timeout
        self.dialect: Dialect = make_dialect(
            self.provider.dialect, root=self.provider.root(self.mode), mode=self.mode
        )
        self.retry = retry or RetryPolicy()
        self._transport = Transport(
            self.base_url,
            headers=self.provider.auth_headers(key),
            api_key=key,
            timeout=timeout,
            retry=self.retry,
            ssl=ssl,
            max_connections=max_connections,
        )
        # The poller gives up on a failing tick sooner than a user call would:
        # the next tick is the retry.
        self._poll_retry = RetryPolicy(
            max_tries=2,
            max_time=min(self.retry.max_time, max(poll_interval * 4, 5.0)),
            base_delay=self.retry.base_delay,
            wait_scale=self.retry.wait_scale,
        )
        if isinstance(webhook, bool):
            webhook = WebhookConfig() if webhook else None
        self._webhook_config = webhook
        self._webhook: WebhookReceiver | None = None
        self.poll_interval = poll_interval
        self._tracker = Tracker(
            list_tasks=self._list_for_tracker if self.dialect.supports_list else None,
            fetch=self._fetch_for_tracker,
            interval=self._poll_interval_with(webhook, poll_interval),
            chunk_size=chunk_size,
            not_found_grace=not_found_grace,
            on_end=self._on_task_end,
        )
        self.journal: Journal | None = (
            None
            if journal is None
            else journal
            if isinstance(journal, Journal)
            else SQLiteJournal(journal)
        )
        self._background: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(max_in_flight) if max_in_flight else None
        self.max_in_flight = max_in_flight
        self._submitted: dict[str, None] = {}
        self._closing = asyncio.Event()
        self._open = False

    def _poll_interval_with(self, webhook: WebhookConfig | None, poll_interval: float) -> float:
        if webhook is None:
            return poll_interval
        if webhook.poll_interval is not None:
            return webhook.poll_interval
        # Callbacks make polling a slow safety net, where the provider sends them.
        return 30.0 if self.provider.callbacks else poll_interval

    def __repr__(self) -> str:
        mode = f" mode={self.mode}" if self.mode else ""
        return f"<MidjourneySession {self.provider.name} {self.base_url}{mode}>"

    # -- lifecycle ----------------------------------------------------------

    async def open(self) -> MidjourneySession:
        """Open the HTTP session (and the webhook receiver). ``async with`` does this."""
        if not self._open:
            await self._transport.open()
            if self._webhook_config is not None:
                receiver = WebhookReceiver(self._webhook_config, self)
                try:
                    await receiver.start()
                except BaseException:
                    await self._transport.close()
                    raise
                self._webhook = receiver
                if not self.provider.callbacks:
                    logger.warning(
                        "%s relays drop notifyHook unless their operator enabled it; "
                        "polling goes on every %g s",
                        self.provider.name,
                        self._tracker.interval,
                    )
            self._tracker.restart()
            self._closing.clear()
            self._open = True
        return self

    async def close(self) -> None:
        """Stop the poller and the receiver and close the HTTP session."""
        self._open = False
        self._closing.set()
        # Callbacks first: a late confirm must not touch a closed tracker or journal.
        if self._webhook is not None:
            await self._webhook.stop()
            self._webhook = None
        await self._tracker.close()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self.journal is not None:
            await self.journal.close()
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
        return self._webhook.url if self._webhook is not None else None

    # -- plumbing -----------------------------------------------------------

    async def _call_submit(self, op: str, body: msgspec.Struct,
                           extra: dict[str, Any] | None) -> SubmitResult:
        if self._webhook is not None and hasattr(body, "notify_hook"):
            body.notify_hook = self._webhook.url
        req = self.dialect.submit(op, body, extra)
        return await self._transport.call(req, partial(self.dialect.parse_submit, op))

    async def _submit(
        self,
        op: str,
        body: msgspec.Struct,
        extra: dict[str, Any] | None = None,
        *,
        continues: str | None = None,
    ) -> TaskHandle:
        """Submit, journal and track one task. ``continues`` names the MODAL task a
        modal step answers: if it still holds an in-flight slot, the step takes it over
        while it is sent (a MODAL snapshot arriving meanwhile cannot free it)."""
        release: Callable[[], None] | None = None
        if self._slots is not None:
            parent = self._tracker.states.get(continues) if continues else None
            release = self._tracker.detach(parent) if parent is not None else None
            if release is None:
                await self._acquire_slot(self._slots)
                release = self._slots.release
        try:
            result = await self._call_submit(op, body, extra)
        except BaseException:
            if release is not None:
                release()
            raise
        assert result.task_id is not None
        for task_id in result.task_ids:
            self._remember(task_id)
        if self.journal is not None:
            try:
                await self._journal_record(op, body, result.task_ids)
            except BaseException:
                # Cancelled mid-write: the task exists all the same, so it must still
                # give its in-flight slot back when it ends.
                self._track_slot(result.task_id, result.queue_position, release)
                raise
        logger.info(
            "%s accepted as task %s (code %d%s)",
            op,
            result.task_id,
            result.code,
            f", {result.queue_position} ahead" if result.queue_position else "",
        )
        state = self._track_slot(result.task_id, result.queue_position, release)
        if continues is not None and result.task_id == continues:
            self._tracker.reopen(continues)
        return TaskHandle(self, state, submit_code=result.code, task_ids=result.task_ids)

    def _track_slot(
        self, task_id: str, queue_position: int | None, release: Callable[[], None] | None
    ) -> TaskState:
        """The task's state; with ``max_in_flight``, watched until it ends, then
        ``release`` gives its slot back."""
        state = self._tracker.state(task_id, queue_position)
        if release is not None:
            if state.forced:
                release()  # the same task holds one already
            else:
                self._tracker.force(state, release)
        return state

    async def _acquire_slot(self, slots: asyncio.Semaphore) -> None:
        """Wait for an in-flight slot, or raise SessionClosed if the session closes first."""
        if self._closing.is_set():
            raise SessionClosed(None)
        acquire = asyncio.ensure_future(slots.acquire())
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({acquire, closing}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            closing.cancel()
            if acquire.done() and not acquire.cancelled():
                slots.release()  # won a slot just as this submit was cancelled
            else:
                acquire.cancel()
            raise
        closing.cancel()
        if not acquire.done():
            acquire.cancel()
            raise SessionClosed(None)
        if self._closing.is_set():
            slots.release()
            raise SessionClosed(None)

    async def _journal_record(self, op: str, body: msgspec.Struct, ids: list[str]) -> None:
        assert self.journal is not None
        prompt = getattr(body, "prompt", None) or getattr(body, "custom_id", None)
        now = int(time.time() * 1000)
        for task_id in ids:
            entry = JournalEntry(
                task_id=task_id,
                operation=op,
                prompt=prompt if isinstance(prompt, str) else None,
                state=getattr(body, "state", None),
                provider=self.provider.name,
                submitted_at=now,
            )
            try:
                await self.journal.record(entry)
            except Exception:
                # The task exists and is paid for: hand it back all the same.
                logger.exception("could not write task %s to the journal", task_id)

    def _on_task_end(self, state: TaskState) -> None:
        if self.journal is None:
            return
        ended = state.error is None and state.task is not None
        status = str(state.task.status) if ended and state.task else "NOT_FOUND"
        job = asyncio.get_running_loop().create_task(self._journal_finish(state.id, status))
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    async def _journal_finish(self, task_id: str, status: str) -> None:
        assert self.journal is not None
        try:
            await self.journal.finish(task_id, status)
        except Exception:
            logger.exception("could not mark task %s finished in the journal", task_id)

    async def resume(self) -> list[TaskHandle]:
        """Handles for every task of this provider the journal holds as unfinished.

        Example::

            async with MidjourneySession(..., journal="tasks.db") as mj:
                for task in await mj.wait_all(await mj.resume(), return_exceptions=True):
                    print(task)
        """
        if self.journal is None:
            raise ConfigurationError("resume() needs a journal: MidjourneySession(journal=...)")
        entries = await self.journal.unfinished()
        handles = []
        for entry in entries:
            if entry.provider not in (None, self.provider.name):
                # Another provider's task: asking this server would only lose it.
                continue
            self._remember(entry.task_id)
            handles.append(self.handle(entry.task_id))
        return handles

    def _remember(self, task_id: str) -> None:
        submitted = self._submitted
        submitted[task_id] = None
        if len(submitted) > 200_000:
            # Oldest first: a dict keeps insertion order.
            for old in list(submitted)[:50_000]:
                del submitted[old]

    def submitted(self, task_id: str) -> bool:
        """Whether this session submitted ``task_id`` (webhooks accept only those)."""
        return task_id in self._submitted

    async def _read(self, req: HttpRequest, parse: Any, retry: RetryPolicy | None = None) -> Any:
        return await self._transport.call(req, parse, retry=retry)

    async def _list_for_tracker(self, ids: list[str]) -> list[Task]:
        tasks: list[Task] = await self._read(
            self.dialect.list_tasks(ids), self.dialect.parse_list, self._poll_retry
        )
        return tasks

    async def _fetch_for_tracker(self, task_id: str) -> Task:
        task: Task = await self._read(
            self.dialect.fetch(task_id),
            partial(self.dialect.parse_fetch, task_id),
            self._poll_retry,
        )
        return task

    # -- submits ------------------------------------------------------------

    async def imagine(
        self,
        prompt: str,
        *,
        images: Sequence[ImageInput] = (),
        state: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Submit ``/imagine``. ``images`` are image prompts (bytes, paths or data URLs).

        Returns as soon as the server accepted the task.

        Example::

            handle = await mj.imagine("a lighthouse at dusk --ar 16:9")
        """
        body = ImagineRequest(
            prompt=_need_text(prompt, "prompt"),
            base64_array=[as_data_url(i) for i in images] or None,
            state=state,
        )
        return await self._submit("imagine", body, extra)

    async def action(
        self,
        task_id: str,
        custom_id: str,
        *,
        enable_remix: bool | None = None,
        state: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Press the button ``custom_id`` of task ``task_id`` (``/submit/action``).

        Prefer the handle helpers (``upscale``, ``variation``, ``press``...),
        which read the custom id from the task's own buttons.
        """
        body = ActionRequest(
            task_id=_need_text(task_id, "task_id"),
            custom_id=_need_text(custom_id, "custom_id"),
            enable_remix=enable_remix,
            state=state,
        )
        return await self._submit("action", body, extra)

    async def modal(
        self,
        task_id: str,
        *,
        prompt: str | None = None,
        mask_base64: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Answer the modal window of a task in MODAL (Custom Zoom, Vary (Region), remix)."""
        body = ModalRequest(
            task_id=_need_text(task_id, "task_id"),
            prompt=prompt,
            mask_base64=as_data_url(mask_base64) if mask_base64 else None,
        )
        return await self._submit("modal", body, extra, continues=task_id)

    async def blend(
        self,
        images: Sequence[ImageInput],
        *,
        dimensions: Literal["PORTRAIT", "SQUARE", "LANDSCAPE"] | None = None,
        state: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Blend 2-5 images into a grid."""
        if not 2 <= len(images) <= 5:
            raise InvalidRequestError(
                f"blend takes 2 to 5 images, not {len(images)} (nothing was sent)", code=None
            )
        if dimensions is not None and dimensions not in _DIMENSIONS:
            raise InvalidRequestError(
                f"dimensions must be one of {', '.join(_DIMENSIONS)} (nothing was sent)",
                code=None,
            )
        body = BlendRequest(
            base64_array=[as_data_url(i) for i in images], dimensions=dimensions, state=state
        )
        return await self._submit("blend", body, extra)

    async def describe(
        self,
        image: ImageInput,
        *,
        state: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Describe an image: the finished task holds four prompts in ``final_prompt``."""
        data = as_data_url(image, allow_url=True)
        if data.startswith("http") and not self.provider.describe_link:
            raise InvalidRequestError(
                f"{self.provider.name} describes an image sent as data, not a link: pass the "
                "bytes or a file path (nothing was sent)",
                code=None,
            )
        body = (
            DescribeRequest(link=data, state=state)
            if data.startswith("http")
            else DescribeRequest(base64=data, state=state)
        )
        return await self._submit("describe", body, extra)

    async def shorten(
        self, prompt: str, *, state: str | None = None, extra: dict[str, Any] | None = None
    ) -> TaskHandle:
        """Shorten a prompt: the finished task lists shorter prompts."""
        body = ShortenRequest(prompt=_need_text(prompt, "prompt"), state=state)
        return await self._submit("shorten", body, extra)

    async def change(
        self,
        task_id: str,
        action: Literal["UPSCALE", "VARIATION", "REROLL"],
        index: int | None = None,
        *,
        state: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """The older ``/submit/change``: UPSCALE or VARIATION ``index`` 1-4, or REROLL."""
        act = str(action).upper()
        if act not in _CHANGE_ACTIONS:
            raise InvalidRequestError(
                f"action must be one of {', '.join(_CHANGE_ACTIONS)} (nothing was sent)",
                code=None,
            )
        if act != "REROLL" and (index is None or not 1 <= index <= 4):
            raise InvalidRequestError(
                f"{act} needs an index from 1 to 4 (nothing was sent)", code=None
            )
        body = ChangeRequest(
            task_id=_need_text(task_id, "task_id"),
            action=act,
            index=index if act != "REROLL" else None,
            state=state,
        )
        return await self._submit("change", body, extra)

    async def simple_change(
        self, content: str, *, state: str | None = None, extra: dict[str, Any] | None = None
    ) -> TaskHandle:
        """``/submit/simple-change`` with ``content`` such as ``"<task id> U2"``."""
        body = SimpleChangeRequest(content=_need_text(content, "content"), state=state)
        return await self._submit("simple-change", body, extra)

    async def swap_face(
        self,
        source: ImageInput,
        target: ImageInput,
        *,
        state: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Put the face of ``source`` onto ``target`` (``/insight-face/swap``)."""
        body = SwapFaceRequest(
            source_base64=as_data_url(source), target_base64=as_data_url(target), state=state
        )
        return await self._submit("swap-face", body, extra)

    async def video(
        self,
        prompt: str | None = None,
        *,
        image: ImageInput | None = None,
        end_image: ImageInput | None = None,
        motion: Literal["low", "high"] | None = None,
        loop: bool | None = None,
        video_type: str | None = None,
        batch_size: int | None = None,
        extend_task_id: str | None = None,
        index: int | None = None,
        state: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Make a video from a first frame (URL or image data) and a prompt.

        ``extend_task_id`` with ``index`` (0-3) extends one video of an earlier task.
        """
        if extend_task_id is None:
            prompt = _need_text(prompt, "prompt")
        if image is None and extend_task_id is None:
            raise InvalidRequestError(
                "video needs a first-frame image, or extend_task_id to extend one "
                "(nothing was sent)",
                code=None,
            )
        body = VideoRequest(
            prompt=prompt,
            image=as_data_url(image, allow_url=True) if image is not None else None,
            end_image=as_data_url(end_image, allow_url=True) if end_image is not None else None,
            motion=motion,
            loop=loop,
            video_type=video_type,
            batch_size=batch_size,
            action="extend" if extend_task_id else None,
            task_id=extend_task_id,
            index=index,
            state=state,
        )
        return await self._submit("video", body, extra)

    async def edits(
        self,
        prompt: str,
        image: ImageInput,
        *,
        state: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Edit an image with a prompt; the finished task has four ``image_urls``."""
        body = EditsRequest(
            prompt=_need_text(prompt, "prompt"),
            image=as_data_url(image, allow_url=True),
            state=state,
        )
        return await self._submit("edits", body, extra)

    async def upload_images(self, images: Sequence[ImageInput]) -> list[str]:
        """Upload images to the provider's storage; returns their URLs (no task is made)."""
        if not images:
            raise InvalidRequestError("upload_images needs at least one image", code=None)
        body = UploadRequest(base64_array=[as_data_url(i) for i in images])
        result = await self._call_submit("upload-discord-images", body, None)
        return list(result.urls)

    # -- queries ------------------------------------------------------------

    async def fetch(self, task_id: str) -> Task:
        """The task's current snapshot. Raises :class:`TaskNotFound` for an unknown id."""
        task_id = _need_text(task_id, "task_id")
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
        found: dict[str, Task] = {}
        if self.dialect.supports_list:
            size = self._tracker.chunk_size
            chunks = [wanted[i : i + size] for i in range(0, len(wanted), size)]
            batches = await asyncio.gather(
                *(self._read(self.dialect.list_tasks(c), self.dialect.parse_list) for c in chunks)
            )
            for batch in batches:
                for task in batch:
                    found[task.id] = task
        missing = [i for i in wanted if i not in found]

        async def one(task_id: str) -> None:
            with contextlib.suppress(TaskNotFound):
                found[task_id] = await self.fetch(task_id)

        await asyncio.gather(*(one(i) for i in missing))
        return [found[i] for i in wanted if i in found]

    async def image_seed(self, task_id: str) -> str:
        """The seed of a finished task's image."""
        task_id = _need_text(task_id, "task_id")
        seed: str = await self._read(
            self.dialect.image_seed(task_id), partial(self.dialect.parse_image_seed, task_id)
        )
        return seed

    async def cancel(self, task_id: str) -> None:
        """Cancel a task (trueai; admin tokens only). The task then ends in FAILURE."""
        req = self.dialect.cancel(_need_text(task_id, "task_id"))

        def parse(resp: HttpResponse) -> None:
            if resp.status >= 400:
                raise status_error(resp, f"cancel {task_id}")

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
        task_id = _need_text(task_id, "task_id")
        state = self._tracker.state(task_id)
        if state.task is None:
            # Nothing known yet: ask on the next tick rather than after a full interval.
            state.due = 0.0
        return TaskHandle(self, state)

    def notify(self, task: Task) -> bool:
        """Feed a snapshot from your own webhook endpoint; True if it moved the task on.

        Snapshots of tasks nobody tracks, and stale or duplicate ones, are ignored.
        """
        return self._tracker.apply(task)

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
        return as_completed(handles, timeout)

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
        if return_exceptions:
            return await wait_all_settled(handles, timeout)
        return await wait_all(handles, timeout)

    # -- downloads ----------------------------------------------------------

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
        """
        snapshot = task if isinstance(task, Task) else await task.wait()
        return await save_task_media(
            self._transport, snapshot, Path(directory), max_bytes=max_bytes, timeout=timeout
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
            raise InvalidRequestError(f"task {snapshot.id} has no image to split", code=None)
        data = await fetch_bytes(
            self._transport, snapshot.image_url, max_bytes=max_bytes, timeout=timeout
        )
        return await anyio.to_thread.run_sync(
            write_tiles, data, Path(directory), safe_name(snapshot.id)
        )
