"""``comfy_api.v0_0_2``: the versioned alias of ``comfy_api.latest`` that packs pin.

``ComfyAPI().execution.set_progress`` (async), ``ComfyAPISync``, and the V3 ``io``, ``ui``
and ``ComfyExtension`` — the same objects as :mod:`nodeloom.compat.comfy.api.latest`.
"""

from __future__ import annotations

from nodeloom.compat.comfy.api.latest import ComfyAPI_latest, ComfyExtension, io, ui
from nodeloom.compat.comfy.api.latest import ComfyAPISync as _SyncLatest
from nodeloom.compat.comfy.api.latest import Input as _InputLatest
from nodeloom.compat.comfy.api.latest import InputImpl as _InputImplLatest
from nodeloom.compat.comfy.api.latest import Types as _TypesLatest

__all__ = ["ComfyAPI", "ComfyAPISync", "ComfyExtension", "Input", "InputImpl", "Types", "io", "ui"]


class ComfyAPIAdapter_v0_0_2(ComfyAPI_latest):  # noqa: N801 - ComfyUI's name
    """The async API at version 0.0.2."""

    VERSION = "0.0.2"


class ComfyAPISync(_SyncLatest):
    """The synchronous API at version 0.0.2."""

    VERSION = "0.0.2"


class Input(_InputLatest):
    pass


class InputImpl(_InputImplLatest):
    pass


class Types(_TypesLatest):
    pass


ComfyAPI = ComfyAPIAdapter_v0_0_2
