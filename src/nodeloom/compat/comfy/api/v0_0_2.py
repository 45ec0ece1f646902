"""``comfy_api.v0_0_2``: ``ComfyAPI().execution.set_progress`` (async) and ``ComfyAPISync``.

Progress goes to the running node's context, like ``comfy.utils.ProgressBar``; a
``node_id`` reports for another node of the running prompt.
"""

from __future__ import annotations

from typing import Any

from nodeloom.core.context import current_node_context

__all__ = ["ComfyAPI", "ComfyAPISync"]


def _report(value: float, max_value: float, node_id: str | None, preview_image: Any) -> None:
    ctx = current_node_context()
    if ctx is None:
        raise ValueError("`set_progress` must be called while a node of a running prompt executes")
    if isinstance(preview_image, tuple) and len(preview_image) >= 2:
        preview_image = preview_image[1]  # ComfyUI's (format, image, max_size)
    ctx.progress(float(value), float(max_value), preview_image, node_id=node_id)


class _ExecutionSync:
    def set_progress(
        self,
        value: float,
        max_value: float,
        node_id: str | None = None,
        preview_image: Any = None,
        ignore_size_limit: bool = False,
    ) -> None:
        """Report ``value`` of ``max_value`` for the running node (or ``node_id``)."""
        _report(value, max_value, node_id, preview_image)


class _ExecutionAsync:
    async def set_progress(self, *args: Any, **kwargs: Any) -> None:
        """The awaitable form of :meth:`_ExecutionSync.set_progress` (same arguments)."""
        _ExecutionSync().set_progress(*args, **kwargs)


class ComfyAPI:
    """The async API object packs create at import time (``api = ComfyAPI()``)."""

    VERSION = "0.0.2"

    def __init__(self) -> None:
        self.execution = _ExecutionAsync()


class ComfyAPISync:
    """The synchronous twin of :class:`ComfyAPI`."""

    VERSION = "0.0.2"

    def __init__(self) -> None:
        self.execution = _ExecutionSync()
