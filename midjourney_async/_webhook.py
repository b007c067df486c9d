"""The notifyHook receiver: callbacks become hints for the shared poller.

Callbacks from these servers are unsigned, never retried, and may arrive twice
or out of order, so the receiver trusts nothing it is sent:

* the URL carries a per-session secret token; a wrong token gets 404;
* bodies are capped; non-JSON gets 400; ids this session did not submit get 404;
* accepted snapshots go through the same forward-only state machine as polls;
* a state that ends a wait (SUCCESS, FAILURE, CANCEL or MODAL) is confirmed
  with one fetch before a waiter sees it (unless ``trust_callbacks`` is set);
* polling goes on at a slow safety-net cadence, for callbacks that never come.

Users with their own web server can call :func:`parse_notification` and feed
the task to ``session.notify(task)``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from ._dialects import OhMyGPTDialect, ProxyDialect
from ._errors import ConfigurationError, DecodeError
from ._models import TERMINAL, Task, TaskStatus

__all__ = ["WebhookConfig", "WebhookReceiver", "WebhookStats", "parse_notification"]

logger = logging.getLogger("midjourney_async")


@dataclass(frozen=True)
class WebhookConfig:
    """Where the callback receiver listens and how far it trusts callbacks.

    ``public_url`` is the address the provider can reach (e.g. behind a
    reverse proxy); by default it is ``http://host:port``. The secret token
    path is appended to it. ``poll_interval`` is the safety-net poll cadence
    while webhooks are on: 30 s by default, or the session's own interval for
    new-api relays, which drop callbacks unless their operator enabled them.

    Example::

        MidjourneySession(..., webhook=WebhookConfig(port=8787,
                                                     public_url="https://me.example/mj"))
    """

    host: str = "127.0.0.1"
    port: int = 0
    public_url: str | None = None
    path: str = "/midjourney/callback"
    trust_callbacks: bool = False
    max_body: int = 1024 * 1024
    max_pending_confirms: int = 1000
    poll_interval: float | None = None


@dataclass
class WebhookStats:
    """What the receiver did with the callbacks it got."""

    accepted: int = 0
    applied: int = 0
    rejected_token: int = 0
    rejected_size: int = 0
    rejected_body: int = 0
    rejected_unknown: int = 0
    rejected_busy: int = 0
    confirms: int = 0


def parse_notification(
    body: bytes, dialect: Literal["proxy", "ohmygpt"] = "proxy"
) -> Task:
    """Decode a callback body into a Task, with no I/O.

    Example::

        task = parse_notification(await request.read())
        session.notify(task)

    Raises :class:`DecodeError` for a body that holds no task.
    """
    parser = OhMyGPTDialect() if dialect == "ohmygpt" else ProxyDialect()
    return parser.parse_notification(body)


# How many submitted ids the allow-list keeps; the oldest go first past it.
MAX_ALLOWED = 200_000

# States that end a wait (and free an in-flight slot): a callback claiming one is
# checked with a fetch first. MODAL ends a wait as surely as SUCCESS does.
ENDS_WAIT: frozenset[str] = TERMINAL | {TaskStatus.MODAL}


class WebhookReceiver:
    """An aiohttp server on the session's behalf. Started and stopped by the session.

    It knows the session only through three callables: ``parse`` turns a body
    into a Task, ``notify`` offers a snapshot to the state machine (True if it
    moved the task on), and ``confirm`` fetches a task to check what a
    callback claimed. Which ids it accepts is its own allow-list, filled by
    :meth:`allow` as the session submits.
    """

    def __init__(
        self,
        config: WebhookConfig,
        *,
        parse: Callable[[bytes], Task],
        notify: Callable[[Task], bool],
        confirm: Callable[[str], Awaitable[None]],
    ) -> None:
        self.config = config
        self._parse = parse
        self._notify = notify
        self._confirm_task = confirm
        self._allowed: dict[str, None] = {}
        self._token = secrets.token_urlsafe(24)
        self._runner: web.AppRunner | None = None
        self._confirming: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = WebhookStats()
        self.url = ""

    def __repr__(self) -> str:
        return f"<WebhookReceiver {self.config.host}:{self.config.port}>"

    def allow(self, task_id: str) -> None:
        """Accept callbacks about ``task_id`` (a task this session submitted)."""
        allowed = self._allowed
        allowed[task_id] = None
        if len(allowed) > MAX_ALLOWED:
            # Oldest first: a dict keeps insertion order.
            for old in list(allowed)[: MAX_ALLOWED // 4]:
                del allowed[old]

    def allows(self, task_id: str) -> bool:
        """Whether callbacks about ``task_id`` are accepted."""
        return task_id in self._allowed

    async def start(self) -> None:
        app = web.Application(client_max_size=self.config.max_body)
        path = self.config.path.rstrip("/")
        app.router.add_post(path + "/{token}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigurationError(
                f"webhook receiver cannot listen on {self.config.host}:{self.config.port}: {exc}"
            ) from exc
        self._runner = runner
        port = self.config.port
        for address in runner.addresses:
            # A port of 0 asks the OS for a free one; read back what it chose.
            port = int(address[1])
            break
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        base = (self.config.public_url or f"http://{host}:{port}").rstrip("/")
        self.url = f"{base}{path}/{self._token}"
        logger.info("webhook receiver listening on %s:%s", self.config.host, port)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        token = request.match_info.get("token", "")
        if not hmac.compare_digest(token.encode(), self._token.encode()):
            self.stats.rejected_token += 1
            return web.Response(status=404)
        limit = self.config.max_body
        if request.content_length is not None and request.content_length > limit:
            self.stats.rejected_size += 1
            return web.Response(status=413)
        try:
            # read() gathers every segment; the app's client_max_size caps it.
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self.stats.rejected_size += 1
            return web.Response(status=413)
        try:
            task = self._parse(body)
        except DecodeError:
            self.stats.rejected_body += 1
            return web.Response(status=400, text="not a task")
        if task.id not in self._allowed:
            self.stats.rejected_unknown += 1
            return web.Response(status=404, text="unknown task")
        self.stats.accepted += 1
        if task.status in ENDS_WAIT and not self.config.trust_callbacks:
            if not self._confirm(task.id):
                self.stats.rejected_busy += 1
                return web.Response(status=503)
        elif self._notify(task):
            self.stats.applied += 1
        return web.Response(status=200, text="ok")

    def _confirm(self, task_id: str) -> bool:
        if task_id in self._confirming:
            return True
        if len(self._confirming) >= self.config.max_pending_confirms:
            return False
        self._confirming.add(task_id)
        task = asyncio.get_running_loop().create_task(self._confirm_one(task_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _confirm_one(self, task_id: str) -> None:
        try:
            self.stats.confirms += 1
            await self._confirm_task(task_id)
        finally:
            self._confirming.discard(task_id)
