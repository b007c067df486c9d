"""HTTP transport: the only module of the client that talks aiohttp.

It owns authentication headers, the connection limit, per-request timeouts,
body caps, the retry loop and the translation of aiohttp failures into the
error tree (in one place, :meth:`Transport._translate`). What a request is,
what an answer means and which failures may be retried live in
:mod:`._http`, which does no I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as _ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar

import aiohttp
import yarl

from ._conncap import ConnectionCap
from ._errors import (
    ConfigurationError,
    ConnectError,
    DecodeError,
    DownloadRefused,
    HTTPStatusError,
    MidjourneyError,
    RequestTimeout,
    TransportError,
)
from ._guard import AddressGuard, RefusedAddress
from ._http import (
    REDIRECTS,
    CallOptions,
    HttpRequest,
    HttpResponse,
    RetryPolicy,
    parse_retry_after,
    retryable,
    status_error,
)
from ._http import delays as _delays
from ._version import __version__

# The request and response types, the policy and the status map moved to the
# sans-IO module; they stay importable from here.
__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "HttpRequest",
    "HttpResponse",
    "RetryPolicy",
    "Transport",
    "call_options",
    "parse_retry_after",
    "retryable",
    "status_error",
]

logger = logging.getLogger("midjourney_async")

_JSON = "application/json"
_MIN_READ_TIMEOUT = 1.0
_MAX_REDIRECTS = 5
_CHUNK = 256 * 1024

#: Far above any sane API answer (a list of 100 tasks is ~200 KB).
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024

# aiohttp < 3.10 has no ConnectionTimeoutError: there a connect timeout is a plain
# timeout, handled as "may have been received" (never re-sent), the safe side.
_CONNECT_TIMEOUT: type[Exception] = getattr(
    aiohttp, "ConnectionTimeoutError", type("_NoConnectionTimeoutError", (Exception,), {})
)

T = TypeVar("T")

# urllib's NO_PROXY matcher (the one aiohttp's trust_env uses); typeshed omits it.
_bypass: Callable[[str, dict[str, str]], bool] = (
    urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
)

# The options of the view (``session.with_options(...)``) whose call runs in this
# context. A context variable reaches every request the call makes, down through
# the submit path and the reader, while the shared poller (its own task, started
# outside any view) keeps the session's settings.
_CALL_OPTIONS: ContextVar[CallOptions | None] = ContextVar(
    "midjourney_async_call_options", default=None
)


@contextlib.contextmanager
def call_options(options: CallOptions | None) -> Iterator[None]:
    """Run the block with ``options`` over the session's timeout and retry policy."""
    if options is None:
        yield
        return
    token = _CALL_OPTIONS.set(options.over(_CALL_OPTIONS.get()))
    try:
        yield
    finally:
        _CALL_OPTIONS.reset(token)

#: What a download consumer gets: the final URL, the headers and the body in chunks.
Consume = Callable[[str, Mapping[str, str], "int | None", AsyncIterator[bytes]], Awaitable[T]]


class _GuardedResolver(aiohttp.abc.AbstractResolver):
    """aiohttp's resolver, refusing names that resolve to addresses the guard forbids.

    Checking the resolved address (not the name) is what stops a name that
    points at 127.0.0.1 or 169.254.169.254; checking it here, on the address
    aiohttp then connects to, leaves no gap for DNS to change its answer.
    """

    def __init__(self, guard: AddressGuard, proxy_hosts: Callable[[], set[str]]) -> None:
        self._guard = guard
        self._proxy_hosts = proxy_hosts
        self._inner = aiohttp.DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: Any = 0) -> list[Any]:
        found = await self._inner.resolve(host, port, family)
        if host.lower() in self._proxy_hosts():
            # The user's own proxy (often on this machine or the LAN); the download
            # target behind it is still checked by its literal address.
            return found
        refusal = self._guard.host_refusal(host, port, [str(r["host"]) for r in found])
        if refusal:
            raise RefusedAddress(refusal)
        return found

    async def close(self) -> None:
        await self._inner.close()


class Transport:
    """An aiohttp ClientSession with auth, timeouts, body caps and the retry loop.

    Opened and closed by the session; dialects never see aiohttp.

    ``max_connections`` bounds the requests in flight at once. Time spent
    waiting for a free connection is not request time: a request that found
    none within ``timeout`` was never sent (:class:`ConnectError`, safe to
    retry), and its own ``timeout`` starts once it has one.

    ``max_response_bytes`` caps an API answer; a larger one is a
    :class:`DecodeError`, raised without reading the rest.

    ``download_allow`` lists hosts (``"images.lan"``) or networks
    (``"10.0.0.0/8"``, ``"192.168.1.7"``) that downloads may reach although
    they are loopback, link-local or private; the base URL's own origin is
    always allowed.

    ``proxy`` sends every request (API and downloads) through that HTTP
    proxy; without it, ``trust_env`` reads ``HTTP_PROXY``, ``HTTPS_PROXY``,
    ``ALL_PROXY`` and ``NO_PROXY`` when the session opens, as requests and
    httpx do. ``headers`` go
    to the base URL's server only, never to other hosts.
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
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        download_allow: Iterable[str] | None = None,
        proxy: str | None = None,
        trust_env: bool = True,
    ) -> None:
        if max_response_bytes < 1:
            raise ConfigurationError("max_response_bytes must be at least 1")
        self.base_url = base_url.rstrip("/")
        self._plain_headers = {
            "Accept": "application/json",
            "User-Agent": f"midjourney-async/{__version__}",
        }
        # The provider's session carries the credentials as default headers (no
        # per-request merge on the hot path); image hosts get a session without them.
        given = {name.lower() for name in headers}
        self._headers = {
            **{k: v for k, v in self._plain_headers.items() if k.lower() not in given},
            **headers,
        }
        self._proxy = proxy
        self._proxy_password = yarl.URL(proxy).password if proxy else None
        self._trust_env = trust_env
        self._env_proxies: dict[str, str] = {}
        self._proxy_cache: dict[tuple[str, str], str | None] = {}
        self._key = api_key or ""
        self.timeout = timeout
        self.retry = retry
        self.max_response_bytes = max_response_bytes
        self._base = yarl.URL(self.base_url)
        self._origin = _origin(self._base)
        self.guard = AddressGuard(download_allow or (), base=self._origin[1:])
        self._ssl: _ssl.SSLContext | bool = True if ssl is None else ssl
        self._max_connections = max_connections
        self._slots: ConnectionCap | None = None
        self._client: aiohttp.ClientSession | None = None
        self._anonymous: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"Transport({self.base_url!r})"

    @property
    def request_timeout(self) -> float:
        """The per-request timeout in force: a view's, or the session's."""
        options = _CALL_OPTIONS.get()
        return options.timeout if options is not None and options.timeout else self.timeout

    @property
    def policy(self) -> RetryPolicy:
        """The retry policy in force: a view's, or the session's."""
        options = _CALL_OPTIONS.get()
        return options.retry if options is not None and options.retry else self.retry

    def redact(self, text: str) -> str:
        """Remove the API key from ``text``."""
        key = self._key
        if key and len(key) >= 4 and key in text:
            text = text.replace(key, "***")
        secret = self._proxy_password
        if secret and secret in text:
            text = text.replace(secret, "***")
        for url in self._env_proxies.values():
            if "@" in url and "://" in url:
                password = yarl.URL(url).password
                if password and password in text:
                    text = text.replace(password, "***")
        return text

    def _proxy_hosts(self) -> set[str]:
        """The hosts of the proxies in use: the resolver must let them through."""
        urls = [self._proxy] if self._proxy else list(self._env_proxies.values())
        return {(yarl.URL(u).host or "").lower() for u in urls if "://" in u}

    def _proxy_for(self, url: yarl.URL) -> str | None:
        """The proxy for ``url``: ``proxy=``, else the environment's unless ``NO_PROXY``
        names the host (urllib's rules, which aiohttp's own ``trust_env`` uses)."""
        if self._proxy is not None:
            return self._proxy
        if not self._env_proxies:
            return None
        key = (url.scheme, url.host or "")
        if key not in self._proxy_cache:
            env = self._env_proxies
            proxy = env.get(url.scheme) or env.get("all")
            if proxy and _bypass(key[1], env):
                proxy = None
            self._proxy_cache[key] = proxy
        return self._proxy_cache[key]

    async def open(self) -> None:
        """Create the connection pool (idempotent)."""
        if self._client is None:
            # The connector itself is unbounded: the slots below are the limit, so
            # that waiting for a connection happens before the request's clock starts.
            self._slots = ConnectionCap(self._max_connections)
            # Read here, not by aiohttp's trust_env: that also reads ~/.netrc on every
            # request (in a thread) and lets a netrc entry replace the provider's key.
            env = urllib.request.getproxies_environment() if self._trust_env else {}
            self._env_proxies = {k: v for k, v in env.items() if k != "no" and v}
            if env.get("no"):
                self._env_proxies["no"] = env["no"]
            self._proxy_cache.clear()
            connector = aiohttp.TCPConnector(limit=0, ssl=self._ssl)
            self._client = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(
                    total=self.timeout, sock_connect=min(self.timeout, 10.0)
                ),
            )

    async def close(self) -> None:
        """Close every connection."""
        anonymous, self._anonymous = self._anonymous, None
        if anonymous is not None:
            await anonymous.close()
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    @property
    def client(self) -> aiohttp.ClientSession:
        """The provider's aiohttp session; ConfigurationError while closed."""
        if self._client is None:
            raise _not_open()
        return self._client

    def _client_for(self, url: yarl.URL) -> aiohttp.ClientSession:
        """The provider's session for its own URLs; a credential-free, guarded one elsewhere."""
        client = self.client
        if str(url).startswith(self.base_url + "/"):
            return client
        if self._anonymous is None:
            # Its own connector: the resolver refuses private addresses, which the
            # provider's own connector must not (its base URL may be one).
            connector = aiohttp.TCPConnector(
                limit=0, ssl=self._ssl, resolver=_GuardedResolver(self.guard, self._proxy_hosts)
            )
            self._anonymous = aiohttp.ClientSession(
                connector=connector,
                headers=self._plain_headers,
                timeout=client.timeout,
            )
        return self._anonymous

    # -- the retry loop --------------------------------------------------------

    async def call(
        self,
        req: HttpRequest,
        parse: Callable[[HttpResponse], T],
        *,
        retry: RetryPolicy | None = None,
    ) -> T:
        """Send ``req`` and return ``parse(response)``, retrying by the rule for its kind.

        ``parse`` raises the typed error for a bad answer; :func:`retryable`
        then decides from that error whether to try again. Whatever the
        policy, a submit that may have reached the server is never sent again.
        """
        options = _CALL_OPTIONS.get()
        policy = (options.retry if options is not None else None) or retry or self.retry
        started = time.monotonic()
        waits = None
        attempt = 0
        while True:
            attempt += 1
            # A read retry gets no more than what is left of max_time (at least a
            # second), so a slow last try cannot run a whole timeout past it. A submit
            # keeps its full timeout: cut short, it could be accepted while we report
            # a failure.
            left = self.request_timeout
            if attempt > 1 and req.kind == "read":
                left = max(started + policy.max_time - time.monotonic(), _MIN_READ_TIMEOUT)
            try:
                resp = await self.send(req, attempt, timeout=left)
                return self._parsed(req, resp, parse)
            except MidjourneyError as exc:
                if attempt >= policy.max_tries or not retryable(req.kind, exc):
                    raise
                elapsed = time.monotonic() - started
                if elapsed >= policy.max_time:
                    raise
                if waits is None:
                    # Built on the first retry only: most calls never need it.
                    waits = _delays(policy)
                    next(waits)
                delay = min(waits.send(exc), policy.max_time - elapsed)
                logger.warning(
                    "retrying %s %s in %.2f s after %s (attempt %d of %d)",
                    req.method,
                    req.path,
                    delay,
                    self.redact(str(exc)),
                    attempt + 1,
                    policy.max_tries,
                )
                await asyncio.sleep(delay)

    def _parsed(
        self, req: HttpRequest, resp: HttpResponse, parse: Callable[[HttpResponse], T]
    ) -> T:
        """``parse(resp)``, its errors made safe to show."""
        try:
            return parse(resp)
        except DecodeError as exc:
            # Decoders quote the raw body; the key must not travel with it.
            exc.body = self.redact(exc.body)
            raise
        except RecursionError:
            error = DecodeError(f"{req.method} {req.path}: the answer is nested too deeply")
        raise error

    # -- one request -----------------------------------------------------------

    async def _slot(self, limit: float, method: str, path: str) -> None:
        """Wait for a free connection, at most ``limit`` seconds; nothing is sent meanwhile."""
        slots = self._slots
        if slots is None or self._client is None:
            raise _not_open()
        if await slots.acquire(limit):
            return
        raise ConnectError(
            f"{method} {path}: no free connection within {limit:.3g} s "
            f"(max_connections={self._max_connections}); nothing was sent",
            method=method,
            path=path,
        )

    def _release(self) -> None:
        if self._slots is not None:
            self._slots.release()

    async def send(
        self, req: HttpRequest, attempt: int = 1, *, timeout: float | None = None
    ) -> HttpResponse:
        """Send one request, no retries; aiohttp failures become TransportErrors.

        ``timeout`` shortens the session's request timeout for this request; it
        starts once a connection is free.
        """
        url = self.base_url + req.path
        kwargs: dict[str, Any] = {}
        proxy = self._proxy_for(self._base) if self._proxy or self._env_proxies else None
        if proxy:
            kwargs["proxy"] = proxy
        limit = self.request_timeout
        if timeout is not None and timeout < limit:
            limit = timeout
        if limit != self.timeout:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=limit, sock_connect=min(limit, 10.0))
        if req.json is not None:
            kwargs["data"] = aiohttp.payload.BytesPayload(req.json, content_type=_JSON)
        elif req.form is not None:
            kwargs["data"] = dict(req.form)
        client = self.client
        await self._slot(limit, req.method, req.path)
        started = time.perf_counter()
        error: MidjourneyError
        try:
            # No redirects with credentials on: aiohttp would forward a custom auth
            # header (mj-api-secret) to whatever host a redirect names.
            async with client.request(req.method, url, allow_redirects=False, **kwargs) as resp:
                body = await self._read_capped(resp, req)
                status = resp.status
                headers = resp.headers
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            error = self._translate(exc, req.method, req.path, url, limit)
        else:
            if status not in REDIRECTS:
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug(
                        "%s %s -> %d in %.1f ms (attempt %d)",
                        req.method,
                        req.path,
                        status,
                        (time.perf_counter() - started) * 1000,
                        attempt,
                    )
                return HttpResponse(status, body, headers, self.redact, self.redact(url))
            location = self.redact(headers.get("Location", ""))
            error = HTTPStatusError(
                f"{req.method} {req.path}: the server redirects to {location or 'elsewhere'}; "
                "point base_url at the final address (credentials never follow a redirect)",
                status=status,
            )
        finally:
            self._release()
        # Raised here, outside the except block, so that the aiohttp error (which
        # keeps the request headers, the API key among them) is not chained on.
        raise error

    async def _read_capped(self, resp: aiohttp.ClientResponse, req: HttpRequest) -> bytes:
        cap = self.max_response_bytes
        length = resp.content_length
        if length is not None and length <= cap:
            return await resp.read()
        if length is not None:
            resp.close()  # the rest is never read: the connection cannot be reused
            raise _too_big(req, f"declares {length} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > cap:
                resp.close()
                raise _too_big(req, f"holds more than {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _translate(
        self, exc: BaseException, method: str, path: str, url: str, limit: float | None
    ) -> MidjourneyError:
        """The one map from aiohttp's failures to the error tree (requests and downloads).

        Only the redacted text of ``exc`` is kept: callers raise the result
        outside their except block, so that ``exc`` (whose request info holds
        the headers) is neither the cause nor the context of what users see.
        """
        detail = self.redact(str(exc)) or type(exc).__name__
        # getattr: aiohttp 3.9's certificate error has no os_error to read.
        refused = getattr(exc, "os_error", None)
        if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(refused, RefusedAddress):
            return DownloadRefused(str(refused), url=self.redact(url))
        if isinstance(exc, aiohttp.InvalidURL):
            return ConfigurationError(f"invalid URL {self.redact(url)!r}")
        if isinstance(exc, (aiohttp.ClientConnectorError, _CONNECT_TIMEOUT)):
            return ConnectError(
                f"{method} {path}: could not connect to {self.redact(url)}: {detail}",
                method=method,
                path=path,
            )
        if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
            within = f" within {limit:.3g} s" if limit else " in time"
            return RequestTimeout(
                f"{method} {path}: no answer{within}; the server may have received the request",
                method=method,
                path=path,
                maybe_received=True,
            )
        return TransportError(
            f"{method} {path}: connection failed after the request was sent "
            f"({type(exc).__name__}: {detail}); the server may have received it",
            method=method,
            path=path,
            maybe_received=True,
        )

    # -- downloads -------------------------------------------------------------

    async def download(self, url: str, consume: Consume[T], *, timeout: float | None = None) -> T:
        """GET ``url`` (absolute, or a path on the base URL) and return ``consume(...)``.

        ``consume`` gets the final URL, the headers, the declared length and
        the body in chunks. Redirects are followed here (at most five), each
        hop checked: only the base URL's server gets the auth headers, and a
        hop to a loopback, link-local or private address is refused unless it
        is on the base URL's origin or in ``download_allow``.
        """
        absolute = self._url(url if "://" in url else self.base_url + url)
        limit = timeout or self.request_timeout
        # Left out when no timeout is given: aiohttp reads None as "no timeout at
        # all", which would drop the session's own.
        extra: dict[str, Any] = {"timeout": aiohttp.ClientTimeout(total=timeout)} if timeout else {}

        await self._slot(limit, "GET", self.redact(str(absolute)))
        error: MidjourneyError
        try:
            for _ in range(_MAX_REDIRECTS + 1):
                self._check_address(absolute)
                proxy = self._proxy_for(absolute)
                async with self._client_for(absolute).get(
                    absolute, allow_redirects=False, proxy=proxy, **extra
                ) as resp:
                    location = resp.headers.get("Location")
                    if resp.status in REDIRECTS and location:
                        absolute = resp.url.join(self._url(location))
                        if absolute.scheme not in ("http", "https"):
                            raise DownloadRefused(
                                "download redirected to a non-http(s) URL",
                                url=self.redact(str(absolute)),
                            )
                        continue
                    if resp.status >= 400:
                        body = await resp.content.read(300)
                        raise status_error(
                            HttpResponse(resp.status, body, resp.headers, self.redact),
                            f"download {self.redact(str(absolute))}",
                        )
                    return await consume(
                        str(absolute),
                        resp.headers,
                        resp.content_length,
                        resp.content.iter_chunked(_CHUNK),
                    )
            raise TransportError(
                f"download of {self.redact(url)} was redirected more than "
                f"{_MAX_REDIRECTS} times",
                method="GET",
                path=self.redact(url),
                maybe_received=True,
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            where = self.redact(str(absolute))
            error = self._translate(exc, "GET", where, where, timeout)
        finally:
            self._release()
        raise error

    def _url(self, text: str) -> yarl.URL:
        """``text`` as a URL whose port can be read; DownloadRefused otherwise."""
        try:
            url = yarl.URL(text)
            url.port  # noqa: B018 - yarl checks the port lazily
        except ValueError:
            raise DownloadRefused(
                f"refusing to download {self.redact(text)!r}: not a valid URL",
                url=self.redact(text),
            ) from None
        return url

    def _check_address(self, url: yarl.URL) -> None:
        """Refuse a hop to a non-public IP literal; names are checked by the resolver."""
        if _origin(url) == self._origin:
            return
        refusal = self.guard.literal_refusal(url.host or "")
        if refusal:
            raise DownloadRefused(refusal, url=self.redact(str(url)))


def _not_open() -> ConfigurationError:
    return ConfigurationError(
        "the session is not open: use `async with MidjourneySession(...)` "
        "or `await session.open()`"
    )


def _origin(url: yarl.URL) -> tuple[str, str, int | None]:
    return (url.scheme.lower(), (url.host or "").lower(), url.port)


def _too_big(req: HttpRequest, what: str) -> DecodeError:
    return DecodeError(
        f"{req.method} {req.path}: the answer {what}, over the max_response_bytes cap; "
        "it was not read"
    )
