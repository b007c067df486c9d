"""Every error of the tree crosses a process boundary (multiprocessing, a task
queue) intact: it pickles and unpickles with its type, message and fields."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from mj_support import RecordingServer, Reply, task_json

import midjourney_async
from midjourney_async import (
    PROVIDERS,
    AuthenticationError,
    BannedPromptError,
    ButtonNotFound,
    ConfigurationError,
    ConnectError,
    DecodeError,
    DownloadRefused,
    DownloadTooLarge,
    HTTPStatusError,
    InvalidArgument,
    InvalidRequestError,
    JournalError,
    MidjourneyError,
    ModalRequired,
    NoChannelError,
    NotFoundError,
    NotMidjourneyAPI,
    PermissionDeniedError,
    QueueFullError,
    QuotaExceeded,
    RateLimitError,
    RemixDisabled,
    RequestTimeout,
    ServerError,
    SessionClosed,
    SlotTimeout,
    SubmitNotFound,
    SubmitRejected,
    Task,
    TaskFailed,
    TaskNotFound,
    TaskTimeout,
    TransportError,
    UnsupportedOperation,
)
from midjourney_async import _errors as errors_module

FAILED = Task(id="9", status="FAILURE", fail_reason="banned")
PROPS = {"bannedWord": "x", "numberOfQueues": 3}

EXAMPLES: list[MidjourneyError] = [
    MidjourneyError("base"),
    ConfigurationError("bad option"),
    UnsupportedOperation("video", "ohmygpt"),
    TransportError("dropped", method="POST", path="/mj/submit/imagine", maybe_received=True),
    ConnectError("refused", method="GET", path="/mj/task/1/fetch"),
    RequestTimeout("slow", method="POST", path="/p", maybe_received=True),
    DecodeError("garbage", body="{x"),
    DownloadRefused("private address", url="http://10.0.0.1/a.png"),
    DownloadTooLarge("too big", url="http://cdn/a.png", max_bytes=100, size=5000),
    HTTPStatusError("teapot", status=418, body="short and stout"),
    AuthenticationError("401", status=401, body="no"),
    PermissionDeniedError("403", status=403),
    NotFoundError("404", status=404, body="gone"),
    RateLimitError("429", body="later", retry_after=2.5),
    ServerError("503", status=503, body="down"),
    NoChannelError("no channel", status=503, body="无可用渠道"),
    NotMidjourneyAPI("a web page", status=200, content_type="text/html", url="http://h/mj"),
    QuotaExceeded("quota", code=4, description="用户今日绘图次数已达上限"),
    RemixDisabled("remix off", code=4, description="当前账号不支持 remix"),
    UnsupportedOperation("zoom", "proxy", "only U/V/reroll here"),
    SubmitRejected("no", code=9, description="nope", properties=PROPS),
    QueueFullError("full", code=23, description="queue full"),
    BannedPromptError("banned", code=24, description="b", properties=PROPS, banned_word="x"),
    InvalidRequestError("bad", code=4, description="blank prompt"),
    InvalidArgument("prompt must not be empty (nothing was sent)"),
    SubmitNotFound("missing parent", code=3, description="not found", status=400),
    TaskNotFound("123"),
    TaskFailed(FAILED),
    TaskTimeout("9", 30.0, FAILED),
    SessionClosed("9"),
    SessionClosed(None),
    SlotTimeout(3, 30.0),
    JournalError(["9"], "disk full"),
    JournalError([], "disk full"),
    ButtonNotFound("9", "U5", ["U1", "U2"]),
]


def _fields(error: BaseException) -> dict[str, Any]:
    return {k: v for k, v in vars(error).items() if k != "handle"}


def test_every_class_of_the_tree_has_an_example() -> None:
    classes = {getattr(errors_module, name) for name in errors_module.__all__}
    assert classes == {type(e) for e in EXAMPLES} | {ModalRequired}
    exported = {name for name in errors_module.__all__}
    assert exported <= set(midjourney_async.__all__)


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
def test_errors_pickle_with_their_fields(error: MidjourneyError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert repr(copy) == repr(error)
    assert copy.args == error.args
    assert _fields(copy) == _fields(error)
    assert _fields(copy)  # at least the message travels as a field


async def test_modal_required_pickles_with_its_task_id_not_its_session(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", "/mj/task/list-by-condition", Reply.json([task_json("5", status="MODAL")]))
    mj = await make_session()
    with pytest.raises(ModalRequired) as info:
        await mj.handle("5").wait(timeout=5)
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is ModalRequired
    assert copy.task_id == info.value.task_id == "5"
    assert str(copy) == str(info.value)
    assert copy.handle is None  # a handle belongs to a live session


def test_provider_presets_are_read_only() -> None:
    with pytest.raises(TypeError):
        PROVIDERS["mine"] = PROVIDERS["trueai"]  # type: ignore[index]
    with pytest.raises(TypeError):
        del PROVIDERS["trueai"]  # type: ignore[attr-defined]
    assert "mine" not in PROVIDERS and "trueai" in PROVIDERS
