"""Facts of reference/proxy-api.md the client got wrong at first, each with its test."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from mj_support import KEY, RecordingServer, Reply

from midjourney_async import (
    HTTPStatusError,
    InvalidRequestError,
    MidjourneySession,
    PermissionDeniedError,
    RetryPolicy,
    SubmitRejected,
    TaskNotFound,
    TaskStatus,
    WebhookConfig,
)
from midjourney_async._dialects.proxy import decode_task

FAST = {"poll_interval": 0.01, "retry": RetryPolicy.without_waits()}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
DONE = {"id": "1", "status": "SUCCESS", "progress": "100%", "buttons": [
    {"customId": "MJ::BOOKMARK::h", "emoji": "❤️", "label": ""},
]}


async def test_a_submit_answered_with_a_finished_task_gives_its_slot_back(
    server: RecordingServer,
) -> None:
    # trueai answers a Like (MJ::BOOKMARK) with the parent's id and creates no task.
    server.add("GET", "/mj/task/1/fetch", Reply.json(DONE))
    server.add("POST", "/mj/submit/action", Reply.json({"code": 1, "result": "1"}))
    server.add("POST", "/mj/submit/imagine", Reply.json({"code": 1, "result": "2"}))
    async with MidjourneySession(server.url, KEY, max_in_flight=1, **FAST) as mj:
        parent = mj.handle("1")
        await parent.refresh()
        liked = await parent.press("❤️")
        assert liked.id == "1"
        nxt = await asyncio.wait_for(mj.imagine("not blocked"), 5)
    assert nxt.id == "2"


async def test_video_needs_a_prompt(server: RecordingServer) -> None:
    async with MidjourneySession(server.url, KEY, **FAST) as mj:
        with pytest.raises(InvalidRequestError):
            await mj.video(image=PNG)
    assert server.requests == []


async def test_forbidden_polls_end_the_wait(server: RecordingServer) -> None:
    server.add("POST", "/mj/submit/imagine", Reply.json({"code": 1, "result": "7"}))
    server.add("POST", "/mj/task/list-by-condition", Reply.text("未登录", 403))
    async with MidjourneySession(server.url, KEY, provider="trueai", **FAST) as mj:
        with pytest.raises(PermissionDeniedError):
            await (await mj.imagine("x")).wait(timeout=5)


async def test_new_api_image_seed_of_unknown_task(server: RecordingServer) -> None:
    unknown = {"code": 4, "description": "task_no_found", "type": "upstream_error"}
    server.add("GET", "/mj/task/9/image-seed", Reply.json(unknown, 400))
    async with MidjourneySession(server.url, KEY, provider="new-api", **FAST) as mj:
        with pytest.raises(TaskNotFound):
            await mj.image_seed("9")


def test_go_zero_times_read_as_no_time() -> None:
    body = {"id": "1", "status": "IN_PROGRESS", "submitTime": 1730621826053,
            "startTime": 0, "finishTime": 0}
    fast = decode_task(json.dumps(body).encode())
    slow = decode_task(json.dumps({**body, "id": 1}).encode())  # the tolerant path
    for task in (fast, slow):
        assert task is not None
        assert task.submit_time == 1730621826053
        assert task.start_time is None and task.finish_time is None


async def test_trueai_error_shape_on_a_read_is_a_typed_refusal(server: RecordingServer) -> None:
    shape = {"success": False, "code": -1, "message": "over quota", "timestamp": 1}
    server.add("GET", "/mj/task/5/fetch", Reply.json(shape))
    server.add("POST", "/mj/task/list-by-condition", Reply.json(shape))
    async with MidjourneySession(
        server.url, KEY, provider="trueai", retry=RetryPolicy.never()
    ) as mj:
        with pytest.raises(HTTPStatusError) as fetch:
            await mj.fetch("5")
        with pytest.raises(HTTPStatusError) as listed:
            await mj.fetch_many(["5", "6"])
    assert "over quota" in str(fetch.value) and "over quota" in str(listed.value)
    assert not isinstance(fetch.value, SubmitRejected)


async def test_custom_zoom_prompt_carries_zoom_and_aspect_ratio(server: RecordingServer) -> None:
    upscaled = {"id": "1", "status": "SUCCESS", "progress": "100%",
                "properties": {"finalPrompt": "a cat --v 6.1"},
                "buttons": [{"customId": "MJ::CustomZoom::h", "label": "Custom Zoom"}]}
    server.add("GET", "/mj/task/1/fetch", Reply.json(upscaled))
    server.add("POST", "/mj/submit/action", Reply.json({"code": 21, "result": "2"}))
    server.add("POST", "/mj/submit/modal", Reply.json({"code": 1, "result": "2"}))
    async with MidjourneySession(server.url, KEY, provider="trueai", **FAST) as mj:
        parent = mj.handle("1")
        await parent.refresh()
        await parent.zoom_out(1.8)
    [modal] = server.calls("POST", "/mj/submit/modal")
    assert modal.json["prompt"] == "a cat --v 6.1 --zoom 1.8 --ar 1:1"


async def test_describe_by_link_only_where_the_server_takes_links(
    server: RecordingServer,
) -> None:
    server.add("POST", "/mj/submit/describe", Reply.json({"code": 1, "result": "3"}))
    link = "http://127.0.0.1:9/cat.png"
    async with MidjourneySession(server.url, KEY, **FAST) as mj:
        with pytest.raises(InvalidRequestError):
            await mj.describe(link)  # novicezk takes base64 only
        await mj.describe(PNG)
    async with MidjourneySession(server.url, KEY, provider="trueai", **FAST) as mj:
        await mj.describe(link)
    java, trueai = server.calls("POST", "/mj/submit/describe")
    assert java.json == {"base64": "data:image/png;base64," + base64.b64encode(PNG).decode()}
    assert trueai.json == {"link": link}


def test_relays_that_strip_callbacks_keep_polling_at_the_normal_pace() -> None:
    relay = MidjourneySession("http://127.0.0.1:9", KEY, provider="new-api", poll_interval=2,
                              webhook=WebhookConfig())
    java = MidjourneySession("http://127.0.0.1:9", KEY, poll_interval=2, webhook=WebhookConfig())
    assert relay._tracker.interval == 2
    assert java._tracker.interval == 30


async def test_task_status_after_a_liked_parent_is_still_success(
    server: RecordingServer,
) -> None:
    server.add("GET", "/mj/task/1/fetch", Reply.json(DONE))
    server.add("POST", "/mj/submit/action", Reply.json({"code": 1, "result": "1"}))
    async with MidjourneySession(server.url, KEY, max_in_flight=1, **FAST) as mj:
        parent = mj.handle("1")
        await parent.refresh()
        liked = await parent.press("❤️")
        assert (await liked.wait(timeout=5)).status is TaskStatus.SUCCESS
