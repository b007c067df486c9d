"""What every wire dialect provides, and the submit-code map they share."""

from __future__ import annotations

import abc
from typing import Any, Final

import msgspec

from .._errors import (
    BannedPromptError,
    InvalidRequestError,
    NotMidjourneyAPI,
    QueueFullError,
    QuotaExceeded,
    RemixDisabled,
    SubmitNotFound,
    SubmitRejected,
    UnsupportedOperation,
)
from .._http import HttpRequest, HttpResponse
from .._models import RowHead, SubmitResult, Task

#: Submit operations a session offers; a dialect serves some of them.
SUBMIT_OPS = (
    "imagine",
    "action",
    "blend",
    "describe",
    "modal",
    "shorten",
    "change",
    "simple-change",
    "upload-discord-images",
    "video",
    "edits",
    "swap-face",
)

ACCEPTED_CODES = frozenset({1, 21, 22})

# Words servers use for "the queue is full" (trueai reuses code 9 for it).
_QUEUE_FULL_WORDS = ("队列已满", "queue is full", "queue full", "queue_full")


# trueai's per-user caps ("try later": nothing was accepted), whatever code or shape
# they come in (code 4 on imagine, -1 elsewhere; new-api passes both through).
_USER_CAP_WORDS = ("并发数已达上限", "队列数已达上限")
# trueai's drawing quotas: used up until they reset, so never worth a retry.
_QUOTA_WORDS = ("今日绘图次数已达上限", "总绘图次数已达上限", "绘图次数已达上限")
_REMIX_OFF_WORDS = ("不支持 remix", "不支持remix")
_STATE_TOO_LONG_WORDS = ("state参数过长",)


# Keys of every midjourney-proxy answer shape (task, submit answer, trueai's and
# new-api's refusals): a JSON object with none of them comes from another API.
_PROXY_KEYS = frozenset({"id", "code", "success", "description", "result", "status", "error"})


def is_foreign_json(obj: Any) -> bool:
    """Whether decoded JSON is no shape a midjourney-proxy server answers with."""
    if isinstance(obj, dict):
        return bool(obj) and not (_PROXY_KEYS & obj.keys())
    return not isinstance(obj, list) and obj is not None


def foreign(resp: HttpResponse, what: str, *, submit: bool = False) -> NotMidjourneyAPI:
    """The one-line error for an answer from a server that is no midjourney-proxy API.

    For a submit answered with success, the text keeps the warning that a
    server behind the page may have taken it (the submit is not sent again).
    """
    ctype = resp.content_type or "no content type"
    where = f" from {resp.url}" if resp.url else ""
    caution = (
        " (if it reached a server, it may have accepted the task: look for it before "
        "submitting again)"
        if submit and resp.status < 400
        else ""
    )
    return NotMidjourneyAPI(
        f"{what}: the answer is not a midjourney-proxy API (HTTP {resp.status}, {ctype}, "
        f"{len(resp.body)} bytes{where}); check base_url, provider and mode{caution}",
        status=resp.status,
        body=resp.text(),
        content_type=resp.content_type,
        url=resp.url,
    )


def is_foreign_page(resp: HttpResponse) -> bool:
    """A web page where an API answer belongs: any status but those with their own
    meaning (401, 403, 429 and 5xx keep their errors and retry rules)."""
    return resp.is_html and resp.status not in (401, 403, 429) and resp.status < 500


def is_queue_full_text(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in _QUEUE_FULL_WORDS) or any(
        word in text for word in _USER_CAP_WORDS
    )


def as_int(value: Any) -> int | None:
    """An integer code from an int or a digit string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def rejection(
    op: str,
    code: int | None,
    description: str,
    properties: dict[str, Any] | None = None,
    *,
    status: int = 200,
) -> SubmitRejected:
    """The typed error for a submit the server did not accept."""
    props = properties or {}
    shown = f"code {code}" if code is not None else "no code"
    text = f"{op} was not accepted by the server ({shown}): {description or 'no description'}"
    # Quotas first: "used up" must never be mistaken for "try later".
    if any(word in description for word in _QUOTA_WORDS):
        return QuotaExceeded(
            text + "; the drawing quota is used up, nothing was created (not retried)",
            code=code,
            description=description,
            properties=props,
        )
    # Code 23 (novicezk) or the queue-full wording under any code: trueai reuses 9,
    # OhMyGPT answers statusCode 400, trueai's per-user caps come as 4 or -1.
    if code == 23 or is_queue_full_text(description):
        return QueueFullError(
            text + "; nothing was created, submit again later",
            code=code,
            description=description,
            properties=props,
        )
    if code == 24:
        word = props.get("bannedWord")
        banned = word if isinstance(word, str) and word else None
        extra = f" (banned word: {banned})" if banned else ""
        return BannedPromptError(
            text + extra, code=code, description=description, properties=props, banned_word=banned
        )
    lowered = description.lower()
    if any(word in lowered for word in _REMIX_OFF_WORDS):
        return RemixDisabled(
            text + "; remix is off on the account, so no remix window can open for "
            "prompt= (press without a prompt, or turn remix on)",
            code=code,
            description=description,
            properties=props,
        )
    if code == 4 or any(word in lowered for word in _STATE_TOO_LONG_WORDS):
        return InvalidRequestError(text, code=code, description=description, properties=props)
    if code == 3:
        return SubmitNotFound(
            text, code=code, description=description, properties=props, status=status
        )
    return SubmitRejected(text, code=code, description=description, properties=props)


#: Splits a list answer into its rows, each undecoded.
ROW_LIST_DECODER: Final = msgspec.json.Decoder(list[msgspec.Raw])


class ListRows:
    """The rows of one list answer.

    ``heads`` holds every row's id, status and progress when each row could be
    read that far in one go (None otherwise), as the server sent them (see
    :func:`normalise_head`); the rows themselves are split from the body only
    when asked for. An answer whose tasks all stand where they stood costs the
    poller one decode of their heads.
    """

    __slots__ = ("_body", "_rows", "heads")

    def __init__(
        self,
        *,
        heads: list[RowHead] | None = None,
        body: bytes = b"",
        rows: list[msgspec.Raw] | None = None,
    ) -> None:
        self.heads = heads
        self._body = body
        self._rows = rows

    @property
    def rows(self) -> list[msgspec.Raw]:
        """Each row undecoded, in the order of the answer (and of ``heads``)."""
        rows = self._rows
        if rows is None:
            rows = self._rows = ROW_LIST_DECODER.decode(self._body)
        return rows


class Dialect(abc.ABC):
    """Turns operations into requests and answers into Tasks for one wire format.

    Methods that build requests raise :class:`UnsupportedOperation` for what the
    dialect lacks, before anything is sent.
    """

    name: str = ""
    #: Whether the dialect can ask for many tasks in one request.
    supports_list: bool = False

    def unsupported(self, operation: str) -> UnsupportedOperation:
        return UnsupportedOperation(operation, self.name)

    @abc.abstractmethod
    def submit(
        self, op: str, body: msgspec.Struct, extra: dict[str, Any] | None = None
    ) -> HttpRequest:
        """The request for submit operation ``op`` with request struct ``body``."""

    @abc.abstractmethod
    def parse_submit(self, op: str, resp: HttpResponse) -> SubmitResult:
        """The accepted result, or the typed error for a rejection."""

    @abc.abstractmethod
    def fetch(self, task_id: str) -> HttpRequest:
        """The request that reads one task."""

    @abc.abstractmethod
    def parse_fetch(self, task_id: str, resp: HttpResponse) -> Task:
        """The task, or TaskNotFound for every way the server says 'no such task'."""

    def list_tasks(self, ids: list[str]) -> HttpRequest:
        """The request that reads many tasks at once."""
        raise self.unsupported("list-by-condition")

    def parse_list(self, resp: HttpResponse) -> list[Task]:
        raise self.unsupported("list-by-condition")

    def parse_list_rows(self, resp: HttpResponse) -> list[msgspec.Raw]:
        """The rows of a list answer, each still undecoded (see :meth:`decode_row`)."""
        raise self.unsupported("list-by-condition")

    def parse_list_answer(self, resp: HttpResponse) -> ListRows:
        """A list answer for the poller: :meth:`parse_list_rows`, and the rows' heads
        when the dialect can read them in one go."""
        return ListRows(rows=self.parse_list_rows(resp))

    def decode_row(self, row: msgspec.Raw | bytes) -> Task | None:
        """One row of :meth:`parse_list_rows` as a Task; None for a row that is no task."""
        raise self.unsupported("list-by-condition")

    def decode_head(self, row: msgspec.Raw | bytes) -> RowHead | None:
        """The id, status and progress of a row (normalised), a few times cheaper
        than :meth:`decode_row`; None when the row must be decoded in full to tell."""
        return None

    def image_seed(self, task_id: str) -> HttpRequest:
        raise self.unsupported("image-seed")

    def parse_image_seed(self, task_id: str, resp: HttpResponse) -> str:
        raise self.unsupported("image-seed")

    def cancel(self, task_id: str) -> HttpRequest:
        raise self.unsupported("cancel")

    def image(self, task_id: str) -> HttpRequest:
        raise self.unsupported("image")

    @abc.abstractmethod
    def parse_notification(self, body: bytes) -> Task:
        """The task carried by a webhook callback body."""
