"""The package's layers: no module imports one above it at runtime, and only the I/O
edges touch aiohttp. Read from the source with ast, so nothing is imported to check it.

An import under ``if TYPE_CHECKING:`` is only for annotations and may point anywhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import midjourney_async

PACKAGE = Path(midjourney_async.__file__).parent

# Lowest first: a module may import only modules before it (and itself, and the standard
# library and third-party packages). A package (``_dialects``, ``testing``) is one layer.
ORDER = [
    "_version",
    "_errors",
    "_http",
    "_models",
    "_dialects",
    "_providers",
    "_guard",
    "_snapshot",
    "_state",
    "_reader",
    "_tracker",
    "_waiting",
    "_slots",
    "_journal",
    "_media",
    "_grid",
    "_conncap",
    "_transport",
    "_webhook",
    "_config",
    "_submitter",
    "_backend",
    "_redis_journal",
    "_redis_slots",
    "_redis_poller",
    "_handle",
    "_endpoints",
    "_downloads",
    "_session",
    "_sync",
    "_progress",
    # The emulator imports no client module, and the demo and the ``emulator`` command run
    # it, so it sits below them; only its pytest plugin opens a session (the top layer).
    "testing",
    "_demo",
    "_cli_args",
    "_cli",
    "redis",
    "__init__",
    "__main__",
    "testing._plugin",
]

# The servers (webhook receiver, emulator) and the transport are the I/O edges.
AIOHTTP_ALLOWED = {"_transport", "_webhook", "testing", "testing._plugin"}


def layer_of(path: Path) -> str:
    """The layer a file belongs to: its top-level module or package under the package."""
    rel = path.relative_to(PACKAGE)
    if rel.parts == ("testing", "_plugin.py"):
        return "testing._plugin"
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement outside ``if TYPE_CHECKING:`` blocks (function bodies too)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def package_targets(path: Path, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The layers of midjourney_async an import statement reaches."""
    rel = path.relative_to(PACKAGE)
    inside = rel.parts[:-1]  # the sub-package the file lives in, if any
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif node.level == 0:
        if node.module is not None:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    else:
        base = list(inside[: len(inside) - (node.level - 1)]) if node.level > 1 else list(inside)
        if node.module is not None:
            names = [".".join(["midjourney_async", *base, node.module])]
        else:  # ``from . import x``: each name is a module of that package
            names = [".".join(["midjourney_async", *base, alias.name]) for alias in node.names]
    layers = set()
    for name in names:
        parts = name.split(".")
        if parts[0] == "midjourney_async" and len(parts) > 1:
            layers.add(parts[1])
        elif parts[0] == "midjourney_async":
            layers.add("__init__")
    return layers


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_place_in_the_order() -> None:
    unplaced = {layer_of(p) for p in sources()} - set(ORDER)
    assert not unplaced, f"add {sorted(unplaced)} to ORDER in tests/test_layers.py"


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_one_above_it(path: Path) -> None:
    own = layer_of(path)
    rank = ORDER.index(own)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    upward = sorted(
        (node.lineno, target)
        for node in runtime_imports(tree)
        for target in package_targets(path, node)
        if target in ORDER and ORDER.index(target) > rank
    )
    assert not upward, f"{own} imports modules above it at runtime (line, module): {upward}"


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_io_edges_import_aiohttp(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    uses = [
        node.lineno
        for node in runtime_imports(tree)
        if any(
            name == "aiohttp" or name.startswith("aiohttp.")
            for name in (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""] if node.level == 0 else []
            )
        )
    ]
    if layer_of(path) not in AIOHTTP_ALLOWED:
        assert not uses, f"{path.name} imports aiohttp at lines {uses}"


def test_the_checker_sees_an_upward_import_and_ignores_type_checking_ones() -> None:
    path = PACKAGE / "_errors.py"
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "from ._session import MidjourneySession\n"
        "if TYPE_CHECKING:\n"
        "    from ._handle import TaskHandle\n"
        "def f():\n"
        "    from .testing import Emulator\n"
    )
    reached = [t for node in runtime_imports(tree) for t in package_targets(path, node)]
    assert reached == ["_session", "testing"]
    nested = PACKAGE / "_dialects" / "proxy.py"
    [relative] = runtime_imports(ast.parse("from .._models import Task\n"))
    assert package_targets(nested, relative) == {"_models"}
    [sibling] = runtime_imports(ast.parse("from ._base import Dialect\n"))
    assert package_targets(nested, sibling) == {"_dialects"}
