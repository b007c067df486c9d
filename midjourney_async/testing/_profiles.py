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
"""Wire family: the Java proxy (open or plus), the trueai C# proxy, a new-api relay, OhMyGPT."""

Edition = Literal["", "open", "plus"]
"""Java family only: novicezk's open edition (v2.6.3) or the closed "plus" edition."""


@dataclass(frozen=True)
class Profile:
    """What one emulated provider looks like on the wire.

    Attributes:
        name: The profile name.
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
        edition: Java family: ``"open"`` is novicezk/midjourney-proxy v2.6.3 (no buttons, no
            ``/submit/action``, only imagine/change/simple-change/describe/blend and the task
            queries); ``"plus"`` is the closed midjourney-proxy-plus edition (buttons, action,
            modal, shorten, face swap, image-seed).
        provider: The client preset (``MidjourneySession(provider=...)``) that talks to this
            server; empty means the profile's own name.
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
    edition: Edition = ""
    provider: str = ""

    @property
    def client_provider(self) -> str:
        """The client preset name for this server (``provider`` or the profile name)."""
        return self.provider or self.name

    @property
    def open_edition(self) -> bool:
        """True for novicezk's open edition (no buttons, no ``/submit/action``)."""
        return self.family == "java" and self.edition == "open"

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
        # novicezk/midjourney-proxy v2.6.3, the open source edition most people run.
        "midjourney-proxy-open": Profile(
            name="midjourney-proxy-open",
            family="java",
            mode_prefixes=types.MappingProxyType({}),
            queue_full_code=23,
            queue_full_description=_J_QUEUE_FULL,
            edition="open",
            provider="midjourney-proxy",
        ),
        # The closed "plus" edition: same wire as the open one plus buttons and more routes.
        "midjourney-proxy-plus": Profile(
            name="midjourney-proxy-plus",
            family="java",
            mode_prefixes=types.MappingProxyType({}),
            queue_full_code=23,
            queue_full_description=_J_QUEUE_FULL,
            edition="plus",
            provider="midjourney-proxy",
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

PROFILE_ALIASES: Mapping[str, str] = types.MappingProxyType(
    {"midjourney-proxy": "midjourney-proxy-open"}
)
"""Other names a profile answers to. ``midjourney-proxy`` starts novicezk's open edition,
the one most servers run (no buttons); ask for ``midjourney-proxy-plus`` for buttons."""


def profile_names() -> list[str]:
    """Every name :func:`get_profile` accepts (profiles and aliases), sorted."""
    return sorted({*PROFILES, *PROFILE_ALIASES})


def get_profile(name: str) -> Profile:
    """Return the profile called ``name`` (or aliased so) or raise ``ValueError``."""
    try:
        return PROFILES[PROFILE_ALIASES.get(name, name)]
    except KeyError:
        known = ", ".join(profile_names())
        raise ValueError(f"unknown emulator profile {name!r}; known profiles: {known}") from None
