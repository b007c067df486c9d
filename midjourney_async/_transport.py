"""HTTP transport: the only module of the client that talks aiohttp.

It owns authentication headers, per-request timeouts, JSON and form bodies,
the retry rule and the translation of aiohttp failures into the error tree.

The retry rule is what keeps a user from paying twice:

* read-only calls (fetch, list-by-condition, image-seed) are retried on
  connection errors, timeouts, unreadable bodies, 429 (honouring Retry-After)
  and 502/503/504;
* a submit is retried only when the connection was never made, or when the
  server said it did not accept it (429, queue full). Never after a timeout or
  a dropped connection: the server may have created (and billed) the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl as _ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

import aiohttp
import backoff
import yarl

from ._errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectError,
    DecodeError,
    HTTPStatusError,
    MidjourneyError,
    NotFoundError,
    PermissionDeniedError,
    QueueFullError,
    RateLimitError,
    RequestTimeout,
    ServerError,
    TransportError,
)
from ._version import __version__

__all__ = ["HttpRequest", "HttpResponse", "RetryPolicy", "Transport", "status_error"]

logger = logging.getLogger("midjourney_async")

_JSON = "application/json"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MIN_READ_TIMEOUT = 1.0
_MAX_REDIRECTS = 5
# aiohttp < 3.10 has no ConnectionTimeoutError: there a connect timeout is a plain
# timeout, handled as "may have been received" (never re-sent), the safe side.
_CONNECT_TIMEOUT: type[Exception] = getattr(
    aiohttp, "ConnectionTimeoutError", type("_NoConnectionTimeoutError", (Exception,), {})
)

T = TypeVar("T")
Kind = Literal["read", "submit"]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request as a dialect builds it; ``kind`` selects the retry rule."""

    method: str
    path: str
    kind: Kind
    json: bytes | None = None
    form: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """Status, headers and the raw body of an answer; ``text()`` is safe to quote."""

    status: int
    body: bytes
    headers: Mapping[str, str]
    redact: Callable[[str], str]

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


def _delays(policy: RetryPolicy) -> Generator[float, Any, None]:
    # backoff primes the generator with send(None), then sends each exception.
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
    detail = f": {body}" if body else ""
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


class Transport:
    """An aiohttp ClientSession with auth, timeouts and the retry rule.

    Opened and closed by the session; dialects never see aiohttp.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        api_key: str | None,
        timeout: float,
        retry: RetryPolicy,
        ssl: _ssl.SSLContext | bool | None = None,
        max_connections: int = 100,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._plain_headers = {
            "Accept": "application/json",
            "User-Agent": f"midjourney-async/{__version__}",
        }
        # The provider's session carries the credentials as default headers (no
        # per-request merge on the hot path); image hosts get a session without them.
        self._headers = {**self._plain_headers, **headers}
        self._key = api_key or ""
        self.timeout = timeout
        self.retry = retry
        self._ssl: _ssl.SSLContext | bool = True if ssl is None else ssl
        self._max_connections = max_connections
        self._client: aiohttp.ClientSession | None = None
        self._anonymous: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"Transport({self.base_url!r})"

    def redact(self, text: str) -> str:
        """Remove the API key (and its bare form after a scheme) from ``text``."""
        key = self._key
        if key and len(key) >= 4 and key in text:
            text = text.replace(key, "***")
        return text

    async def open(self) -> None:
        if self._client is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=self._ssl)
            self._client = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(
                    total=self.timeout, sock_connect=min(self.timeout, 10.0)
                ),
            )

    async def close(self) -> None:
        anonymous, self._anonymous = self._anonymous, None
        if anonymous is not None:
            await anonymous.close()
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def _client_for(self, url: str) -> aiohttp.ClientSession:
        """The provider's session for its own URLs; a credential-free one elsewhere."""
        client = self.client
        if url.startswith(self.base_url + "/"):
            return client
        if self._anonymous is None:
            self._anonymous = aiohttp.ClientSession(
                connector=client.connector,
                connector_owner=False,
                headers=self._plain_headers,
                timeout=client.timeout,
            )
        return self._anonymous

    @property
    def client(self) -> aiohttp.ClientSession:
        if self._client is None:
            raise ConfigurationError(
                "the session is not open: use `async with MidjourneySession(...)` "
                "or `await session.open()`"
            )
        return self._client

    async def call(
        self,
        req: HttpRequest,
        parse: Callable[[HttpResponse], T],
        *,
        retry: RetryPolicy | None = None,
    ) -> T:
        """Send ``req`` and return ``parse(response)``, retrying by the rule for its kind.

        ``parse`` raises the typed error for a bad answer; the rule then
        decides from that error whether to try again.
        """
        policy = retry or self.retry
        attempt = 0
        first_error: list[MidjourneyError] = []
        deadline = time.monotonic() + policy.max_time

        async def once() -> T:
            nonlocal attempt
            if first_error:
                raise first_error.pop()  # backoff's first try replays the real first failure
            attempt += 1
            # A read retry gets no more than what is left of max_time (at least a
            # second), so a slow last try cannot run a whole timeout past it. A
            # submit keeps its full timeout: cut short, it could be accepted while
            # we report a failure.
            left = self.timeout
            if attempt > 1 and req.kind == "read":
                left = max(deadline - time.monotonic(), _MIN_READ_TIMEOUT)
            resp = await self.send(req, attempt, timeout=left)
            try:
                return parse(resp)
            except DecodeError as exc:
                # Decoders quote the raw body; the key must not travel with it.
                exc.body = self.redact(exc.body)
                raise

        if policy.max_tries <= 1:
            return await once()
        # Fast path: the first attempt runs bare; building the backoff wrapper
        # cost ~40 us per request under load, most of a submit's overhead
        # (benchmarks/bench_end_to_end.py). Only a retryable failure pays it.
        started = time.monotonic()
        try:
            return await once()
        except MidjourneyError as exc:
            if not retryable(req.kind, exc):
                raise
            first_error.append(exc)
        max_time = max(0.0, policy.max_time - (time.monotonic() - started))

        def on_backoff(details: Any) -> None:
            exc = details.get("exception")
            logger.warning(
                "retrying %s %s in %.2f s after %s (attempt %d of %d)",
                req.method,
                req.path,
                details.get("wait", 0.0),
                self.redact(str(exc)),
                details.get("tries", 0) + 1,
                policy.max_tries,
            )

        retrying: Callable[[], Awaitable[T]] = backoff.on_exception(
            _delays,
            MidjourneyError,
            max_tries=policy.max_tries,
            max_time=max_time,
            jitter=None,
            giveup=lambda exc: not retryable(req.kind, exc),
            on_backoff=on_backoff,
            logger=None,
            policy=policy,
        )(once)
        return await retrying()

    async def send(
        self, req: HttpRequest, attempt: int = 1, *, timeout: float | None = None
    ) -> HttpResponse:
        """Send one request, no retries; aiohttp failures become TransportErrors.

        ``timeout`` shortens the session's request timeout for this request.
        """
        url = self.base_url + req.path
        kwargs: dict[str, Any] = {}
        limit = self.timeout
        if timeout is not None and timeout < self.timeout:
            limit = timeout
            kwargs["timeout"] = aiohttp.ClientTimeout(total=limit, sock_connect=min(limit, 10.0))
        if req.json is not None:
            kwargs["data"] = aiohttp.payload.BytesPayload(req.json, content_type=_JSON)
        elif req.form is not None:
            kwargs["data"] = dict(req.form)
        started = time.perf_counter()
        try:
            # No redirects with credentials on: aiohttp would forward a custom auth
            # header (mj-api-secret) to whatever host a redirect names.
            async with self.client.request(
                req.method, url, allow_redirects=False, **kwargs
            ) as resp:
                body = await resp.read()
                status = resp.status
                headers = resp.headers
        except aiohttp.InvalidURL as exc:
            raise ConfigurationError(f"invalid URL {self.redact(url)!r}") from exc
        except (aiohttp.ClientConnectorError, _CONNECT_TIMEOUT) as exc:
            raise ConnectError(
                f"{req.method} {req.path}: could not connect to {self.base_url}: "
                f"{self.redact(str(exc)) or type(exc).__name__}",
                method=req.method,
                path=req.path,
            ) from exc
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise RequestTimeout(
                f"{req.method} {req.path}: no answer within {limit:.3g} s; "
                "the server may have received the request",
                method=req.method,
                path=req.path,
                maybe_received=True,
            ) from exc
        except aiohttp.ClientError as exc:
            raise TransportError(
                f"{req.method} {req.path}: connection failed after the request was sent "
                f"({type(exc).__name__}: {self.redact(str(exc))}); "
                "the server may have received it",
                method=req.method,
                path=req.path,
                maybe_received=True,
            ) from exc
        if status in _REDIRECTS:
            location = self.redact(headers.get("Location", ""))
            raise HTTPStatusError(
                f"{req.method} {req.path}: the server redirects to {location or 'elsewhere'}; "
                "point base_url at the final address (credentials never follow a redirect)",
                status=status,
            )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %d in %.1f ms (attempt %d)",
                req.method,
                req.path,
                status,
                (time.perf_counter() - started) * 1000,
                attempt,
            )
        return HttpResponse(status, body, headers, self.redact)

    @asynccontextmanager
    async def stream(self, url: str, *, timeout: float | None = None) -> AsyncIterator[Any]:
        """GET ``url`` (absolute, or a path on the base URL) and yield the aiohttp response.

        Used by downloads, which read the body in chunks under a size cap.
        Only the server of the base URL gets the auth headers.
        """
        absolute = url if "://" in url else self.base_url + url
        # Left out when no timeout is given: aiohttp reads None as "no timeout at
        # all", which would drop the session's own.
        extra: dict[str, Any] = {"timeout": aiohttp.ClientTimeout(total=timeout)} if timeout else {}
        try:
            async with contextlib.AsyncExitStack() as stack:
                # Redirects are followed here, not by aiohttp, so that each hop gets
                # the credentials only if it is the provider's own URL.
                for _ in range(_MAX_REDIRECTS + 1):
                    resp = await stack.enter_async_context(
                        self._client_for(absolute).get(absolute, allow_redirects=False, **extra)
                    )
                    location = resp.headers.get("Location")
                    if resp.status not in _REDIRECTS or not location:
                        break
                    absolute = str(resp.url.join(yarl.URL(location)))
                    resp.release()
                    if yarl.URL(absolute).scheme not in ("http", "https"):
                        raise TransportError(
                            f"download redirected to a non-http(s) URL {self.redact(absolute)!r}",
                            method="GET",
                            path=absolute,
                            maybe_received=True,
                        )
                else:
                    raise TransportError(
                        f"download of {self.redact(url)} was redirected more than "
                        f"{_MAX_REDIRECTS} times",
                        method="GET",
                        path=url,
                        maybe_received=True,
                    )
                if resp.status >= 400:
                    body = await resp.content.read(300)
                    raise status_error(
                        HttpResponse(resp.status, body, resp.headers, self.redact),
                        f"download {absolute}",
                    )
                yield resp
        except aiohttp.ClientError as exc:
            raise TransportError(
                f"download of {self.redact(absolute)} failed: {type(exc).__name__}: "
                f"{self.redact(str(exc))}",
                method="GET",
                path=absolute,
                maybe_received=True,
            ) from exc
        except asyncio.TimeoutError as exc:
            raise RequestTimeout(
                f"download of {self.redact(absolute)} timed out",
                method="GET",
                path=absolute,
                maybe_received=True,
            ) from exc

