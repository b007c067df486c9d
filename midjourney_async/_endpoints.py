"""What a user can submit: one method per endpoint, checking its arguments first.

Every check here runs before anything is sent, so a bad argument costs
nothing and never reaches a paid account. The session mixes these in; each
method builds the request body and hands it to the session's submit path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from ._errors import (
    InvalidArgument,
)
from ._http import CallOptions
from ._media import as_data_url
from ._models import (
    AccountFilter,
    ActionRequest,
    BlendRequest,
    ChangeRequest,
    DescribeRequest,
    EditsRequest,
    ImagineRequest,
    ModalRequest,
    ShortenRequest,
    SimpleChangeRequest,
    SwapFaceRequest,
    UploadRequest,
    VideoRequest,
)
from ._transport import call_options

if TYPE_CHECKING:
    from ._handle import TaskHandle
    from ._providers import Provider
    from ._submitter import Submitter

__all__ = ["ImageInput", "SubmitEndpoints", "need_text"]

ImageInput = str | bytes | os.PathLike[str]
Bot = Literal["midjourney", "niji"]
_BOT_TYPES = {"midjourney": "MID_JOURNEY", "mj": "MID_JOURNEY", "niji": "NIJI_JOURNEY"}
_DIMENSIONS = ("PORTRAIT", "SQUARE", "LANDSCAPE")
_CHANGE_ACTIONS = ("UPSCALE", "VARIATION", "REROLL")


def bot_type(bot: str | None) -> str | None:
    """The wire ``botType`` for ``bot`` ("midjourney" or "niji"); None leaves it out."""
    if bot is None:
        return None
    known = _BOT_TYPES.get(str(bot).strip().lower())
    if known is None:
        raise InvalidArgument(
            f"bot must be 'midjourney' or 'niji', not {bot!r} (nothing was sent)")
    return known


def need_text(value: str | None, what: str) -> str:
    """``value`` as a str, refused when missing or blank."""
    if value is None or not str(value).strip():
        raise InvalidArgument(f"{what} must not be empty (nothing was sent)")
    return str(value)


class SubmitEndpoints:
    """The submit endpoints of :class:`MidjourneySession`.

    Each returns a :class:`TaskHandle` as soon as the server accepted the task.

    ``state`` is a short tag of yours (trueai refuses a long one) that the
    server keeps with the task and hands back in every snapshot
    (``task.state``) and in the task lists: the way to find a task whose
    answer was lost. ``extra`` is a dict merged into the JSON body as sent,
    for fields of a server this library does not model (it wins over a field
    of the same name).

    What a submit raises, by what happened to the request:

    * nothing was sent: :class:`InvalidArgument` (a bad argument),
      :class:`UnsupportedOperation` (the provider has no such endpoint),
      :class:`ConfigurationError` (the session is not open), :class:`SlotTimeout`
      (``max_in_flight`` tasks still running after ``timeout``), or a
      :class:`JournalError` without a handle (the intent could not be written);
    * the server refused it and created nothing: :class:`SubmitRejected` and
      its kinds, :class:`QueueFullError` (retried while the policy allows),
      :class:`BannedPromptError` (``banned_word``), :class:`QuotaExceeded`,
      :class:`InvalidRequestError` (code 4), :class:`SubmitNotFound` (the parent
      task is unknown); and HTTP errors such as :class:`AuthenticationError`;
    * it may have been received: :class:`RequestTimeout` or :class:`TransportError`
      with ``maybe_received=True``, :class:`ServerError`, :class:`DecodeError`.
      It is never sent again: look for the task (its ``state`` tag) first;
    * accepted, but the journal could not record it: :class:`JournalError`,
      whose ``handle`` follows the task.
    """

    provider: Provider
    _submitter: Submitter
    _options: CallOptions | None = None

    if TYPE_CHECKING:
        # Provided by the session.
        async def _submit(
            self,
            op: str,
            body: msgspec.Struct,
            extra: dict[str, Any] | None = None,
            *,
            continues: str | None = None,
        ) -> TaskHandle: ...

    def _with_account(
        self, account_filter: AccountFilter | None, extra: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """``extra`` with the account filter the way the provider's server reads it."""
        if account_filter is None:
            return extra
        if not isinstance(account_filter, AccountFilter):
            raise InvalidArgument(
                "account_filter must be an AccountFilter (nothing was sent)")
        fields = msgspec.to_builtins(account_filter)
        if fields.get("modes"):
            fields["modes"] = [str(m).upper() for m in fields["modes"]]
        merged = dict(extra or {})
        if self.provider.account_filter_top_level:
            merged.update(fields)
        else:
            merged["accountFilter"] = fields
        return merged

    async def imagine(
        self,
        prompt: str,
        *,
        images: Sequence[ImageInput] = (),
        bot: Bot | None = None,
        account_filter: AccountFilter | None = None,
        state: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Submit ``/imagine``. ``images`` are image prompts (bytes, paths or data URLs).

        ``bot="niji"`` runs it on the Niji bot (``botType: NIJI_JOURNEY``);
        ``account_filter`` picks the Discord account (trueai and the plus
        edition; new-api relays drop it unless their operator enabled it).
        Returns as soon as the server accepted the task.

        Example::

            handle = await mj.imagine("a lighthouse at dusk --ar 16:9")

        ``state`` is a tag the server keeps with the task (find a lost task by
        it); ``extra`` adds fields to the JSON body as sent.

        Raises, nothing sent: InvalidArgument, UnsupportedOperation,
        ConfigurationError, SlotTimeout; refused, nothing created:
        SubmitRejected (InvalidRequestError, QueueFullError, BannedPromptError,
        QuotaExceeded...); may have been received: RequestTimeout or
        TransportError with ``maybe_received`` (never sent again); accepted but
        not journaled: JournalError (with ``.handle``).
        """
        body = ImagineRequest(
            prompt=need_text(prompt, "prompt"),
            base64_array=[as_data_url(i) for i in images] or None,
            bot_type=bot_type(bot),
            state=state,
        )
        return await self._submit("imagine", body, self._with_account(account_filter, extra))

    async def action(
        self,
        task_id: str,
        custom_id: str,
        *,
        enable_remix: bool | None = None,
        state: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Press the button ``custom_id`` of task ``task_id`` (``/submit/action``).

        Prefer the handle helpers (``upscale``, ``variation``, ``press``...),
        which read the custom id from the task's own buttons.

        ``state`` is a tag the server keeps with the task (find a lost task by
        it); ``extra`` adds fields to the JSON body as sent.

        Raises, nothing sent: InvalidArgument, UnsupportedOperation,
        ConfigurationError, SlotTimeout; refused, nothing created:
        SubmitRejected (InvalidRequestError, QueueFullError, BannedPromptError,
        QuotaExceeded...); may have been received: RequestTimeout or
        TransportError with ``maybe_received`` (never sent again); accepted but
        not journaled: JournalError (with ``.handle``).
        """
        body = ActionRequest(
            task_id=need_text(task_id, "task_id"),
            custom_id=need_text(custom_id, "custom_id"),
            enable_remix=enable_remix,
            state=state,
        )
        return await self._submit("action", body, extra)

    async def modal(
        self,
        task_id: str,
        *,
        prompt: str | None = None,
        mask_base64: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Answer the modal window of a task in MODAL (Custom Zoom, Vary (Region), remix).

        ``extra`` adds fields to the JSON body as sent.

        Raises, nothing sent: InvalidArgument, UnsupportedOperation,
        ConfigurationError, SlotTimeout; refused, nothing created:
        SubmitRejected (InvalidRequestError, QueueFullError, BannedPromptError,
        QuotaExceeded...); may have been received: RequestTimeout or
        TransportError with ``maybe_received`` (never sent again); accepted but
        not journaled: JournalError (with ``.handle``).
        """
        body = ModalRequest(
            task_id=need_text(task_id, "task_id"),
            prompt=prompt,
            mask_base64=as_data_url(mask_base64) if mask_base64 else None,
        )
        return await self._submit("modal", body, extra, continues=task_id)

    async def blend(
        self,
        images: Sequence[ImageInput],
        *,
        dimensions: Literal["PORTRAIT", "SQUARE", "LANDSCAPE"] | None = None,
        bot: Bot | None = None,
        account_filter: AccountFilter | None = None,
        state: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Blend 2-5 images into a grid (``bot`` and ``account_filter`` as for imagine).

        ``state`` is a tag the server keeps with the task (find a lost task by
        it); ``extra`` adds fields to the JSON body as sent.

        Raises, nothing sent: InvalidArgument, UnsupportedOperation,
        ConfigurationError, SlotTimeout; refused, nothing created:
        SubmitRejected (InvalidRequestError, QueueFullError, BannedPromptError,
        QuotaExceeded...); may have been received: RequestTimeout or
        TransportError with ``maybe_received`` (never sent again); accepted but
        not journaled: JournalError (with ``.handle``).
        """
        if not 2 <= len(images) <= 5:
            raise InvalidArgument(
                f"blend takes 2 to 5 images, not {len(images)} (nothing was sent)")
        if dimensions is not None and dimensions not in _DIMENSIONS:
            raise InvalidArgument(
                f"dimensions must be one of {', '.join(_DIMENSIONS)} (nothing was sent)",
            )
        body = BlendRequest(
            base64_array=[as_data_url(i) for i in images],
            dimensions=dimensions,
            bot_type=bot_type(bot),
            state=state,
        )
        return await self._submit("blend", body, self._with_account(account_filter, extra))

    async def describe(
        self,
        image: ImageInput,
        *,
        bot: Bot | None = None,
        account_filter: AccountFilter | None = None,
        state: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Describe an image: the finished task holds four prompts in ``final_prompt``.

        ``bot`` and ``account_filter`` as for :meth:`imagine`.

        ``state`` is a tag the server keeps with the task (find a lost task by
        it); ``extra`` adds fields to the JSON body as sent.

        Raises, nothing sent: InvalidArgument, UnsupportedOperation,
        ConfigurationError, SlotTimeout; refused, nothing created:
        SubmitRejected (InvalidRequestError, QueueFullError, BannedPromptError,
        QuotaExceeded...); may have been received: RequestTimeout or
        TransportError with ``maybe_received`` (never sent again); accepted but
        not journaled: JournalError (with ``.handle``).
        """
        data = as_data_url(image, allow_url=True)
        if data.startswith("http") and not self.provider.describe_link:
            raise InvalidArgument(
                f"{self.provider.name} describes an image sent as data, not a link: pass the "
                "bytes or a file path (nothing was sent)",
            )
        bot_name = bot_type(bot)
        body = (
            DescribeRequest(link=data, bot_type=bot_name, state=state)
            if data.startswith("http")
            else DescribeRequest(base64=data, bot_type=bot_name, state=state)
        )
        return await self._submit("describe", body, self._with_account(account_filter, extra))

    async def shorten(
        self, prompt: str, *, state: str | None = None, extra: dict[str, Any] | None = None
    ) -> TaskHandle:
        """Shorten a prompt: the finished task lists shorter prompts.

        ``state`` is a tag the server keeps with the task (find a lost task by
        it); ``extra`` adds fields to the JSON body as sent.

        Raises, nothing sent: InvalidArgument, UnsupportedOperation,
        ConfigurationError, SlotTimeout; refused, nothing created:
        SubmitRejected (InvalidRequestError, QueueFullError, BannedPromptError,
        QuotaExceeded...); may have been received: RequestTimeout or
        TransportError with ``maybe_received`` (never sent again); accepted but
        not journaled: JournalError (with ``.handle``).
        """
        body = ShortenRequest(prompt=need_text(prompt, "prompt"), state=state)
        return await self._submit("shorten", body, extra)

    async def change(
        self,
        task_id: str,
        action: Literal["UPSCALE", "VARIATION", "REROLL"],
        index: int | None = None,
        *,
        state: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """The older ``/submit/change``: UPSCALE or VARIATION ``index`` 1-4, or REROLL.

        A REROLL is sent with ``index: 1``: new-api refuses one without an
        index, and novicezk ignores it.

        ``state`` is a tag the server keeps with the task (find a lost task by
        it); ``extra`` adds fields to the JSON body as sent.

        Raises, nothing sent: InvalidArgument, UnsupportedOperation,
        ConfigurationError, SlotTimeout; refused, nothing created:
        SubmitRejected (InvalidRequestError, QueueFullError, BannedPromptError,
        QuotaExceeded...); may have been received: RequestTimeout or
        TransportError with ``maybe_received`` (never sent again); accepted but
        not journaled: JournalError (with ``.handle``).
        """
        act = str(action).upper()
        if act not in _CHANGE_ACTIONS:
            raise InvalidArgument(
                f"action must be one of {', '.join(_CHANGE_ACTIONS)} (nothing was sent)",
            )
        if act != "REROLL" and (index is None or not 1 <= index <= 4):
            raise InvalidArgument(
                f"{act} needs an index from 1 to 4 (nothing was sent)")
        body = ChangeRequest(
            task_id=need_text(task_id, "task_id"),
            action=act,
            index=index if act != "REROLL" else 1,
            state=state,
        )
        return await self._submit("change", body, extra)

    async def simple_change(
        self, content: str, *, state: str | None = None, extra: dict[str, Any] | None = None
    ) -> TaskHandle:
        """``/submit/simple-change`` with ``content`` such as ``"<task id> U2"``.

        ``state`` is a tag the server keeps with the task (find a lost task by
        it); ``extra`` adds fields to the JSON body as sent.

        Raises, nothing sent: InvalidArgument, UnsupportedOperation,
        ConfigurationError, SlotTimeout; refused, nothing created:
        SubmitRejected (InvalidRequestError, QueueFullError, BannedPromptError,
        QuotaExceeded...); may have been received: RequestTimeout or
        TransportError with ``maybe_received`` (never sent again); accepted but
        not journaled: JournalError (with ``.handle``).
        """
        body = SimpleChangeRequest(content=need_text(content, "content"), state=state)
        return await self._submit("simple-change", body, extra)

    async def swap_face(
        self,
        source: ImageInput,
        target: ImageInput,
        *,
        state: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Put the face of ``source`` onto ``target`` (``/insight-face/swap``).

        ``state`` is a tag the server keeps with the task (find a lost task by
        it); ``extra`` adds fields to the JSON body as sent.

        Raises, nothing sent: InvalidArgument, UnsupportedOperation,
        ConfigurationError, SlotTimeout; refused, nothing created:
        SubmitRejected (InvalidRequestError, QueueFullError, BannedPromptError,
        QuotaExceeded...); may have been received: RequestTimeout or
        TransportError with ``maybe_received`` (never sent again); accepted but
        not journaled: JournalError (with ``.handle``).
        """
        body = SwapFaceRequest(
            source_base64=as_data_url(source), target_base64=as_data_url(target), state=state
        )
        return await self._submit("swap-face", body, extra)

    async def video(
        self,
        prompt: str | None = None,
        *,
        image: ImageInput | None = None,
        end_image: ImageInput | None = None,
        motion: Literal["low", "high"] | None = None,
        loop: bool | None = None,
        video_type: str | None = None,
        batch_size: int | None = None,
        extend_task_id: str | None = None,
        index: int | None = None,
        state: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Make a video from a first frame (URL or image data) and a prompt.

        ``extend_task_id`` with ``index`` (0-3) extends one video of an earlier task.

        ``state`` is a tag the server keeps with the task (find a lost task by
        it); ``extra`` adds fields to the JSON body as sent.

        Raises, nothing sent: InvalidArgument, UnsupportedOperation,
        ConfigurationError, SlotTimeout; refused, nothing created:
        SubmitRejected (InvalidRequestError, QueueFullError, BannedPromptError,
        QuotaExceeded...); may have been received: RequestTimeout or
        TransportError with ``maybe_received`` (never sent again); accepted but
        not journaled: JournalError (with ``.handle``).
        """
        if extend_task_id is None or self.provider.extend_needs_prompt:
            # trueai refuses an extend without a prompt too (code 4 "Prompt 不能为空").
            prompt = need_text(prompt, "prompt")
        if image is None and extend_task_id is None:
            raise InvalidArgument(
                "video needs a first-frame image, or extend_task_id to extend one "
                "(nothing was sent)",
            )
        body = VideoRequest(
            prompt=prompt,
            image=as_data_url(image, allow_url=True) if image is not None else None,
            end_image=as_data_url(end_image, allow_url=True) if end_image is not None else None,
            motion=motion,
            loop=loop,
            video_type=video_type,
            batch_size=batch_size,
            action="extend" if extend_task_id else None,
            task_id=extend_task_id,
            index=index,
            state=state,
        )
        return await self._submit("video", body, extra)

    async def edits(
        self,
        prompt: str,
        image: ImageInput,
        *,
        state: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Edit an image with a prompt; the finished task has four ``image_urls``.

        ``state`` is a tag the server keeps with the task (find a lost task by
        it); ``extra`` adds fields to the JSON body as sent.

        Raises, nothing sent: InvalidArgument, UnsupportedOperation,
        ConfigurationError, SlotTimeout; refused, nothing created:
        SubmitRejected (InvalidRequestError, QueueFullError, BannedPromptError,
        QuotaExceeded...); may have been received: RequestTimeout or
        TransportError with ``maybe_received`` (never sent again); accepted but
        not journaled: JournalError (with ``.handle``).
        """
        body = EditsRequest(
            prompt=need_text(prompt, "prompt"),
            image=as_data_url(image, allow_url=True),
            state=state,
        )
        return await self._submit("edits", body, extra)

    async def upload_images(self, images: Sequence[ImageInput]) -> list[str]:
        """Upload images to the provider's storage; returns their URLs (no task is made).

        Raises InvalidRequestError or UnsupportedOperation before sending,
        SubmitRejected when refused, RequestTimeout or TransportError when the
        answer was lost.
        """
        if not images:
            raise InvalidArgument("upload_images needs at least one image")
        body = UploadRequest(base64_array=[as_data_url(i) for i in images])
        with call_options(self._options):
            result = await self._submitter.call("upload-discord-images", body, None)
        return list(result.urls)
