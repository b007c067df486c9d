"""Files the emulator serves under ``/files/``: generated lazily, cached, addressed by path.

A task only records a small :class:`FileSpec`; bytes are produced the first time someone
downloads them, so 10,000 finished tasks cost no CPU until a client asks for an image.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

from . import _media

FileKind = Literal["grid", "tile", "single", "mp4", "raw"]


@dataclass(frozen=True)
class FileSpec:
    """How to produce one served file."""

    kind: FileKind
    key: str = ""
    index: int = 0
    width: int = 512
    height: int = 512
    data: bytes = b""
    content_type: str = "image/png"


@functools.lru_cache(maxsize=64)
def _generate(spec: FileSpec) -> bytes:
    match spec.kind:
        case "grid":
            return _media.grid_png(spec.key, spec.width, spec.height)
        case "tile":
            return _media.tile_png(spec.key, spec.index, spec.width, spec.height)
        case "single":
            return _media.single_png(spec.key, spec.width, spec.height)
        case "mp4":
            return _media.fake_mp4(spec.key)
        case _:
            return spec.data


def file_bytes(spec: FileSpec) -> tuple[bytes, str]:
    """The file's bytes and content type (generated ones are cached)."""
    if spec.kind == "raw":
        return spec.data, spec.content_type
    content_type = "video/mp4" if spec.kind == "mp4" else "image/png"
    return _generate(spec), content_type


class FileStore:
    """Path -> spec registry behind ``GET /files/<path>``."""

    def __init__(self) -> None:
        self._specs: dict[str, FileSpec] = {}
        self.base_url = ""

    def add(self, path: str, spec: FileSpec) -> str:
        """Register ``spec`` at ``/files/<path>`` and return its absolute URL."""
        self._specs[path] = spec
        return f"{self.base_url}/files/{path}"

    def get(self, path: str) -> FileSpec | None:
        """The spec registered at ``path`` (relative to ``/files/``)."""
        return self._specs.get(path)

    def __len__(self) -> int:
        return len(self._specs)
