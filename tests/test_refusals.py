"""How each server's refusals read: rejected keys, forbidden polls, unknown tasks, error
shapes in a 200 and queue-full wordings become typed errors."""

from __future__ import annotations

from typing import Any

import pytest
from mj_support import KEY, RecordingServer, Reply

from midjourney_async import (
    AuthenticationError,
    HTTPStatusError,
    MidjourneySession,
    PermissionDeniedError,
    QueueFullError,
    RetryPolicy,
    SubmitRejected,
    TaskNotFound,
)

FAST: dict[str, Any] = {"poll_interval": 0.01, "retry": RetryPolicy.without_waits()}


async def test_a_rejected_key_ends_waits_with_the_auth_error(server: RecordingServer) -> None:
    server.add("POST", "/mj/submit/imagine", Reply.json({"code": 1, "result": "7"}))
    server.add("POST", "/mj/task/list-by-condition", Reply(status=401))
    async with MidjourneySession(server.url, KEY, **FAST) as mj:
        with pytest.raises(AuthenticationError):
            await (await mj.imagine("x")).wait(timeout=5)



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



async def test_ohmygpt_queue_full_wording_is_a_queue_full_error(
    server: RecordingServer,
) -> None:
    refused = {"statusCode": 400, "message": "Submit failed: the queue is full", "data": None}
    server.add("POST", "/api/v1/ai/draw/mj/imagine", Reply.json(refused))
    async with MidjourneySession(
        server.url, KEY, provider="ohmygpt", retry=RetryPolicy.never()
    ) as mj:
        with pytest.raises(QueueFullError):
            await mj.imagine("x")
