"""Lumina Image 2.0 (and fine-tunes such as NetaYume Lumina): Alpha-VLLM's NextDiT flow transformer.

Files: ComfyUI's ``lumina_2_model_bf16.safetensors`` carry the original NextDiT layout (fused
``attention.qkv``, ``t_embedder.mlp``, ``cap_embedder``, ``final_layer``; with or without ComfyUI's
prefix) — told apart from Z-Image's, which shares it, by Z-Image's pad-token tensors; the
diffusers layout loads as it is. The fused projections are split by the file's own widths (the
converter diffusers ships assumes the 2B model's) before diffusers' key converter runs. Sizes come
from shapes (rotary axes: the head width in three equal parts, as released). The transformer takes
``1 − σ`` as its time over the Gemma 2 states with every token attended (ComfyUI encodes the prompt
unpadded) and predicts ``x0 − noise``, so the adapter negates it; the latent is Flux's VAE's.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from nodeloom.diffusion.families import Family, family_config, from_diffusers_layout
from nodeloom.diffusion.flow import FlowSampling
from nodeloom.errors import ValidationError, require

if TYPE_CHECKING:
    from nodeloom.diffusion.sampling import ModelCall

__all__ = ["FAMILY", "nextdit_to_diffusers", "transformer_config"]

_ORIGINAL = ("x_embedder.weight", "cap_embedder.1.weight", "layers.0.attention.qkv.weight")
_DIFFUSERS = ("time_caption_embed.caption_embedder.1.weight", "layers.0.attn.to_q.weight", "x_embedder.weight")


def _matches(shapes: dict[str, tuple[int, ...]]) -> bool:
    original = all(k in shapes for k in _ORIGINAL) and "x_pad_token" not in shapes  # Z-Image has pad tokens
    return original or all(k in shapes for k in _DIFFUSERS)


def nextdit_to_diffusers(sd: dict[str, Any]) -> dict[str, Any]:
    """The original NextDiT layout → diffusers ``Lumina2Transformer2DModel`` keys (any width)."""
    from diffusers.loaders.single_file_utils import convert_lumina2_to_diffusers

    dim = sd["x_embedder.weight"].shape[0]
    split: dict[str, Any] = {}
    for key, value in sd.items():
        if key.endswith(".attention.qkv.weight"):
            kv = (value.shape[0] - dim) // 2
            for name, part in zip(("to_q", "to_k", "to_v"), value.split([dim, kv, kv], dim=0)):
                split[key.replace(".qkv.", f".{name}.")] = part
        else:
            split[key] = value
    return dict(convert_lumina2_to_diffusers(split))


def _count(keys: Any, pattern: str) -> int:
    return len({m.group(1) for k in keys if (m := re.match(pattern, k))})


def transformer_config(sd: dict[str, Any]) -> dict[str, Any]:
    """The ``Lumina2Transformer2DModel`` config of diffusers-layout weights, read from their shapes."""
    cfg = family_config("lumina2")
    dim, patch_in = sd["x_embedder.weight"].shape
    head = sd["layers.0.attn.norm_q.weight"].shape[0]
    if dim % head or head % 3 or (head // 3) % 2:
        raise ValidationError(f"the Lumina 2 transformer is {dim} wide with {head}-wide heads, which do not divide into"
                              " whole heads and three even rotary axes", type="invalid_model_file")
    cfg.update(in_channels=patch_in // 4, hidden_size=dim, num_attention_heads=dim // head,
               num_kv_heads=sd["layers.0.attn.to_k.weight"].shape[0] // head,
               num_layers=_count(sd, r"layers\.(\d+)\."), num_refiner_layers=_count(sd, r"noise_refiner\.(\d+)\."),
               multiple_of=sd["layers.0.feed_forward.linear_1.weight"].shape[0],  # rounds the FFN width up to itself
               cap_feat_dim=sd["time_caption_embed.caption_embedder.1.weight"].shape[1], axes_dim_rope=[head // 3] * 3)
    return cfg


def _load(sd: dict[str, Any], dtype: Any) -> Any:
    diffusers = require("diffusers", "diffusion")
    if "layers.0.attention.qkv.weight" in sd:
        sd = nextdit_to_diffusers(dict(sd))
    return from_diffusers_layout(diffusers.Lumina2Transformer2DModel, sd, transformer_config(sd), dtype, "Lumina 2")


def _adapter(module: Any, x: Any, sigma: Any, group: ModelCall) -> Any:
    """Call the transformer with time ``1 − σ`` and every caption token attended; negate the output."""
    torch = require("torch", "diffusion")
    n = x.shape[0]
    ctx = group.context.to(x.dtype)
    mask = torch.ones(ctx.shape[:2], dtype=torch.bool, device=x.device)
    out = module(hidden_states=x, timestep=(1.0 - sigma).to(x.dtype).reshape(1).expand(n), encoder_hidden_states=ctx,
                 encoder_attention_mask=mask, return_dict=False)[0]
    return -out


FAMILY = Family(
    name="lumina2", title="Lumina 2", matches=_matches, load=_load, adapter=_adapter,
    sampling=lambda module: FlowSampling(shift=6.0, multiplier=1.0), latent_scale=0.3611, latent_shift=0.1159,
    latent_channels=16, signature=_ORIGINAL,
)
