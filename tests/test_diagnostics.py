"""What a user reads when something is off: messages that name the cause, and a library
that prints nothing unless logging is configured."""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import pytest
from mj_support import KEY, RecordingServer, Reply

from midjourney_async import (
    MidjourneySession,
    NotFoundError,
    RetryPolicy,
)

FAST: dict[str, Any] = {"poll_interval": 0.01, "retry": RetryPolicy.without_waits()}


async def test_wrong_base_url_says_so_rather_than_task_not_found(
    server: RecordingServer,
) -> None:
    server.add("GET", "/mj/task/1/fetch", Reply.json({"error": "Not Found", "status": 404}, 404))
    server.add("GET", "/mj/task/1/image-seed", Reply.text("Not Found", 404))
    async with MidjourneySession(server.url, KEY, **FAST) as mj:
        with pytest.raises(NotFoundError) as fetched:
            await mj.fetch("1")
        with pytest.raises(NotFoundError) as seeded:
            await mj.image_seed("1")
    assert "base URL" in str(fetched.value) and "base URL" in str(seeded.value)



def test_nothing_is_printed_unless_logging_is_configured() -> None:
    code = (
        "import logging, midjourney_async;"
        "logging.getLogger('midjourney_async').warning('should stay quiet')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stderr == ""



def test_log_record_quiet_default_handler_is_a_null_handler() -> None:
    handlers = logging.getLogger("midjourney_async").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)
