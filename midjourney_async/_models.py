"""Wire models: the Task every dialect decodes into, buttons, submit results and
one request struct per endpoint.

Decoding is the hot path of the poller (thousands of tasks a tick), so the
proxy dialect decodes straight into :class:`Task` with a decoder built once,
and ``Task.__post_init__`` only does the few dict look-ups that turn wire
strings into enums. Bodies that do not fit the strict types (a numeric id, ISO
timestamps, nulls where lists belong) take a slower tolerant path instead of
failing: see :func:`decode_task`.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime
from typing import Any, Final

import msgspec
from msgspec.structs import force_setattr

from ._errors import DecodeError

__all__ = [
    "ActionRequest",
    "BlendRequest",
    "Button",
    "ChangeRequest",
    "DescribeRequest",
    "EditsRequest",
    "ImagineRequest",
    "MediaRef",
    "ModalRequest",
    "ShortenRequest",
    "SimpleChangeRequest",
    "SubmitResult",
    "SwapFaceRequest",
    "Task",
    "TaskAction",
    "TaskStatus",
    "UploadRequest",
    "VideoRequest",
]


class TaskStatus(str, enum.Enum):
    """Known task statuses. A ``Task.status`` the library does not know stays a plain str."""

    NOT_START = "NOT_START"
    SUBMITTED = "SUBMITTED"
    IN_PROGRESS = "IN_PROGRESS"
    MODAL = "MODAL"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCEL = "CANCEL"

    def __str__(self) -> str:
        return self.value


class TaskAction(str, enum.Enum):
    """Known task actions across the servers (novicezk, trueai, new-api labels)."""

    IMAGINE = "IMAGINE"
    UPSCALE = "UPSCALE"
    VARIATION = "VARIATION"
    REROLL = "REROLL"
    DESCRIBE = "DESCRIBE"
    BLEND = "BLEND"
    ZOOM = "ZOOM"
    PAN = "PAN"
    SHORTEN = "SHORTEN"
    ACTION = "ACTION"
    OUTPAINT = "OUTPAINT"
    INPAINT = "INPAINT"
    SHOW = "SHOW"
    SWAP_FACE = "SWAP_FACE"
    SWAP_VIDEO_FACE = "SWAP_VIDEO_FACE"
    VIDEO = "VIDEO"
    VIDEO_EXTEND = "VIDEO_EXTEND"
    EDIT = "EDIT"
    EDITS = "EDITS"
    RETEXTURE = "RETEXTURE"
    PIC_READER = "PIC_READER"
    UPSCALE_HD = "UPSCALE_HD"
    HIGH_VARIATION = "HIGH_VARIATION"
    LOW_VARIATION = "LOW_VARIATION"
    CUSTOM_ZOOM = "CUSTOM_ZOOM"
    MODAL = "MODAL"
    UPLOAD = "UPLOAD"

    def __str__(self) -> str:
        return self.value


_STATUSES: Final[dict[str, TaskStatus]] = {s.value: s for s in TaskStatus}
_STATUSES[""] = TaskStatus.NOT_START
_ACTIONS: Final[dict[str, TaskAction]] = {a.value: a for a in TaskAction}

#: Rank of each status in the forward-only order; unknown statuses rank as running.
STATUS_RANK: Final[dict[str, int]] = {
    TaskStatus.NOT_START: 0,
    TaskStatus.SUBMITTED: 1,
    TaskStatus.IN_PROGRESS: 2,
    TaskStatus.MODAL: 2,
    TaskStatus.SUCCESS: 3,
    TaskStatus.FAILURE: 3,
    TaskStatus.CANCEL: 3,
}
TERMINAL: Final[frozenset[str]] = frozenset(
    {TaskStatus.SUCCESS, TaskStatus.FAILURE, TaskStatus.CANCEL}
)

_PERCENT = re.compile(r"\s*(\d{1,3})(?:\.\d+)?\s*%")


_PERCENT_MEMO: dict[str, int | None] = {}


def parse_percent(progress: str | None) -> int | None:
    """``"46%"`` -> 46; anything that is not a percentage -> None."""
    if not progress:
        return None
    # Servers send a few dozen distinct strings ("0%".."100%"): a memo spares
    # the regex on the decoding hot path.
    try:
        return _PERCENT_MEMO[progress]
    except KeyError:
        pass
    m = _PERCENT.match(progress)
    value = min(int(m.group(1)), 100) if m else None
    if len(_PERCENT_MEMO) < 4096:
        _PERCENT_MEMO[progress] = value
    return value


# Epoch seconds stay below 1e11 until the year 5138; epoch milliseconds are above.
_MS_FLOOR: Final = 100_000_000_000
# Describe and shorten number their prompts with keycap emoji: 1️⃣ ... 5️⃣.
_KEYCAP: Final = re.compile("[1-9]\ufe0f?\u20e3")

# Bound look-ups for Task.__post_init__, which runs once per decoded task.
_status_of = _STATUSES.get
_action_of = _ACTIONS.get
_percent_of = _PERCENT_MEMO.get


class Button(msgspec.Struct, frozen=True, rename="camel", gc=False):
    """A follow-up button of a finished task (U1, V2, 🔄, Zoom Out 2x, ...).

    ``custom_id`` is what ``/submit/action`` needs; ``label`` and ``emoji`` are what
    Discord shows (reroll and pans have an empty label and an emoji).
    """

    custom_id: str
    emoji: str = ""
    label: str = ""
    type: int = 2
    style: int = 2

    @property
    def name(self) -> str:
        """The label, or the emoji for buttons without one."""
        return self.label or self.emoji or self.custom_id


class MediaRef(msgspec.Struct, frozen=True, gc=False):
    """One entry of the wire's ``imageUrls`` / ``videoUrls`` lists."""

    url: str
    thumbnail: str | None = None


class Task(msgspec.Struct, frozen=True, rename="camel", gc=False):
    """A snapshot of one task, the same whatever dialect it came from.

    ``status`` and ``action`` hold :class:`TaskStatus` / :class:`TaskAction`
    members when the value is known (they are ``str`` subclasses, so
    ``task.status == "SUCCESS"`` works too) and the server's own string
    otherwise. An empty status (new-api before its first refresh) reads as
    ``NOT_START``. Times are epoch milliseconds.

    Example::

        task = await handle.wait()
        if task.status is TaskStatus.SUCCESS:
            print(task.image_url, [b.name for b in task.buttons])
    """

    id: str
    status: str = TaskStatus.NOT_START
    action: str | None = None
    progress: str | None = None
    progress_percent: int | None = None
    prompt: str | None = None
    prompt_en: str | None = None
    description: str | None = None
    state: str | None = None
    submit_time: int | None = None
    start_time: int | None = None
    finish_time: int | None = None
    image_url: str | None = None
    image_url_refs: list[str | MediaRef] | None = msgspec.field(default=None, name="imageUrls")
    video_url: str | None = None
    video_url_refs: list[str | MediaRef] | None = msgspec.field(default=None, name="videoUrls")
    buttons: list[Button] = msgspec.field(default_factory=list)
    fail_reason: str | None = None
    parent_id: str | None = None
    properties: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        known = _status_of(self.status)
        if known is not None:
            force_setattr(self, "status", known)
        action = self.action
        if action is not None:
            known_action = _action_of(action)
            if known_action is not None:
                force_setattr(self, "action", known_action)
        progress = self.progress
        if progress:
            percent = _percent_of(progress)
            if percent is None:
                percent = parse_percent(progress)
            force_setattr(self, "progress_percent", percent)
        elif known is TaskStatus.SUCCESS:
            force_setattr(self, "progress_percent", 100)
        # Epoch seconds (below 1e11) decoded straight from the wire become ms, as in
        # to_epoch_ms on the tolerant path. Servers send all three times in one unit,
        # so the submit time alone decides whether the rare fix-up runs.
        s, b, f = self.submit_time, self.start_time, self.finish_time
        if (
            (s is not None and s < _MS_FLOOR)
            or (b is not None and b < _MS_FLOOR)
            or (f is not None and f < _MS_FLOOR)
        ):
            self._normalise_times()
        # Servers send "" where they mean "nothing"; users should test for None only.
        if self.image_url == "":
            force_setattr(self, "image_url", None)
        if self.fail_reason == "":
            force_setattr(self, "fail_reason", None)

    def _normalise_times(self) -> None:
        # new-api sends Go's zero value (0) for "not yet": that is no time at all.
        for name in ("submit_time", "start_time", "finish_time"):
            t = getattr(self, name)
            if t is not None and t <= 0:
                force_setattr(self, name, None)
            elif t is not None and t < _MS_FLOOR:
                force_setattr(self, name, t * 1000)

    @property
    def image_urls(self) -> list[str]:
        """The separate image URLs some servers add (four for a grid, edits); often empty."""
        refs = self.image_url_refs
        if not refs:
            return []
        return [r if isinstance(r, str) else r.url for r in refs if r]

    @property
    def video_urls(self) -> list[str]:
        """Video URLs of a VIDEO task (``videoUrls``, or the single ``videoUrl``)."""
        refs = self.video_url_refs
        if refs:
            return [r if isinstance(r, str) else r.url for r in refs if r]
        return [self.video_url] if self.video_url else []

    @property
    def final_prompt(self) -> str | None:
        """The prompt as Midjourney rendered it (``properties.finalPrompt``)."""
        value = self.properties.get("finalPrompt")
        return value if isinstance(value, str) else None

    @property
    def prompts(self) -> list[str]:
        """The numbered prompts a describe or shorten task answered with; else empty."""
        for text in (self.final_prompt, self.prompt_en, self.description, self.prompt):
            if text and _KEYCAP.search(text):
                parts = _KEYCAP.split(text)[1:]
                return [" ".join(p.split()) for p in parts if p.strip()]
        return []

    @property
    def is_terminal(self) -> bool:
        """True once the task reached SUCCESS, FAILURE or CANCEL."""
        return self.status in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        """A plain snake_case dict of the public view, for JSON output and logs."""
        return {
            "id": self.id,
            "status": str(self.status),
            "action": None if self.action is None else str(self.action),
            "progress": self.progress,
            "progress_percent": self.progress_percent,
            "prompt": self.prompt,
            "prompt_en": self.prompt_en,
            "description": self.description,
            "state": self.state,
            "submit_time": self.submit_time,
            "start_time": self.start_time,
            "finish_time": self.finish_time,
            "image_url": self.image_url,
            "image_urls": self.image_urls,
            "video_urls": self.video_urls,
            "buttons": [
                {"custom_id": b.custom_id, "label": b.label, "emoji": b.emoji}
                for b in self.buttons
            ],
            "fail_reason": self.fail_reason,
            "prompts": self.prompts,
            "parent_id": self.parent_id,
            "properties": self.properties,
        }


class SubmitResult(msgspec.Struct, frozen=True):
    """What a submit endpoint answered, once accepted.

    ``code`` is the server's code (1, 21 or 22), ``task_id`` the new task,
    ``task_ids`` every id when a server returns several, ``queue_position`` the
    number of tasks ahead (code 22), ``urls`` the result of an upload.
    """

    code: int
    description: str = ""
    task_id: str | None = None
    task_ids: list[str] = msgspec.field(default_factory=list)
    urls: list[str] = msgspec.field(default_factory=list)
    queue_position: int | None = None
    properties: dict[str, Any] = msgspec.field(default_factory=dict)


# ---------------------------------------------------------------------------
# Request bodies: one struct per endpoint, encoded in camelCase, empty fields left out.


class _Req(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    notify_hook: str | None = None
    state: str | None = None


class ImagineRequest(_Req, kw_only=True):
    """Body of ``/submit/imagine``."""

    prompt: str
    base64_array: list[str] | None = None
    bot_type: str | None = None


class ActionRequest(_Req, kw_only=True):
    """Body of ``/submit/action``: press ``custom_id`` on ``task_id``."""

    task_id: str
    custom_id: str
    enable_remix: bool | None = None


class BlendRequest(_Req, kw_only=True):
    """Body of ``/submit/blend``: 2-5 images, dimensions PORTRAIT, SQUARE or LANDSCAPE."""

    base64_array: list[str]
    dimensions: str | None = None


class DescribeRequest(_Req, kw_only=True):
    """Body of ``/submit/describe``: one image as base64 data URL or a link."""

    base64: str | None = None
    link: str | None = None


class ModalRequest(_Req, kw_only=True):
    """Body of ``/submit/modal``: the MODAL task's id, a prompt and, for Vary (Region), a mask."""

    task_id: str
    prompt: str | None = None
    mask_base64: str | None = None


class ShortenRequest(_Req, kw_only=True):
    """Body of ``/submit/shorten``."""

    prompt: str


class ChangeRequest(_Req, kw_only=True):
    """Body of ``/submit/change``: UPSCALE, VARIATION or REROLL with an index 1-4."""

    task_id: str
    action: str
    index: int | None = None


class SimpleChangeRequest(_Req, kw_only=True):
    """Body of ``/submit/simple-change``: ``content = "<task id> U2"``."""

    content: str


class UploadRequest(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Body of ``/submit/upload-discord-images``."""

    base64_array: list[str]


class VideoRequest(_Req, kw_only=True):
    """Body of ``/submit/video``."""

    prompt: str | None = None
    motion: str | None = None
    image: str | None = None
    end_image: str | None = None
    loop: bool | None = None
    action: str | None = None
    task_id: str | None = None
    index: int | None = None
    video_type: str | None = None
    batch_size: int | None = None


class EditsRequest(_Req, kw_only=True):
    """Body of ``/submit/edits``: a prompt and one image (URL or data URL)."""

    prompt: str
    image: str


class SwapFaceRequest(_Req, kw_only=True):
    """Body of ``/insight-face/swap``."""

    source_base64: str
    target_base64: str


# ---------------------------------------------------------------------------
# Decoding

_task_decoder: Final = msgspec.json.Decoder(Task)
_task_list_decoder: Final = msgspec.json.Decoder(list[Task])
_any_decoder: Final = msgspec.json.Decoder()
_encoder: Final = msgspec.json.Encoder()

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


def encode(value: Any) -> bytes:
    """JSON-encode a request struct or plain data with the shared encoder."""
    return _encoder.encode(value)


def snippet(body: bytes, limit: int = 300) -> str:
    """The start of a body as text, for error messages."""
    text = body[:limit].decode("utf-8", "replace")
    return text + ("..." if len(body) > limit else "")


def to_epoch_ms(value: Any) -> int | None:
    """Epoch ms from epoch ms/s numbers, digit strings or ISO-8601 strings."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            return None
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
                return int(parsed.timestamp() * 1000)
            except (ValueError, OverflowError, OSError):
                # Not ISO, or a date the platform cannot place (year 1, naive times).
                return None
    else:
        return None
    ms = number * 1000 if number < _MS_FLOOR else number
    # Zero or less (new-api's Go zero value), NaN, infinities and values past int64
    # are no time at all (NaN fails the comparison too).
    if not 0 < ms < 9.2e18:
        return None
    return int(ms)


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
        raise DecodeError(f"task object could not be read: {exc}") from exc


def _loads(body: bytes) -> Any:
    try:
        return _any_decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        # msgspec raises UnicodeDecodeError for invalid UTF-8 inside a string.
        raise DecodeError(f"body is not valid JSON: {exc}", body=snippet(body)) from exc


def is_empty(body: bytes) -> bool:
    """True for the bodies servers use to say "nothing": empty, blank or ``null``."""
    stripped = body.strip()
    return not stripped or stripped == b"null"


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
    obj = _loads(body)
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
    obj = _loads(body)
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


def decode_any(body: bytes) -> Any:
    """Decode any JSON body, raising :class:`DecodeError` on malformed input."""
    return _loads(body)
