"""``comfy_api.latest``: ComfyUI's V3 node API — ``io``, ``ui``, ``ComfyExtension``, ``ComfyAPI``.

Packs import ``from comfy_api.latest import ComfyExtension, io, ui`` and expose an async
``comfy_entrypoint()`` returning their extension. ``ComfyAPI().execution.set_progress``
reports progress for the running node (or ``node_id``), like ``comfy.utils.ProgressBar``;
``ComfyAPI().node_replacement.register(io.NodeReplace(...))``, called while the pack loads,
offers a replacement for a node type the pack retired.
``Input`` names the value types (``Input.Image`` is a ``torch.Tensor``, ``Input.Video`` the
VIDEO value base), ``InputImpl`` the VIDEO classes packs build and ``Types`` the video helper
types — nodeloom's own (:mod:`nodeloom.compat.comfy.api.media`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from nodeloom.compat.comfy.api import media
from nodeloom.compat.comfy.api.latest import _io as io
from nodeloom.compat.comfy.api.latest import _ui as ui
from nodeloom.compat.loader import loading_registry
from nodeloom.core.context import current_node_context

__all__ = ["ComfyAPI", "ComfyAPISync", "ComfyAPI_latest", "ComfyExtension", "Input", "InputImpl", "Types",
           "comfy_io", "io", "ui"]

comfy_io = io


def _report(value: float, max_value: float, node_id: str | None, preview_image: Any) -> None:
    ctx = current_node_context()
    if ctx is None:
        raise ValueError("`set_progress` must be called while a node of a running prompt executes")
    if isinstance(preview_image, tuple) and len(preview_image) >= 2:
        preview_image = preview_image[1]  # ComfyUI's (format, image, max_size)
    ctx.progress(float(value), float(max_value), preview_image, node_id=node_id)


class _ExecutionSync:
    def set_progress(self, value: float, max_value: float, node_id: str | None = None, preview_image: Any = None,
                     ignore_size_limit: bool = False) -> None:
        """Report ``value`` of ``max_value`` for the running node (or ``node_id``)."""
        _report(value, max_value, node_id, preview_image)


class _NodeReplacementSync:
    def register(self, node_replace: Any) -> None:
        """Offer ``node_replace`` (an ``io.NodeReplace``) in the registry the packs load into."""
        entry = node_replace.as_dict() if hasattr(node_replace, "as_dict") else node_replace
        if not isinstance(entry, dict):
            raise TypeError(f"`node_replacement.register` takes an io.NodeReplace, got {type(node_replace).__name__}")
        loading_registry().register_replacement(entry)


class _NodeReplacementAsync:
    async def register(self, node_replace: Any) -> None:
        """The awaitable form of :meth:`_NodeReplacementSync.register`."""
        _NodeReplacementSync().register(node_replace)


class _ExecutionAsync:
    async def set_progress(self, *args: Any, **kwargs: Any) -> None:
        """The awaitable form of :meth:`_ExecutionSync.set_progress` (same arguments)."""
        _ExecutionSync().set_progress(*args, **kwargs)


class ComfyAPI_latest:  # noqa: N801 - ComfyUI's name
    """The async API object packs create at import time (``api = ComfyAPI()``)."""

    VERSION = "latest"
    STABLE = False

    def __init__(self) -> None:
        self.execution = _ExecutionAsync()
        self.node_replacement = _NodeReplacementAsync()


class ComfyAPISync:
    """The synchronous twin of :class:`ComfyAPI_latest`."""

    VERSION = "latest"
    STABLE = False

    def __init__(self) -> None:
        self.execution = _ExecutionSync()
        self.node_replacement = _NodeReplacementSync()


ComfyAPI = ComfyAPI_latest


class ComfyExtension(ABC):
    """What ``comfy_entrypoint()`` returns: ``get_node_list()`` gives the pack's V3 node classes."""

    async def on_load(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Called once when the pack loads, before ``get_node_list``."""

    @abstractmethod
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        """The node classes of this extension."""


class _Namespace(type):
    """A class namespace whose missing names raise an error that says what is not provided."""

    def __getattr__(cls, name: str) -> Any:
        raise AttributeError(f"`comfy_api.latest.{cls.__name__}.{name}` is not provided by nodeloom's V3 API")


class Input(metaclass=_Namespace):
    """Value types of the sockets, for type hints and ``isinstance``."""

    Image = media.ImageInput
    Mask = media.MaskInput
    Audio = media.AudioInput
    Latent = media.LatentInput
    Video = media.VideoInput


class InputImpl(metaclass=_Namespace):
    """The VIDEO value classes packs build (``InputImpl.VideoFromFile(path)``)."""

    VideoFromFile = media.VideoFromFile
    VideoFromComponents = media.VideoFromComponents


class Types(metaclass=_Namespace):
    """Helper value types: VIDEO components and the container / codec choices."""

    VideoCodec = media.VideoCodec
    VideoContainer = media.VideoContainer
    VideoComponents = media.VideoComponents
