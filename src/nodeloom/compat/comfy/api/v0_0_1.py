"""``comfy_api.v0_0_1``: the oldest versioned alias (the API of ``comfy_api.v0_0_2``, marked stable)."""

from __future__ import annotations

from nodeloom.compat.comfy.api.v0_0_2 import ComfyAPIAdapter_v0_0_2
from nodeloom.compat.comfy.api.v0_0_2 import ComfyAPISync as _Sync002
from nodeloom.compat.comfy.api.v0_0_2 import Input, InputImpl, Types

__all__ = ["ComfyAPI", "ComfyAPISync", "Input", "InputImpl", "Types"]


class ComfyAPIAdapter_v0_0_1(ComfyAPIAdapter_v0_0_2):  # noqa: N801 - ComfyUI's name
    """The async API at version 0.0.1."""

    VERSION = "0.0.1"
    STABLE = True


class ComfyAPISync(_Sync002):
    """The synchronous API at version 0.0.1."""

    VERSION = "0.0.1"
    STABLE = True


ComfyAPI = ComfyAPIAdapter_v0_0_1
