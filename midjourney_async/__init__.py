"""midjourney_async: an asyncio-first client for Midjourney behind midjourney-proxy style APIs.

Example::

    from midjourney_async import MidjourneySession

    async with MidjourneySession(base_url=..., api_key=..., provider="trueai") as mj:
        handle = await mj.imagine("a red fox in snow --ar 3:2")
        task = await handle.wait(timeout=600)
        upscaled = await (await handle.upscale(2)).wait()
        await mj.download(upscaled, "out/")
"""

import logging

from ._errors import (
    AuthenticationError,
    BannedPromptError,
    ButtonNotFound,
    ConfigurationError,
    ConnectError,
    DecodeError,
    DownloadRefused,
    DownloadTooLarge,
    HTTPStatusError,
    InvalidArgument,
    InvalidRequestError,
    JournalError,
    MidjourneyError,
    ModalRequired,
    NoChannelError,
    NotFoundError,
    NotMidjourneyAPI,
    PermissionDeniedError,
    QueueFullError,
    QuotaExceeded,
    RateLimitError,
    RemixDisabled,
    RequestTimeout,
    ServerError,
    SessionClosed,
    SlotTimeout,
    SubmitNotFound,
    SubmitRejected,
    TaskFailed,
    TaskNotFound,
    TaskTimeout,
    TransportError,
    UnsupportedOperation,
)
from ._handle import TaskHandle
from ._journal import Journal, JournalEntry, SQLiteJournal
from ._models import AccountFilter, Button, SubmitResult, Task, TaskAction, TaskStatus
from ._providers import PROVIDERS, Provider
from ._session import MidjourneySession
from ._sync import Midjourney, SyncTaskHandle
from ._tracker import TrackerStats
from ._transport import RetryPolicy
from ._version import __version__
from ._webhook import WebhookConfig, WebhookStats, parse_notification

# A library stays quiet until its user configures logging.
logging.getLogger("midjourney_async").addHandler(logging.NullHandler())

__all__ = [
    "PROVIDERS",
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
