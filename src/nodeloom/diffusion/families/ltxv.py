"""LTX-Video 0.9 (Lightricks): a video flow transformer over a 128-channel latent that the VAE
compresses 32× in space and 8× in time, prompted through T5-XXL.

Files: the release's single-file layout (``patchify_proj``, ``adaln_single``, ``q_norm``/``k_norm``,
inside ComfyUI's ``model.diffusion_model.`` wrapper in the all-in-one checkpoints) and diffusers'
layout (``proj_in``, ``time_embed``). Sizes come from tensor shapes; the head count (32 in every
release) and the other conventions from ``data/families/ltxv.json``. The transformer takes
``1000·σ`` as its time and predicts ComfyUI's velocity (``noise − x0``) on tokens packed from the
``[B,128,F,H,W]`` latent; its rotary positions are scaled by the frame rate LTXVConditioning sets
(25 when none is set, as ComfyUI's default);
guide frames LTXVAddGuide appends are placed by the conditioning's ``keyframe_idxs``. The prompt is T5's last states of the prompt's tokens:
ComfyUI pads to 128 tokens and masks the padding out of cross-attention, which gives the same
result as leaving it out; a positive and a negative prompt of different lengths run as one batched
call, the shorter padded to the longer and its padding masked (the family's ``pad_context``), as
``LTXPipeline`` batches them. Context windows along the frames (ContextWindowsManual) hand the
transformer each window's frames alone, so their positions start at 0 in every window; the noise
mask is cut to the same frames, and guide frames join every window (``window_guides``). Imports no
node, engine or adapter.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from nodeloom.diffusion.families import Family, family_config, from_diffusers_layout, from_original_layout
from nodeloom.diffusion.flow import FluxSampling
from nodeloom.errors import ValidationError, require

if TYPE_CHECKING:
    from nodeloom.diffusion.sampling import ModelCall

__all__ = ["FAMILY", "LTXV_SHIFT", "T5_TEMPLATE", "latent_pixel_coords", "pack", "transformer_config", "unpack"]

#: ComfyUI's default model sampling for LTX-Video (ModelSamplingFlux's shift)
LTXV_SHIFT = 2.37
#: the prompt as T5 reads it: its tokens, then ``</s>`` (the states of the last layer are the prompt)
T5_TEMPLATE = "{}</s>"
#: the VAE's compression (time, height, width) the rotary positions are scaled by
VAE_SCALE = (8, 32, 32)

_ORIGINAL = ("patchify_proj.weight", "adaln_single.linear.weight", "transformer_blocks.0.attn1.q_norm.weight")
_DIFFUSERS = ("proj_in.weight", "time_embed.linear.weight", "transformer_blocks.0.attn1.norm_q.weight")


def _matches(shapes: dict[str, tuple[int, ...]]) -> bool:
    return all(k in shapes for k in _ORIGINAL) or all(k in shapes for k in _DIFFUSERS)


def transformer_config(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The ``LTXVideoTransformer3DModel`` config of a file, read from its shapes (either layout)."""
    cfg = family_config("ltxv")
    proj_in = shapes.get("patchify_proj.weight") or shapes["proj_in.weight"]
    inner, channels = proj_in
    caption = shapes["caption_projection.linear_1.weight"][1]
    layers = {int(m.group(1)) for k in shapes if (m := re.match(r"transformer_blocks\.(\d+)\.", k))}
    heads = int(cfg["num_attention_heads"])
    if inner % heads:
        raise ValidationError(f"an LTX-Video transformer of width {inner} cannot have {heads} heads",
                              type="invalid_model_file")
    cfg.update(in_channels=channels, out_channels=shapes["proj_out.weight"][0], attention_head_dim=inner // heads,
               cross_attention_dim=inner, caption_channels=caption, num_layers=max(layers) + 1)
    return cfg


def _load(sd: dict[str, Any], dtype: Any) -> Any:
    diffusers = require("diffusers", "diffusion")
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    cfg = transformer_config(shapes)
    if "proj_in.weight" in shapes:  # diffusers layout: the keys are the module's own
        return from_diffusers_layout(diffusers.LTXVideoTransformer3DModel, sd, cfg, dtype, "LTX-Video")
    return from_original_layout(diffusers.LTXVideoTransformer3DModel, sd, cfg, dtype)


def pack(x: Any) -> Any:
    """``[B,C,F,H,W]`` → tokens ``[B, F·H·W, C]`` (patch size 1, frames outermost)."""
    return x.flatten(2).transpose(1, 2)


def unpack(tokens: Any, like: Any) -> Any:
    """Tokens ``[B, F·H·W, C]`` back to the shape of ``like`` ``[B,C,F,H,W]``."""
    return tokens.transpose(1, 2).reshape(like.shape)


def latent_pixel_coords(frames: int, height: int, width: int, scale: tuple[int, int, int],
                        causal_fix: bool = False) -> Any:
    """Pixel coordinates ``[3, F·H·W]`` (frame, y, x) of each latent token's corner, frames
    outermost; ``causal_fix`` moves frames back by ``scale[0] − 1`` (clamped at 0), since the
    causal VAE's first latent frame is one pixel frame."""
    torch = require("torch", "diffusion")
    grid = torch.stack(torch.meshgrid(torch.arange(frames), torch.arange(height), torch.arange(width), indexing="ij"))
    coords = grid.flatten(1) * torch.tensor(scale)[:, None]
    if causal_fix:
        coords[0] = (coords[0] + 1 - scale[0]).clamp(min=0)
    return coords.float()


def _frame_rate(group: ModelCall) -> float:
    for entry in group.entries:
        if "frame_rate" in entry.extra:
            return float(entry.extra["frame_rate"])
    return 25.0


def _guided_coords(group: ModelCall, x: Any, rate: float) -> Any:
    """Token positions when LTXVAddGuide appended guide frames (``keyframe_idxs``: the last tokens'
    pixel coordinates), frames divided by the frame rate; None otherwise (the default grid)."""
    idxs = next((e.extra["keyframe_idxs"] for e in group.entries if e.extra.get("keyframe_idxs") is not None), None)
    if idxs is None:
        return None
    n, _, frames, height, width = x.shape
    coords = latent_pixel_coords(frames, height, width, VAE_SCALE).to(x.device)[None].repeat(n, 1, 1)
    coords[:, :, -idxs.shape[2]:] = idxs[:1].to(coords)
    coords[:, 0] /= rate
    return coords


def _window_guides(group: ModelCall, x: Any, start: int) -> tuple[int, ModelCall]:
    """Context windows over a clip with guide frames: the guides (the last latent frames, as many as
    ``keyframe_idxs`` has tokens) join every window, and their pixel positions move back by the
    window's first frame, so they keep their place relative to the frames of the window (whose
    positions start at 0, as the transformer builds them from the latent it is given)."""
    idxs = next((e.extra["keyframe_idxs"] for e in group.entries if e.extra.get("keyframe_idxs") is not None), None)
    if idxs is None:
        return 0, group
    per_frame = x.shape[-2] * x.shape[-1]
    if idxs.shape[2] % per_frame:
        raise ValidationError(f"`keyframe_idxs` has {idxs.shape[2]} tokens, not a whole number of latent frames of"
                              f" {x.shape[-2]}×{x.shape[-1]} tokens")
    if not start:
        return idxs.shape[2] // per_frame, group
    moved = idxs.clone()
    moved[:, 0] -= start * VAE_SCALE[0]
    entries = [dataclasses.replace(e, extra={**e.extra, "keyframe_idxs": moved})
               if e.extra.get("keyframe_idxs") is not None else e for e in group.entries]
    return idxs.shape[2] // per_frame, dataclasses.replace(group, entries=entries)


def _adapter(module: Any, x: Any, sigma: Any, group: ModelCall, mask: Any = None) -> Any:
    """Call the transformer on a batch of ``[B,128,F,H,W]`` latents; returns the velocity there.
    With a noise ``mask`` each token's time is ``1000·σ·mask`` (frames kept as given read as clean)."""
    n, _, frames, height, width = x.shape
    rate = _frame_rate(group)
    if rate <= 0:
        raise ValidationError(f"`frame_rate` must be above 0 for LTX-Video, got {rate}")
    t = (sigma * 1000.0).to(x.dtype).reshape(1).expand(n)
    if mask is not None:
        per_token = mask[:, :1].repeat(n // mask.shape[0], 1, 1, 1, 1).to(x.dtype)
        t = pack(per_token * t.view(n, 1, 1, 1, 1))[..., 0]
    out = module(hidden_states=pack(x), encoder_hidden_states=group.context.to(x.dtype), timestep=t,
                 encoder_attention_mask=group.context_mask, num_frames=frames, height=height, width=width,
                 rope_interpolation_scale=(VAE_SCALE[0] / rate, VAE_SCALE[1], VAE_SCALE[2]),
                 video_coords=_guided_coords(group, x, rate), return_dict=False)[0]
    return unpack(out.float(), x)


FAMILY = Family(
    name="ltxv", title="LTX-Video", matches=_matches, load=_load, adapter=_adapter,
    sampling=lambda module: FluxSampling(shift=LTXV_SHIFT),
    latent_scale=1.0, latent_shift=0.0, latent_channels=128,
    signature=_ORIGINAL, video_mask=True, pad_context=True, window_guides=_window_guides,
)

