"""Provider presets: base URL, auth header, mode-prefix style and wire dialect.

| preset            | dialect | auth header                  | mode routes            |
|-------------------|---------|------------------------------|------------------------|
| midjourney-proxy  | proxy   | ``mj-api-secret: KEY``       | none                   |
| trueai            | proxy   | ``Authorization: KEY``       | ``/mj-<mode>/mj``      |
| new-api           | proxy   | ``Authorization: Bearer KEY``| ``/<mode>/mj``         |
| openai-hk         | proxy   | ``Authorization: Bearer KEY``| ``/fast``, ``/relax``  |
| zhongzhuan        | proxy   | ``Authorization: Bearer KEY``| none documented        |
| pro365            | proxy   | ``Authorization: Bearer KEY``| none documented        |
| ohmygpt           | ohmygpt | ``Authorization: Bearer KEY``| ``type`` FAST / NORMAL |

Every field can be overridden per session (``base_url``, ``auth_header``,
``auth_scheme``, ``mode_prefix``). A preset offers only the speed modes its
provider documents; ``mode_prefix=`` opens fast, relax and turbo on any.
The ``midjourney-proxy`` preset serves both novicezk editions: the open one
(no buttons: U/V/reroll go through ``/submit/change``) and the plus one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Literal

from ._errors import ConfigurationError

__all__ = ["PROVIDERS", "Provider", "resolve_provider"]

DialectName = Literal["proxy", "ohmygpt"]


@dataclass(frozen=True, slots=True)
class Provider:
    """A provider preset.

    ``mode_prefix`` is a template such as ``"/mj-{mode}"`` put before ``/mj``
    when the session has a mode; None means the provider has no mode routes.
    ``describe_link``: describe takes an image link (novicezk takes base64
    only); ``callbacks``: the server delivers notifyHook callbacks (new-api
    relays strip them unless their operator enabled them);
    ``account_filter_top_level``: the account filter goes in top-level
    ``instanceId``/``modes``/``remix`` fields (the plus edition) rather than
    an ``accountFilter`` object (trueai; new-api relays delete it unless
    their operator enabled it); ``extend_needs_prompt``: a video extend
    needs a prompt (trueai).
    """

    name: str
    dialect: DialectName
    base_url: str | None
    auth_header: str
    auth_scheme: str
    mode_prefix: str | None
    modes: tuple[str, ...]
    describe_link: bool = True
    callbacks: bool = True
    account_filter_top_level: bool = False
    extend_needs_prompt: bool = False

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        """The header that carries ``api_key`` in this provider's style."""
        if not api_key:
            return {}
        value = f"{self.auth_scheme} {api_key}" if self.auth_scheme else api_key
        return {self.auth_header: value}

    def root(self, mode: str | None) -> str:
        """The path under which the proxy routes live, e.g. ``/mj-fast/mj``."""
        if mode is None or self.dialect != "proxy":
            return "/mj"
        if self.mode_prefix is None:
            raise ConfigurationError(
                f"provider {self.name!r} has no mode routes; leave mode unset and put "
                "--fast or --relax in the prompt, or pass mode_prefix='/{mode}'"
            )
        return self.mode_prefix.format(mode=mode) + "/mj"


_MODES = ("fast", "relax", "turbo")

#: The presets by name, read-only: pass overrides to the session instead.
PROVIDERS: Mapping[str, Provider] = MappingProxyType({
    p.name: p
    for p in (
        Provider(
            "midjourney-proxy",
            "proxy",
            None,
            "mj-api-secret",
            "",
            None,
            (),
            describe_link=False,
            account_filter_top_level=True,
        ),
        Provider(
            "trueai",
            "proxy",
            None,
            "Authorization",
            "",
            "/mj-{mode}",
            _MODES,
            extend_needs_prompt=True,
        ),
        Provider(
            "new-api",
            "proxy",
            None,
            "Authorization",
            "Bearer",
            "/{mode}",
            _MODES,
            callbacks=False,
        ),
        Provider(
            "openai-hk",
            "proxy",
            "https://api.openai-hk.com",
            "Authorization",
            "Bearer",
            "/{mode}",
            ("fast", "relax"),
            callbacks=False,
        ),
        Provider(
            "zhongzhuan",
            "proxy",
            "https://api.zhongzhuan.chat",
            "Authorization",
            "Bearer",
            "/{mode}",
            (),
            callbacks=False,
        ),
        Provider(
            "pro365",
            "proxy",
            "https://api.pro365.top",
            "Authorization",
            "Bearer",
            "/{mode}",
            (),
            callbacks=False,
        ),
        Provider(
            "ohmygpt",
            "ohmygpt",
            "https://api.ohmygpt.com",
            "Authorization",
            "Bearer",
            None,
            ("fast", "relax"),
        ),
    )
})
"""Every provider preset by name (read-only): what ``MidjourneySession(provider=...)`` accepts."""


def resolve_provider(
    name: str,
    *,
    auth_header: str | None = None,
    auth_scheme: str | None = None,
    mode_prefix: str | None = None,
) -> Provider:
    """The preset called ``name`` with the user's overrides applied."""
    try:
        preset = PROVIDERS[name.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise ConfigurationError(f"unknown provider {name!r}; known providers: {known}") from None
    if auth_header is not None:
        preset = replace(preset, auth_header=auth_header)
    if auth_scheme is not None:
        preset = replace(preset, auth_scheme=auth_scheme.strip())
    if mode_prefix is not None:
        if "{mode}" not in mode_prefix:
            raise ConfigurationError(
                f"mode_prefix {mode_prefix!r} must contain '{{mode}}', e.g. '/mj-{{mode}}'"
            )
        preset = replace(preset, mode_prefix=mode_prefix.rstrip("/"), modes=_MODES)
    return preset


def check_mode(provider: Provider, mode: str | None) -> str | None:
    """Normalise ``mode`` and check that the provider serves it."""
    if mode is None or mode == "":
        return None
    normal = mode.strip().lower()
    if provider.modes and normal not in provider.modes:
        raise ConfigurationError(
            f"mode {mode!r} is not offered by {provider.name!r}; "
            f"choose one of: {', '.join(provider.modes)}"
        )
    if not provider.modes and provider.mode_prefix is not None:
        raise ConfigurationError(
            f"provider {provider.name!r} documents no speed modes, so {mode!r} is not "
            "offered; leave mode unset, or pass mode_prefix='/{mode}' if your relay "
            "serves mode routes"
        )
    if not provider.modes and provider.mode_prefix is None:
        raise ConfigurationError(
            f"provider {provider.name!r} has no mode routes; leave mode unset and put "
            "--fast or --relax in the prompt, or pass mode_prefix='/{mode}'"
        )
    return normal
