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
from nodeloom.ops.tiles import tile_count, tiled_apply

__all__ = [
    "PROGRESS_BAR_ENABLED",
    "ProgressBar",
    "bislerp",
    "common_upscale",
    "load_torch_file",
    "lanczos",
    "set_progress_bar_enabled",
    "set_progress_bar_global_hook",
    "state_dict_prefix_replace",
    "save_torch_file",
    "repeat_to_batch_size",
    "get_tiled_scale_steps",
    "tiled_scale",
    "tiled_scale_multidim",
    "get_attr",
    "set_attr",
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


def bislerp(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Spherical-interpolation resize of ``[B,C,H,W]`` samples; see :func:`nodeloom.ops.resample.bislerp`."""
    return _upscale(samples, int(width), int(height), "bislerp")


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


def save_torch_file(state: dict[str, torch.Tensor], ckpt: str | os.PathLike[str], metadata: dict[str, str] | None = None) -> None:
    """Write a state dict as ``.safetensors`` (the only format nodeloom writes)."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, os.fspath(ckpt), metadata=metadata)


def repeat_to_batch_size(tensor: torch.Tensor, batch_size: int, dim: int = 0) -> torch.Tensor:
    """Cut or repeat ``tensor`` along ``dim`` to ``batch_size`` entries."""
    size = tensor.shape[dim]
    if size > batch_size:
        return tensor.narrow(dim, 0, batch_size)
    if size < batch_size:
        reps = [1] * tensor.ndim
        reps[dim] = -(-batch_size // size)
        return tensor.repeat(*reps).narrow(dim, 0, batch_size)
    return tensor


def get_tiled_scale_steps(width: int, height: int, tile_x: int, tile_y: int, overlap: int) -> int:
    """Tiles :func:`tiled_scale` runs for one ``width`` x ``height`` sample."""
    return tile_count((height, width), (tile_y, tile_x), overlap)


def tiled_scale_multidim(samples: torch.Tensor, function: Callable[[torch.Tensor], torch.Tensor],
                         tile: tuple[int, ...] = (64, 64), overlap: int = 8, upscale_amount: float = 4,
                         out_channels: int = 3, output_device: Any = "cpu", downscale: bool = False,
                         index_formulas: Any = None, pbar: Any = None) -> torch.Tensor:
    """Apply ``function`` tile by tile (see :func:`nodeloom.ops.tiles.tiled_apply`).

    Raises:
        ValueError: ``index_formulas`` is given (nodeloom has no per-dimension index formulas).
    """
    if index_formulas is not None:
        raise ValueError("`tiled_scale_multidim`: `index_formulas` is not supported by nodeloom")
    ratio = 1.0 / upscale_amount if downscale else upscale_amount
    on_tile = (lambda: pbar.update(1)) if pbar is not None else None
    out = tiled_apply(samples, function, tile, overlap, ratio, out_channels, on_tile)
    return out.to(output_device)


def tiled_scale(samples: torch.Tensor, function: Callable[[torch.Tensor], torch.Tensor], tile_x: int = 64,
                tile_y: int = 64, overlap: int = 8, upscale_amount: float = 4, out_channels: int = 3,
                output_device: Any = "cpu", pbar: Any = None) -> torch.Tensor:
    """2-D :func:`tiled_scale_multidim` with ComfyUI's ``tile_x`` / ``tile_y`` arguments."""
    return tiled_scale_multidim(samples, function, (tile_y, tile_x), overlap, upscale_amount, out_channels,
                                output_device, pbar=pbar)


def get_attr(obj: Any, attr: str) -> Any:
    """``getattr`` along a dotted path (``"diffusion_model.input_blocks.0"``)."""
    for name in attr.split("."):
        obj = getattr(obj, name)
    return obj


def set_attr(obj: Any, attr: str, value: Any) -> Any:
    """Set a dotted attribute; returns the previous value."""
    *parents, last = attr.split(".")
    owner = get_attr(obj, ".".join(parents)) if parents else obj
    previous = getattr(owner, last)
    setattr(owner, last, value)
    return previous
