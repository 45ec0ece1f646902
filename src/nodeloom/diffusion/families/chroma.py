"""Chroma (Chroma1-HD, -Base, -Flash): Lodestone's pruned Flux with a distilled modulation network.

Files: ComfyUI's ``Chroma1-HD*.safetensors`` carry the original layout — Flux's
``double_blocks``/``single_blocks`` without per-block modulation layers and without
``vector_in``/``guidance_in``, plus ``distilled_guidance_layer.*`` (in/out projections, residual
MLP layers ``in_layer``/``out_layer`` with RMS norms ``norms.N.scale``) — with or without ComfyUI's
prefix; the diffusers layout loads as it is. The blocks convert with Flux's width-agnostic
converter (diffusers' own assumes the full 3072 width), the modulation network by renaming.
The adapter packs 2×2 patches as Flux does, passes σ as the time and no attention mask (ComfyUI
encodes Chroma's T5 prompt unpadded); the latent is Flux's VAE's. The default schedule is Flux's
shift 1.15 (ComfyUI's); the templates set ModelSamplingAuraFlow.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from nodeloom.diffusion.families import Family, family_config, from_diffusers_layout
from nodeloom.diffusion.families.flux import bfl_to_diffusers, pack_patches, patch_ids, unpack_patches
from nodeloom.diffusion.flow import FluxSampling
from nodeloom.errors import ValidationError, require

if TYPE_CHECKING:
    from nodeloom.diffusion.sampling import ModelCall

__all__ = ["FAMILY", "chroma_to_diffusers", "transformer_config"]

_SIGNATURE = ("distilled_guidance_layer.in_proj.weight", "double_blocks.0.img_attn.qkv.weight", "img_in.weight")
_DIFFUSERS = ("distilled_guidance_layer.in_proj.weight", "transformer_blocks.0.attn.to_q.weight", "x_embedder.weight")
#: original → diffusers names inside the modulation network's layers
_APPROXIMATOR = ((".in_layer.", ".linear_1."), (".out_layer.", ".linear_2."))


def _matches(shapes: dict[str, tuple[int, ...]]) -> bool:
    return all(k in shapes for k in _SIGNATURE) or all(k in shapes for k in _DIFFUSERS)


def chroma_to_diffusers(sd: dict[str, Any]) -> dict[str, Any]:
    """The original Chroma layout → diffusers ``ChromaTransformer2DModel`` keys (any width)."""
    head = "distilled_guidance_layer."
    blocks = {k: v for k, v in sd.items() if not k.startswith(head)}
    out = bfl_to_diffusers(blocks)
    for key, value in sd.items():
        if key.startswith(head):
            for old, new in _APPROXIMATOR:
                key = key.replace(old, new)
            out[re.sub(r"(norms\.\d+)\.scale$", r"\1.weight", key)] = value
    return out


def _count(keys: Any, pattern: str) -> int:
    return len({m.group(1) for k in keys if (m := re.match(pattern, k))})


def transformer_config(sd: dict[str, Any]) -> dict[str, Any]:
    """The ``ChromaTransformer2DModel`` config of diffusers-layout weights, read from their shapes."""
    cfg = family_config("chroma")
    inner, in_ch = sd["x_embedder.weight"].shape
    head = sd["transformer_blocks.0.attn.norm_q.weight"].shape[0]
    eighth = head // 8
    hidden, channels = sd["distilled_guidance_layer.in_proj.weight"].shape
    cfg.update(in_channels=in_ch, out_channels=sd["proj_out.weight"].shape[0],
               num_layers=_count(sd, r"transformer_blocks\.(\d+)\."),
               num_single_layers=_count(sd, r"single_transformer_blocks\.(\d+)\."), attention_head_dim=head,
               num_attention_heads=inner // head, joint_attention_dim=sd["context_embedder.weight"].shape[1],
               axes_dims_rope=[eighth, (head - eighth) // 2, head - eighth - (head - eighth) // 2],
               approximator_num_channels=channels, approximator_hidden_dim=hidden,
               approximator_layers=_count(sd, r"distilled_guidance_layer\.layers\.(\d+)\."))
    return cfg


def _load(sd: dict[str, Any], dtype: Any) -> Any:
    diffusers = require("diffusers", "diffusion")
    if "img_in.weight" in sd:
        sd = chroma_to_diffusers(sd)
    return from_diffusers_layout(diffusers.ChromaTransformer2DModel, sd, transformer_config(sd), dtype, "Chroma")


def _adapter(module: Any, x: Any, sigma: Any, group: ModelCall) -> Any:
    """Pack 2×2 patches, run the transformer with σ as time over the T5 states, unpack the velocity."""
    torch = require("torch", "diffusion")
    b, c, h, w = x.shape
    if h % 2 or w % 2:
        raise ValidationError(f"Chroma latents need an even height and width, got {h}×{w} (use a multiple of 16 pixels)")
    ctx = group.context.to(x.dtype)
    out = module(hidden_states=pack_patches(x), encoder_hidden_states=ctx, timestep=sigma.to(x.dtype).reshape(1).expand(b),
                 img_ids=patch_ids(h // 2, w // 2, x.device, x.dtype),
                 txt_ids=torch.zeros(ctx.shape[1], 3, device=x.device, dtype=x.dtype), return_dict=False)[0]
    return unpack_patches(out, c, h, w)


FAMILY = Family(
    name="chroma", title="Chroma", matches=_matches, load=_load, adapter=_adapter,
    sampling=lambda module: FluxSampling(shift=1.15), latent_scale=0.3611, latent_shift=0.1159, latent_channels=16,
    signature=_SIGNATURE,
)
