"""SD3/SD3.5 all-in-one checkpoints (``models/checkpoints``, CheckpointLoaderSimple), as ComfyUI
repackages them: the MMDiT under ``model.diffusion_model.`` ((scaled) fp8 layers kept fp8), the VAE under
``first_stage_model.``, the text encoders under ``text_encoders.{clip_l,clip_g,t5xxl}.transformer.`` (T5 may
be absent). Told apart from SD 1.x/2.x/SDXL checkpoints by their keys; each part loads as its split file
would. Imports no node, engine or adapter."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nodeloom.diffusion.checkpoint import vae_from_state_dict
from nodeloom.diffusion.families import FAMILIES
from nodeloom.diffusion.single_file import load_weights, read_header
from nodeloom.diffusion.split_models import build_sd3_clip
from nodeloom.errors import ValidationError, require
from nodeloom.models.offload import keep_quantised

__all__ = ["is_sd3_checkpoint", "load_sd3_checkpoint"]

_MMDIT = "model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight"
_ENCODERS = (("clip_l", "clip_l"), ("clip_g", "clip_g"), ("t5xxl", "t5"))


def is_sd3_checkpoint(path: str | Path) -> bool:
    """True for a ``.safetensors`` file holding an SD3 MMDiT under ComfyUI's checkpoint prefix."""
    p = Path(path)
    return p.suffix == ".safetensors" and p.is_file() and _MMDIT in read_header(p).shapes


def _part(sd: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def load_sd3_checkpoint(path: str | Path, tokenizer_folders: Sequence[Path]) -> tuple[Any, Any, Any, Any]:
    """``(transformer, family, CLIP value, AutoencoderKL)`` of an all-in-one SD3 checkpoint on the CPU:
    float32 modules, except that the MMDiT's fp8 layers keep their fp8 values and scales.

    Raises:
        ValidationError: no VAE or no CLIP-L/CLIP-G in the file (naming it and what is missing).
        ModelNotFoundError: it holds T5 but ``models/tokenizers/t5`` is missing.
    """
    torch = require("torch", "diffusion")
    p = Path(path)
    quantised: dict[str, tuple[Any, Any]] = {}
    sd = load_weights(p, dtype=torch.float32, prefix="", quantised=quantised)
    family = FAMILIES["sd3"]
    module = family.load(_part(sd, "model.diffusion_model."), None)
    if model_fp8 := _part(quantised, "model.diffusion_model."):
        keep_quantised(module, model_fp8)
    vae_sd = _part(sd, "first_stage_model.")
    if not vae_sd:
        raise ValidationError(f"`{p.name}` (in {p.parent}) holds an SD3 model but no VAE (`first_stage_model.*`); load"
                              " the model with UNETLoader and the VAE with VAELoader", type="invalid_model_file",
                              extra_info={"name": p.name, "folder": str(p.parent)})
    parts = [(kind, _part(sd, f"text_encoders.{name}.transformer.")) for name, kind in _ENCODERS]
    parts = [(kind, part) for kind, part in parts if part]
    if {k for k, _ in parts} & {"clip_l", "clip_g"} != {"clip_l", "clip_g"}:
        raise ValidationError(f"`{p.name}` (in {p.parent}) lacks its CLIP-L/CLIP-G text encoders"
                              " (`text_encoders.clip_l.*`, `text_encoders.clip_g.*`); load them with TripleCLIPLoader"
                              " from models/text_encoders", type="missing_text_encoder",
                              extra_info={"name": p.name, "folder": str(p.parent)})
    clip = build_sd3_clip([part for _, part in parts], [p] * len(parts), [k for k, _ in parts], tokenizer_folders,
                          width=module.config.joint_attention_dim)
    return module, family, clip, vae_from_state_dict(vae_sd)
