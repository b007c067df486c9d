"""Every submit method says what it raises and what ``state=`` and ``extra=`` do,
where a reader of ``help(mj.imagine)`` or an editor's hover finds it."""

from __future__ import annotations

import inspect

import pytest

from midjourney_async import Midjourney, MidjourneySession

SUBMITS = [
    name
    for name, member in inspect.getmembers(MidjourneySession, inspect.iscoroutinefunction)
    if not name.startswith("_") and "extra" in inspect.signature(member).parameters
]

ERRORS = (
    "InvalidArgument",
    "InvalidRequestError",
    "UnsupportedOperation",
    "ConfigurationError",
    "SubmitRejected",
    "QueueFullError",
    "BannedPromptError",
    "QuotaExceeded",
    "RequestTimeout",
    "TransportError",
    "maybe_received",
    "JournalError",
    "SlotTimeout",
)


def test_the_submit_methods_are_found() -> None:
    assert {"imagine", "action", "blend", "describe", "modal", "video", "edits"} <= set(SUBMITS)


@pytest.mark.parametrize("name", SUBMITS)
def test_each_submit_names_its_errors(name: str) -> None:
    doc = inspect.getdoc(getattr(MidjourneySession, name)) or ""
    missing = [e for e in ERRORS if e not in doc]
    assert not missing, f"{name}: {missing}"
    assert "never sent again" in doc


@pytest.mark.parametrize("name", SUBMITS)
def test_each_submit_explains_state_and_extra(name: str) -> None:
    method = getattr(MidjourneySession, name)
    doc = inspect.getdoc(method) or ""
    assert "``extra``" in doc
    if "state" in inspect.signature(method).parameters:
        assert "``state``" in doc


@pytest.mark.parametrize("name", SUBMITS)
def test_the_blocking_client_shows_the_same_notes(name: str) -> None:
    assert inspect.getdoc(getattr(Midjourney, name)) == inspect.getdoc(
        getattr(MidjourneySession, name)
    )
