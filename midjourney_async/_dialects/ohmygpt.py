"""OhMyGPT's own dialect.

``POST /api/v1/ai/draw/mj/{imagine,action,blend,describe,query}``, form bodies
carrying ``model=midjourney`` and ``type`` (FAST or NORMAL), the envelope
``{statusCode, message, data}``, integer task ids, ISO-8601 times, ``actions``
instead of ``buttons`` and ``imageDcUrl`` / ``imageS3Url`` instead of
``imageUrl``. There is no list endpoint: the tracker fetches one id at a time.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from .._errors import DecodeError, TaskNotFound
from .._http import HttpRequest, HttpResponse, status_error
from .._models import (
    ActionRequest,
    BlendRequest,
    Button,
    DescribeRequest,
    ImagineRequest,
    SubmitResult,
    Task,
    redact_hook,
)
from ._base import Dialect, as_int, rejection
from ._json import decode_any, encode, to_epoch_ms

_ROOT: Final = "/api/v1/ai/draw/mj"
_NOT_FOUND_WORDS: Final = ("not found", "not exist", "不存在", "no such")


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def task_from_ohmygpt(data: dict[str, Any]) -> Task:
    """Build a Task from the ``data`` object of an OhMyGPT query or callback."""
    task_id = _str(data.get("taskId") if "taskId" in data else data.get("id"))
    if not task_id:
        raise DecodeError("OhMyGPT task has no taskId")
    buttons: list[Button] = []
    actions = data.get("actions")
    for raw in actions if isinstance(actions, list) else ():
        if isinstance(raw, dict) and isinstance(raw.get("customId"), str) and raw["customId"]:
            buttons.append(
                Button(
                    custom_id=raw["customId"],
                    emoji=_str(raw.get("emoji")) or "",
                    label=_str(raw.get("label")) or "",
                )
            )
    properties: dict[str, Any] = {}
    for key in ("taskType", "webhookUrl", "imageDcUrl", "imageS3Url", "finalPrompt"):
        if data.get(key) is not None:
            properties[key] = data[key]
    if "webhookUrl" in properties:
        # Its path holds the receiver's secret token.
        properties["webhookUrl"] = redact_hook(properties["webhookUrl"])
    # The S3 copy outlives Discord's expiring attachment links, so prefer it.
    image = _str(data.get("imageS3Url")) or _str(data.get("imageDcUrl")) or _str(
        data.get("imageUrl")
    )
    return Task(
        id=task_id,
        status=_str(data.get("status")) or "",
        action=_str(data.get("action")),
        progress=_str(data.get("progress")),
        prompt=_str(data.get("prompt")),
        prompt_en=_str(data.get("promptEn")),
        description=_str(data.get("description")),
        state=_str(data.get("state")),
        submit_time=to_epoch_ms(data.get("submitTime")),
        start_time=to_epoch_ms(data.get("startTime")),
        finish_time=to_epoch_ms(data.get("finishTime")),
        image_url=image,
        buttons=buttons,
        fail_reason=_str(data.get("failReason")),
        properties=properties,
    )


class OhMyGPTDialect(Dialect):
    """OhMyGPT. ``mode`` "fast" (default) or "relax" becomes ``type`` FAST or NORMAL."""

    name = "ohmygpt"
    supports_list = False

    def __init__(self, mode: str | None = None) -> None:
        self.speed = "NORMAL" if mode in ("relax", "normal") else "FAST"

    def _request(self, op: str, fields: dict[str, Any]) -> HttpRequest:
        payload = {"model": "midjourney", "type": self.speed, **fields}
        path = f"{_ROOT}/{op}"
        if any(isinstance(v, list) for v in payload.values()):
            # Arrays do not fit a form body; the endpoints take JSON as well.
            return HttpRequest("POST", path, "submit", json=encode(payload))
        form = {k: str(v) for k, v in payload.items() if v is not None}
        return HttpRequest("POST", path, "submit", form=form)

    def submit(
        self, op: str, body: msgspec.Struct, extra: dict[str, Any] | None = None
    ) -> HttpRequest:
        fields: dict[str, Any]
        if op == "imagine" and isinstance(body, ImagineRequest):
            fields = {"prompt": body.prompt}
            if body.base64_array:
                fields["base64Array"] = body.base64_array
        elif op == "action" and isinstance(body, ActionRequest):
            fields = {"taskId": body.task_id, "customId": body.custom_id}
        elif op == "blend" and isinstance(body, BlendRequest):
            fields = {"base64Array": body.base64_array}
            if body.dimensions:
                fields["dimensions"] = body.dimensions
        elif op == "describe" and isinstance(body, DescribeRequest):
            if not body.base64:
                raise self.unsupported("describe from a link (send the image as base64)")
            fields = {"base64": body.base64}
        else:
            raise self.unsupported(op)
        hook = getattr(body, "notify_hook", None)
        if hook:
            fields["webhook"] = hook
        if extra:
            fields.update(extra)
        return self._request(op, fields)

    def _envelope(self, what: str, resp: HttpResponse) -> dict[str, Any]:
        if resp.status != 200:
            raise status_error(resp, what)
        obj = decode_any(resp.body) if resp.body.strip() else None
        if not isinstance(obj, dict) or "statusCode" not in obj:
            raise DecodeError(f"{what}: expected the OhMyGPT envelope", body=resp.text())
        return obj

    def parse_submit(self, op: str, resp: HttpResponse) -> SubmitResult:
        obj = self._envelope(op, resp)
        code = as_int(obj.get("statusCode"))
        message = resp.redact(str(obj.get("message") or ""))
        if code != 200:
            raise rejection(op, code, message)
        task_id = _str(obj.get("data"))
        if not task_id:
            raise DecodeError(f"{op}: accepted but no task id in data", body=resp.text())
        return SubmitResult(code=1, description=message, task_id=task_id, task_ids=[task_id])

    def fetch(self, task_id: str) -> HttpRequest:
        form = {"model": "midjourney", "taskId": task_id}
        return HttpRequest("POST", f"{_ROOT}/query", "read", form=form)

    def parse_fetch(self, task_id: str, resp: HttpResponse) -> Task:
        if resp.status in (204, 404) and not resp.body.strip():
            raise TaskNotFound(task_id)
        obj = self._envelope(f"query {task_id}", resp)
        data = obj.get("data")
        if as_int(obj.get("statusCode")) != 200 or not isinstance(data, dict):
            message = resp.redact(str(obj.get("message") or ""))
            if any(word in message.lower() for word in _NOT_FOUND_WORDS):
                raise TaskNotFound(task_id)
            raise rejection(f"query {task_id}", as_int(obj.get("statusCode")), message)
        task = task_from_ohmygpt(data)
        if task.id != task_id:
            # Applying it would give the caller (and the journal) the wrong task.
            raise DecodeError(
                f"query {task_id}: the answer describes another task ({task.id}); not applied",
                body=resp.text(),
            )
        return task

    def parse_notification(self, body: bytes) -> Task:
        obj = decode_any(body)
        if isinstance(obj, dict) and isinstance(obj.get("data"), dict):
            obj = obj["data"]
        if not isinstance(obj, dict):
            raise DecodeError("the callback body holds no task")
        return task_from_ohmygpt(obj)
