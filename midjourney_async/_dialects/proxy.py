"""The midjourney-proxy dialect: novicezk (Java), trueai (C#) and the new-api relays.

Routes live under ``/mj`` (or a mode prefix such as ``/mj-fast/mj``); bodies
are camelCase JSON; submits answer ``{code, description, result, properties}``.
The servers disagree on how they say "no such task" (empty 200, 204, null,
new-api's HTTP 400 ``task_no_found``) and on error shapes (trueai's
``{success:false, code, message}``, new-api's HTTP 400 ``{code, description,
type}``); all of them map onto the same errors here.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final
from urllib.parse import quote

import msgspec

from .._errors import (
    DecodeError,
    HTTPStatusError,
    InvalidRequestError,
    MidjourneyError,
    NoChannelError,
    SubmitRejected,
    TaskNotFound,
)
from .._http import HttpRequest, HttpResponse, status_error
from .._models import Button, RowHead, SubmitResult, Task, normalise_head
from ._base import (
    ACCEPTED_CODES,
    ROW_LIST_DECODER,
    Dialect,
    ListRows,
    as_int,
    foreign,
    is_foreign_json,
    is_foreign_page,
    rejection,
)
from ._json import decode_any, encode, is_empty, snippet, to_epoch_ms, too_deep

__all__ = ["ProxyDialect", "decode_task", "decode_task_list", "task_from_obj"]

_SUBMIT_PATHS: Final = {
    "imagine": "/submit/imagine",
    "action": "/submit/action",
    "blend": "/submit/blend",
    "describe": "/submit/describe",
    "modal": "/submit/modal",
    "shorten": "/submit/shorten",
    "change": "/submit/change",
    "simple-change": "/submit/simple-change",
    "upload-discord-images": "/submit/upload-discord-images",
    "video": "/submit/video",
    "edits": "/submit/edits",
    "swap-face": "/insight-face/swap",
}

# How the servers themselves say "no such task". A bare "Not Found" is a web
# framework's answer to a wrong path (base URL or mode prefix), not a task answer.
_NOT_FOUND_WORDS: Final = ("task_no_found", "task_not_found", "不存在")
# new-api's "no channel serves this model" (English and Chinese builds).
_NO_CHANNEL_WORDS: Final = ("无可用渠道", "no available channel", "no channel available")
_UNKNOWN_ACTION: Final = re.compile(r"unknown_action:?\s*([^\s\"',}]*)")
# trueai's image-seed failures for a task that exists: code 3 too, but not "no such task".
_SEED_FAILURE_WORDS: Final = ("seed", "账号实例")


def _first_code(text: str) -> tuple[int | None, str]:
    """The code and description of the first JSON object in ``text`` (older new-api
    builds write a Midjourney-shaped body and an OpenAI-shaped one back to back)."""
    try:
        obj, _ = json.JSONDecoder().raw_decode(text.lstrip())
    except ValueError:
        return None, ""
    if not isinstance(obj, dict):
        return None, ""
    error = obj.get("error")
    message = obj.get("description") or (error.get("message") if isinstance(error, dict) else "")
    return as_int(obj.get("code")), str(message or "")


def _relay_refusal(op: str, resp: HttpResponse) -> MidjourneyError | None:
    """new-api's own refusals, recognised in the text whatever shape or locale wraps them."""
    text = resp.text()
    found = _UNKNOWN_ACTION.search(text)
    if found is not None:
        button = found.group(1)
        named = f" {button}" if button else ""
        code, description = _first_code(text)
        return InvalidRequestError(
            f"{op}: the relay cannot pass on the button{named} (unknown_action): it maps "
            "only the buttons it knows; nothing was created",
            code=code,
            description=description or text,
        )
    if resp.status >= 500 and any(word in text.lower() for word in _NO_CHANNEL_WORDS):
        return NoChannelError(
            f"{op}: the relay has no upstream channel for this model (HTTP {resp.status}); "
            f"nothing was created: its operator must add one, or use another mode: {text}",
            status=resp.status,
            body=text,
        )
    return None


# ---------------------------------------------------------------------------
# Decoding: straight into Task with decoders built once; bodies that do not fit
# the strict types (a numeric id, ISO timestamps, nulls where lists belong) take
# a slower tolerant path instead of failing.

_task_decoder: Final = msgspec.json.Decoder(Task)
_task_list_decoder: Final = msgspec.json.Decoder(list[Task])
_head_decoder: Final = msgspec.json.Decoder(RowHead)
_head_list_decoder: Final = msgspec.json.Decoder(list[RowHead])

_STR_FIELDS: Final = (
    "action",
    "progress",
    "prompt",
    "promptEn",
    "description",
    "state",
    "imageUrl",
    "videoUrl",
    "failReason",
    "parentId",
)
_TIME_FIELDS: Final = ("submitTime", "startTime", "finishTime")


def _as_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)):
        return str(value)
    return None


def _media(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value] if value else None
    if not isinstance(value, list):
        return None
    urls: list[str] = []
    for item in value:
        if isinstance(item, str) and item:
            urls.append(item)
        elif isinstance(item, dict) and isinstance(item.get("url"), str) and item["url"]:
            urls.append(item["url"])
    return urls


def _button(raw: Any) -> Button | None:
    if not isinstance(raw, dict):
        return None
    custom_id = _as_str(raw.get("customId") or raw.get("custom_id"))
    if not custom_id:
        return None
    kind = raw.get("type")
    style = raw.get("style")
    return Button(
        custom_id=custom_id,
        emoji=_as_str(raw.get("emoji")) or "",
        label=_as_str(raw.get("label")) or "",
        type=kind if isinstance(kind, int) and not isinstance(kind, bool) else 2,
        style=style if isinstance(style, int) and not isinstance(style, bool) else 2,
    )


def task_from_obj(obj: Any) -> Task:
    """Build a Task from already-decoded proxy-style JSON, tolerating odd types.

    Raises :class:`DecodeError` when ``obj`` is not a task at all.
    """
    if not isinstance(obj, dict):
        raise DecodeError(f"expected a task object, got {type(obj).__name__}")
    task_id = _as_str(obj.get("id"))
    if not task_id:
        raise DecodeError("task object has no id")
    fields: dict[str, Any] = {"id": task_id}
    status = _as_str(obj.get("status"))
    if status is not None:
        fields["status"] = status
    for name in _STR_FIELDS:
        value = _as_str(obj.get(name))
        if value is not None:
            fields[name] = value
    for name in _TIME_FIELDS:
        ms = to_epoch_ms(obj.get(name))
        if ms is not None:
            fields[name] = ms
    for name in ("imageUrls", "videoUrls"):
        urls = _media(obj.get(name))
        if urls is not None:
            fields[name] = urls
    raw_buttons = obj.get("buttons")
    if isinstance(raw_buttons, list):
        fields["buttons"] = [b for b in map(_button, raw_buttons) if b is not None]
    props = obj.get("properties")
    if isinstance(props, dict):
        fields["properties"] = props
    try:
        return msgspec.convert(fields, Task)
    except msgspec.ValidationError as exc:  # pragma: no cover - fields are cleaned above
        raise DecodeError(f"task object could not be read: {exc}") from None
    except RecursionError:
        raise DecodeError("task object is nested too deeply") from None


def decode_task(body: bytes) -> Task | None:
    """Decode one proxy-style task; None for an empty body or ``null``.

    Example::

        task = decode_task(b'{"id": "1", "status": "SUCCESS"}')
    """
    try:
        return _task_decoder.decode(body)
    except msgspec.ValidationError:
        pass
    except (msgspec.DecodeError, UnicodeDecodeError):
        if is_empty(body):
            return None
        raise DecodeError("task body is not valid JSON", body=snippet(body)) from None
    except RecursionError:
        raise too_deep(body) from None
    obj = decode_any(body)
    if obj is None:
        return None
    try:
        return task_from_obj(obj)
    except DecodeError as exc:
        raise DecodeError(exc.message, body=snippet(body)) from None


def decode_task_list(body: bytes) -> list[Task]:
    """Decode a list-by-condition answer. Entries that are not tasks are skipped."""
    try:
        return _task_list_decoder.decode(body)
    except msgspec.ValidationError:
        pass
    except (msgspec.DecodeError, UnicodeDecodeError):
        if is_empty(body):
            return []
        raise DecodeError("task list body is not valid JSON", body=snippet(body)) from None
    except RecursionError:
        raise too_deep(body) from None
    obj = decode_any(body)
    if obj is None:
        return []
    if not isinstance(obj, list):
        raise DecodeError("expected a JSON array of tasks", body=snippet(body))
    tasks: list[Task] = []
    for item in obj:
        try:
            tasks.append(task_from_obj(item))
        except DecodeError:
            continue
    return tasks


def _decode_fetched(body: bytes) -> Task | None:
    """The task a fetch answered: an object, or a one-element list (seen in the wild)."""
    try:
        return decode_task(body)
    except DecodeError:
        obj = decode_any(body)
        if not (isinstance(obj, list) and len(obj) == 1):
            raise
        return task_from_obj(obj[0])


class _Accepted(msgspec.Struct, gc=False):
    """The usual answer to a submit: code 1 and one task id."""

    code: int
    result: str
    description: str = ""
    properties: dict[str, Any] = {}
    success: bool | None = None


_accepted_decoder: Final = msgspec.json.Decoder(_Accepted)


def _plainly_accepted(resp: HttpResponse) -> SubmitResult | None:
    """The result of the usual acceptance ({code: 1, result: "<id>", ...}), read in
    one go; None for any other answer, which the full reading of
    :meth:`ProxyDialect.parse_submit` then tells apart."""
    try:
        got = _accepted_decoder.decode(resp.body)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    task_id = got.result
    if (
        got.code != 1
        or got.success is False
        or not got.description
        or not task_id
        or "," in task_id
        or task_id.strip() != task_id
    ):
        return None
    description = resp.redact(got.description)
    # new-api rewrites 22 to 1 but keeps the position in the properties.
    ahead = as_int(got.properties.get("numberOfQueues"))
    return SubmitResult(
        code=1,
        description=description,
        task_id=task_id,
        task_ids=[task_id],
        queue_position=ahead if ahead or "排队" in description else None,
        properties=got.properties,
    )


def _quote(task_id: str) -> str:
    return quote(task_id, safe="")


def _ids(result: Any) -> list[str]:
    if isinstance(result, bool) or result is None:
        return []
    if isinstance(result, (int, float)):
        return [str(int(result))]
    if isinstance(result, str):
        # trueai answers PicReader "all" with several ids joined by commas.
        return [part.strip() for part in result.split(",") if part.strip()]
    if isinstance(result, list):
        return [str(x) for x in result if isinstance(x, (str, int)) and not isinstance(x, bool)]
    return []


def _code_of(body: bytes) -> int | None:
    """The ``code`` of a JSON error body, if it is one."""
    try:
        obj = decode_any(body)
    except DecodeError:
        return None
    return as_int(obj.get("code")) if isinstance(obj, dict) else None


def _refusal(resp: HttpResponse) -> tuple[int | None, str] | None:
    """The code and message of trueai's ``{success:false, code, message}`` shape."""
    try:
        obj = decode_any(resp.body)
    except DecodeError:
        return None
    if not isinstance(obj, dict) or obj.get("success") is not False:
        return None
    message = resp.redact(str(obj.get("message") or obj.get("description") or ""))
    return as_int(obj.get("code")), message


def _refused_read(resp: HttpResponse, what: str) -> MidjourneyError:
    """For a read whose body is not a task: trueai's refusal shape, else the decode error."""
    refused = _refusal(resp)
    if refused is None:
        try:
            obj = decode_any(resp.body)
        except DecodeError:
            obj = None
        if is_foreign_json(obj):
            return foreign(resp, what)
        return DecodeError(f"{what}: the answer is not a task: {resp.text()}", body=resp.text())
    return HTTPStatusError(
        f"{what}: the server refused: {refused[1] or 'no message'}",
        status=resp.status,
        body=resp.text(),
    )


class ProxyDialect(Dialect):
    """The midjourney-proxy family. ``root`` is e.g. ``/mj`` or ``/fast/mj``."""

    name = "proxy"
    supports_list = True

    def __init__(self, root: str = "/mj") -> None:
        self.root = root.rstrip("/")
        self._list_path = f"{self.root}/task/list-by-condition"

    def submit(
        self, op: str, body: msgspec.Struct, extra: dict[str, Any] | None = None
    ) -> HttpRequest:
        path = _SUBMIT_PATHS.get(op)
        if path is None:
            raise self.unsupported(op)
        if extra:
            payload = msgspec.to_builtins(body)
            payload.update(extra)
            data = encode(payload)
        else:
            data = encode(body)
        return HttpRequest("POST", self.root + path, "submit", json=data)

    def parse_submit(self, op: str, resp: HttpResponse) -> SubmitResult:
        status = resp.status
        if is_foreign_page(resp):
            raise foreign(resp, op, submit=True)
        if status == 200 and op != "upload-discord-images":
            accepted = _plainly_accepted(resp)
            if accepted is not None:
                return accepted
        if status >= 400:
            refused = _relay_refusal(op, resp)
            if refused is not None:
                raise refused
        if status == 429 or status in (401, 403) or status >= 500:
            raise status_error(resp, op)
        try:
            obj = decode_any(resp.body) if resp.body.strip() else None
        except DecodeError:
            if status >= 400:
                raise status_error(resp, op) from None
            raise DecodeError(
                f"{op}: the server's answer could not be read; it may have accepted the "
                "task, so look for it before submitting again",
                body=resp.text(),
            ) from None
        if not isinstance(obj, dict):
            if obj is not None:
                raise foreign(resp, op, submit=True)
            if status >= 400:
                raise status_error(resp, op)
            raise DecodeError(
                f"{op}: expected a JSON object, got {resp.text() or 'an empty body'}; the "
                "server may have accepted the task, so look for it before submitting again",
                body=resp.text(),
            )
        if obj.get("success") is False:
            # trueai's filter answers: {success:false, code, message, timestamp}.
            message = str(obj.get("message") or obj.get("description") or "")
            raise rejection(op, as_int(obj.get("code")), resp.redact(message), status=status)
        if "code" not in obj:
            if is_foreign_json(obj):
                raise foreign(resp, op, submit=True)
            if status >= 400:
                raise status_error(resp, op)
            raise DecodeError(f"{op}: the answer has no code: {resp.text()}", body=resp.text())
        code = as_int(obj.get("code"))
        description = resp.redact(str(obj.get("description") or obj.get("message") or ""))
        props = obj.get("properties")
        properties: dict[str, Any] = props if isinstance(props, dict) else {}
        if status >= 400 or code not in ACCEPTED_CODES:
            raise rejection(op, code, description, properties, status=status)
        assert code is not None
        result = obj.get("result")
        if op == "upload-discord-images":
            urls = [u for u in result if isinstance(u, str)] if isinstance(result, list) else []
            if not urls and isinstance(result, str) and result:
                urls = [result]
            return SubmitResult(code=code, description=description, urls=urls,
                                properties=properties)
        ids = _ids(result)
        if not ids:
            raise DecodeError(
                f"{op}: accepted (code {code}) but the answer carries no task id",
                body=resp.text(),
            )
        queue = as_int(properties.get("numberOfQueues")) if code == 22 else None
        if code == 1 and queue is None:
            # new-api rewrites 22 to 1 but keeps the position in the properties.
            ahead = as_int(properties.get("numberOfQueues"))
            queue = ahead if ahead or "排队" in description else None
        return SubmitResult(
            code=code,
            description=description,
            task_id=ids[0],
            task_ids=ids,
            queue_position=queue,
            properties=properties,
        )

    def fetch(self, task_id: str) -> HttpRequest:
        return HttpRequest("GET", f"{self.root}/task/{_quote(task_id)}/fetch", "read")

    def parse_fetch(self, task_id: str, resp: HttpResponse) -> Task:
        status = resp.status
        if status == 204:
            raise TaskNotFound(task_id)
        if is_foreign_page(resp):
            raise foreign(resp, f"fetch {task_id}")
        if status in (400, 404):
            text = resp.body.decode("utf-8", "replace").lower()
            if any(word in text for word in _NOT_FOUND_WORDS) or _code_of(resp.body) == 3:
                raise TaskNotFound(task_id)
            raise status_error(resp, f"fetch {task_id}")
        if status != 200:
            raise status_error(resp, f"fetch {task_id}")
        try:
            task = _decode_fetched(resp.body)
        except DecodeError:
            raise _refused_read(resp, f"fetch {task_id}") from None
        if task is None:
            raise TaskNotFound(task_id)
        if task.id != task_id:
            # Applying it would give the caller (and the journal) the wrong task.
            raise DecodeError(
                f"fetch {task_id}: the answer describes another task ({task.id}); not applied",
                body=resp.text(),
            )
        return task

    def list_tasks(self, ids: list[str]) -> HttpRequest:
        return HttpRequest("POST", self._list_path, "read", json=encode({"ids": ids}))

    def parse_list(self, resp: HttpResponse) -> list[Task]:
        if resp.status == 204:
            return []
        if is_foreign_page(resp):
            raise foreign(resp, "list-by-condition")
        if resp.status != 200:
            raise status_error(resp, "list-by-condition")
        try:
            return decode_task_list(resp.body)
        except DecodeError:
            raise _refused_read(resp, "list-by-condition") from None

    def parse_list_rows(self, resp: HttpResponse) -> list[msgspec.Raw]:
        if resp.status == 200:
            try:
                return ROW_LIST_DECODER.decode(resp.body)
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                pass
        # Not a plain array: the full parser says why, or finds no task in it.
        self.parse_list(resp)
        return []

    def decode_row(self, row: msgspec.Raw | bytes) -> Task | None:
        try:
            return _task_decoder.decode(row)
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
        try:
            return decode_task(bytes(row))
        except DecodeError:
            return None

    def parse_list_answer(self, resp: HttpResponse) -> ListRows:
        if resp.status == 200:
            try:
                heads = _head_list_decoder.decode(resp.body)
            except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError,
                    RecursionError):
                pass  # a row that is no task, an odd type: the rows alone, one by one
            else:
                return ListRows(heads=heads, body=resp.body)
        return ListRows(rows=self.parse_list_rows(resp))

    def decode_head(self, row: msgspec.Raw | bytes) -> RowHead | None:
        try:
            head = _head_decoder.decode(row)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            # An odd type in id, status or progress: the tolerant full decode copes.
            return None
        normalise_head(head)
        return head

    def image_seed(self, task_id: str) -> HttpRequest:
        return HttpRequest("GET", f"{self.root}/task/{_quote(task_id)}/image-seed", "read")

    def parse_image_seed(self, task_id: str, resp: HttpResponse) -> str:
        obj: Any = None
        if resp.body.strip():
            try:
                obj = decode_any(resp.body)
            except DecodeError:
                obj = None
        code = as_int(obj.get("code")) if isinstance(obj, dict) else None
        text = resp.body.decode("utf-8", "replace").lower()
        description = resp.redact(str(obj.get("description") or "")) if isinstance(
            obj, dict) else ""
        if code == 3 and any(word in description for word in _SEED_FAILURE_WORDS):
            raise SubmitRejected(
                f"image-seed {task_id}: the server has no seed for this task ({description}); "
                "the task itself exists",
                code=code,
                description=description,
            )
        if code == 3 or any(word in text for word in _NOT_FOUND_WORDS):
            raise TaskNotFound(task_id)
        if resp.status != 200 and code is None:
            raise status_error(resp, f"image-seed {task_id}")
        if not isinstance(obj, dict):
            raise DecodeError(f"image-seed {task_id}: unreadable answer", body=resp.text())
        result = obj.get("result")
        if code == 1 and isinstance(result, (str, int)) and not isinstance(result, bool):
            return str(result)
        description = resp.redact(str(obj.get("description") or ""))
        raise rejection(f"image-seed {task_id}", code, description)

    def cancel(self, task_id: str) -> HttpRequest:
        return HttpRequest("POST", f"{self.root}/task/{_quote(task_id)}/cancel", "submit")

    def image(self, task_id: str) -> HttpRequest:
        return HttpRequest("GET", f"{self.root}/image/{_quote(task_id)}", "read")

    def parse_notification(self, body: bytes) -> Task:
        task = decode_task(body)
        if task is None:
            raise DecodeError("the callback body holds no task")
        return task
