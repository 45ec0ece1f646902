"""``comfy.utils``: ProgressBar and the helpers custom nodes use most.

``ProgressBar`` reports through the running node's context (so the engine's events, the CLI
bars and WebSocket clients see it) and checks for interruption on every update.
``load_torch_file`` reads safetensors, and pickled checkpoints only with
``torch.load(weights_only=True)``, never arbitrary pickles.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from nodeloom import node_api
from nodeloom.ops.resample import upscale as _upscale

__all__ = [
    "PROGRESS_BAR_ENABLED",
    "ProgressBar",
    "common_upscale",
    "load_torch_file",
    "lanczos",
    "set_progress_bar_enabled",
    "set_progress_bar_global_hook",
    "state_dict_prefix_replace",
]

PROGRESS_BAR_ENABLED = True

#: ComfyUI lets the host install one hook for every progress update; it is called in
#: addition to the running node's context.
_global_hook: Callable[..., Any] | None = None


def set_progress_bar_enabled(enabled: bool) -> None:
    """Turn the console progress bar flag on or off (kept for packs that read it)."""
    global PROGRESS_BAR_ENABLED
    PROGRESS_BAR_ENABLED = bool(enabled)


def set_progress_bar_global_hook(function: Callable[..., Any] | None) -> None:
    """Install ``function(value, total, preview, node_id=None)``, or None to remove it."""
    global _global_hook
    _global_hook = function


def _preview_image(preview: Any) -> Any:
    """ComfyUI previews are ``(format, PIL image, max_size)`` tuples; pass the image on."""
    if isinstance(preview, tuple) and len(preview) >= 2:
        return preview[1]
    return preview


class ProgressBar(node_api.ProgressBar):
    """Step progress of the running node (``comfy.utils.ProgressBar``).

    Args:
        total: number of steps.
        node_id: report for this node id instead of the running one.
    """

    def update_absolute(self, value: float, total: float | None = None, preview: Any = None) -> None:  # type: ignore[override]
        super().update_absolute(value, total, _preview_image(preview))  # type: ignore[arg-type]
        if _global_hook is not None:
            _global_hook(self.current, self.total, preview, node_id=self.node_id)


def common_upscale(samples: torch.Tensor, width: int, height: int, upscale_method: str, crop: str) -> torch.Tensor:
    """Resize ``[B,C,H,W]`` samples (``upscale_method`` nearest-exact/bilinear/area/bicubic/lanczos/
    bislerp, ``crop`` disabled/center); see :func:`nodeloom.ops.resample.upscale`."""
    return _upscale(samples, int(width), int(height), upscale_method, crop)


def lanczos(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Lanczos resize of ``[B,C,H,W]`` samples."""
    return _upscale(samples, int(width), int(height), "lanczos")


def load_torch_file(
    ckpt: str | os.PathLike[str], safe_load: bool = True, device: Any = None, return_metadata: bool = False
) -> Any:
    """Load a state dict from ``.safetensors`` / ``.sft``, or a pickle with ``weights_only=True``.

    Args:
        ckpt: file path.
        safe_load: ignored: pickles are always loaded with ``weights_only=True``.
        device: map tensors to this device (default CPU).
        return_metadata: also return the safetensors metadata dict (None for pickles).

    Raises:
        FileNotFoundError: no such file.
        pickle.UnpicklingError: the pickle holds more than tensors and plain containers.
    """
    path = os.fspath(ckpt)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file `{path}` does not exist")
    device = torch.device("cpu") if device is None else torch.device(device)
    metadata = None
    if path.lower().endswith((".safetensors", ".sft")):
        from safetensors import safe_open

        state: dict[str, Any] = {}
        with safe_open(path, framework="pt", device=str(device)) as fh:
            metadata = fh.metadata()
            for key in fh.keys():
                state[key] = fh.get_tensor(key)
    else:
        state = torch.load(path, map_location=device, weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
    return (state, metadata) if return_metadata else state


def state_dict_prefix_replace(state_dict: dict[str, Any], replace_prefix: dict[str, str], filter_keys: bool = False) -> dict[str, Any]:
    """Rename keys starting with each prefix in ``replace_prefix`` (``{old: new}``).

    With ``filter_keys`` only renamed keys are returned; otherwise ``state_dict`` is edited
    in place and returned, as ComfyUI does.
    """
    out: dict[str, Any] = {} if filter_keys else state_dict
    for old, new in replace_prefix.items():
        for key in [k for k in state_dict if k.startswith(old)]:
            value = state_dict[key] if filter_keys else state_dict.pop(key)
            out[new + key[len(old):]] = value
    return out
