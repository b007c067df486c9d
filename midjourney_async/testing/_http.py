"""HTTP shapes per family: replies, authentication, error bodies, fault bodies."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from ._profiles import Profile

_encoder = msgspec.json.Encoder()
encode = _encoder.encode


@dataclass
class Reply:
    """A response before it becomes an aiohttp one (so faults can rewrite it)."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(obj: Any, status: int = 200) -> Reply:
    """Encode ``obj`` with msgspec."""
    return Reply(status, encode(obj))


def raw_json(body: bytes, status: int = 200) -> Reply:
    """Pre-encoded JSON bytes."""
    return Reply(status, body)


def text_reply(text: str, status: int, content_type: str = "text/plain") -> Reply:
    """A plain text (or HTML) body."""
    return Reply(status, text.encode(), f"{content_type}; charset=utf-8")


def empty_reply(status: int = 200) -> Reply:
    """No body and no content type (Java's "null" answer, trueai's 204)."""
    return Reply(status, b"", None)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _spring_error(status: int, reason: str, path: str) -> Reply:
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
    return json_reply(
        {"timestamp": now, "status": status, "error": reason, "path": path}, status
    )


def trueai_error(message: str, status: int = 200) -> Reply:
    """trueai's other error shape, from its quota/limit filters and unhandled errors."""
    return json_reply(
        {"success": False, "code": -1, "message": message, "timestamp": _now_ms()}, status
    )


def relay_error(message: str, status: int, kind: str = "new_api_error") -> Reply:
    """new-api's OpenAI-style error."""
    return json_reply({"error": {"message": message, "type": kind}}, status)


def ohmygpt_envelope(status_code: int, message: str, data: Any = None, http: int = 200) -> Reply:
    """OhMyGPT's envelope; errors keep HTTP 200 and put the failure in ``statusCode``."""
    return json_reply({"statusCode": status_code, "message": message, "data": data}, http)


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def reason(status: int) -> str:
    """The standard reason phrase for ``status``."""
    return _REASONS.get(status, "Error")


def not_found(profile: Profile, method: str, path: str) -> Reply:
    """What each family answers for a path it does not serve."""
    match profile.family:
        case "java":
            return _spring_error(404, "Not Found", path)
        case "trueai":
            return empty_reply(404)
        case "new-api":
            return relay_error(f"Invalid URL ({method} {path})", 404, "invalid_request_error")
        case _:
            return ohmygpt_envelope(404, "Not Found", None, 404)


def bad_json(profile: Profile, path: str) -> Reply:
    """What each family answers for a body that is not a JSON object."""
    match profile.family:
        case "java":
            return _spring_error(400, "Bad Request", path)
        case "trueai":
            return trueai_error("请求参数错误: invalid JSON body", 500)
        case "new-api":
            return json_reply(
                {"code": 4, "description": "bind_request_body_failed", "type": "upstream_error"},
                400,
            )
        case _:
            return ohmygpt_envelope(400, "Invalid request body")


def status_fault(profile: Profile, status: int, path: str, message: str | None) -> Reply:
    """A realistic body for an injected HTTP status."""
    if status in (502, 503, 504):
        # What sits in front of real proxies (nginx, Cloudflare) answers gateway errors.
        html = (
            f"<html>\r\n<head><title>{status} {reason(status)}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {reason(status)}</h1></center>\r\n"
            "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        )
        return text_reply(html, status, "text/html")
    text = message or reason(status)
    match profile.family:
        case "java":
            return _spring_error(status, text, path)
        case "trueai":
            return trueai_error(text, status)
        case "new-api":
            return relay_error(text, status)
        case _:
            return ohmygpt_envelope(status, text, None, status)


RELAY_SATURATED = "当前分组上游负载已饱和，请稍后再试"
"""new-api's wording for its code 30 (group/channel saturated)."""


def rate_limited(profile: Profile, retry_after: float, message: str | None = None) -> Reply:
    """A 429 with ``Retry-After``; Java and trueai rate limiters send no body.

    new-api answers its code 30 (group/channel saturated) as HTTP 429 with its
    ``upstream_error`` shape.
    """
    header = str(int(retry_after)) if float(retry_after).is_integer() else f"{retry_after:g}"
    if profile.family == "new-api":
        reply = json_reply(
            {"code": 30, "description": message or RELAY_SATURATED, "type": "upstream_error"},
            429,
        )
    elif profile.family == "ohmygpt":
        reply = ohmygpt_envelope(429, "Too Many Requests", None, 429)
    else:
        reply = empty_reply(429)
    reply.headers["Retry-After"] = header
    return reply


def check_auth(profile: Profile, headers: Mapping[str, str], api_key: str) -> Reply | None:
    """``None`` when the request carries the key the way this family expects, else the 401."""
    match profile.family:
        case "java":
            if headers.get("mj-api-secret") == api_key:
                return None
            return empty_reply(401)
        case "trueai":
            # trueai reads Authorization verbatim (no "Bearer " stripping) and looks at
            # Mj-Api-Secret only when Authorization is absent.
            token = headers.get("Authorization")
            if token is None:
                token = headers.get("Mj-Api-Secret")
            if token == api_key:
                return None
            if token is None or not token.strip():
                return text_reply("Authorization header missing.", 401)
            # A token that matches no user: the request runs as nobody.
            return text_reply("未登录", 403)
        case "new-api":
            return _relay_auth(profile, headers, api_key)
        case _:
            if headers.get("Authorization", "").removeprefix("Bearer ").strip() == api_key:
                return None
            return ohmygpt_envelope(401, "Unauthorized: invalid API key", None, 401)


def _relay_token(value: str) -> str:
    return value.strip().removeprefix("Bearer ").strip().removeprefix("sk-")


def _relay_auth(profile: Profile, headers: Mapping[str, str], api_key: str) -> Reply | None:
    key = api_key.removeprefix("sk-")
    auth = _relay_token(headers.get("Authorization", ""))
    secret = _relay_token(headers.get("mj-api-secret", ""))
    candidates = [auth]
    if not auth or auth == "midjourney-proxy" or profile.accepts_mj_api_secret:
        candidates.append(secret)
    if key in candidates:
        return None
    if not any(candidates):
        return relay_error("未提供令牌", 401)
    return relay_error("无效的令牌", 401)


Handler = Callable[["Call"], Awaitable[Reply]]


@dataclass
class Call:
    """One resolved request: route name, handler and path parameters."""

    route: str
    handler: Handler
    request: web.Request
    params: dict[str, str] = field(default_factory=dict)
    mode: str | None = None
    needs_auth: bool = True
    body: bytes = b""

    def json(self) -> Any:
        """The body decoded as JSON (raises ``msgspec.DecodeError`` when it is not)."""
        return msgspec.json.decode(self.body)
