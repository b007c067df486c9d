"""Server profiles: which dialect, auth scheme, routes and quirks each emulated server has.

The facts come from ``reference/proxy-api.md``; every flag here exists because a real server
behaves that way and a client has to cope with it.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Family = Literal["java", "trueai", "new-api", "ohmygpt"]
"""Wire family: the open Java proxy, the trueai C# proxy, a new-api relay, or OhMyGPT."""


@dataclass(frozen=True)
class Profile:
    """What one emulated provider looks like on the wire.

    Attributes:
        name: The profile name, also the client's ``provider`` name.
        family: Which server implementation the quirks come from.
        mode_prefixes: Path prefixes (before ``/mj``) that select a speed mode, mapped to the
            mode recorded on the task. ``"*"`` means any single path segment is accepted.
        queue_full_code: Submit code answered when the wait queue is full.
        queue_full_description: The wording that goes with it.
        result_as_number: The submit ``result`` is a JSON number instead of a string.
        notify_hook_default: Whether ``notifyHook`` callbacks are delivered by default.
        relay_cache: Fetch and list-by-condition answer from a cache refreshed on a cadence.
        accepts_mj_api_secret: new-api family: ``Mj-Api-Secret`` is accepted even when an
            ``Authorization`` header is present.
        relay_rewrites_image_url: new-api family: ``imageUrl`` is rewritten to the relay's own
            ``/mj/image/{id}`` route (plain new-api); otherwise the upstream URL is kept.
        relay_drops_image_urls: new-api family: the task DTO has no ``imageUrls`` (plain
            new-api); otherwise ``imageUrls`` is kept as the upstream sent it.
    """

    name: str
    family: Family
    mode_prefixes: Mapping[str, str]
    queue_full_code: int
    queue_full_description: str
    result_as_number: bool = False
    notify_hook_default: bool = True
    relay_cache: bool = False
    accepts_mj_api_secret: bool = False
    relay_rewrites_image_url: bool = True
    relay_drops_image_urls: bool = True

    @property
    def is_relay(self) -> bool:
        """True for the new-api family (new-api, openai-hk, zhongzhuan, pro365)."""
        return self.family == "new-api"


_J_QUEUE_FULL = "队列已满，请稍后尝试"
_T_QUEUE_FULL = "提交失败，队列已满，请稍后重试"
_ANY_PREFIX: Mapping[str, str] = types.MappingProxyType({"*": "*"})


_NEW_API = Profile(
    name="new-api",
    family="new-api",
    mode_prefixes=_ANY_PREFIX,
    queue_full_code=23,
    queue_full_description=_J_QUEUE_FULL,
    notify_hook_default=False,
    relay_cache=True,
)


PROFILES: Mapping[str, Profile] = types.MappingProxyType(
    {
        "midjourney-proxy": Profile(
            name="midjourney-proxy",
            family="java",
            mode_prefixes=types.MappingProxyType({}),
            queue_full_code=23,
            queue_full_description=_J_QUEUE_FULL,
        ),
        "trueai": Profile(
            name="trueai",
            family="trueai",
            mode_prefixes=types.MappingProxyType(
                {"mj-fast": "FAST", "mj-relax": "RELAX", "mj-turbo": "TURBO"}
            ),
            queue_full_code=9,
            queue_full_description=_T_QUEUE_FULL,
        ),
        "new-api": _NEW_API,
        # openai-hk fronts trueai upstreams, so its queue-full answer carries trueai's code 9.
        "openai-hk": dataclasses.replace(
            _NEW_API,
            name="openai-hk",
            result_as_number=True,
            accepts_mj_api_secret=True,
            queue_full_code=9,
            queue_full_description=_T_QUEUE_FULL,
            relay_rewrites_image_url=False,
            relay_drops_image_urls=False,
        ),
        # zhongzhuan's and openai-hk's own fetch samples keep the upstream imageUrl and the
        # imageUrls list (seed 001/002, tests/samples/proxy-fetch-edits-success.json).
        "zhongzhuan": dataclasses.replace(
            _NEW_API,
            name="zhongzhuan",
            relay_rewrites_image_url=False,
            relay_drops_image_urls=False,
        ),
        "pro365": dataclasses.replace(_NEW_API, name="pro365"),
        "ohmygpt": Profile(
            name="ohmygpt",
            family="ohmygpt",
            mode_prefixes=types.MappingProxyType({}),
            queue_full_code=400,
            queue_full_description="Midjourney queue is full, please retry later",
        ),
    }
)
"""Every emulated provider profile, by name."""


def get_profile(name: str) -> Profile:
    """Return the profile called ``name`` or raise ``ValueError`` listing the known names."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown emulator profile {name!r}; known profiles: {known}") from None
