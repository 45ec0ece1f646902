"""Flux.2 (dev and Klein): Black Forest Labs' second double/single-stream flow transformer.

Files: ComfyUI's ``flux2_dev_*.safetensors`` and ``flux-2-klein-*.safetensors`` carry the
original release layout (``double_blocks.N.img_attn.qkv``, ``double_stream_modulation_img.lin``,
``single_stream_modulation.lin``, ...), with or without ComfyUI's prefix, and load through
diffusers' own converter; the diffusers layout (``transformer_blocks.N.attn.to_q``) loads as it
is. Sizes come from tensor shapes (rotary axes: the head width in four equal parts, as released).
Dev has a guidance embedder (FluxGuidance), Klein none. The latent is the Flux.2 VAE's
patchified, batch-normalised 128-channel latent (see :mod:`nodeloom.diffusion.flux2_vae`), so it
is the model's space as it is. The adapter flattens it into tokens with 4-axis (t, h, w, l)
position ids, appends each reference latent at time index 10, 20, ... (as the release places
them), passes σ as the time and unflattens the velocity of the image tokens.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from nodeloom.diffusion.families import Family, family_config, from_diffusers_layout, from_original_layout
from nodeloom.diffusion.flow import FluxSampling
from nodeloom.errors import ValidationError, require

if TYPE_CHECKING:
    from nodeloom.diffusion.sampling import ModelCall

__all__ = ["FAMILY", "transformer_config"]

_ORIGINAL = ("double_stream_modulation_img.lin.weight", "single_stream_modulation.lin.weight", "img_in.weight")
_DIFFUSERS = ("double_stream_modulation_img.linear.weight", "single_stream_modulation.linear.weight",
              "x_embedder.weight")
#: where the release puts the n-th reference image on the time axis of the position ids
REFERENCE_TIME_STEP = 10


def _matches(shapes: dict[str, tuple[int, ...]]) -> bool:
    return all(k in shapes for k in _ORIGINAL) or all(k in shapes for k in _DIFFUSERS)


def _count(keys: Any, pattern: str) -> int:
    found = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def transformer_config(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The ``Flux2Transformer2DModel`` config of a file (either layout), read from its shapes."""
    cfg = family_config("flux2")
    original = "img_in.weight" in shapes
    inner, in_ch = shapes["img_in.weight" if original else "x_embedder.weight"]
    head = shapes["double_blocks.0.img_attn.norm.query_norm.scale" if original
                  else "transformer_blocks.0.attn.norm_q.weight"][0]
    mlp_in = shapes["double_blocks.0.img_mlp.0.weight" if original else "transformer_blocks.0.ff.linear_in.weight"][0]
    if inner % head or head % 4:
        raise ValidationError(f"the Flux.2 transformer is {inner} wide with {head}-wide heads, which do not divide"
                              " into whole heads and four rotary axes", type="invalid_model_file")
    blocks = (r"double_blocks\.(\d+)\.", r"single_blocks\.(\d+)\.") if original else \
        (r"transformer_blocks\.(\d+)\.", r"single_transformer_blocks\.(\d+)\.")
    cfg.update(in_channels=in_ch, num_layers=_count(shapes, blocks[0]), num_single_layers=_count(shapes, blocks[1]),
               attention_head_dim=head, num_attention_heads=inner // head,
               joint_attention_dim=shapes["txt_in.weight" if original else "context_embedder.weight"][1],
               mlp_ratio=mlp_in / 2 / inner, axes_dims_rope=[head // 4] * 4,
               guidance_embeds=("guidance_in.in_layer.weight" if original
                                else "time_guidance_embed.guidance_embedder.linear_1.weight") in shapes)
    return cfg


def _load(sd: dict[str, Any], dtype: Any) -> Any:
    diffusers = require("diffusers", "diffusion")
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    cfg = transformer_config(shapes)
    if "img_in.weight" in shapes:
        return from_original_layout(diffusers.Flux2Transformer2DModel, sd, cfg, dtype)
    return from_diffusers_layout(diffusers.Flux2Transformer2DModel, sd, cfg, dtype, "Flux.2")


def _ids(t: int, h: int, w: int, device: Any) -> Any:
    """(t, h, w, l) position ids of an ``h``×``w`` token grid at time index ``t``, ``[h·w, 4]``."""
    torch = require("torch", "diffusion")
    return torch.cartesian_prod(torch.tensor([t]), torch.arange(h), torch.arange(w), torch.tensor([0])).to(device)


def _tokens(x: Any) -> Any:
    return x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)


def _call_entry(module: Any, xs: Any, sigma: Any, ctx: Any, extra: dict[str, Any]) -> Any:
    """One conditioning entry's velocity tokens for the image (references appended, then dropped)."""
    torch = require("torch", "diffusion")
    per, c, h, w = xs.shape
    tokens, ids = [_tokens(xs)], [_ids(0, h, w, xs.device)]
    for i, ref in enumerate(extra.get("reference_latents") or []):
        if ref.ndim != 4 or ref.shape[1] != c:
            raise ValidationError(f"a Flux.2 reference latent must be [B,{c},h,w] (VAE Encode with the Flux.2 VAE),"
                                  f" got {tuple(ref.shape)}")
        tokens.append(_tokens(ref[:1].to(xs.device, xs.dtype)).expand(per, -1, -1))
        ids.append(_ids(REFERENCE_TIME_STEP * (i + 1), ref.shape[-2], ref.shape[-1], xs.device))
    txt_ids = torch.cartesian_prod(torch.tensor([0]), torch.tensor([0]), torch.tensor([0]),
                                   torch.arange(ctx.shape[1])).to(xs.device)
    guidance = None
    if module.config.guidance_embeds:
        guidance = torch.full((per,), float(extra.get("guidance", 3.5)), device=xs.device, dtype=xs.dtype)
    out = module(hidden_states=torch.cat(tokens, dim=1), encoder_hidden_states=ctx,
                 timestep=sigma.to(xs.dtype).reshape(1).expand(per), img_ids=torch.cat(ids), txt_ids=txt_ids,
                 guidance=guidance, return_dict=False)[0]
    return out[:, : h * w]


def _adapter(module: Any, x: Any, sigma: Any, group: ModelCall) -> Any:
    """Run the transformer once per conditioning entry (each may carry its own references)."""
    torch = require("torch", "diffusion")
    b, c, h, w = x.shape
    per = b // len(group.entries)
    outs = [_call_entry(module, x[k * per:(k + 1) * per], sigma, group.context[k * per:(k + 1) * per].to(x.dtype),
                        entry.extra) for k, entry in enumerate(group.entries)]
    return torch.cat(outs).permute(0, 2, 1).reshape(b, c, h, w)


FAMILY = Family(
    name="flux2", title="Flux.2", matches=_matches, load=_load, adapter=_adapter,
    sampling=lambda module: FluxSampling(shift=2.02), latent_scale=1.0, latent_shift=0.0, latent_channels=128,
    signature=_ORIGINAL,
)
