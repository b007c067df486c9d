"""The retry rule: reads are retried on transient failures; a submit is re-sent
only when it provably did not reach the server or the server said it was not
accepted. Never after a dropped connection or a read timeout."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from mj_support import (
    KEY,
    RecordingServer,
    Reply,
    submit_ok,
    task_json,
)

from midjourney_async import (
    AuthenticationError,
    BannedPromptError,
    ConnectError,
    DecodeError,
    InvalidRequestError,
    MidjourneySession,
    QueueFullError,
    RateLimitError,
    RequestTimeout,
    RetryPolicy,
    ServerError,
    SubmitRejected,
    Task,
    TaskStatus,
    TransportError,
)
from midjourney_async import _transport as transport_module
from midjourney_async._http import delays as _delays
from midjourney_async._transport import parse_retry_after, retryable

TID = "1730621826053455"
FETCH = f"/mj/task/{TID}/fetch"
IMAGINE = "/mj/submit/imagine"


def _free_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _retry_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("retrying")]


# ---------------------------------------------------------------------------
# The rule itself


def _connect() -> ConnectError:
    return ConnectError("refused", method="POST", path=IMAGINE)


def _dropped() -> TransportError:
    return TransportError("dropped", method="POST", path=IMAGINE, maybe_received=True)


def _timeout() -> RequestTimeout:
    return RequestTimeout("slow", method="POST", path=IMAGINE, maybe_received=True)


@pytest.mark.parametrize(
    ("kind", "exc", "expected"),
    [
        ("submit", _connect(), True),
        ("submit", _dropped(), False),
        ("submit", _timeout(), False),
        ("submit", RateLimitError("429"), True),
        ("submit", QueueFullError("full", code=23), True),
        ("submit", BannedPromptError("banned", code=24), False),
        ("submit", InvalidRequestError("bad", code=4), False),
        ("submit", SubmitRejected("no", code=9), False),
        ("submit", ServerError("503", status=503), False),
        ("submit", ServerError("502", status=502), False),
        ("submit", DecodeError("garbage"), False),
        ("submit", AuthenticationError("401", status=401), False),
        ("read", _connect(), True),
        ("read", _dropped(), True),
        ("read", _timeout(), True),
        ("read", RateLimitError("429"), True),
        ("read", ServerError("502", status=502), True),
        ("read", ServerError("503", status=503), True),
        ("read", ServerError("504", status=504), True),
        ("read", ServerError("500", status=500), False),
        ("read", ServerError("501", status=501), False),
        ("read", DecodeError("garbage"), True),
        ("read", AuthenticationError("401", status=401), False),
    ],
)
def test_retryable(kind: Any, exc: Exception, expected: bool) -> None:
    assert retryable(kind, exc) is expected


def test_delays_honour_retry_after_and_grow_otherwise() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, max_retry_after=30.0, wait_scale=1.0)
    gen = _delays(policy)
    assert next(gen) == 0.0
    assert gen.send(RateLimitError("429", retry_after=7.0)) == 7.0
    assert gen.send(RateLimitError("429", retry_after=999.0)) == 30.0  # capped
    # Without a hint: jittered exponential, attempt n within [c/2, c], c = min(8, 2**n).
    for ceiling in (4.0, 8.0, 8.0):
        delay = gen.send(ServerError("503", status=503))
        assert ceiling / 2 <= delay <= ceiling


def test_delays_scale() -> None:
    gen = _delays(RetryPolicy(wait_scale=0.5))
    next(gen)
    assert gen.send(RateLimitError("429", retry_after=2.0)) == 1.0
    gen = _delays(RetryPolicy.without_waits())
    next(gen)
    assert gen.send(RateLimitError("429", retry_after=2.0)) == 0.0
    assert gen.send(_timeout()) == 0.0


@pytest.mark.parametrize(
    ("value", "expected"), [("3", 3.0), (" 0.05 ", 0.05), ("-1", None), ("", None), (None, None),
                            ("Wed, 21 Oct 2015 07:28:00 GMT", None)],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


# ---------------------------------------------------------------------------
# Submits


async def test_submit_dropped_after_the_body_was_read_is_not_sent_again(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", IMAGINE, Reply(drop=True), submit_ok())
    mj = await make_session(retry=RetryPolicy.without_waits(max_tries=5))
    with pytest.raises(TransportError) as info:
        await mj.imagine("pay only once")
    assert info.value.maybe_received is True
    assert not isinstance(info.value, ConnectError)
    assert len(server.requests) == 1
    assert server.requests[0].json == {"prompt": "pay only once"}  # the server had it all
    assert "may have received" in str(info.value)


async def test_submit_after_a_read_timeout_is_not_retried(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", IMAGINE, Reply(hang=30.0), submit_ok())
    mj = await make_session(timeout=0.2, retry=RetryPolicy.without_waits(max_tries=5))
    with pytest.raises(RequestTimeout) as info:
        await mj.imagine("slow server")
    assert isinstance(info.value, TimeoutError)
    assert info.value.maybe_received is True
    assert len(server.requests) == 1


async def test_submit_never_connected_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="midjourney_async")
    url = f"http://127.0.0.1:{_free_port()}"
    async with MidjourneySession(url, "k", retry=RetryPolicy.without_waits(max_tries=3)) as mj:
        with pytest.raises(ConnectError) as info:
            await mj.imagine("nobody listens")
    assert info.value.maybe_received is False
    retries = _retry_logs(caplog)
    assert len(retries) == 2  # three tries in all
    assert all(IMAGINE in line for line in retries)


async def test_submit_429_then_success(server: RecordingServer, make_session: Any) -> None:
    server.add(
        "POST",
        IMAGINE,
        Reply.text("slow down", status=429, headers={"Retry-After": "0"}),
        submit_ok("111"),
    )
    mj = await make_session()
    handle = await mj.imagine("cat")
    assert handle.id == "111"
    assert len(server.requests) == 2
    assert server.requests[0].json == server.requests[1].json == {"prompt": "cat"}


@pytest.mark.parametrize(
    "full",
    [
        {"code": 23, "description": "队列已满，请稍后尝试", "result": None},
        {"code": 9, "description": "提交失败，队列已满，请稍后重试", "result": None},
    ],
)
async def test_submit_queue_full_then_success(
    server: RecordingServer, make_session: Any, full: Any
) -> None:
    server.add("POST", IMAGINE, Reply.json(full), submit_ok("222"))
    mj = await make_session()
    handle = await mj.imagine("cat")
    assert handle.id == "222"
    assert len(server.requests) == 2


async def test_submit_queue_full_until_max_tries(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", IMAGINE, Reply.json({"code": 23, "description": "queue full"}))
    mj = await make_session(retry=RetryPolicy.without_waits(max_tries=3))
    with pytest.raises(QueueFullError):
        await mj.imagine("cat")
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply.text("upstream down", status=503), ServerError),
        (Reply.text("oops", status=500), ServerError),
        (Reply.text("{garbage", status=200), DecodeError),
        (
            Reply.json({"code": 24, "description": "banned", "properties": {"bannedWord": "x"}}),
            BannedPromptError,
        ),
        (Reply.json({"code": 4, "description": "bad"}), InvalidRequestError),
        (Reply.text("", status=401), AuthenticationError),
    ],
)
async def test_submit_answers_that_are_not_retried(
    server: RecordingServer, make_session: Any, reply: Reply, error: type[Exception]
) -> None:
    server.add("POST", IMAGINE, reply, submit_ok())
    mj = await make_session(retry=RetryPolicy.without_waits(max_tries=5))
    with pytest.raises(error):
        await mj.imagine("cat")
    assert len(server.requests) == 1


# ---------------------------------------------------------------------------
# Reads


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_fetch_behind_a_gateway_error_is_retried(
    server: RecordingServer, make_session: Any, status: int
) -> None:
    server.add("GET", FETCH, Reply.text("bad gateway", status=status), Reply.json(task_json(TID)))
    mj = await make_session()
    task = await mj.fetch(TID)
    assert task.id == TID
    assert task.status is TaskStatus.SUCCESS
    assert len(server.requests) == 2


async def test_fetch_429_with_retry_after_is_retried_after_that_delay(
    server: RecordingServer, make_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    requested: list[float] = []

    def observed(policy: RetryPolicy) -> Generator[float, Any, None]:
        inner = _delays(policy)
        value = next(inner)
        while True:
            exc = yield value
            value = inner.send(exc)
            requested.append(value)

    monkeypatch.setattr(transport_module, "_delays", observed)
    server.add(
        "GET",
        FETCH,
        Reply.text("too many", status=429, headers={"Retry-After": "0.05"}),
        Reply.json(task_json(TID)),
    )
    mj = await make_session(retry=RetryPolicy(max_tries=3, wait_scale=1.0))
    task = await mj.fetch(TID)
    assert task.id == TID
    assert len(server.requests) == 2
    assert requested == [0.05]


async def test_fetch_429_retry_after_is_scaled(
    server: RecordingServer, make_session: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="midjourney_async")
    server.add(
        "GET",
        FETCH,
        Reply.text("too many", status=429, headers={"Retry-After": "40"}),
        Reply.json(task_json(TID)),
    )
    # Retry-After 40 s, scaled by 1/1000: the retry waits 0.04 s.
    mj = await make_session(retry=RetryPolicy(max_tries=2, wait_scale=0.001))
    assert (await mj.fetch(TID)).id == TID
    assert len(server.requests) == 2
    (line,) = _retry_logs(caplog)
    assert "in 0.04 s" in line
    assert "429" in line


async def test_fetch_500_is_not_retried(server: RecordingServer, make_session: Any) -> None:
    server.add("GET", FETCH, Reply.text("boom", status=500), Reply.json(task_json(TID)))
    mj = await make_session()
    with pytest.raises(ServerError) as info:
        await mj.fetch(TID)
    assert info.value.status == 500
    assert len(server.requests) == 1


async def test_fetch_decode_error_is_retried(server: RecordingServer, make_session: Any) -> None:
    server.add("GET", FETCH, Reply.text('{"id": "17306', status=200), Reply.json(task_json(TID)))
    mj = await make_session()
    assert (await mj.fetch(TID)).id == TID
    assert len(server.requests) == 2


async def test_fetch_dropped_connection_is_retried(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("GET", FETCH, Reply(drop=True), Reply.json(task_json(TID)))
    mj = await make_session()
    assert (await mj.fetch(TID)).id == TID
    assert len(server.requests) == 2


async def test_fetch_after_a_read_timeout_is_retried(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("GET", FETCH, Reply(hang=30.0), Reply.json(task_json(TID)))
    mj = await make_session(timeout=0.2)
    assert (await mj.fetch(TID)).id == TID
    assert len(server.requests) == 2


async def test_list_by_condition_is_retried(server: RecordingServer, make_session: Any) -> None:
    path = "/mj/task/list-by-condition"
    server.add("POST", path, Reply.text("", status=503), Reply.json([task_json(TID)]))
    mj = await make_session()
    assert [t.id for t in await mj.fetch_many([TID])] == [TID]
    assert len(server.calls(path=path)) == 2


async def test_image_seed_is_retried(server: RecordingServer, make_session: Any) -> None:
    path = f"/mj/task/{TID}/image-seed"
    server.add("GET", path, Reply.text("", status=504), Reply.json({"code": 1, "result": "9"}))
    mj = await make_session()
    assert await mj.image_seed(TID) == "9"
    assert len(server.requests) == 2


@pytest.mark.parametrize("tries", [1, 2, 4])
async def test_max_tries_bounds_attempts(
    server: RecordingServer, make_session: Any, tries: int
) -> None:
    server.add("GET", FETCH, Reply.text("unavailable", status=503))
    mj = await make_session(retry=RetryPolicy.without_waits(max_tries=tries))
    with pytest.raises(ServerError) as info:
        await mj.fetch(TID)
    assert info.value.status == 503
    assert len(server.requests) == tries


async def test_retry_policy_never(server: RecordingServer, make_session: Any) -> None:
    server.add("GET", FETCH, Reply.text("unavailable", status=503), Reply.json(task_json(TID)))
    mj = await make_session(retry=RetryPolicy.never())
    with pytest.raises(ServerError):
        await mj.fetch(TID)
    assert len(server.requests) == 1


async def test_read_connect_error_is_retried_up_to_max_tries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="midjourney_async")
    url = f"http://127.0.0.1:{_free_port()}"
    async with MidjourneySession(url, "k", retry=RetryPolicy.without_waits(max_tries=4)) as mj:
        with pytest.raises(ConnectError):
            await mj.fetch(TID)
    assert len(_retry_logs(caplog)) == 3


async def test_retries_log_a_warning_with_the_attempt(
    server: RecordingServer, make_session: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="midjourney_async")
    server.add("GET", FETCH, Reply.text("", status=502), Reply.json(task_json(TID)))
    mj = await make_session(retry=RetryPolicy.without_waits(max_tries=3))
    await mj.fetch(TID)
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert f"GET {FETCH}" in warning.getMessage()
    assert "attempt 2 of 3" in warning.getMessage()
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any(f"GET {FETCH} -> 502" in m and "(attempt 1)" in m for m in debug)
    assert any(f"GET {FETCH} -> 200" in m and "(attempt 2)" in m for m in debug)


# ---------------------------------------------------------------------------
# Waiting for a free connection is not request time


class _HeldServer:
    """An image download that holds its connection until released; a submit that
    answers after ``submit_delay`` seconds. Counts the submits that arrived."""

    def __init__(self, submit_delay: float = 0.0) -> None:
        self.submit_delay = submit_delay
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.submits = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _image(self, request: web.Request) -> web.Response:
        self.arrived.set()
        await asyncio.wait_for(self.release.wait(), 10)
        return web.Response(body=b"\x89PNG\r\n\x1a\n", content_type="image/png")

    def held(self, mj: MidjourneySession, directory: Path) -> asyncio.Task[list[Path]]:
        """A download that keeps the only connection busy (its own timeout is long)."""
        task = Task(id="held", status="SUCCESS", image_url=f"{self.url}/img.png")
        return asyncio.create_task(mj.download(task, directory, timeout=10))

    async def _imagine(self, request: web.Request) -> web.Response:
        self.submits += 1
        await asyncio.sleep(self.submit_delay)
        return web.json_response({"code": 1, "description": "ok", "result": "777"})

    async def __aenter__(self) -> _HeldServer:
        app = web.Application()
        app.router.add_get("/img.png", self._image)
        app.router.add_post(IMAGINE, self._imagine)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        assert self._runner is not None
        await self._runner.cleanup()


async def test_a_submit_that_found_no_free_connection_was_never_sent(tmp_path: Path) -> None:
    async with _HeldServer() as srv:
        async with MidjourneySession(
            srv.url, "k", max_connections=1, timeout=0.5, retry=RetryPolicy.never()
        ) as mj:
            held = srv.held(mj, tmp_path)
            await asyncio.wait_for(srv.arrived.wait(), 5)  # the only connection is busy
            with pytest.raises(ConnectError) as info:
                await mj.imagine("never left")
            assert info.value.maybe_received is False
            assert "nothing was sent" in str(info.value)
            assert retryable("submit", info.value)
            srv.release.set()
            assert len(await asyncio.wait_for(held, 5)) == 1
        assert srv.submits == 0


async def test_the_request_timeout_starts_when_the_request_is_sent(tmp_path: Path) -> None:
    # The submit waits 0.7 s for the connection, then its answer takes 0.5 s: 1.2 s
    # in all, over the 1 s timeout, but only 0.5 s of it is request time.
    async with _HeldServer(submit_delay=0.5) as srv:
        async with MidjourneySession(
            srv.url, "k", max_connections=1, timeout=1.0, retry=RetryPolicy.never()
        ) as mj:
            held = srv.held(mj, tmp_path)
            await asyncio.wait_for(srv.arrived.wait(), 5)
            submit = asyncio.create_task(mj.imagine("queued for a connection"))
            await asyncio.sleep(0.7)
            srv.release.set()
            handle = await asyncio.wait_for(submit, 5)
            assert handle.id == "777"
            await held
        assert srv.submits == 1


async def test_a_retry_never_runs_a_whole_request_timeout_past_max_time(
    server: RecordingServer,
) -> None:
    server.add("GET", "/mj/task/1/fetch", Reply(status=503), Reply(hang=30))
    policy = RetryPolicy(max_tries=3, max_time=0.5, wait_scale=0.0)
    async with MidjourneySession(server.url, KEY, timeout=20, retry=policy) as mj:
        with pytest.raises(RequestTimeout) as info:
            await mj.fetch("1")
    # The retries got what was left of the 0.5 s, not the 20 s request timeout.
    limit = float(str(info.value).split("no answer within ")[1].split(" s")[0])
    assert limit <= 1.0  # what was left of max_time, at least a second; not 20 s
    assert 2 <= len(server.calls("GET", "/mj/task/1/fetch")) <= policy.max_tries



async def test_a_submit_retried_after_a_long_retry_after_keeps_its_full_timeout(
    server: RecordingServer,
) -> None:
    answer = Reply.json({"code": 1, "result": "42"})
    answer.hang = 0.2  # the accepted answer takes a moment, as a real one does
    server.add("POST", "/mj/submit/imagine", Reply(status=429, headers={"Retry-After": "100"}),
               answer)
    policy = RetryPolicy(max_tries=3, max_time=0.3)
    async with MidjourneySession(server.url, KEY, retry=policy) as mj:
        handle = await mj.imagine("x")
    assert handle.id == "42"
    assert len(server.calls("POST", "/mj/submit/imagine")) == 2
