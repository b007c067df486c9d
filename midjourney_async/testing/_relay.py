"""new-api relay specifics: its own (distributor) refusals and its duplicate rows.

new-api answers errors of its own in OpenAI's shape, unlike the Midjourney-shaped errors it
relays from upstream (``middleware/distributor.go``). And after a modal step it holds two
database rows with the same Midjourney id (``model/midjourney.go``: the id is not unique): the
row of the button press, frozen in MODAL, and the row of the modal submit, which its poller
keeps updating.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _http
from ._http import Reply
from ._quirks import ServerQuirks

if TYPE_CHECKING:
    from ._task import EmuTask

_PREFIX = {"openai": "Invalid request, ", "chinese": "无效的请求, ", "mixed": "无效的请求, "}


def refusal(quirks: ServerQuirks, detail: str, status: int = 400) -> Reply:
    """new-api's own refusal carrying ``detail`` (e.g. ``unknown_action:<customId>``)."""
    style = quirks.relay_error_style
    message = _PREFIX[style] + detail
    reply = _http.relay_error(message, status)
    if style == "mixed":
        # An older distributor wrote the Midjourney-shaped error and then aborted with the
        # OpenAI one: both bodies end up in the same response.
        first = _http.encode({"description": detail, "type": "upstream_error", "code": 4})
        reply.body = first + reply.body
    return reply


def no_channel(model: str) -> Reply:
    """503: the caller's group has no channel serving ``model`` (wording of new-api)."""
    return _http.relay_error(f"当前分组 default 下对于模型 {model} 无可用渠道", 503)


def stale_row(task: EmuTask) -> bytes | None:
    """The frozen MODAL row new-api keeps for ``task`` after its modal step, if any."""
    row: bytes | None = task.extra.get("relay_stale_row")
    return row
