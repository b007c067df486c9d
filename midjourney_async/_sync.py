"""A blocking client: the async session driven from one background event-loop thread.

Every method is the async one run on the client's own loop, so the two clients
behave the same by construction; nothing here re-implements a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Concatenate, Generic, Literal, ParamSpec, TypeVar, overload

from ._errors import MidjourneyError
from ._handle import TaskHandle
from ._http import RetryPolicy
from ._models import Task
from ._session import MidjourneySession
from ._tracker import TrackerStats

__all__ = ["Midjourney", "SyncTaskHandle"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
S = TypeVar("S")
# Covariant: a method the session inherits (the submit endpoints) binds to a client too.
S_co = TypeVar("S_co", covariant=True)


class _Loop:
    """An event loop running forever on a daemon thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.closed = False
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="midjourney-async", daemon=True
        )
        self._thread.start()

    def in_loop(self) -> bool:
        return threading.get_ident() == self._thread.ident

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self.closed:
            coro.close()
            raise RuntimeError("this Midjourney client is closed")
        if self.in_loop():
            coro.close()
            # Blocking the loop on itself would never return.
            raise RuntimeError("a Midjourney client cannot be called from its own event loop")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            # Ctrl-C in the calling thread: stop the work on the loop too.
            future.cancel()
            raise

    def stop(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        if not self.in_loop():
            self._thread.join(timeout=30)
            if not self._thread.is_alive():
                self.loop.close()


def _shutdown(loop: _Loop, session: MidjourneySession | None) -> None:
    if loop.closed:
        return
    if session is not None and not loop.in_loop():
        # Exiting anyway: an error while closing must not hide the real one.
        with contextlib.suppress(Exception):
            loop.run(session.close())
    loop.stop()


class _Bound(Generic[S_co]):
    """What the method wrappers need of their owner: the loop and the async object."""

    _loop: _Loop
    _target: S_co

    def _handle(self, handle: TaskHandle) -> SyncTaskHandle:
        raise NotImplementedError


def _unwrap(value: object) -> object:
    return value._target if isinstance(value, SyncTaskHandle) else value


class _Blocking(Generic[S, P, R]):
    """A class attribute turning an async method of ``S`` into a blocking one."""

    def __init__(
        self,
        method: Callable[Concatenate[S, P], Coroutine[Any, Any, Any]],
        convert: Callable[[_Bound[S], Any], R],
    ) -> None:
        self._method = method
        self._convert = convert
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> _Blocking[S, P, R]: ...
    @overload
    def __get__(self, obj: _Bound[S], owner: type[Any]) -> Callable[P, R]: ...
    def __get__(
        self, obj: _Bound[S] | None, owner: type[Any]
    ) -> _Blocking[S, P, R] | Callable[P, R]:
        if obj is None:
            return self
        method, convert = self._method, self._convert

        @functools.wraps(method)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            args = tuple(_unwrap(a) for a in args)  # type: ignore[assignment]
            return convert(obj, obj._loop.run(method(obj._target, *args, **kwargs)))

        return call


def _same(owner: _Bound[Any], value: T) -> T:
    return value


def _as_handle(owner: _Bound[Any], value: TaskHandle) -> SyncTaskHandle:
    return owner._handle(value)


def _returns(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
) -> _Blocking[S, P, T]:
    return _Blocking(method, _same)


def _submits(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, TaskHandle]],
) -> _Blocking[S, P, SyncTaskHandle]:
    return _Blocking(method, _as_handle)


def _like(
    _: Callable[Concatenate[Any, P], None],
) -> Callable[[Callable[..., None]], Callable[Concatenate[Any, P], None]]:
    """Give a constructor the typed signature of another (checked by mypy at call sites)."""

    def keep(init: Callable[..., None]) -> Callable[Concatenate[Any, P], None]:
        return init

    return keep


class SyncTaskHandle(_Bound[TaskHandle]):
    """A running task of a :class:`Midjourney` client: :class:`TaskHandle` without ``await``.

    Example::

        handle = mj.imagine("a red fox in snow")
        task = handle.wait(timeout=600)
        big = handle.upscale(1).wait()
    """

    def __init__(self, client: Midjourney, handle: TaskHandle) -> None:
        # Holding the client keeps its loop alive for as long as a handle is used.
        self._client = client
        self._loop = client._loop
        self._target = handle

    def __repr__(self) -> str:
        return f"Sync{self._target!r}"

    def _handle(self, handle: TaskHandle) -> SyncTaskHandle:
        return SyncTaskHandle(self._client, handle)

    @property
    def id(self) -> str:
        """The task id."""
        return self._target.id

    @property
    def task(self) -> Task | None:
        """The newest snapshot known, or None before the first status."""
        return self._target.task

    @property
    def queue_position(self) -> int | None:
        """The position in the provider's queue while the task waits, where reported."""
        return self._target.queue_position

    def updates(self) -> Iterator[Task]:
        """Yield a snapshot at each change of status or progress, ending at a terminal one."""
        stream = self._target.updates()
        try:
            while True:
                try:
                    yield self._loop.run(_next(stream))
                except StopAsyncIteration:
                    return
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None and not self._loop.closed:
                self._loop.run(close())

    wait = _returns(TaskHandle.wait)
    refresh = _returns(TaskHandle.refresh)
    cancel = _returns(TaskHandle.cancel)
    press = _submits(TaskHandle.press)
    upscale = _submits(TaskHandle.upscale)
    variation = _submits(TaskHandle.variation)
    reroll = _submits(TaskHandle.reroll)
    zoom_out = _submits(TaskHandle.zoom_out)
    pan = _submits(TaskHandle.pan)
    vary_region = _submits(TaskHandle.vary_region)


async def _next(stream: Any) -> Task:
    task: Task = await stream.__anext__()
    return task


async def _construct(args: tuple[Any, ...], kwargs: dict[str, Any]) -> MidjourneySession:
    # Built on the loop that will use it: its locks and events belong there.
    session = MidjourneySession(*args, **kwargs)
    await session.open()
    return session


class Midjourney(_Bound[MidjourneySession]):
    """A blocking client for scripts, notebooks and web views (Django, Flask).

    It takes the arguments of :class:`MidjourneySession` and offers its
    methods without ``await``; submits return a :class:`SyncTaskHandle`. One
    background thread runs the async session; the client may be shared by the
    threads of a pool. Close it with ``with`` or :meth:`close`; a client still
    open when the interpreter exits is closed then.

    Example::

        from midjourney_async import Midjourney

        with Midjourney(provider="trueai") as mj:
            task = mj.imagine("a red fox in snow --ar 3:2").wait(timeout=600)
            mj.download(task, "out/")
    """

    @_like(MidjourneySession.__init__)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loop = _Loop()
        try:
            self._target = self._loop.run(_construct(args, kwargs))
        except BaseException:
            self._loop.stop()
            raise
        self._finalizer = weakref.finalize(self, _shutdown, self._loop, self._target)
        self._origin: Midjourney | None = None

    def __repr__(self) -> str:
        return f"Midjourney({self._target!r})"

    def with_options(
        self, *, timeout: float | None = None, retry: RetryPolicy | None = None
    ) -> Midjourney:
        """A view of this client whose calls use another ``timeout`` or ``retry``
        (see :meth:`MidjourneySession.with_options`); it shares the thread, the
        session and its tasks. Closing a view closes the client.

        Example::

            mj.with_options(retry=RetryPolicy.never()).fetch(task_id)
        """
        view = object.__new__(Midjourney)
        view._loop = self._loop
        view._target = self._target.with_options(timeout=timeout, retry=retry)
        view._finalizer = self._finalizer
        # The client must outlive its views: its finalizer closes the shared session.
        view._origin = self
        return view

    def _handle(self, handle: TaskHandle) -> SyncTaskHandle:
        return SyncTaskHandle(self, handle)

    def close(self) -> None:
        """Close the session and stop the background thread; safe to call twice."""
        self._finalizer()

    def __enter__(self) -> Midjourney:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._loop.closed

    @property
    def session(self) -> MidjourneySession:
        """The async session underneath (it lives on the client's thread: do not await it)."""
        return self._target

    @property
    def base_url(self) -> str:
        """The provider URL in use."""
        return self._target.base_url

    @property
    def pending(self) -> int:
        """Tasks being waited for."""
        return self._loop.run(_value(lambda: self._target.pending))

    @property
    def tracker_stats(self) -> TrackerStats:
        """Counters of the shared poller."""
        return self._loop.run(_value(lambda: self._target.tracker_stats))

    def handle(self, task_id: str) -> SyncTaskHandle:
        """Re-attach to a task submitted earlier (another process, before a restart)."""
        return SyncTaskHandle(self, self._loop.run(_value(lambda: self._target.handle(task_id))))

    def notify(self, task: Task) -> bool:
        """Feed a snapshot from your own webhook endpoint; True if it moved the task on."""
        return self._loop.run(_value(lambda: self._target.notify(task)))

    def resume(self) -> list[SyncTaskHandle]:
        """Handles for every task of this provider the journal holds as unfinished."""
        return [SyncTaskHandle(self, h) for h in self._loop.run(self._target.resume())]

    @overload
    def wait_all(
        self,
        handles: Iterable[SyncTaskHandle],
        *,
        timeout: float | None = None,
        return_exceptions: Literal[False] = False,
    ) -> list[Task]: ...
    @overload
    def wait_all(
        self,
        handles: Iterable[SyncTaskHandle],
        *,
        timeout: float | None = None,
        return_exceptions: Literal[True],
    ) -> list[Task | MidjourneyError]: ...
    def wait_all(
        self,
        handles: Iterable[SyncTaskHandle],
        *,
        timeout: float | None = None,
        return_exceptions: bool = False,
    ) -> list[Task] | list[Task | MidjourneyError]:
        """Wait for every handle; the tasks come back in the order given.

        With ``return_exceptions=True`` a failed task gives its error in its
        place; otherwise the first error is raised.
        """
        targets = [h._target for h in handles]
        return self._loop.run(
            self._target.wait_all(targets, timeout=timeout, return_exceptions=return_exceptions)
        )

    def as_completed(
        self, handles: Iterable[SyncTaskHandle], *, timeout: float | None = None
    ) -> Iterator[SyncTaskHandle]:
        """Yield handles as their tasks end; ``.wait()`` on one gives its task or error at once."""
        stream = self._target.as_completed([h._target for h in handles], timeout=timeout)
        while True:
            try:
                done = self._loop.run(_next_handle(stream))
            except StopAsyncIteration:
                return
            # The async handle knows how its wait ended: wait() on it answers at once.
            yield self._handle(done)

    imagine = _submits(MidjourneySession.imagine)
    action = _submits(MidjourneySession.action)
    modal = _submits(MidjourneySession.modal)
    blend = _submits(MidjourneySession.blend)
    describe = _submits(MidjourneySession.describe)
    shorten = _submits(MidjourneySession.shorten)
    change = _submits(MidjourneySession.change)
    simple_change = _submits(MidjourneySession.simple_change)
    swap_face = _submits(MidjourneySession.swap_face)
    video = _submits(MidjourneySession.video)
    edits = _submits(MidjourneySession.edits)
    upload_images = _returns(MidjourneySession.upload_images)
    fetch = _returns(MidjourneySession.fetch)
    fetch_many = _returns(MidjourneySession.fetch_many)
    image_seed = _returns(MidjourneySession.image_seed)
    cancel = _returns(MidjourneySession.cancel)
    image = _returns(MidjourneySession.image)
    download = _returns(MidjourneySession.download)
    split_grid = _returns(MidjourneySession.split_grid)


async def _value(read: Callable[[], T]) -> T:
    # State of the session is only touched from its own loop.
    return read()


async def _next_handle(stream: Any) -> TaskHandle:
    handle: TaskHandle = await stream.__anext__()
    return handle

