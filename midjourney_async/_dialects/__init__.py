"""Wire dialects: how an operation becomes a request and an answer becomes a Task."""

from __future__ import annotations

from ._base import SUBMIT_OPS, Dialect
from .ohmygpt import OhMyGPTDialect
from .proxy import ProxyDialect

__all__ = ["SUBMIT_OPS", "Dialect", "OhMyGPTDialect", "ProxyDialect", "make_dialect"]


def make_dialect(name: str, *, root: str, mode: str | None) -> Dialect:
    """The dialect called ``name``: ``root`` is the proxy route prefix, ``mode`` the speed."""
    if name == "ohmygpt":
        return OhMyGPTDialect(mode=mode)
    return ProxyDialect(root=root)
