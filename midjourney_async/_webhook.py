"""The notifyHook receiver: callbacks become hints for the shared poller.

Callbacks from these servers are unsigned, never retried, and may arrive twice
or out of order, so the receiver trusts nothing it is sent:

* the URL carries a per-session secret token; a wrong token gets 404;
* bodies are capped; non-JSON gets 400; ids this session did not submit get 404;
* accepted snapshots go through the same forward-only state machine as polls;
* a state that ends a wait (SUCCESS, FAILURE, CANCEL or MODAL) is confirmed
  with one fetch before a waiter sees it (unless ``trust_callbacks`` is set);
* polling goes on at a slow safety-net cadence, for callbacks that never come;
* a connection must deliver its request in time and connections are capped,
  so a peer that opens sockets and says nothing cannot use up the process's
  file descriptors (see :class:`WebhookConfig`).

Users with their own web server can call :func:`parse_notification` and feed
the task to ``session.notify(task)``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, cast

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

    Callbacks come from the network unauthenticated, so every connection is
    bounded in time and in number:

    * ``header_timeout`` (10 s): a new connection must deliver its request
      line and headers within this many seconds (a kept-alive one, from the
      first byte of its next request);
    * ``body_timeout`` (10 s): the whole body must arrive within this many
      seconds of the headers;
    * ``keepalive_timeout`` (15 s): an idle kept-alive connection is closed
      after this many seconds;
    * ``max_connections`` (128): connections open at once. Past the cap the
      connection that has waited longest without sending a byte is closed to
      make room; when every one is busy with a request, the new one is refused.

    A connection past its deadline is closed without an answer.

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
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    keepalive_timeout: float = 15.0
    max_connections: int = 128

    def __post_init__(self) -> None:
        for name in ("header_timeout", "body_timeout", "keepalive_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value < math.inf):
                raise ConfigurationError(
                    f"webhook {name} must be a positive number of seconds, got {value!r}"
                )
        cap = self.max_connections
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ConfigurationError(
                f"webhook max_connections must be a whole number >= 1, got {cap!r}"
            )


@dataclass
class WebhookStats:
    """What the receiver did with the callbacks it got.

    ``connections_refused`` counts connections closed at the
    ``max_connections`` cap, ``connections_timed_out`` those closed because
    a request (or an idle kept-alive connection) ran past its timeout.
    """

    accepted: int = 0
    applied: int = 0
    rejected_token: int = 0
    rejected_size: int = 0
    rejected_body: int = 0
    rejected_unknown: int = 0
    rejected_busy: int = 0
    confirms: int = 0
    connections_refused: int = 0
    connections_timed_out: int = 0


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

# The listen backlog, as aiohttp's own sites use. asyncio accepts up to this many
# sockets in one go before any is closed, so the receiver holds at most
# ``max_connections + BACKLOG`` descriptors, and that only for an instant.
BACKLOG = 128

# States that end a wait (and free an in-flight slot): a callback claiming one is
# checked with a fetch first. MODAL ends a wait as surely as SUCCESS does.
ENDS_WAIT: frozenset[str] = TERMINAL | {TaskStatus.MODAL}

# The phases of a connection, each with its own deadline.
_FRESH = 0  # connected, not a byte yet: header_timeout from the connect
_KEPT = 1  # idle between requests: keepalive_timeout from the last answer
_HEADERS = 2  # a request has begun: its headers are due
_BODY = 3  # the handler runs: the body is due within body_timeout


class _Connections:
    """Every connection of the receiver: the cap, the deadlines, and closing them all.

    aiohttp's server has no deadline for a request that never completes, nor
    a connection cap, so each connection is wrapped in a :class:`_Guarded`
    protocol that reports its phases here.
    """

    def __init__(self, config: WebhookConfig, stats: WebhookStats) -> None:
        self.config = config
        self.stats = stats
        self.open: dict[asyncio.BaseTransport, _Guarded] = {}
        # Connections that have not sent a byte of a request, oldest first:
        # the ones a newcomer may push out at the cap.
        self.silent: dict[_Guarded, None] = {}

    def admit(self, guard: _Guarded, transport: asyncio.Transport) -> bool:
        if len(self.open) >= self.config.max_connections:
            self.stats.connections_refused += 1
            if not self.silent:
                return False
            self.drop(next(iter(self.silent)))
        self.open[transport] = guard
        return True

    def drop(self, guard: _Guarded) -> None:
        """Forget ``guard`` now and close its connection without an answer."""
        self.forget(guard)
        if guard.transport is not None:
            guard.transport.abort()

    def forget(self, guard: _Guarded) -> None:
        guard.closed = True
        guard.disarm()
        self.silent.pop(guard, None)
        if guard.transport is not None:
            self.open.pop(guard.transport, None)

    def close_all(self) -> None:
        for guard in list(self.open.values()):
            self.drop(guard)


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, closed when a phase overruns."""

    def __init__(self, pool: _Connections, make: Callable[[], asyncio.Protocol]) -> None:
        self._pool = pool
        self._make = make
        self._inner: asyncio.Protocol | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.phase = _FRESH
        self.closed = False  # dropped or lost: no phase applies any more

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # create_server gives a socket transport, which can abort().
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        if not self._pool.admit(self, transport):
            self.closed = True
            self.transport = None
            transport.abort()
            return
        self._pool.silent[self] = None
        self._arm(self._pool.config.header_timeout)
        self._inner = self._make()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.phase <= _KEPT and not self.closed:
            self._pool.silent.pop(self, None)
            if self.phase == _KEPT:
                self._arm(self._pool.config.header_timeout)
            self.phase = _HEADERS
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._pool.forget(self)
        self.transport = None
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def handling(self) -> None:
        """The headers are in and the handler starts: the body is due next."""
        if self.closed:
            return
        self.phase = _BODY
        self._arm(self._pool.config.body_timeout)

    def handled(self) -> None:
        """The answer is written (or about to be): idle until the next request."""
        if self.closed:
            return
        self.phase = _KEPT
        self._pool.silent[self] = None
        self._arm(self._pool.config.keepalive_timeout)

    def _arm(self, seconds: float) -> None:
        self.disarm()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._overrun)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _overrun(self) -> None:
        self._timer = None
        self._pool.stats.connections_timed_out += 1
        self._pool.drop(self)


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
        known: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.config = config
        # Asked about ids missing from the allow-list (another worker's submits).
        self._known = known
        self._parse = parse
        self._notify = notify
        self._confirm_task = confirm
        self._allowed: dict[str, None] = {}
        self._token = secrets.token_urlsafe(24)
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None
        self._confirming: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = WebhookStats()
        self._connections = _Connections(config, self.stats)
        self._reading = 0  # handlers running now
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

    def share_token(self, token: str) -> None:
        """Use ``token`` in the callback URL (workers behind one address share it)."""
        self._token = token

    def allows(self, task_id: str) -> bool:
        """Whether callbacks about ``task_id`` are accepted."""
        return task_id in self._allowed

    @property
    def open_connections(self) -> int:
        """Connections open to the receiver now (at most ``max_connections``)."""
        return len(self._connections.open)

    async def start(self) -> None:
        """Listen on ``config.host:config.port``; ConfigurationError if it cannot."""
        config = self.config
        app = web.Application(client_max_size=config.max_body, middlewares=[self._phases])
        path = config.path.rstrip("/")
        app.router.add_post(path + "/{token}", self._handle)
        # stop() closes every connection before the runner's cleanup, so the
        # graceful period has nothing to wait for; keep it short all the same.
        runner = web.AppRunner(
            app,
            access_log=None,
            keepalive_timeout=config.keepalive_timeout,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        handlers = cast(Callable[[], asyncio.Protocol], runner.server)
        pool = self._connections
        loop = asyncio.get_running_loop()
        try:
            # Our own listening socket rather than a TCPSite: each connection goes
            # through _Guarded, which caps them and enforces the deadlines.
            server = await loop.create_server(
                lambda: _Guarded(pool, handlers),
                config.host,
                config.port,
                backlog=BACKLOG,
            )
        except OSError as exc:
            await runner.cleanup()
            raise ConfigurationError(
                f"webhook receiver cannot listen on {config.host}:{config.port}: {exc}"
            ) from exc
        self._runner = runner
        self._server = server
        port = config.port
        for sock in server.sockets:
            # A port of 0 asks the OS for a free one; read back what it chose.
            port = int(sock.getsockname()[1])
            break
        host = config.host if ":" not in config.host else f"[{config.host}]"
        base = (config.public_url or f"http://{host}:{port}").rstrip("/")
        self.url = f"{base}{path}/{self._token}"
        logger.info("webhook receiver listening on %s:%s", config.host, port)

    async def stop(self) -> None:
        """Stop listening and close every connection at once, whatever it is doing."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # A callback is not worth a graceful period: a peer trickling its body
        # would otherwise hold close() up for as long as it likes.
        self._connections.close_all()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if server is not None:
            await server.wait_closed()

    @web.middleware
    async def _phases(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        transport = request.transport
        guard = self._connections.open.get(transport) if transport is not None else None
        if guard is not None:
            guard.handling()
        self._reading += 1
        try:
            return await handler(request)
        finally:
            self._reading -= 1
            if guard is not None:
                guard.handled()

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
        except ConnectionError:
            # Closed under the read (its body timed out, or stop()): nobody to answer.
            return web.Response(status=408)
        try:
            task = self._parse(body)
        except DecodeError:
            self.stats.rejected_body += 1
            return web.Response(status=400, text="not a task")
        if task.id not in self._allowed and (
            self._known is None or not await self._known(task.id)
        ):
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
