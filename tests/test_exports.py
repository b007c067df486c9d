"""The public surface: ``midjourney_async.__all__`` is pinned, so a name added or dropped
is a deliberate change made here too, and every exported name imports and is documented."""

from __future__ import annotations

import ast
import importlib
import itertools
from pathlib import Path

import pytest

import midjourney_async

EXPORTED = [
    "AccountFilter",
    "AuthenticationError",
    "BannedPromptError",
    "Button",
    "ButtonNotFound",
    "ConfigurationError",
    "ConnectError",
    "DecodeError",
    "DownloadRefused",
    "DownloadTooLarge",
    "HTTPStatusError",
    "InvalidArgument",
    "InvalidRequestError",
    "Journal",
    "JournalEntry",
    "JournalError",
    "Midjourney",
    "MidjourneyError",
    "MidjourneySession",
    "ModalRequired",
    "NoChannelError",
    "NotFoundError",
    "NotMidjourneyAPI",
    "PROVIDERS",
    "PermissionDeniedError",
    "Provider",
    "QueueFullError",
    "QuotaExceeded",
    "RateLimitError",
    "RemixDisabled",
    "RequestTimeout",
    "RetryPolicy",
    "SQLiteJournal",
    "ServerError",
    "SessionClosed",
    "SlotTimeout",
    "SubmitNotFound",
    "SubmitRejected",
    "SubmitResult",
    "SyncTaskHandle",
    "Task",
    "TaskAction",
    "TaskFailed",
    "TaskHandle",
    "TaskNotFound",
    "TaskStatus",
    "TaskTimeout",
    "TrackerStats",
    "TransportError",
    "UnsupportedOperation",
    "WebhookConfig",
    "WebhookStats",
    "__version__",
    "parse_notification",
]


def test_all_is_exactly_the_pinned_list() -> None:
    assert sorted(midjourney_async.__all__) == EXPORTED
    assert len(set(midjourney_async.__all__)) == len(midjourney_async.__all__), "a name twice"


@pytest.mark.parametrize("name", EXPORTED)
def test_every_exported_name_imports_and_has_a_docstring(name: str) -> None:
    module = importlib.import_module("midjourney_async")
    assert hasattr(module, name), f"{name} is in __all__ but not importable"
    value = getattr(module, name)
    if name == "__version__":
        assert isinstance(value, str) and value
        return
    # A constant's docstring is the string right after its assignment, as Sphinx reads it.
    doc = value.__doc__ if callable(value) else attribute_docstring(name)
    assert doc and doc.strip(), f"{name} has no docstring"


def attribute_docstring(name: str) -> str | None:
    """The docstring following ``name = ...`` at module level anywhere in the package."""
    for path in Path(midjourney_async.__file__).parent.glob("*.py"):
        body = ast.parse(path.read_text(encoding="utf-8")).body
        for stmt, after in itertools.pairwise(body):
            target = (
                stmt.target if isinstance(stmt, ast.AnnAssign)
                else stmt.targets[0] if isinstance(stmt, ast.Assign) else None
            )
            if (
                isinstance(target, ast.Name) and target.id == name
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                return after.value.value
    return None
