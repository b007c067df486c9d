"""Hostile or broken answers end in a typed error and change nothing: JSON nested
deep enough to exhaust the stack, API answers far larger than any real one, and
a fetch that describes another task than the one asked for."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
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
    DecodeError,
    InvalidArgument,
    MidjourneySession,
    RetryPolicy,
    TaskStatus,
    parse_notification,
)
from midjourney_async._transport import DEFAULT_MAX_RESPONSE_BYTES

TID = "1730621826053455"
FETCH = f"/mj/task/{TID}/fetch"
LIST = "/mj/task/list-by-condition"
IMAGINE = "/mj/submit/imagine"
OMG_QUERY = "/api/v1/ai/draw/mj/query"
DEPTH = 100_000


FAST: dict[str, Any] = {"poll_interval": 0.01, "retry": RetryPolicy.without_waits()}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def nested(prefix: bytes, suffix: bytes = b"") -> bytes:
    """``prefix`` + an array nested DEPTH deep + ``suffix``."""
    return prefix + b"[" * DEPTH + b"]" * DEPTH + suffix


DEEP_TASK = nested(b'{"id": "' + TID.encode() + b'", "properties": {"a": ', b"}}")


# -- nesting -------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [DEEP_TASK, nested(b""), nested(b'{"code": 1, "result": ', b"}")],
    ids=["task", "bare", "envelope"],
)
@pytest.mark.parametrize("dialect", ["proxy", "ohmygpt"])
def test_parse_notification_of_deep_json_is_a_decode_error(body: bytes, dialect: Any) -> None:
    with pytest.raises(DecodeError):
        parse_notification(body, dialect)


async def test_fetch_of_deep_json_is_a_decode_error(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("GET", FETCH, Reply.raw(DEEP_TASK, content_type="application/json"))
    mj = await make_session(retry=RetryPolicy.without_waits(max_tries=2))
    with pytest.raises(DecodeError):
        await mj.fetch(TID)
    assert len(server.requests) == 2  # an unreadable read is retried, then reported


async def test_list_of_deep_json_is_a_decode_error(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", LIST, Reply.raw(nested(b"", b""), content_type="application/json"))
    mj = await make_session(retry=RetryPolicy.never())
    with pytest.raises(DecodeError):
        await mj.fetch_many([TID])


async def test_ohmygpt_query_of_deep_json_is_a_decode_error(
    server: RecordingServer, make_session: Any
) -> None:
    body = nested(b'{"statusCode": 200, "data": {"taskId": 1, "x": ', b"}}")
    server.add("POST", OMG_QUERY, Reply.raw(body, content_type="application/json"))
    mj = await make_session(provider="ohmygpt", retry=RetryPolicy.never())
    with pytest.raises(DecodeError):
        await mj.fetch("1")


@pytest.mark.parametrize(
    "body",
    [nested(b'{"code": 1, "result": ', b"}"), nested(b'{"code": 1, "result": "1", "p": ', b"}")],
)
async def test_submit_answered_with_deep_json_is_a_decode_error_sent_once(
    server: RecordingServer, make_session: Any, body: bytes
) -> None:
    server.add("POST", IMAGINE, Reply.raw(body, content_type="application/json"), submit_ok())
    mj = await make_session()
    with pytest.raises(DecodeError):
        await mj.imagine("cat")
    assert len(server.requests) == 1


# -- size caps -----------------------------------------------------------------


class _Huge:
    """Answers the fetch with a declared or streamed body far over the cap."""

    def __init__(self) -> None:
        self.written = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def declared(self, request: web.Request) -> web.StreamResponse:
        # Declares 256 MiB, sends a few bytes, then stalls: only a check of the
        # declared length refuses it at once.
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = 256 * 1024 * 1024
        await resp.prepare(request)
        await resp.write(b'{"id": "1"')
        await asyncio.sleep(30)
        return resp

    async def streamed(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        chunk = b" " * (1024 * 1024)
        try:
            await resp.write(b'{"id": "1", "prompt": "')
            for _ in range(256):
                await resp.write(chunk)
                self.written += len(chunk)
            await resp.write(b'"}')
            await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client hung up: what this test wants
        return resp

    async def __aenter__(self) -> _Huge:
        app = web.Application()
        app.router.add_get("/mj/task/1/fetch", self.declared)
        app.router.add_get("/mj/task/2/fetch", self.streamed)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def huge() -> AsyncIterator[_Huge]:
    async with _Huge() as srv:
        yield srv


async def test_an_answer_declaring_more_than_the_cap_is_refused_unread(huge: _Huge) -> None:
    async with MidjourneySession(huge.url, "k", timeout=20, retry=RetryPolicy.never()) as mj:
        started = time.monotonic()
        with pytest.raises(DecodeError, match="max_response_bytes"):
            await mj.fetch("1")
        assert time.monotonic() - started < 10  # refused at once, not at the stall's end


async def test_a_streamed_answer_over_the_cap_is_cut_off(huge: _Huge) -> None:
    assert DEFAULT_MAX_RESPONSE_BYTES == 32 * 1024 * 1024
    async with MidjourneySession(huge.url, "k", timeout=30, retry=RetryPolicy.never()) as mj:
        with pytest.raises(DecodeError, match="max_response_bytes"):
            await mj.fetch("2")
    # The client stopped reading just past the cap, long before the 256 MiB end.
    assert huge.written < 128 * 1024 * 1024


# -- a fetch that describes another task ------------------------------------------


async def test_a_fetch_answer_for_another_task_is_not_applied(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("GET", FETCH, Reply.json(task_json("999", imageUrl="http://x/other.png")))
    mj = await make_session(retry=RetryPolicy.never())
    with pytest.raises(DecodeError, match="another task") as info:
        await mj.fetch(TID)
    assert "999" in str(info.value)


async def test_an_ohmygpt_query_for_another_task_is_not_applied(
    server: RecordingServer, make_session: Any
) -> None:
    other = {"statusCode": 200, "message": "ok", "data": {"taskId": 2, "status": "SUCCESS"}}
    server.add("POST", OMG_QUERY, Reply.json(other))
    mj = await make_session(provider="ohmygpt", retry=RetryPolicy.never())
    with pytest.raises(DecodeError, match="another task"):
        await mj.fetch("1")


async def test_a_one_element_list_holding_the_asked_task_is_that_task(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("GET", FETCH, Reply.json([task_json(TID, status="IN_PROGRESS", progress="40%")]))
    mj = await make_session()
    task = await mj.fetch(TID)
    assert task.id == TID
    assert task.status is TaskStatus.IN_PROGRESS
    assert task.progress_percent == 40


@pytest.mark.parametrize(
    "answer", [[task_json("999")], [task_json(TID), task_json("999")]], ids=["other", "two"]
)
async def test_other_list_answers_to_a_fetch_are_decode_errors(
    server: RecordingServer, make_session: Any, answer: Any
) -> None:
    server.add("GET", FETCH, Reply.json(answer))
    mj = await make_session(retry=RetryPolicy.never())
    with pytest.raises(DecodeError):
        await mj.fetch(TID)


async def test_video_needs_a_prompt(server: RecordingServer) -> None:
    async with MidjourneySession(server.url, KEY, **FAST) as mj:
        with pytest.raises(InvalidArgument):
            await mj.video(image=PNG)
    assert server.requests == []



async def test_describe_by_link_only_where_the_server_takes_links(
    server: RecordingServer,
) -> None:
    server.add("POST", "/mj/submit/describe", Reply.json({"code": 1, "result": "3"}))
    link = "http://127.0.0.1:9/cat.png"
    async with MidjourneySession(server.url, KEY, **FAST) as mj:
        with pytest.raises(InvalidArgument):
            await mj.describe(link)  # novicezk takes base64 only
        await mj.describe(PNG)
    async with MidjourneySession(server.url, KEY, provider="trueai", **FAST) as mj:
        await mj.describe(link)
    java, trueai = server.calls("POST", "/mj/submit/describe")
    assert java.json == {"base64": "data:image/png;base64," + base64.b64encode(PNG).decode()}
    assert trueai.json == {"link": link}
