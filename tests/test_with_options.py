"""Per-call overrides: ``with_options(timeout=..., retry=...)`` views of a session.

A view shares the session's HTTP session, poller and tasks; its own calls use
its timeout and retry policy, the session's calls and the shared poller keep
theirs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from mj_support import KEY, RecordingServer, Reply, submit_ok, task_json

from midjourney_async import (
    ConfigurationError,
    Midjourney,
    RequestTimeout,
    RetryPolicy,
    ServerError,
)

TID = "1730621826053455"
FETCH = f"/mj/task/{TID}/fetch"
LIST = "/mj/task/list-by-condition"


def _slow(seconds: float, obj: Any) -> Reply:
    reply = Reply.json(obj)
    reply.hang = seconds
    return reply


async def test_a_views_timeout_is_used_and_the_session_keeps_its_own(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("GET", FETCH, _slow(1.0, task_json(TID)))
    mj = await make_session(timeout=5.0)
    quick = mj.with_options(timeout=0.2, retry=RetryPolicy.never())
    with pytest.raises(RequestTimeout, match=r"within 0\.2 s"):
        await quick.fetch(TID)
    assert len(server.calls("GET", FETCH)) == 1
    # The session itself still waits up to 5 s for the same slow answer.
    assert (await mj.fetch(TID)).id == TID
    assert mj.retry == RetryPolicy.without_waits()


async def test_a_views_retry_policy_is_used_and_the_session_keeps_its_own(
    server: RecordingServer, make_session: Any
) -> None:
    down = Reply.text("busy", status=503)
    server.add("GET", FETCH, down, down, Reply.json(task_json(TID)))
    mj = await make_session()
    with pytest.raises(ServerError):
        await mj.with_options(retry=RetryPolicy.never()).fetch(TID)
    assert len(server.calls("GET", FETCH)) == 1
    # The session's own policy (five tries) gets through the second 503.
    assert (await mj.fetch(TID)).id == TID
    assert len(server.calls("GET", FETCH)) == 3


async def test_views_of_views_keep_the_options_they_do_not_change(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("GET", FETCH, _slow(1.0, task_json(TID)))
    mj = await make_session(timeout=5.0)
    view = mj.with_options(timeout=0.2).with_options(retry=RetryPolicy.never())
    assert view.retry == RetryPolicy.never()
    with pytest.raises(RequestTimeout):
        await view.fetch(TID)
    assert len(server.calls("GET", FETCH)) == 1


async def test_a_submit_through_a_view_shares_the_poller_which_keeps_the_sessions_timeout(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", "/mj/submit/imagine", submit_ok(TID))
    # Each list answer takes 0.5 s: more than the view's timeout, well within the session's.
    server.add("POST", LIST, _slow(0.5, [task_json(TID)]))
    # With max_in_flight the submit itself starts the poller (its slot rides on the task).
    mj = await make_session(timeout=5.0, max_in_flight=2)
    view = mj.with_options(timeout=0.3, retry=RetryPolicy.never())
    handle = await view.imagine("a fox")
    assert handle.session is view  # its buttons are pressed with the view's options
    # The shared poller must still use the session's timeout (with the view's
    # 0.3 s every list would time out).
    task = await handle.wait(timeout=8)
    assert task.status == "SUCCESS"
    # One state table for both: the session knows the outcome without asking.
    asked = len(server.requests)
    assert mj.handle(TID).task is not None and mj.handle(TID).task.status == "SUCCESS"
    assert len(server.requests) == asked


async def test_a_press_from_a_views_handle_uses_the_views_retry(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", "/mj/submit/imagine", submit_ok(TID))
    server.add("POST", "/mj/submit/change", Reply.text("busy", status=429))
    mj = await make_session()
    view = mj.with_options(retry=RetryPolicy.never())
    handle = await view.imagine("a fox")
    with pytest.raises(Exception, match="429"):
        await view.change(handle.id, "UPSCALE", 1)
    assert len(server.calls("POST", "/mj/submit/change")) == 1
    with pytest.raises(Exception, match="429"):
        await mj.change(handle.id, "UPSCALE", 1)
    # The session's own policy retries a 429 (never accepted) up to five times.
    assert len(server.calls("POST", "/mj/submit/change")) == 6


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({}, "needs timeout= or retry="),
        ({"timeout": 0}, "timeout must be above 0"),
        ({"timeout": float("inf")}, "timeout must be a finite number"),
        ({"retry": RetryPolicy(max_tries=0)}, "retry.max_tries"),
    ],
)
async def test_bad_options_are_refused(
    server: RecordingServer, make_session: Any, kwargs: dict[str, Any], words: str
) -> None:
    mj = await make_session()
    with pytest.raises(ConfigurationError, match=words):
        mj.with_options(**kwargs)
    assert server.requests == []


# -- the synchronous client -----------------------------------------------------


@pytest.fixture
def thread_server() -> Iterator[RecordingServer]:
    """A recording server on a loop of its own: the blocking client's test thread waits."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    srv = RecordingServer()
    try:
        asyncio.run_coroutine_threadsafe(srv.start(), loop).result(10)
        yield srv
    finally:
        asyncio.run_coroutine_threadsafe(srv.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_the_sync_client_has_with_options(thread_server: RecordingServer) -> None:
    thread_server.add("GET", FETCH, _slow(1.0, task_json(TID)))
    with Midjourney(
        thread_server.url, KEY, timeout=5.0, retry=RetryPolicy.without_waits(), poll_interval=0.01
    ) as mj:
        quick = mj.with_options(timeout=0.2, retry=RetryPolicy.never())
        with pytest.raises(RequestTimeout):
            quick.fetch(TID)
        assert len(thread_server.calls("GET", FETCH)) == 1
        assert mj.fetch(TID).id == TID
        assert not quick.closed
    assert quick.closed
