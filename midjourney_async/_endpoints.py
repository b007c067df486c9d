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

from ._errors import InvalidRequestError
from ._media import as_data_url
from ._models import (
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

if TYPE_CHECKING:
    from ._handle import TaskHandle
    from ._providers import Provider
    from ._submitter import Submitter

__all__ = ["ImageInput", "SubmitEndpoints", "need_text"]

ImageInput = str | bytes | os.PathLike[str]
_DIMENSIONS = ("PORTRAIT", "SQUARE", "LANDSCAPE")
_CHANGE_ACTIONS = ("UPSCALE", "VARIATION", "REROLL")


def need_text(value: str | None, what: str) -> str:
    """``value`` as a str, refused when missing or blank."""
    if value is None or not str(value).strip():
        raise InvalidRequestError(f"{what} must not be empty (nothing was sent)", code=None)
    return str(value)


class SubmitEndpoints:
    """The submit endpoints of :class:`MidjourneySession`."""

    provider: Provider
    _submitter: Submitter

    async def _submit(
        self,
        op: str,
        body: msgspec.Struct,
        extra: dict[str, Any] | None = None,
        *,
        continues: str | None = None,
    ) -> TaskHandle:
        raise NotImplementedError

    async def imagine(
        self,
        prompt: str,
        *,
        images: Sequence[ImageInput] = (),
        state: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Submit ``/imagine``. ``images`` are image prompts (bytes, paths or data URLs).

        Returns as soon as the server accepted the task.

        Example::

            handle = await mj.imagine("a lighthouse at dusk --ar 16:9")
        """
        body = ImagineRequest(
            prompt=need_text(prompt, "prompt"),
            base64_array=[as_data_url(i) for i in images] or None,
            state=state,
        )
        return await self._submit("imagine", body, extra)

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
        """Answer the modal window of a task in MODAL (Custom Zoom, Vary (Region), remix)."""
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
        state: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Blend 2-5 images into a grid."""
        if not 2 <= len(images) <= 5:
            raise InvalidRequestError(
                f"blend takes 2 to 5 images, not {len(images)} (nothing was sent)", code=None
            )
        if dimensions is not None and dimensions not in _DIMENSIONS:
            raise InvalidRequestError(
                f"dimensions must be one of {', '.join(_DIMENSIONS)} (nothing was sent)",
                code=None,
            )
        body = BlendRequest(
            base64_array=[as_data_url(i) for i in images], dimensions=dimensions, state=state
        )
        return await self._submit("blend", body, extra)

    async def describe(
        self,
        image: ImageInput,
        *,
        state: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TaskHandle:
        """Describe an image: the finished task holds four prompts in ``final_prompt``."""
        data = as_data_url(image, allow_url=True)
        if data.startswith("http") and not self.provider.describe_link:
            raise InvalidRequestError(
                f"{self.provider.name} describes an image sent as data, not a link: pass the "
                "bytes or a file path (nothing was sent)",
                code=None,
            )
        body = (
            DescribeRequest(link=data, state=state)
            if data.startswith("http")
            else DescribeRequest(base64=data, state=state)
        )
        return await self._submit("describe", body, extra)

    async def shorten(
        self, prompt: str, *, state: str | None = None, extra: dict[str, Any] | None = None
    ) -> TaskHandle:
        """Shorten a prompt: the finished task lists shorter prompts."""
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
        """The older ``/submit/change``: UPSCALE or VARIATION ``index`` 1-4, or REROLL."""
        act = str(action).upper()
        if act not in _CHANGE_ACTIONS:
            raise InvalidRequestError(
                f"action must be one of {', '.join(_CHANGE_ACTIONS)} (nothing was sent)",
                code=None,
            )
        if act != "REROLL" and (index is None or not 1 <= index <= 4):
            raise InvalidRequestError(
                f"{act} needs an index from 1 to 4 (nothing was sent)", code=None
            )
        body = ChangeRequest(
            task_id=need_text(task_id, "task_id"),
            action=act,
            index=index if act != "REROLL" else None,
            state=state,
        )
        return await self._submit("change", body, extra)

    async def simple_change(
        self, content: str, *, state: str | None = None, extra: dict[str, Any] | None = None
    ) -> TaskHandle:
        """``/submit/simple-change`` with ``content`` such as ``"<task id> U2"``."""
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
        """Put the face of ``source`` onto ``target`` (``/insight-face/swap``)."""
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
        """
        if extend_task_id is None:
            prompt = need_text(prompt, "prompt")
        if image is None and extend_task_id is None:
            raise InvalidRequestError(
                "video needs a first-frame image, or extend_task_id to extend one "
                "(nothing was sent)",
                code=None,
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
        """Edit an image with a prompt; the finished task has four ``image_urls``."""
        body = EditsRequest(
            prompt=need_text(prompt, "prompt"),
            image=as_data_url(image, allow_url=True),
            state=state,
        )
        return await self._submit("edits", body, extra)

    async def upload_images(self, images: Sequence[ImageInput]) -> list[str]:
        """Upload images to the provider's storage; returns their URLs (no task is made)."""
        if not images:
            raise InvalidRequestError("upload_images needs at least one image", code=None)
        body = UploadRequest(base64_array=[as_data_url(i) for i in images])
        result = await self._submitter.call("upload-discord-images", body, None)
        return list(result.urls)
