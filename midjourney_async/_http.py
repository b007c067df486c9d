"""HTTP without I/O: requests and answers as values, status mapping and the retry rule.

Dialects build :class:`HttpRequest` values and read :class:`HttpResponse`
values; the transport (the only module that talks aiohttp) sends the first and
builds the second. Nothing here opens a socket, so every rule can be tested
with plain values.

The retry rule is what keeps a user from paying twice:

* read-only calls (fetch, list-by-condition, image-seed) are retried on
  connection errors, timeouts, unreadable bodies (not another server's error
  page), 429 (honouring Retry-After) and 502/503/504;
* a submit is retried only when the request never left (no connection, or no
  free connection in time), or when the server said it did not accept it (429,
  queue full). Never after a timeout or a dropped connection: the server may
  have created (and billed) the task.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

import msgspec

from ._errors import (
    AuthenticationError,
    ConnectError,
    DecodeError,
    HTTPStatusError,
    NotFoundError,
    NotMidjourneyAPI,
    PermissionDeniedError,
    QueueFullError,
    RateLimitError,
    ServerError,
    TransportError,
)

__all__ = [
    "REDIRECTS",
    "CallOptions",
    "HttpRequest",
    "HttpResponse",
    "Kind",
    "RetryPolicy",
    "delays",
    "parse_retry_after",
    "retryable",
    "status_error",
]

Kind = Literal["read", "submit"]

#: Statuses that name another address in ``Location``.
REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})


# Structs rather than dataclasses: one of each is made per request, and a frozen
# dataclass takes several times as long to make. Never part of a cycle: gc=False.
class HttpRequest(msgspec.Struct, frozen=True, gc=False):
    """One request as a dialect builds it; ``kind`` selects the retry rule."""

    method: str
    path: str
    kind: Kind
    json: bytes | None = None
    form: Mapping[str, str] | None = None


class HttpResponse(msgspec.Struct, frozen=True, gc=False):
    """Status, headers and the raw body of an answer; ``text()`` is safe to quote.

    ``url`` is the address that answered (for messages; empty when unknown).
    """

    status: int
    body: bytes
    headers: Mapping[str, str]
    redact: Callable[[str], str]
    url: str = ""

    @property
    def content_type(self) -> str:
        """The media type of the body (``text/html``), without parameters."""
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    @property
    def is_html(self) -> bool:
        """Whether the body is a web page (by its content type or its first byte)."""
        if "html" in self.content_type:
            return True
        # The first bytes are enough: stripping a whole list answer would copy it.
        head = self.body[:64].lstrip()
        if not head and len(self.body) > 64:
            head = self.body.lstrip()
        return head[:1] == b"<"

    def quoted(self) -> str:
        """The body as an error message shows it: a web page is summed up, never
        quoted (its markup helps nobody); anything else as :meth:`text`."""
        if self.is_html:
            return f"an HTML page ({len(self.body)} bytes)"
        return self.text()

    def text(self, limit: int = 300) -> str:
        """The start of the body as text, with the API key removed."""
        text = self.body[:limit].decode("utf-8", "replace")
        if len(self.body) > limit:
            text += "..."
        return self.redact(text)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How reads and not-accepted submits are retried.

    Delays grow exponentially from ``base_delay`` up to ``max_delay`` with
    jitter; a 429's Retry-After is honoured (capped at ``max_retry_after``).
    ``max_tries`` counts the first attempt; ``max_time`` bounds the whole call.
    ``wait_scale`` multiplies every delay: :meth:`without_waits` sets it to 0.

    Example::

        MidjourneySession(..., retry=RetryPolicy(max_tries=3, max_time=20))
    """

    max_tries: int = 5
    max_time: float = 60.0
    base_delay: float = 0.5
    max_delay: float = 15.0
    max_retry_after: float = 60.0
    wait_scale: float = 1.0

    @classmethod
    def without_waits(cls, max_tries: int = 5) -> RetryPolicy:
        """The same rule with every wait removed: for tests."""
        return cls(max_tries=max_tries, wait_scale=0.0)

    @classmethod
    def never(cls) -> RetryPolicy:
        """No retries at all."""
        return cls(max_tries=1)

    def scaled(self, wait_scale: float) -> RetryPolicy:
        """A copy with another ``wait_scale``."""
        return replace(self, wait_scale=wait_scale)


@dataclass(frozen=True, slots=True)
class CallOptions:
    """Per-call overrides of a session's ``timeout`` and ``retry`` (None keeps the session's)."""

    timeout: float | None = None
    retry: RetryPolicy | None = None

    def over(self, base: CallOptions | None) -> CallOptions:
        """These options on top of ``base`` (a view made from a view)."""
        if base is None:
            return self
        return CallOptions(self.timeout or base.timeout, self.retry or base.retry)


def delays(policy: RetryPolicy) -> Generator[float, Any, None]:
    """The waits before each retry: prime with ``next()``, then ``send()`` each failure."""
    exc = yield 0.0
    attempt = 0
    while True:
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, (int, float)) and retry_after >= 0:
            delay = min(float(retry_after), policy.max_retry_after)
        else:
            ceiling = min(policy.max_delay, policy.base_delay * (2**attempt))
            delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        attempt += 1
        exc = yield delay * policy.wait_scale


def retryable(kind: Kind, exc: Exception) -> bool:
    """The retry rule: may ``exc`` from a ``kind`` call be tried again?"""
    if isinstance(exc, (RateLimitError, ConnectError)):
        return True
    if kind == "submit":
        return isinstance(exc, QueueFullError)
    if isinstance(exc, ServerError):
        return exc.status in (502, 503, 504)
    if isinstance(exc, NotMidjourneyAPI) and exc.status >= 400:
        # Another server's error page: asking again gets the same page.
        return False
    return isinstance(exc, (TransportError, DecodeError))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form; dates are ignored)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def status_error(resp: HttpResponse, what: str) -> HTTPStatusError:
    """The error for an HTTP error status, with a message a user can act on."""
    status = resp.status
    body = resp.text()
    detail = f": {resp.quoted()}" if body else ""
    if status == 401:
        return AuthenticationError(
            f"{what}: 401 unauthorized; check the API key and the provider's auth header{detail}",
            status=status,
            body=body,
        )
    if status == 403:
        return PermissionDeniedError(
            f"{what}: 403 forbidden; the key may not use this endpoint{detail}",
            status=status,
            body=body,
        )
    if status == 404:
        return NotFoundError(
            f"{what}: 404 not found; check the base URL and provider{detail}",
            status=status,
            body=body,
        )
    if status == 429:
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        hint = f", retry after {retry_after:g} s" if retry_after is not None else ""
        return RateLimitError(
            f"{what}: 429 too many requests{hint}{detail}",
            status=status,
            body=body,
            retry_after=retry_after,
        )
    if status >= 500:
        return ServerError(f"{what}: server error {status}{detail}", status=status, body=body)
    return HTTPStatusError(f"{what}: HTTP {status}{detail}", status=status, body=body)
