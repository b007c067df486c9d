"""A session's configuration: arguments, the ``MJ_*`` environment, and their checks.

Everything is checked when the session is made, with an error that names
the option, so a bad value never reaches a server (a zero poll interval
would ask a paid account thousands of times a second).
"""

from __future__ import annotations

import ipaddress
import math
import os
import ssl as _ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ._errors import ConfigurationError
from ._http import CallOptions, RetryPolicy
from ._providers import Provider, check_mode, resolve_provider
from ._webhook import WebhookConfig

__all__ = ["MIN_POLL_INTERVAL", "MIN_POLL_INTERVAL_LOCAL", "Settings", "env"]

# The fastest a session may poll a real server, and a server on this machine
# (the emulator in tests, where near-zero intervals keep suites fast).
DEFAULT_POLL_INTERVAL = 3.0
MIN_POLL_INTERVAL = 0.5
MIN_POLL_INTERVAL_LOCAL = 0.001
# Callbacks make polling a slow safety net, where the provider sends them.
WEBHOOK_POLL_INTERVAL = 30.0


def env(name: str) -> str | None:
    """``os.environ[name]`` stripped, or None when unset or blank."""
    value = os.environ.get(name)
    return value.strip() if value and value.strip() else None


def _poll_interval(given: float | None, floor: float) -> float:
    """The poll interval argument, else ``MJ_POLL_INTERVAL``, else the default; checked
    under the name it came by."""
    if given is not None:
        return _number("poll_interval", given, low=floor)
    text = env("MJ_POLL_INTERVAL")
    if text is None:
        return DEFAULT_POLL_INTERVAL
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(
            f"MJ_POLL_INTERVAL must be a number of seconds, not {text[:40]!r}"
        ) from None
    return _number("MJ_POLL_INTERVAL", value, low=floor)


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` names this machine (localhost, 127.0.0.0/8, ::1)."""
    host = (urlsplit(url).hostname or "").strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _number(
    name: str, value: float, *, low: float, high: float = math.inf, open_low: bool = False
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number, not {value!r}")
    if not math.isfinite(value):
        # An infinite interval or delay would wait silently for ever; NaN compares false.
        raise ConfigurationError(f"{name} must be a finite number, not {value!r}")
    if value < low or (open_low and value == low) or value > high:
        bound = f"above {low:g}" if open_low else f"at least {low:g}"
        if high != math.inf:
            bound += f" and at most {high:g}"
        raise ConfigurationError(f"{name} must be {bound}, not {value!r}")
    return float(value)


def _whole(name: str, value: int, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be a whole number, not {value!r}")
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be from {low} to {high}, not {value!r}")
    return value


def check_retry(retry: RetryPolicy) -> RetryPolicy:
    """Refuse a retry policy that could not work (no try at all, negative waits)."""
    if not isinstance(retry, RetryPolicy):
        raise ConfigurationError(f"retry must be a RetryPolicy, not {type(retry).__name__}")
    _whole("retry.max_tries", retry.max_tries, low=1, high=100)
    _number("retry.max_time", retry.max_time, low=0, open_low=True)
    _number("retry.base_delay", retry.base_delay, low=0)
    _number("retry.max_delay", retry.max_delay, low=0)
    _number("retry.max_retry_after", retry.max_retry_after, low=0)
    _number("retry.wait_scale", retry.wait_scale, low=0)
    return retry


def check_proxy(proxy: str | None) -> str | None:
    """An http(s) proxy URL, or None; the value is never echoed (it may hold a password)."""
    if proxy is None:
        return None
    parts = urlsplit(proxy) if isinstance(proxy, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError("proxy must be an http(s) URL such as 'http://proxy.lan:3128'")
    return proxy


def check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Extra request headers as a plain dict of text; no line breaks (header injection)."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise ConfigurationError(f"headers must be a mapping, not {type(headers).__name__}")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str) or not name.strip():
            raise ConfigurationError(f"headers must map names to text; {name!r} does not")
        if any(c in name + value for c in "\r\n\0"):
            raise ConfigurationError(f"header {name!r} holds a line break")
        checked[name] = value
    return checked


def check_call_options(timeout: float | None, retry: RetryPolicy | None) -> CallOptions:
    """The options of ``with_options``, checked as the session's own are."""
    if timeout is None and retry is None:
        raise ConfigurationError("with_options needs timeout= or retry=")
    return CallOptions(
        timeout=_number("timeout", timeout, low=0, open_low=True) if timeout is not None else None,
        retry=check_retry(retry) if retry is not None else None,
    )


@dataclass(frozen=True)
class Settings:
    """Every option of a session, resolved and checked."""

    provider: Provider
    mode: str | None
    base_url: str
    api_key: str | None
    timeout: float
    wait_timeout: float
    poll_interval: float
    chunk_size: int | None
    not_found_grace: float
    retry: RetryPolicy
    max_in_flight: int | None
    webhook: WebhookConfig | None
    ssl: _ssl.SSLContext | bool | None
    max_connections: int
    max_response_bytes: int
    proxy: str | None = None
    trust_env: bool = True
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def resolve(
        cls,
        *,
        base_url: str | None,
        api_key: str | None,
        provider: str | None,
        mode: str | None,
        auth_header: str | None,
        auth_scheme: str | None,
        mode_prefix: str | None,
        timeout: float,
        wait_timeout: float,
        poll_interval: float | None,
        chunk_size: int | None,
        not_found_grace: float,
        retry: RetryPolicy | None,
        max_in_flight: int | None,
        webhook: WebhookConfig | bool | None,
        ssl: _ssl.SSLContext | bool | None,
        max_connections: int,
        max_response_bytes: int,
        proxy: str | None = None,
        trust_env: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> Settings:
        """Arguments first, then ``MJ_PROVIDER``, ``MJ_MODE``, ``MJ_BASE_URL``, ``MJ_API_KEY``,
        ``MJ_POLL_INTERVAL``."""
        name = provider or env("MJ_PROVIDER") or "midjourney-proxy"
        preset = resolve_provider(
            name, auth_header=auth_header, auth_scheme=auth_scheme, mode_prefix=mode_prefix
        )
        chosen_mode = check_mode(preset, mode if mode is not None else env("MJ_MODE"))
        url = base_url or env("MJ_BASE_URL") or preset.base_url
        if not url:
            raise ConfigurationError(
                f"no base URL: pass base_url= or set MJ_BASE_URL (provider {preset.name!r} "
                "has no default)"
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            # The value is not echoed: with the arguments swapped it is the key.
            raise ConfigurationError(
                "base_url must be an http(s) URL such as 'https://api.example.com' "
                "(are base_url and api_key swapped?)"
            )
        url = url.rstrip("/")
        floor = MIN_POLL_INTERVAL_LOCAL if is_loopback_url(url) else MIN_POLL_INTERVAL
        if isinstance(webhook, bool):
            webhook = WebhookConfig() if webhook else None
        if webhook is not None and webhook.poll_interval is not None:
            _number("webhook poll_interval", webhook.poll_interval, low=floor)
        if max_in_flight is not None:
            _whole("max_in_flight", max_in_flight, low=1, high=100_000)
        return cls(
            provider=preset,
            mode=chosen_mode,
            base_url=url,
            api_key=api_key if api_key is not None else env("MJ_API_KEY"),
            timeout=_number("timeout", timeout, low=0, open_low=True),
            wait_timeout=_number("wait_timeout", wait_timeout, low=0, open_low=True),
            poll_interval=_poll_interval(poll_interval, floor),
            chunk_size=(
                None if chunk_size is None else _whole("chunk_size", chunk_size, low=1, high=10_000)
            ),
            not_found_grace=_number("not_found_grace", not_found_grace, low=0),
            retry=check_retry(retry) if retry is not None else RetryPolicy(),
            max_in_flight=max_in_flight,
            webhook=webhook,
            ssl=ssl,
            max_connections=_whole("max_connections", max_connections, low=1, high=10_000),
            max_response_bytes=_whole(
                "max_response_bytes", max_response_bytes, low=1024, high=2**40
            ),
            proxy=check_proxy(proxy),
            trust_env=bool(trust_env),
            headers=check_headers(headers),
        )

    @property
    def poll_floor(self) -> float:
        """The fastest anything may poll this server (workers sharing a backend too)."""
        return MIN_POLL_INTERVAL_LOCAL if is_loopback_url(self.base_url) else MIN_POLL_INTERVAL

    @property
    def tracker_interval(self) -> float:
        """The poller's base tick: slower with callbacks coming, where they come."""
        if self.webhook is None:
            return self.poll_interval
        if self.webhook.poll_interval is not None:
            return self.webhook.poll_interval
        if not self.callbacks_can_arrive:
            return self.poll_interval
        return WEBHOOK_POLL_INTERVAL if self.provider.callbacks else self.poll_interval

    @property
    def callbacks_can_arrive(self) -> bool:
        """False when the callback URL is on loopback (no ``public_url``) while the
        server is not: the server's callbacks cannot reach this process."""
        if self.webhook is None:
            return False
        return self.webhook.public_url is not None or is_loopback_url(self.base_url)

    @property
    def poll_retry(self) -> RetryPolicy:
        """The poller gives up on a failing tick sooner than a user call would:
        the next tick is the retry."""
        # A 429 is retried once after at most a tick; past that the poller
        # itself backs off (never past the nearest wait's deadline).
        return RetryPolicy(
            max_tries=min(2, self.retry.max_tries),
            max_time=min(self.retry.max_time, max(self.poll_interval * 4, 5.0)),
            base_delay=self.retry.base_delay,
            max_retry_after=min(self.retry.max_retry_after, self.poll_interval),
            wait_scale=self.retry.wait_scale,
        )
