"""``comfy.sampler_helpers``: mask and conditioning helpers packs call around sampling.

nodeloom's loop prepares control nets and other models inside the sampler, so the
"additional models" helpers report none and the cleanup helpers have nothing to release.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["cleanup_additional_models", "convert_cond", "get_additional_models", "prepare_mask"]


def prepare_mask(noise_mask: torch.Tensor, shape: tuple[int, ...] | torch.Size, device: Any) -> torch.Tensor:
    """Resize a ``[B,H,W]`` / ``[H,W]`` mask to a latent ``shape`` ``[B,C,h,w]`` (bilinear) and batch it."""
    mask = noise_mask.reshape(-1, 1, noise_mask.shape[-2], noise_mask.shape[-1]).float()
    mask = F.interpolate(mask, size=(shape[2], shape[3]), mode="bilinear")
    mask = torch.cat([mask] * shape[1], dim=1)
    reps = -(-shape[0] // mask.shape[0])
    return mask.repeat(reps, 1, 1, 1)[: shape[0]].to(device)


def convert_cond(cond: list[Any]) -> list[dict[str, Any]]:
    """CONDITIONING pairs as dicts: the options plus ``cross_attn`` (the tensor)."""
    out = []
    for tensor, options in cond:
        entry = dict(options)
        if tensor is not None:
            entry["cross_attn"] = tensor
        out.append(entry)
    return out


def get_additional_models(conds: Any, dtype: Any) -> tuple[list[Any], int]:
    """Models to load besides the MODEL: none (nodeloom's loop places control nets itself)."""
    return [], 0


def cleanup_additional_models(models: Any) -> None:
    """Nothing to release: see :func:`get_additional_models`."""
