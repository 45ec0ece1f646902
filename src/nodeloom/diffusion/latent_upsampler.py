"""Lightricks' latent upsamplers: convolutional networks that enlarge LTX-Video / LTX-2 video
latents (2× in space in the released files) without decoding them.

Files: ``ltxv-spatial-upscaler-0.9.x`` and ``ltx-2-spatial-upscaler-x2`` as released (diffusers'
key names: ``initial_conv``, ``res_blocks``, ``upsampler``, ``post_upsample_res_blocks``,
``final_conv``), built as diffusers' ``LTX2LatentUpsamplerModel`` which covers both (the 0.9 files'
pixel-shuffle upsampler and LTX-2's rational resampler). The layout comes from tensor shapes; a
``config`` JSON in the file's metadata, as the releases carry, is honoured for what shapes cannot
tell. The network works on raw VAE latents, so :func:`upsample` takes the normalised latents the
sampler uses with the VAE's per-channel statistics, as LTXLatentUpsamplePipeline does with
``latents_normalized=True``. Imports no node, engine or adapter.
"""

from __future__ import annotations

import json
import re
from typing import Any

import torch

from nodeloom.errors import ValidationError, require

__all__ = ["load_latent_upsampler", "upsample", "upsampler_config"]

#: the rational resampler's upsampling numerator → its scale (diffusers' scale table)
_RATIONAL_SCALES = {2: 2.0, 3: 1.5, 4: 4.0}


def _stages(shapes: dict[str, tuple[int, ...]], name: str) -> int:
    return len({int(m.group(1)) for k in shapes if (m := re.match(rf"{name}\.(\d+)\.", k))})


def upsampler_config(shapes: dict[str, tuple[int, ...]], metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``LTX2LatentUpsamplerModel`` config of a file, from its shapes (and metadata config)."""
    if "initial_conv.weight" not in shapes or "final_conv.weight" not in shapes:
        raise ValidationError("not a Lightricks latent upsampler: it has no `initial_conv.weight`/`final_conv.weight` "
                              "(HunyuanVideo's latent upscalers are not supported)", type="invalid_model_file")
    mid, channels = shapes["initial_conv.weight"][:2]
    cfg: dict[str, Any] = {"in_channels": channels, "mid_channels": mid, "dims": len(shapes["initial_conv.weight"]) - 2,
                           "num_blocks_per_stage": _stages(shapes, "res_blocks")}
    if "upsampler.conv.weight" in shapes:  # LTX-2's rational resampler: conv → pixel shuffle by num → blur down
        num = round((shapes["upsampler.conv.weight"][0] // mid) ** 0.5)
        stored = json.loads((metadata or {}).get("config", "{}")).get("rational_spatial_scale")
        scale = float(stored) if stored is not None else _RATIONAL_SCALES.get(num)
        if scale is None:
            raise ValidationError(f"a latent upsampler whose resampler enlarges {num}× is not supported",
                                  type="invalid_model_file")
        cfg.update(spatial_upsample=True, temporal_upsample=False, use_rational_resampler=True,
                   rational_spatial_scale=scale)
        return cfg
    factor = shapes["upsampler.0.weight"][0] // mid  # 4: 2× in space, 2: 2× in time, 8: both
    modes = {4: (True, False), 2: (False, True), 8: (True, True)}
    if factor not in modes:
        raise ValidationError(f"a latent upsampler whose upsampler widens {factor}× is not supported",
                              type="invalid_model_file")
    spatial, temporal = modes[factor]
    cfg.update(spatial_upsample=spatial, temporal_upsample=temporal, use_rational_resampler=False)
    return cfg


def load_latent_upsampler(sd: dict[str, Any], metadata: dict[str, str] | None = None) -> Any:
    """The upsampler module (float32, eval mode) from a file's tensors."""
    require("diffusers", "diffusion")
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

    cfg = upsampler_config({k: tuple(v.shape) for k, v in sd.items()}, metadata)
    module = LTX2LatentUpsamplerModel(**cfg)
    missing, unexpected = module.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    missing = [k for k in missing if not k.endswith("blur_down.kernel")]  # a fixed filter some files leave out
    if missing or unexpected:
        raise ValidationError(f"the latent upsampler's weights do not fit its layout (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})", type="invalid_model_file")
    return module.eval()


@torch.no_grad()
def upsample(module: Any, latent: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Normalised ``[B,C,F,H,W]`` latents → normalised upsampled latents (statistics per channel)."""
    if latent.ndim != 5 or latent.shape[1] != module.config.in_channels:
        raise ValidationError(f"LTXVLatentUpsampler: `samples` must be a video latent [B,{module.config.in_channels},"
                              f"F,H,W], got shape {tuple(latent.shape)}")
    dev = next(module.parameters()).device
    shape = (1, -1, 1, 1, 1)
    mean, std = mean.view(shape).to(dev, torch.float32), std.view(shape).to(dev, torch.float32)
    raw = latent.to(dev, torch.float32) * std + mean
    return ((module(raw).float() - mean) / std).cpu()
