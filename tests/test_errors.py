"""Each way a server says "no" maps onto one error of the tree, with a message a
user can act on: submit codes, new-api's HTTP 400 envelope, trueai's
``{success:false}`` shape, OhMyGPT's statusCode, HTTP statuses, the many ways
of saying "no such task", and unreadable bodies."""

from __future__ import annotations

from typing import Any

import pytest
from mj_support import RecordingServer, Reply, submit_ok

from midjourney_async import (
    AuthenticationError,
    BannedPromptError,
    ButtonNotFound,
    ConfigurationError,
    ConnectError,
    DecodeError,
    HTTPStatusError,
    InvalidRequestError,
    MidjourneyError,
    ModalRequired,
    NotFoundError,
    PermissionDeniedError,
    QueueFullError,
    QuotaExceeded,
    RateLimitError,
    RequestTimeout,
    RetryPolicy,
    ServerError,
    SubmitNotFound,
    SubmitRejected,
    Task,
    TaskFailed,
    TaskNotFound,
    TaskTimeout,
    TransportError,
    UnsupportedOperation,
)

TID = "1730621826053455"
NEW = "1751352955547075"
IMAGINE = "/mj/submit/imagine"
FETCH = f"/mj/task/{TID}/fetch"
OMG = "/api/v1/ai/draw/mj"


async def _never(make_session: Any, **kwargs: Any) -> Any:
    """A session that does not retry, so each test sees the first error."""
    return await make_session(retry=RetryPolicy.never(), **kwargs)


def test_error_tree() -> None:
    for cls in (
        ConfigurationError,
        UnsupportedOperation,
        TransportError,
        ConnectError,
        RequestTimeout,
        DecodeError,
        HTTPStatusError,
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
        RateLimitError,
        ServerError,
        SubmitRejected,
        QueueFullError,
        BannedPromptError,
        InvalidRequestError,
        SubmitNotFound,
        TaskNotFound,
        TaskFailed,
        ModalRequired,
        TaskTimeout,
        ButtonNotFound,
    ):
        assert issubclass(cls, MidjourneyError), cls
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(UnsupportedOperation, NotImplementedError)
    assert issubclass(ConnectError, TransportError)
    assert issubclass(RequestTimeout, TransportError) and issubclass(RequestTimeout, TimeoutError)
    for cls in (AuthenticationError, PermissionDeniedError, NotFoundError, RateLimitError):
        assert issubclass(cls, HTTPStatusError)
    assert issubclass(ServerError, HTTPStatusError)
    for cls in (QueueFullError, BannedPromptError, InvalidRequestError, SubmitNotFound):
        assert issubclass(cls, SubmitRejected)
    assert issubclass(SubmitNotFound, NotFoundError)
    assert issubclass(TaskNotFound, LookupError)
    assert issubclass(ButtonNotFound, LookupError)
    assert issubclass(TaskTimeout, TimeoutError)


# ---------------------------------------------------------------------------
# Submit codes


@pytest.mark.parametrize("code", [1, 21, 22])
async def test_accepted_codes(server: RecordingServer, make_session: Any, code: int) -> None:
    server.add("POST", IMAGINE, submit_ok(NEW, code=code, numberOfQueues=5))
    mj = await _never(make_session)
    handle = await mj.imagine("cat")
    assert handle.id == NEW
    assert handle.submit_code == code
    # Code 22 means "queued"; new-api rewrites 22 to 1 and keeps numberOfQueues.
    assert handle.queue_position == (None if code == 21 else 5)


async def test_code_22_with_string_queue_count(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", IMAGINE, submit_ok(NEW, code=22, numberOfQueues="2"))
    mj = await _never(make_session)
    assert (await mj.imagine("cat")).queue_position == 2


async def test_code_23_is_queue_full(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", IMAGINE, Reply.json({"code": 23, "description": "队列已满，请稍后尝试"}))
    mj = await _never(make_session)
    with pytest.raises(QueueFullError) as info:
        await mj.imagine("cat")
    assert info.value.code == 23
    assert info.value.description == "队列已满，请稍后尝试"
    assert "submit again later" in str(info.value)


async def test_trueai_code_9_queue_full(server: RecordingServer, make_session: Any) -> None:
    server.add(
        "POST", IMAGINE, Reply.json({"code": 9, "description": "提交失败，队列已满，请稍后重试"})
    )
    mj = await _never(make_session, provider="trueai")
    with pytest.raises(QueueFullError) as info:
        await mj.imagine("cat")
    assert info.value.code == 9


async def test_code_9_other_text_is_a_plain_rejection(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", IMAGINE, Reply.json({"code": 9, "description": "系统异常"}))
    mj = await _never(make_session, provider="trueai")
    with pytest.raises(SubmitRejected) as info:
        await mj.imagine("cat")
    assert type(info.value) is SubmitRejected
    assert info.value.code == 9
    assert "系统异常" in str(info.value)


async def test_code_24_is_banned_prompt(server: RecordingServer, make_session: Any) -> None:
    server.add(
        "POST",
        IMAGINE,
        Reply.json(
            {
                "code": 24,
                "description": "可能包含敏感词",
                "properties": {"promptEn": "a bloody cat", "bannedWord": "bloody"},
            }
        ),
    )
    mj = await _never(make_session)
    with pytest.raises(BannedPromptError) as info:
        await mj.imagine("a bloody cat")
    assert info.value.code == 24
    assert info.value.banned_word == "bloody"
    assert info.value.properties["promptEn"] == "a bloody cat"
    assert "bloody" in str(info.value)


async def test_code_24_without_word(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", IMAGINE, Reply.json({"code": 24, "description": "banned"}))
    mj = await _never(make_session)
    with pytest.raises(BannedPromptError) as info:
        await mj.imagine("x")
    assert info.value.banned_word is None


async def test_code_4_is_invalid_request(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", IMAGINE, Reply.json({"code": 4, "description": "base64 data error"}))
    mj = await _never(make_session)
    with pytest.raises(InvalidRequestError) as info:
        await mj.imagine("x")
    assert info.value.code == 4
    assert "base64 data error" in str(info.value)


async def test_code_3_is_submit_not_found(server: RecordingServer, make_session: Any) -> None:
    body = {"code": 3, "description": "无可用的账号实例"}
    server.add("POST", "/mj/submit/action", Reply.json(body))
    mj = await _never(make_session)
    with pytest.raises(SubmitNotFound) as info:
        await mj.action(TID, "MJ::JOB::upsample::1::h")
    assert isinstance(info.value, NotFoundError)
    assert isinstance(info.value, SubmitRejected)
    assert info.value.code == 3
    assert info.value.status == 200


@pytest.mark.parametrize("code", [2, 9, 30, 99, -1, "oops", None])
async def test_other_codes_are_rejections(
    server: RecordingServer, make_session: Any, code: Any
) -> None:
    server.add("POST", IMAGINE, Reply.json({"code": code, "description": "nope"}))
    mj = await _never(make_session)
    with pytest.raises(SubmitRejected) as info:
        await mj.imagine("x")
    assert type(info.value) is SubmitRejected
    assert info.value.code == (code if isinstance(code, int) else None)
    assert info.value.description == "nope"


async def test_accepted_without_an_id_is_a_decode_error(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", IMAGINE, Reply.json({"code": 1, "description": "ok", "result": None}))
    mj = await _never(make_session)
    with pytest.raises(DecodeError) as info:
        await mj.imagine("x")
    assert "no task id" in str(info.value)


async def test_submit_answer_without_code(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", IMAGINE, Reply.json({"result": NEW}))
    mj = await _never(make_session)
    with pytest.raises(DecodeError):
        await mj.imagine("x")


async def test_upload_rejected(server: RecordingServer, make_session: Any) -> None:
    body = {"code": 4, "description": "禁止上传"}
    server.add("POST", "/mj/submit/upload-discord-images", Reply.json(body))
    mj = await _never(make_session)
    with pytest.raises(InvalidRequestError):
        await mj.upload_images([b"\x89PNG\r\n\x1a\nxx"])


# ---------------------------------------------------------------------------
# new-api relays: HTTP 400 {code, description, type}


@pytest.mark.parametrize(
    ("body", "error", "code"),
    [
        ({"code": 4, "description": "prompt_is_required", "type": "upstream_error"},
         InvalidRequestError, 4),
        ({"code": 4, "description": "unknown_action", "type": "upstream_error"},
         InvalidRequestError, 4),
        ({"code": 24, "description": "banned", "type": "upstream_error",
          "properties": {"bannedWord": "gore"}}, BannedPromptError, 24),
        ({"code": 23, "description": "queue full", "type": "upstream_error"}, QueueFullError, 23),
        ({"code": 3, "description": "关联任务不存在或已失效", "type": "upstream_error"},
         SubmitNotFound, 3),
        ({"code": 9, "description": "get_channel_failed", "type": "upstream_error"},
         SubmitRejected, 9),
    ],
)
async def test_new_api_400(
    server: RecordingServer, make_session: Any, body: Any, error: type[SubmitRejected], code: int
) -> None:
    server.add("POST", "/fast/mj/submit/imagine", Reply.json(body, status=400))
    mj = await _never(make_session, provider="new-api", mode="fast")
    with pytest.raises(error) as info:
        await mj.imagine("x")
    assert type(info.value) is error
    assert info.value.code == code
    assert info.value.description == body["description"]


async def test_new_api_400_banned_word(server: RecordingServer, make_session: Any) -> None:
    body = {"code": 24, "description": "banned", "type": "upstream_error",
            "properties": {"bannedWord": "gore"}}
    server.add("POST", IMAGINE, Reply.json(body, status=400))
    mj = await _never(make_session, provider="new-api")
    with pytest.raises(BannedPromptError) as info:
        await mj.imagine("x")
    assert info.value.banned_word == "gore"


async def test_new_api_400_other_shape_is_http_error(
    server: RecordingServer, make_session: Any
) -> None:
    body = {"error": {"message": "model not allowed", "type": "new_api_error"}}
    server.add("POST", IMAGINE, Reply.json(body, status=400))
    mj = await _never(make_session, provider="new-api")
    with pytest.raises(HTTPStatusError) as info:
        await mj.imagine("x")
    assert type(info.value) is HTTPStatusError
    assert info.value.status == 400
    assert "model not allowed" in str(info.value)


async def test_new_api_429_code_30(server: RecordingServer, make_session: Any) -> None:
    body = {"code": 30, "description": "当前分组负载已饱和", "type": "upstream_error"}
    server.add("POST", IMAGINE, Reply.json(body, status=429, headers={"Retry-After": "3"}))
    mj = await _never(make_session, provider="new-api")
    with pytest.raises(RateLimitError) as info:
        await mj.imagine("x")
    assert info.value.retry_after == 3.0
    assert "当前分组负载已饱和" in str(info.value)


async def test_new_api_401_openai_style(server: RecordingServer, make_session: Any) -> None:
    body = {"error": {"message": "无效的令牌", "type": "new_api_error"}}
    server.add("POST", IMAGINE, Reply.json(body, status=401))
    mj = await _never(make_session, provider="new-api")
    with pytest.raises(AuthenticationError) as info:
        await mj.imagine("x")
    assert "API key" in str(info.value)
    assert "无效的令牌" in str(info.value)


# ---------------------------------------------------------------------------
# trueai


async def test_trueai_success_false_at_200(server: RecordingServer, make_session: Any) -> None:
    body = {"success": False, "code": -1, "message": "今日绘图次数已达上限",
            "timestamp": 1730621826053}
    server.add("POST", "/mj-fast/mj/submit/imagine", Reply.json(body))
    mj = await _never(make_session, provider="trueai", mode="fast")
    with pytest.raises(SubmitRejected) as info:
        await mj.imagine("x")
    assert type(info.value) is QuotaExceeded
    assert info.value.code == -1
    assert info.value.description == "今日绘图次数已达上限"
    assert "今日绘图次数已达上限" in str(info.value)


async def test_trueai_success_false_at_500(server: RecordingServer, make_session: Any) -> None:
    body = {"success": False, "code": -1, "message": "Object reference not set",
            "timestamp": 1730621826053}
    server.add("POST", IMAGINE, Reply.json(body, status=500), submit_ok())
    mj = await make_session(provider="trueai")  # retries allowed: a submit must not repeat
    with pytest.raises(ServerError) as info:
        await mj.imagine("x")
    assert info.value.status == 500
    assert "Object reference not set" in str(info.value)
    assert len(server.requests) == 1


async def test_trueai_404_code_3_on_action(server: RecordingServer, make_session: Any) -> None:
    body = {"code": 3, "description": "关联任务不存在或已失效", "result": None}
    server.add("POST", "/mj/submit/action", Reply.json(body, status=404))
    mj = await _never(make_session, provider="trueai")
    with pytest.raises(SubmitNotFound) as info:
        await mj.action(TID, "MJ::JOB::upsample::1::h")
    assert isinstance(info.value, NotFoundError)
    assert info.value.status == 404
    assert info.value.code == 3


async def test_trueai_401_plain_text(server: RecordingServer, make_session: Any) -> None:
    server.add("GET", FETCH, Reply.text("Authorization header missing.", status=401))
    mj = await _never(make_session, provider="trueai")
    with pytest.raises(AuthenticationError) as info:
        await mj.fetch(TID)
    assert info.value.status == 401
    assert info.value.body == "Authorization header missing."


async def test_trueai_image_seed_errors(server: RecordingServer, make_session: Any) -> None:
    server.add(
        "GET", "/mj/task/404/image-seed", Reply.json({"code": 3, "description": "x"}, status=404)
    )
    server.add(
        "GET",
        "/mj/task/400/image-seed",
        Reply.json({"code": 4, "description": "no message hash yet"}, status=400),
    )
    mj = await _never(make_session, provider="trueai")
    with pytest.raises(TaskNotFound):
        await mj.image_seed("404")
    with pytest.raises(InvalidRequestError) as info:
        await mj.image_seed("400")
    assert "no message hash yet" in str(info.value)


# ---------------------------------------------------------------------------
# OhMyGPT


async def test_ohmygpt_status_code_not_200(server: RecordingServer, make_session: Any) -> None:
    body = {"statusCode": 400, "message": "Insufficient balance", "data": None}
    server.add("POST", f"{OMG}/imagine", Reply.json(body))
    mj = await _never(make_session, provider="ohmygpt")
    with pytest.raises(SubmitRejected) as info:
        await mj.imagine("x")
    assert info.value.code == 400
    assert "Insufficient balance" in str(info.value)


async def test_ohmygpt_accepted_without_id(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", f"{OMG}/imagine", Reply.json({"statusCode": 200, "data": None}))
    mj = await _never(make_session, provider="ohmygpt")
    with pytest.raises(DecodeError):
        await mj.imagine("x")


async def test_ohmygpt_not_an_envelope(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", f"{OMG}/query", Reply.json({"id": "1"}))
    mj = await _never(make_session, provider="ohmygpt")
    with pytest.raises(DecodeError):
        await mj.fetch("1")


async def test_ohmygpt_unknown_task(server: RecordingServer, make_session: Any) -> None:
    server.add(
        "POST", f"{OMG}/query", Reply.json({"statusCode": 404, "message": "Task not found"})
    )
    mj = await _never(make_session, provider="ohmygpt")
    with pytest.raises(TaskNotFound) as info:
        await mj.fetch("77")
    assert info.value.task_id == "77"


async def test_ohmygpt_http_status(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", f"{OMG}/imagine", Reply.json({"error": "bad key"}, status=401))
    mj = await _never(make_session, provider="ohmygpt")
    with pytest.raises(AuthenticationError):
        await mj.imagine("x")


# ---------------------------------------------------------------------------
# HTTP statuses


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [
        (401, AuthenticationError, "API key"),
        (403, PermissionDeniedError, "forbidden"),
        (404, NotFoundError, "base URL"),
        (429, RateLimitError, "too many requests"),
        (500, ServerError, "server error 500"),
        (502, ServerError, "server error 502"),
        (503, ServerError, "server error 503"),
        (418, HTTPStatusError, "HTTP 418"),
    ],
)
async def test_http_status_on_fetch(
    server: RecordingServer, make_session: Any, status: int, error: type[Exception], words: str
) -> None:
    server.add("GET", FETCH, Reply.text("denied by policy", status=status))
    mj = await _never(make_session)
    with pytest.raises(error) as info:
        await mj.fetch(TID)
    exc = info.value
    assert type(exc) is error
    assert isinstance(exc, HTTPStatusError)
    assert exc.status == status
    assert exc.body == "denied by policy"
    assert words in str(exc)
    assert "denied by policy" in str(exc)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (429, RateLimitError),
        (500, ServerError),
        (504, ServerError),
    ],
)
async def test_http_status_on_submit(
    server: RecordingServer, make_session: Any, status: int, error: type[Exception]
) -> None:
    server.add("POST", IMAGINE, Reply.text("", status=status))
    mj = await _never(make_session)
    with pytest.raises(error) as info:
        await mj.imagine("x")
    assert type(info.value) is error
    assert info.value.status == status  # type: ignore[attr-defined]


async def test_rate_limit_retry_after(server: RecordingServer, make_session: Any) -> None:
    server.add("GET", FETCH, Reply.text("", status=429, headers={"Retry-After": "2"}))
    mj = await _never(make_session)
    with pytest.raises(RateLimitError) as info:
        await mj.fetch(TID)
    assert info.value.retry_after == 2.0
    assert "retry after 2 s" in str(info.value)


async def test_rate_limit_without_retry_after(server: RecordingServer, make_session: Any) -> None:
    server.add("GET", FETCH, Reply.text("", status=429))
    mj = await _never(make_session)
    with pytest.raises(RateLimitError) as info:
        await mj.fetch(TID)
    assert info.value.retry_after is None


async def test_fetch_400_that_is_not_task_no_found(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("GET", FETCH, Reply.json({"code": 9, "description": "busy"}, status=400))
    mj = await _never(make_session)
    with pytest.raises(HTTPStatusError) as info:
        await mj.fetch(TID)
    assert info.value.status == 400


# ---------------------------------------------------------------------------
# "No such task"


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=200, body=b""),  # novicezk
        Reply(status=200, body=b"  \n"),
        Reply(status=204),  # trueai
        Reply.raw(b"null", content_type="application/json"),
        Reply.json(
            {"code": 4, "description": "task_no_found", "type": "upstream_error"}, status=400
        ),  # new-api
        Reply.json({"code": 3, "description": "任务不存在"}, status=404),
    ],
)
async def test_fetch_unknown_id_is_task_not_found(
    server: RecordingServer, make_session: Any, reply: Reply
) -> None:
    server.add("GET", FETCH, reply, Reply.json({"id": TID}))
    mj = await make_session()  # retries allowed: "not found" is an answer, not retried
    with pytest.raises(TaskNotFound) as info:
        await mj.fetch(TID)
    assert info.value.task_id == TID
    assert TID in str(info.value)
    assert len(server.requests) == 1


async def test_list_204_is_empty(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/mj/task/list-by-condition", Reply(status=204))
    server.add("GET", FETCH, Reply(status=204))
    mj = await _never(make_session)
    assert await mj.fetch_many([TID]) == []


# ---------------------------------------------------------------------------
# Unreadable bodies


@pytest.mark.parametrize("body", [b"{not json", b"<html>502 Bad Gateway</html>", b'{"id": 1'])
async def test_fetch_malformed_json(
    server: RecordingServer, make_session: Any, body: bytes
) -> None:
    server.add("GET", FETCH, Reply.raw(body, content_type="application/json"))
    mj = await _never(make_session)
    with pytest.raises(DecodeError):
        await mj.fetch(TID)


async def test_list_malformed_json(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/mj/task/list-by-condition", Reply.raw(b"[{", content_type="text/plain"))
    mj = await _never(make_session)
    with pytest.raises(DecodeError):
        await mj.fetch_many([TID])


async def test_submit_malformed_json_warns_it_may_have_been_accepted(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", IMAGINE, Reply.raw(b"<html>ok</html>", content_type="text/html"))
    mj = await _never(make_session)
    with pytest.raises(DecodeError) as info:
        await mj.imagine("x")
    assert "may have accepted" in str(info.value)
    assert info.value.body == "<html>ok</html>"


# ---------------------------------------------------------------------------
# Messages of the wait errors


def test_wait_error_messages() -> None:
    task = Task(id="9", status="FAILURE", action="IMAGINE", fail_reason="可能包含敏感词")
    failed = TaskFailed(task)
    assert failed.task is task
    assert failed.reason == "可能包含敏感词"
    assert "可能包含敏感词" in str(failed) and "9" in str(failed)
    running = Task(id="9", status="IN_PROGRESS", progress="46%")
    timeout = TaskTimeout("9", 0.3, running)
    assert timeout.task is running
    assert "IN_PROGRESS 46%" in str(timeout)
    assert "wait on it again" in str(timeout)
    assert "no snapshot" in str(TaskTimeout("9", 1, None))
    missing = ButtonNotFound("9", "U5", ["U1", "U2"])
    assert "U1, U2" in str(missing)
    assert repr(missing).startswith("ButtonNotFound(")
