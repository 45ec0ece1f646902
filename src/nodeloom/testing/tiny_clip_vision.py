"""Tiny random-weight CLIP-vision models, saved in the layouts users download, for tests.

:func:`tiny_vision_model` builds a transformers vision model (CLIP with projection, or SigLIP
with its pooling head, as the released files carry it, or DINOv2) from a small seeded config whose
non-shape values match the configs the loader ships (16 heads, the family's activation and
norm epsilon). :func:`save_vision_file` writes its state dict in transformers' layout (ComfyUI's
repackaged ``clip_vision_*.safetensors``) or in the OpenAI/OpenCLIP original (``visual.*``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["openclip_state_dict", "save_vision_file", "tiny_vision_model"]

_COMMON = dict(hidden_size=32, intermediate_size=48, num_attention_heads=16, image_size=28, patch_size=7)


def tiny_vision_model(kind: str = "clip_h", seed: int = 0) -> Any:
    """A random ``clip_l`` (24 layers, quick GELU), ``clip_h`` (3 layers, GELU), ``siglip`` or ``dinov2`` model."""
    import torch
    import transformers

    torch.manual_seed(seed)
    if kind == "dinov2":
        cfg = transformers.Dinov2Config(hidden_size=128, num_hidden_layers=3, num_attention_heads=2, mlp_ratio=2,
                                        image_size=28, patch_size=7, layer_norm_eps=1e-6)
        return transformers.Dinov2Model(cfg).eval()
    if kind == "siglip":
        cfg = transformers.SiglipVisionConfig(**_COMMON, num_hidden_layers=3, hidden_act="gelu_pytorch_tanh",
                                              layer_norm_eps=1e-6, vision_use_head=True)
        return transformers.SiglipVisionModel(cfg).eval()
    if kind not in ("clip_l", "clip_h"):
        raise ValueError(f"`kind` must be clip_l, clip_h, siglip or dinov2, got {kind!r}")
    cfg = transformers.CLIPVisionConfig(**_COMMON, num_hidden_layers=24 if kind == "clip_l" else 3,
                                        hidden_act="quick_gelu" if kind == "clip_l" else "gelu",
                                        projection_dim=24, layer_norm_eps=1e-5)
    return transformers.CLIPVisionModelWithProjection(cfg).eval()


def openclip_state_dict(sd: dict[str, Any]) -> dict[str, Any]:
    """Rename a transformers CLIP vision state dict to OpenCLIP's ``visual.*`` layout (q/k/v fused)."""
    import torch

    names = {"embeddings.class_embedding": "class_embedding", "embeddings.patch_embedding.weight": "conv1.weight",
             "embeddings.position_embedding.weight": "positional_embedding", "pre_layrnorm.weight": "ln_pre.weight",
             "pre_layrnorm.bias": "ln_pre.bias", "post_layernorm.weight": "ln_post.weight",
             "post_layernorm.bias": "ln_post.bias"}
    parts = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj",
             "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
    out = {"visual.proj": sd["visual_projection.weight"].t().contiguous()}
    layers = {int(k.split(".")[3]) for k in sd if k.startswith("vision_model.encoder.layers.")}
    for key, new in names.items():
        out[f"visual.{new}"] = sd[f"vision_model.{key}"]
    for i in layers:
        src, dst = f"vision_model.encoder.layers.{i}.", f"visual.transformer.resblocks.{i}."
        for p in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{p}"] = torch.cat([sd[f"{src}self_attn.{n}_proj.{p}"] for n in "qkv"])
            for a, b in parts.items():
                out[f"{dst}{b}.{p}"] = sd[f"{src}{a}.{p}"]
    return out


def _released_dinov2_key(key: str) -> str:
    """The name a released DINOv2 file gives a tensor (transformers 5 renamed the attention ones)."""
    for new, old in (("attention.q_proj", "attention.attention.query"), ("attention.k_proj", "attention.attention.key"),
                     ("attention.v_proj", "attention.attention.value"), ("attention.o_proj", "attention.output.dense")):
        key = key.replace(new, old)
    return key


def save_vision_file(model: Any, path: Path, layout: str = "transformers") -> Path:
    """Save ``model``'s weights as ``.safetensors`` in ``transformers`` or ``openclip`` layout."""
    from safetensors.torch import save_file

    sd = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    if model.config.model_type == "dinov2":
        sd = {_released_dinov2_key(k): v for k, v in sd.items()}
    else:  # released files name the tower `vision_model.*` even where a transformers class keeps it at its top level
        sd = {(k if k.startswith(("vision_model.", "visual_projection.")) else f"vision_model.{k}"): v for k, v in sd.items()}
    if layout == "openclip":
        sd = openclip_state_dict(sd)
    elif layout != "transformers":
        raise ValueError(f"`layout` must be transformers or openclip, got {layout!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path))
    return path
