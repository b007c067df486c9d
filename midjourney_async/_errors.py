"""The error tree of midjourney_async.

Every error the library raises derives from :class:`MidjourneyError`::

    MidjourneyError
    ├── ConfigurationError (also ValueError)      bad session options, unknown provider or mode
    ├── InvalidArgument (also ValueError)          a call's argument refused before sending
    ├── UnsupportedOperation (also NotImplementedError)   the dialect has no such endpoint
    ├── TransportError                             no usable HTTP answer
    │   ├── ConnectError                           the connection was never made
    │   └── RequestTimeout (also TimeoutError)     no answer in time; may have been received
    ├── DecodeError                                the body was not what the dialect expects
    │   └── NotMidjourneyAPI                       a web page or another API's JSON (.status)
    ├── DownloadRefused                            a download's address or content is not allowed
    │   └── DownloadTooLarge                       the body is over the download's size cap
    ├── HTTPStatusError                            an HTTP error status
    │   ├── AuthenticationError                    401
    │   ├── PermissionDeniedError                  403
    │   ├── NotFoundError                          404
    │   ├── RateLimitError                         429, with retry_after
    │   └── ServerError                            5xx
    │       └── NoChannelError                     a relay has no upstream for the model
    ├── SubmitRejected                             the server did not accept a submit (.code)
    │   ├── QueueFullError                         code 23, "queue full", trueai's per-user caps
    │   ├── QuotaExceeded                          a daily or total drawing quota is used up
    │   ├── BannedPromptError                      code 24, with banned_word
    │   ├── InvalidRequestError                    code 4
    │   │   └── RemixDisabled                      the account has remix off
    │   └── SubmitNotFound (also NotFoundError)    code 3: parent task or account missing
    ├── TaskNotFound                               the server does not know the task id
    ├── TaskFailed                                 the task ended in FAILURE (.task)
    ├── ModalRequired                              the task waits in MODAL (.handle)
    ├── TaskTimeout (also TimeoutError)            a wait passed its deadline (.task)
    ├── SessionClosed                              the session closed while a wait ran
    ├── SlotTimeout (also TimeoutError)            no in-flight slot came free in time
    ├── JournalError                               an accepted task could not be journaled (.handle)
    └── ButtonNotFound (also LookupError)          the task has no such button (.available)

No message or repr of these errors contains the API key: the transport redacts
it from every server text it quotes. Every error pickles with its fields (a
:class:`ModalRequired` keeps ``task_id`` but not its live ``handle``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._handle import TaskHandle
    from ._models import Task

__all__ = [
    "AuthenticationError",
    "BannedPromptError",
    "ButtonNotFound",
    "ConfigurationError",
    "ConnectError",
    "DecodeError",
    "DownloadRefused",
    "DownloadTooLarge",
    "HTTPStatusError",
    "InvalidArgument",
    "InvalidRequestError",
    "JournalError",
    "MidjourneyError",
    "ModalRequired",
    "NoChannelError",
    "NotFoundError",
    "NotMidjourneyAPI",
    "PermissionDeniedError",
    "QueueFullError",
    "QuotaExceeded",
    "RateLimitError",
    "RemixDisabled",
    "RequestTimeout",
    "ServerError",
    "SessionClosed",
    "SlotTimeout",
    "SubmitNotFound",
    "SubmitRejected",
    "TaskFailed",
    "TaskNotFound",
    "TaskTimeout",
    "TransportError",
    "UnsupportedOperation",
]


class MidjourneyError(Exception):
    """Base class of every error raised by midjourney_async.

    Example::

        try:
            task = await handle.wait()
        except MidjourneyError as exc:
            log.warning("generation failed: %s", exc)
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # The subclasses take keyword-only fields, which the default pickling
        # (cls(*args)) cannot pass: rebuild without __init__ and restore them.
        state = {k: v for k, v in self.__dict__.items() if k not in self._not_pickled}
        return (_rebuild, (type(self), self.args, state))

    #: Attributes that belong to a live session and are left out of a pickle.
    _not_pickled: frozenset[str] = frozenset()


def _rebuild(cls: type[MidjourneyError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    error.args = args
    for name in cls._not_pickled:
        setattr(error, name, None)
    error.__dict__.update(state)
    return error


class ConfigurationError(MidjourneyError, ValueError):
    """The session was configured with something it cannot use."""


class InvalidArgument(MidjourneyError, ValueError):
    """An argument of a call was refused before anything was sent (an empty prompt,
    a sixth blend image, an index of 5, an image file that does not exist).

    Unlike :class:`InvalidRequestError`, the server never saw it: nothing is paid.
    """


class UnsupportedOperation(MidjourneyError, NotImplementedError):
    """The provider's dialect has no endpoint for this operation.

    Raised before any request is sent, so nothing is paid for.
    """

    def __init__(self, operation: str, dialect: str, message: str | None = None) -> None:
        super().__init__(
            message
            or f"{operation} is not offered by the {dialect!r} dialect; "
            f"use a provider that serves it"
        )
        self.operation = operation
        self.dialect = dialect


class TransportError(MidjourneyError):
    """No usable HTTP answer came back.

    ``maybe_received`` tells whether the server may have received the request:
    when it is true, a submit may have been accepted (and paid for) even though
    no answer arrived, so look the task up before submitting again.
    """

    def __init__(self, message: str, *, method: str, path: str, maybe_received: bool) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.maybe_received = maybe_received


class ConnectError(TransportError):
    """The connection was never made, so the server cannot have seen the request."""

    def __init__(self, message: str, *, method: str, path: str) -> None:
        super().__init__(message, method=method, path=path, maybe_received=False)


class RequestTimeout(TransportError, TimeoutError):
    """The server did not answer in time; it may have received the request."""


class DecodeError(MidjourneyError):
    """The server answered with a body this library could not understand."""

    def __init__(self, message: str, *, body: str = "") -> None:
        super().__init__(message)
        self.body = body


class DownloadRefused(MidjourneyError):
    """A download was refused before its body was kept; nothing was written.

    The link (or a redirect hop) points at a loopback, link-local or private
    address that is neither the base URL's origin nor in ``download_allow``,
    or the body is not an image or a video. ``url`` is the refused address.
    """

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class DownloadTooLarge(DownloadRefused):
    """A download's body is over its ``max_bytes`` cap; nothing was written.

    ``size`` is the declared length when the server sent one, else None.
    """

    def __init__(self, message: str, *, url: str, max_bytes: int, size: int | None = None) -> None:
        super().__init__(message, url=url)
        self.max_bytes = max_bytes
        self.size = size


class HTTPStatusError(MidjourneyError):
    """The server answered with an HTTP error status.

    ``body`` holds the start of the answer with the API key removed.
    """

    def __init__(self, message: str, *, status: int, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class AuthenticationError(HTTPStatusError):
    """401: the API key is missing or wrong."""


class PermissionDeniedError(HTTPStatusError):
    """403: the key is valid but may not do this."""


class NotFoundError(HTTPStatusError):
    """404: the path or the object does not exist."""


class RateLimitError(HTTPStatusError):
    """429: too many requests. ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(
        self, message: str, *, status: int = 429, body: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.retry_after = retry_after


class NotMidjourneyAPI(DecodeError):
    """The answer is not a midjourney-proxy API's: a web page, or JSON of another shape.

    The base URL (or the mode prefix) points at some other server. ``status``,
    ``content_type`` and ``url`` say what answered; the page itself is never
    quoted. A read answered so with success is retried (a passing glitch), one
    answered with an error page is not; a submit never is (it may have reached
    a server behind the page). The poller ends waits with it after a few such
    answers in a row.
    """

    def __init__(
        self, message: str, *, status: int, body: str = "", content_type: str = "", url: str = ""
    ) -> None:
        super().__init__(message, body=body)
        self.status = status
        self.content_type = content_type
        self.url = url


class ServerError(HTTPStatusError):
    """5xx: the server failed."""


class NoChannelError(ServerError):
    """A new-api relay has no upstream channel for this model ("no channel available",
    "无可用渠道", HTTP 503); nothing was created.

    It is not retried: the relay's operator has to add a channel (or the mode
    or model has to change), which no wait cures.
    """


class SubmitRejected(MidjourneyError):
    """The server answered a submit without accepting it.

    ``code`` is the server's code (see the provider's docs), ``description``
    its text and ``properties`` any extra fields it sent.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None,
        description: str = "",
        properties: dict[str, Any] | None = None,
    ) -> None:
        # Not super(): in SubmitNotFound the next class is HTTPStatusError, whose
        # __init__ needs a status (SubmitNotFound sets status and body itself).
        MidjourneyError.__init__(self, message)
        self.code = code
        self.description = description
        self.properties = properties or {}


class QueueFullError(SubmitRejected):
    """The account's queue is full; nothing was created. Safe to submit again later."""


class QuotaExceeded(SubmitRejected):
    """A daily or total drawing quota of the user is used up (trueai's
    "用户今日绘图次数已达上限", "总绘图次数已达上限"...); nothing was created.

    Never retried: submitting again before the quota resets is refused the same way.
    """


class BannedPromptError(SubmitRejected):
    """The prompt holds a word Midjourney refuses; ``banned_word`` names it when known."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None,
        description: str = "",
        properties: dict[str, Any] | None = None,
        banned_word: str | None = None,
    ) -> None:
        super().__init__(message, code=code, description=description, properties=properties)
        self.banned_word = banned_word


class InvalidRequestError(SubmitRejected):
    """The server found the request invalid (blank prompt, bad image, wrong button...)."""


class RemixDisabled(InvalidRequestError):
    """The account has remix off, so a press cannot open a remix window for
    ``prompt=`` (trueai's code 4 "当前账号不支持 remix"); nothing was created.

    Press without ``prompt=``, or turn remix on for the account.
    """


class SubmitNotFound(SubmitRejected, NotFoundError):
    """Code 3: the parent task (or a usable account) does not exist on the server."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None,
        description: str = "",
        properties: dict[str, Any] | None = None,
        status: int = 200,
    ) -> None:
        SubmitRejected.__init__(
            self, message, code=code, description=description, properties=properties
        )
        self.status = status
        self.body = description


class TaskNotFound(MidjourneyError, LookupError):
    """The server does not know this task id (or has forgotten it)."""

    def __init__(self, task_id: str, message: str | None = None) -> None:
        super().__init__(message or f"task {task_id} is not known to the server")
        self.task_id = task_id


class TaskFailed(MidjourneyError):
    """The task ended in FAILURE (or was cancelled). ``task`` is the final snapshot."""

    def __init__(self, task: Task) -> None:
        reason = task.fail_reason or "no reason given"
        super().__init__(f"task {task.id} ({task.action}) failed: {reason}")
        self.task = task
        self.reason = task.fail_reason


class ModalRequired(MidjourneyError):
    """The task waits in MODAL for a /submit/modal step (a prompt or a mask).

    ``handle`` is the waiting task; answer it with ``session.modal(handle.id, ...)``.
    ``task_id`` is its id; a pickled copy keeps it, with ``handle`` None (a handle
    belongs to a live session).
    """

    _not_pickled = frozenset({"handle"})

    def __init__(self, handle: TaskHandle) -> None:
        super().__init__(
            f"task {handle.id} waits for a modal step: call "
            f"session.modal({handle.id!r}, prompt=..., mask_base64=...)"
        )
        self.handle = handle
        self.task_id = handle.id


class TaskTimeout(MidjourneyError, TimeoutError):
    """A wait passed its deadline. ``task`` is the last snapshot seen (or None).

    The task itself goes on running on the server: wait again with
    ``session.handle(task_id).wait()``.
    """

    def __init__(self, task_id: str, timeout: float, task: Task | None) -> None:
        where = f"status {task.status} {task.progress or ''}".rstrip() if task else "no snapshot"
        super().__init__(
            f"task {task_id} did not finish within {timeout:g} s ({where}); "
            "it may still finish: wait on it again by id"
        )
        self.task_id = task_id
        self.timeout = timeout
        self.task = task


class SessionClosed(MidjourneyError):
    """The session was closed while a wait was running (or a wait began after it).

    The task goes on on the server: wait on it again from an open session.
    """

    def __init__(self, task_id: str | None) -> None:
        if task_id is None:
            message = "the session was closed while a submit waited for an in-flight slot; "
            message += "nothing was sent"
        else:
            message = (
                f"the session was closed while waiting for task {task_id}; the task goes on "
                "on the server: wait on it again from an open session"
            )
        super().__init__(message)
        self.task_id = task_id


class SlotTimeout(MidjourneyError, TimeoutError):
    """No in-flight slot came free within the submit's timeout; nothing was sent.

    Every slot of ``max_in_flight`` rides on a task that has not settled yet.
    """

    def __init__(self, limit: int, timeout: float) -> None:
        super().__init__(
            f"all {limit} in-flight slots stayed busy for {timeout:g} s; nothing was sent "
            "(raise max_in_flight, or wait on the running tasks first)"
        )
        self.limit = limit
        self.timeout = timeout

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.limit, self.timeout))


class JournalError(MidjourneyError):
    """The journal could not store a submit.

    With ``task_ids`` the server accepted the task (and it is paid for):
    ``handle`` waits on it as usual, but after a crash ``resume()`` would not
    find it, so keep the ids somewhere. Without them the journal failed before
    sending, and nothing was sent.
    """

    def __init__(self, task_ids: list[str], reason: str, handle: TaskHandle | None = None) -> None:
        if task_ids:
            message = (
                f"task {', '.join(task_ids)} was accepted but is not in the journal "
                f"({reason}); wait on error.handle, and keep the id: resume() will not find it"
            )
        else:
            message = f"the journal cannot record this submit ({reason})"
        super().__init__(message)
        self.task_ids = task_ids
        self.reason = reason
        self.handle = handle

    def __reduce__(self) -> tuple[Any, ...]:
        # A handle belongs to a live session: it does not travel.
        return (type(self), (self.task_ids, self.reason))


class ButtonNotFound(MidjourneyError, LookupError):
    """The task has no button matching the request. ``available`` lists what it has."""

    def __init__(self, task_id: str, wanted: str, available: list[str]) -> None:
        shown = ", ".join(available) if available else "none"
        super().__init__(f"task {task_id} has no button {wanted!r}; its buttons: {shown}")
        self.task_id = task_id
        self.wanted = wanted
        self.available = available
