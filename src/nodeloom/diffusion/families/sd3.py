"""SD3 / SD3.5 (medium, large): Stability AI's MMDiT flow transformer.

Files: ComfyUI's and Stability AI's releases carry the original MMDiT layout
(``joint_blocks.N.x_block.attn.qkv``, ``x_embedder.proj``, ``pos_embed``; with or without the
``model.diffusion_model.`` prefix of the all-in-one checkpoints); the diffusers layout
(``transformer_blocks.N.attn.to_q``, ``pos_embed.proj``) loads too. Sizes come from tensor shapes
(head width from the q/k norm where the file has one, else MMDiT's 64); diffusers' own converter
maps the original layout. The transformer takes ``1000·σ`` as its time and predicts the velocity
``noise − x0`` (ComfyUI's CONST convention as it is). :func:`skip_layer_adapter` is
SkipLayerGuidanceDiTSimple's: the unguided pass skips the given joint blocks.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from nodeloom.diffusion.families import Family, family_config, from_original_layout
from nodeloom.diffusion.flow import FlowSampling
from nodeloom.errors import ValidationError, require

if TYPE_CHECKING:
    from nodeloom.diffusion.sampling import ModelCall

__all__ = ["FAMILY", "LATENT_SCALE", "LATENT_SHIFT", "skip_layer_adapter", "transformer_config"]

_ORIGINAL = ("joint_blocks.0.x_block.attn.qkv.weight", "x_embedder.proj.weight", "context_embedder.weight")
_DIFFUSERS = ("transformer_blocks.0.attn.to_q.weight", "pos_embed.proj.weight", "context_embedder.weight")
LATENT_SCALE, LATENT_SHIFT = 1.5305, 0.0609


def _matches(shapes: dict[str, tuple[int, ...]]) -> bool:
    return all(k in shapes for k in _ORIGINAL) or all(k in shapes for k in _DIFFUSERS)


def _indices(keys: Any, pattern: str) -> list[int]:
    return sorted({int(m.group(1)) for k in keys if (m := re.match(pattern, k))})


def transformer_config(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The ``SD3Transformer2DModel`` config of diffusers-layout weights, read from their shapes."""
    cfg = family_config("sd3")
    inner, in_ch, patch, _ = shapes["pos_embed.proj.weight"]
    head = shapes["transformer_blocks.0.attn.norm_q.weight"][0] if "transformer_blocks.0.attn.norm_q.weight" in shapes \
        else cfg["attention_head_dim"]
    if inner % head:
        raise ValidationError(f"the SD3 transformer is {inner} wide, which is not a multiple of its head width {head}",
                              type="invalid_model_file")
    layers = _indices(shapes, r"transformer_blocks\.(\d+)\.")
    cfg.update(sample_size=128, patch_size=patch, in_channels=in_ch, num_layers=len(layers), attention_head_dim=head,
               num_attention_heads=inner // head, joint_attention_dim=shapes["context_embedder.weight"][1],
               caption_projection_dim=shapes["context_embedder.weight"][0],
               pooled_projection_dim=shapes["time_text_embed.text_embedder.linear_1.weight"][1],
               out_channels=shapes["proj_out.weight"][0] // (patch * patch),
               pos_embed_max_size=math.isqrt(shapes["pos_embed.pos_embed"][1]),
               qk_norm="rms_norm" if "transformer_blocks.0.attn.norm_q.weight" in shapes else None,
               dual_attention_layers=_indices(shapes, r"transformer_blocks\.(\d+)\.attn2\."))
    return cfg


def _converted_shapes(sd: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Diffusers-layout shapes of an original-layout file (what its converter will produce)."""
    from diffusers.loaders.single_file_utils import convert_sd3_transformer_checkpoint_to_diffusers

    meta = {k: v.to("meta") for k, v in sd.items()}
    return {k: tuple(v.shape) for k, v in convert_sd3_transformer_checkpoint_to_diffusers(meta).items()}


def _load(sd: dict[str, Any], dtype: Any) -> Any:
    diffusers = require("diffusers", "diffusion")
    if "x_embedder.proj.weight" not in sd:  # diffusers layout: the keys are the module's own
        model = diffusers.SD3Transformer2DModel.from_config(transformer_config({k: tuple(v.shape) for k, v in sd.items()}))
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise ValidationError(f"the SD3 weights do not fit the model: missing {missing[:2]}, unexpected "
                                  f"{unexpected[:2]}", type="invalid_model_file")
        return (model.to(dtype) if dtype is not None else model).eval()
    cfg = transformer_config(_converted_shapes(sd))
    return from_original_layout(diffusers.SD3Transformer2DModel, sd, cfg, dtype)


def _call(module: Any, x: Any, sigma: Any, context: Any, pooled: Any, skip_layers: list[int] | None = None) -> Any:
    n = x.shape[0]
    return module(hidden_states=x, encoder_hidden_states=context.to(x.dtype),
                  pooled_projections=pooled.to(x.device, x.dtype).expand(n, -1),
                  timestep=(sigma * 1000.0).to(x.dtype).reshape(1).expand(n), skip_layers=skip_layers,
                  return_dict=False)[0]


def _pooled(entry: Any, width: int) -> Any:
    pooled = entry.extra.get("pooled_output")
    if pooled is None:
        raise ValidationError("SD3 conditioning needs a pooled CLIP output; encode the prompt with a TripleCLIPLoader"
                              " (clip_l, clip_g, t5xxl) or the checkpoint's CLIP")
    if pooled.shape[-1] != width:
        raise ValidationError(f"the pooled text output is {pooled.shape[-1]} wide but the SD3 model takes {width};"
                              " the text encoders do not belong to this model")
    return pooled


def _adapter(module: Any, x: Any, sigma: Any, group: ModelCall, skip_uncond: list[int] | None = None) -> Any:
    """Run the transformer per conditioning entry (each has its own pooled vector); entries marked
    unguided skip ``skip_uncond``'s joint blocks."""
    torch = require("torch", "diffusion")
    h, w = x.shape[-2:]
    patch = module.config.patch_size
    if h % patch or w % patch:
        raise ValidationError(f"SD3 latents need a height and width divisible by {patch}, got {h}×{w}")
    width = module.config.pooled_projection_dim
    per = x.shape[0] // len(group.entries)
    pooled = [_pooled(e, width) for e in group.entries]
    skips = [skip_uncond if (skip_uncond and e.uncond) else None for e in group.entries]
    if all(s is None for s in skips) and all(p.shape[0] in (1, per) for p in pooled):
        batch = torch.cat([p.expand(per, -1) for p in pooled])
        return _call(module, x, sigma, group.context, batch)
    outs = [_call(module, x[k * per:(k + 1) * per], sigma, group.context[k * per:(k + 1) * per], pooled[k], skips[k])
            for k in range(len(group.entries))]
    return torch.cat(outs)


def skip_layer_adapter(layers: list[int], sigma_start: float, sigma_end: float) -> Any:
    """SkipLayerGuidanceDiTSimple's adapter: between ``sigma_start`` and ``sigma_end`` the unguided
    (negative) entries run without the joint blocks ``layers``."""

    def adapter(module: Any, x: Any, sigma: Any, group: ModelCall) -> Any:
        s = float(sigma)
        active = sigma_end <= s <= sigma_start
        return _adapter(module, x, sigma, group, skip_uncond=list(layers) if active else None)

    return adapter


FAMILY = Family(
    name="sd3", title="SD3/SD3.5", matches=_matches, load=_load, adapter=_adapter,
    sampling=lambda module: FlowSampling(shift=3.0, multiplier=1000.0),
    latent_scale=LATENT_SCALE, latent_shift=LATENT_SHIFT, latent_channels=16, signature=_ORIGINAL,
)
