"""JSON helpers every dialect shares: one encoder, a tolerant decoder and times.

Every decoder here turns whatever a hostile body provokes (bad UTF-8, nesting
deep enough to exhaust the stack) into :class:`DecodeError`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import msgspec

from .._errors import DecodeError
from .._models import MS_FLOOR

__all__ = ["decode_any", "encode", "is_empty", "snippet", "to_epoch_ms", "too_deep"]

_any_decoder: Final = msgspec.json.Decoder()
_encoder: Final = msgspec.json.Encoder()


def encode(value: Any) -> bytes:
    """JSON-encode a request struct or plain data with the shared encoder."""
    return _encoder.encode(value)


def snippet(body: bytes, limit: int = 300) -> str:
    """The start of a body as text, for error messages."""
    text = body[:limit].decode("utf-8", "replace")
    return text + ("..." if len(body) > limit else "")


def too_deep(body: bytes) -> DecodeError:
    """The error for a body nested deeper than the decoder's recursion limit."""
    return DecodeError("the body is nested too deeply to be an answer", body=snippet(body))


def is_empty(body: bytes) -> bool:
    """True for the bodies servers use to say "nothing": empty, blank or ``null``."""
    stripped = body.strip()
    return not stripped or stripped == b"null"


def decode_any(body: bytes) -> Any:
    """Decode any JSON body, raising :class:`DecodeError` on malformed input."""
    try:
        return _any_decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        # msgspec raises UnicodeDecodeError for invalid UTF-8 inside a string.
        raise DecodeError(f"body is not valid JSON: {exc}", body=snippet(body)) from None
    except RecursionError:
        raise too_deep(body) from None


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
    ms = number * 1000 if number < MS_FLOOR else number
    # Zero or less (new-api's Go zero value), NaN, infinities and values past int64
    # are no time at all (NaN fails the comparison too).
    if not 0 < ms < 9.2e18:
        return None
    return int(ms)
