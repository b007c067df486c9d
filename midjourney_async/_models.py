"""Wire models: the Task every dialect decodes into, buttons, submit results and
one request struct per endpoint.

The models know no wire format: each dialect (``_dialects/``) turns bytes into
them. Decoding is the hot path of the poller (thousands of tasks a tick), so
``Task.__post_init__`` only does the few dict look-ups that turn wire strings
into enums.
"""

from __future__ import annotations

import enum
import re
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec
from msgspec.structs import force_setattr

__all__ = [
    "AccountFilter",
    "ActionRequest",
    "BlendRequest",
    "Button",
    "ChangeRequest",
    "DescribeRequest",
    "EditsRequest",
    "ImagineRequest",
    "MediaRef",
    "ModalRequest",
    "RowHead",
    "ShortenRequest",
    "SimpleChangeRequest",
    "SubmitResult",
    "SwapFaceRequest",
    "Task",
    "TaskAction",
    "TaskStatus",
    "UploadRequest",
    "VideoRequest",
    "known_percent",
    "normalise_head",
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
MS_FLOOR: Final = 100_000_000_000
_MS_FLOOR: Final = MS_FLOOR

# Servers echo the callback URL a submit named into the task; its path ends in the
# webhook receiver's secret token, so a snapshot keeps only the origin.
_HOOK_KEYS: Final = ("notifyHook", "webhookUrl", "webhook")


_HOOK_MEMO: dict[str, str] = {}


def redact_hook(url: Any) -> Any:
    """A callback URL without its path, query and user info: ``http://host:port/***``."""
    if not isinstance(url, str) or not url:
        return url
    # A session sends one callback URL: the memo spares urlsplit on the poller's path.
    known = _HOOK_MEMO.get(url)
    if known is not None:
        return known
    parts = urlsplit(url)
    if parts.scheme and parts.netloc:
        redacted = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/***"
    else:
        redacted = "***"
    if len(_HOOK_MEMO) < 256:
        _HOOK_MEMO[url] = redacted
    return redacted


def _without_hooks(properties: dict[str, Any]) -> dict[str, Any]:
    clean = dict(properties)
    for key in _HOOK_KEYS:
        if key in clean:
            clean[key] = redact_hook(clean[key])
    return clean
# Describe and shorten number their prompts with keycap emoji: 1️⃣ ... 5️⃣.
_KEYCAP: Final = re.compile("[1-9]\ufe0f?\u20e3")

# Bound look-ups for Task.__post_init__, which runs once per decoded task.
_status_of = _STATUSES.get
_action_of = _ACTIONS.get
#: ``known_percent(progress, default)``: the percentage of a progress string read
#: before, else ``default`` (a dict look-up where a call would cost more).
known_percent: Final = _PERCENT_MEMO.get


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
        # The rules of normalise_head, kept inline: this runs for every decoded task.
        known = _status_of(self.status)
        if known is not None:
            force_setattr(self, "status", known)
        progress = self.progress
        if progress:
            percent = known_percent(progress)
            if percent is None:
                percent = parse_percent(progress)
            force_setattr(self, "progress_percent", percent)
        elif known is TaskStatus.SUCCESS:
            force_setattr(self, "progress_percent", 100)
        action = self.action
        if action is not None:
            known_action = _action_of(action)
            if known_action is not None:
                force_setattr(self, "action", known_action)
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
        # One look-up on the hot path; OhMyGPT's webhookUrl is redacted by its dialect.
        props = self.properties
        if props and "notifyHook" in props:
            hook = props["notifyHook"]
            if hook and not (isinstance(hook, str) and hook.endswith("/***")):
                force_setattr(self, "properties", _without_hooks(props))
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


class RowHead(msgspec.Struct, frozen=True, rename="camel", gc=False):
    """The id, status and progress of a task row, read without the rest.

    The poller reads every row of a list answer this far first: a task found
    where it stood needs nothing more, and a pending task that moved on keeps
    its row to be decoded in full when someone asks for the snapshot. Decoded
    as the server sent them (no hook runs per row: thousands are read a
    tick); :func:`normalise_head` makes them what :class:`Task` holds.
    """

    id: str
    status: str = TaskStatus.NOT_START
    progress: str | None = None
    progress_percent: int | None = None


def normalise_head(head: RowHead | Task) -> None:
    """Give ``head`` a known status as its enum member ("" as NOT_START) and the
    percentage of its progress (100 for a SUCCESS that gives none), as
    :class:`Task` has them (a Task has them already)."""
    known = _status_of(head.status)
    if known is not None:
        force_setattr(head, "status", known)
    progress = head.progress
    if progress:
        percent = known_percent(progress)
        if percent is None:
            percent = parse_percent(progress)
        force_setattr(head, "progress_percent", percent)
    elif known is TaskStatus.SUCCESS:
        force_setattr(head, "progress_percent", 100)


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


class AccountFilter(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Which Discord account a submit may run on (trueai and the plus edition).

    ``instance_id`` names one account (its ``discordInstanceId``), ``modes``
    the speed modes it must offer (``"FAST"``, ``"RELAX"``, ``"TURBO"``) and
    ``remix`` whether it must have remix on. trueai takes it as
    ``accountFilter``, the plus edition as top-level fields; new-api relays
    delete it unless their operator enabled the pass-through.

    Example::

        await mj.imagine("a fox", account_filter=AccountFilter(modes=["RELAX"]))
    """

    instance_id: str | None = None
    modes: list[str] | None = None
    remix: bool | None = None


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
    bot_type: str | None = None


class DescribeRequest(_Req, kw_only=True):
    """Body of ``/submit/describe``: one image as base64 data URL or a link."""

    base64: str | None = None
    link: str | None = None
    bot_type: str | None = None


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
