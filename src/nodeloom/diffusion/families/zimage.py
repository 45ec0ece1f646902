"""Z-Image (Turbo and base): Alibaba Tongyi's single-stream flow transformer on Flux's VAE.

Files: ComfyUI's repackaged ``z_image_turbo_bf16.safetensors`` (fused ``attention.qkv``,
``x_embedder``/``final_layer``) and the original release's diffusers layout (``to_q``/``to_k``/
``to_v``, ``all_x_embedder.2-1``), either with or without ComfyUI's wrapper prefix. Sizes come
from tensor shapes; the rotary split of the head dimension (¼, ⅜, ⅜ as released) and the other
conventions from ``data/families/z_image.json``. The transformer takes ``1 − σ`` as its time and
predicts ``x0 − noise``, so the adapter negates it into ComfyUI's velocity.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from nodeloom.diffusion.families import Family, family_config, from_diffusers_layout, from_original_layout
from nodeloom.diffusion.flow import FlowSampling
from nodeloom.errors import require

if TYPE_CHECKING:
    from nodeloom.diffusion.sampling import ModelCall

__all__ = ["FAMILY", "transformer_config"]

_COMFY = ("x_embedder.weight", "cap_embedder.1.weight", "layers.0.attention.qkv.weight")
_DIFFUSERS = ("all_x_embedder.2-1.weight", "cap_embedder.1.weight", "layers.0.attention.to_q.weight")


def _matches(shapes: dict[str, tuple[int, ...]]) -> bool:
    return all(k in shapes for k in _COMFY) or all(k in shapes for k in _DIFFUSERS)


def _count(shapes: dict[str, Any], pattern: str) -> int:
    found = {int(m.group(1)) for k in shapes if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def transformer_config(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The ``ZImageTransformer2DModel`` config of a file, read from its shapes."""
    cfg = family_config("z_image")
    embed = shapes.get("x_embedder.weight") or shapes["all_x_embedder.2-1.weight"]
    dim, patch_in = embed
    head = shapes["layers.0.attention.norm_q.weight"][0] if "layers.0.attention.norm_q.weight" in shapes \
        else shapes["layers.0.attention.q_norm.weight"][0]
    if "layers.0.attention.qkv.weight" in shapes:
        kv_heads = (shapes["layers.0.attention.qkv.weight"][0] - dim) // (2 * head)
    else:
        kv_heads = shapes["layers.0.attention.to_k.weight"][0] // head
    quarter = head // 4
    cfg.update(
        dim=dim, in_channels=patch_in // 4, n_heads=dim // head, n_kv_heads=kv_heads,
        n_layers=_count(shapes, r"layers\.(\d+)\."), n_refiner_layers=_count(shapes, r"noise_refiner\.(\d+)\."),
        cap_feat_dim=shapes["cap_embedder.1.weight"][1],
        axes_dims=[quarter, (head - quarter) // 2, head - quarter - (head - quarter) // 2],
    )
    return cfg


def _load(sd: dict[str, Any], dtype: Any) -> Any:
    diffusers = require("diffusers", "diffusion")
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    cfg = transformer_config(shapes)
    if "x_embedder.weight" not in shapes:  # diffusers layout: the keys are the module's own
        return from_diffusers_layout(diffusers.ZImageTransformer2DModel, sd, cfg, dtype, "Z-Image")
    return from_original_layout(diffusers.ZImageTransformer2DModel, sd, cfg, dtype)


def _adapter(module: Any, x: Any, sigma: Any, group: ModelCall) -> Any:
    """Call the transformer on a batch: per-image lists, time ``1 − σ``, output negated."""
    torch = require("torch", "diffusion")
    n = x.shape[0]
    caps = group.context.to(x.dtype)
    t = (1.0 - sigma).to(x.dtype).reshape(1).expand(n)
    out = module(list(x.unsqueeze(2).unbind(0)), t, list(caps.unbind(0)), return_dict=False)[0]
    return -torch.stack([o.float() for o in out]).squeeze(2)


FAMILY = Family(
    name="z_image", title="Z-Image", matches=_matches, load=_load, adapter=_adapter,
    sampling=lambda module: FlowSampling(shift=3.0, multiplier=1.0),
    latent_scale=0.3611, latent_shift=0.1159, latent_channels=16,
    signature=_COMFY, area_crop=2,
)
