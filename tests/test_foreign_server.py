"""A base URL that is some other HTTP server: a web page, or a JSON API that is not
a midjourney-proxy.

Submits say so in one line (status, content type, the URL tried) and never
quote the page; the poller ends waits with that error after a few ticks
instead of polling in silence until the deadline. A submit is still never
sent twice.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from mj_support import RecordingServer, Reply

from midjourney_async import (
    DecodeError,
    MidjourneyError,
    NotMidjourneyAPI,
    ServerError,
)

PAGE = (
    "<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head>"
    "<body><h1>Welcome to nginx!</h1>" + "<p>filler text</p>" * 200 + "</body></html>"
)
HTML = {"Content-Type": "text/html; charset=utf-8"}
OTHER_JSON = {"name": "my-blog", "version": "4.2.0", "posts": [1, 2, 3]}


def _html(status: int = 200) -> Reply:
    return Reply.text(PAGE, status=status, headers=HTML)


def _check_one_line(exc: MidjourneyError, status: int, ctype: str, url: str) -> None:
    text = str(exc)
    assert "\n" not in text
    assert "not a midjourney-proxy API" in text
    assert f"HTTP {status}" in text
    assert ctype in text
    assert url in text
    for shown in (text, repr(exc)):
        assert "<html" not in shown.lower() and "nginx" not in shown.lower()


@pytest.mark.parametrize("status", [200, 404, 405])
async def test_submit_to_a_web_page_says_so_in_one_line(
    server: RecordingServer, make_session: Any, status: int
) -> None:
    server.add("POST", "/mj/submit/imagine", _html(status))
    mj = await make_session()
    with pytest.raises(NotMidjourneyAPI) as info:
        await mj.imagine("a fox")
    exc = info.value
    _check_one_line(exc, status, "text/html", server.url + "/mj/submit/imagine")
    assert isinstance(exc, DecodeError)
    assert (exc.status, exc.content_type, exc.url) == (
        status, "text/html", server.url + "/mj/submit/imagine"
    )
    # Never sent again.
    assert len(server.calls("POST", "/mj/submit/imagine")) == 1


async def test_submit_to_another_json_api_says_so(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", "/mj/submit/imagine", Reply.json(OTHER_JSON))
    mj = await make_session()
    with pytest.raises(NotMidjourneyAPI) as info:
        await mj.imagine("a fox")
    _check_one_line(info.value, 200, "application/json", server.url + "/mj/submit/imagine")
    assert len(server.calls("POST", "/mj/submit/imagine")) == 1


async def test_a_5xx_page_stays_a_server_error_without_the_page(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", "/mj/submit/imagine", _html(502))
    mj = await make_session()
    with pytest.raises(ServerError) as info:
        await mj.imagine("a fox")
    assert "<html" not in str(info.value).lower()
    assert "an HTML page" in str(info.value)
    assert "\n" not in str(info.value)


async def test_fetch_of_a_web_page_says_so(server: RecordingServer, make_session: Any) -> None:
    server.add("GET", "/mj/task/7/fetch", _html())
    mj = await make_session()
    with pytest.raises(NotMidjourneyAPI) as info:
        await mj.fetch("7")
    _check_one_line(info.value, 200, "text/html", server.url + "/mj/task/7/fetch")


@pytest.mark.parametrize(
    ("reply", "ctype"),
    [
        (_html(), "text/html"),
        (_html(404), "text/html"),
        (Reply.json(OTHER_JSON), "application/json"),
    ],
    ids=["html-200", "html-404", "other-json"],
)
async def test_waits_end_with_the_error_after_a_few_ticks(
    server: RecordingServer, make_session: Any, reply: Reply, ctype: str
) -> None:
    server.add("POST", "/mj/task/list-by-condition", reply)
    server.add("GET", "/mj/task/41/fetch", reply)
    mj = await make_session(poll_interval=0.01)
    started = time.monotonic()
    with pytest.raises(NotMidjourneyAPI) as info:
        await mj.handle("41").wait(timeout=60)
    assert time.monotonic() - started < 10
    assert "not a midjourney-proxy API" in str(info.value)
    assert ctype in str(info.value)
    # A few tries, not a hot loop until the deadline.
    assert len(server.requests) <= 12


async def test_a_good_answer_between_bad_ones_keeps_the_wait(
    server: RecordingServer, make_session: Any
) -> None:
    done = {"id": "41", "status": "SUCCESS", "progress": "100%", "imageUrl": "http://x/a.png"}
    # Two foreign answers, then the real server's: one hiccup (a captive portal, a
    # misrouted request) must not end a wait that the next answer serves.
    server.add("POST", "/mj/task/list-by-condition", _html(), _html(), Reply.json([done]))
    mj = await make_session(poll_interval=0.01)
    task = await mj.handle("41").wait(timeout=30)
    assert task.status == "SUCCESS"


@pytest.mark.parametrize("status", [404, 405])
async def test_a_relay_without_the_list_route_behind_a_web_server_is_fetched(
    server: RecordingServer, make_session: Any, status: int
) -> None:
    # nginx in front of a relay that has no list-by-condition: its error page is
    # HTML, while fetch works. The waits must go on by fetch, not end.
    server.add("POST", "/mj/task/list-by-condition", _html(status))
    done = {"id": "41", "status": "SUCCESS", "progress": "100%", "imageUrl": "http://x/a.png"}
    running = Reply.json({**done, "status": "IN_PROGRESS", "progress": "50%"})
    server.add("GET", "/mj/task/41/fetch", *([running] * 6), Reply.json(done))
    mj = await make_session(poll_interval=0.01)
    task = await mj.handle("41").wait(timeout=30)
    assert task.status == "SUCCESS"
    # The missing route is seen at once: the first failed list (a request and its
    # retry) is followed by a fetch in the same tick, not by ticks of silence.
    first_fetch = next(i for i, r in enumerate(server.requests) if r.method == "GET")
    assert first_fetch <= 2
