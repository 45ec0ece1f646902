"""Flux.1 dev/schnell all-in-one checkpoints (CheckpointLoaderSimple; ``flux1-schnell-fp8.safetensors``) in
ComfyUI's layout: ``model.diffusion_model.``, ``text_encoders.{clip_l,t5xxl}.transformer.``, ``vae.`` (LDM),
each part loaded as its split file would (fp8 transformer layers kept fp8, as UNETLoader keeps them); and
the error for a checkpoint CheckpointLoaderSimple cannot read. Imports no node, engine or adapter."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nodeloom.diffusion.checkpoint import vae_from_state_dict
from nodeloom.diffusion.families import FAMILIES, Family
from nodeloom.diffusion.models import ClipModel
from nodeloom.diffusion.single_file import load_weights, read_header
from nodeloom.diffusion.text_encoders import FluxClip, find_tokenizer, load_llm_encoder
from nodeloom.errors import ValidationError, require
from nodeloom.models.offload import keep_quantised

__all__ = ["is_flux_checkpoint", "load_flux_checkpoint", "unknown_checkpoint_error"]

_MODEL = "model.diffusion_model."
_CLIP_L = "text_encoders.clip_l.transformer."
_T5 = "text_encoders.t5xxl.transformer."
_VAE = "vae."
#: the keys CheckpointLoaderSimple tells its formats apart by (for the unknown-file message)
_KNOWN = ("Stable Diffusion 1.x/2.x/SDXL: `model.diffusion_model.input_blocks.*` with"
          " `cond_stage_model.*`/`conditioner.*`",
          "SD3/SD3.5: `model.diffusion_model.joint_blocks.*`",
          "Flux.1: `model.diffusion_model.double_blocks.*` with `text_encoders.clip_l.*`, `text_encoders.t5xxl.*`,"
          " `vae.*`",
          "Lumina 2: `model.diffusion_model.layers.*` with `text_encoders.gemma2_2b.*`",
          "LTX-Video: `model.diffusion_model.patchify_proj.weight` with `vae.*`",
          "LTX-2: `model.diffusion_model.audio_patchify_proj.*`")


def _inner_family(shapes: dict[str, Any]) -> Family | None:
    inner = {k[len(_MODEL):]: v for k, v in shapes.items() if k.startswith(_MODEL)}
    return next((f for f in FAMILIES.values() if f.matches(inner)), None) if inner else None


def is_flux_checkpoint(path: str | Path) -> bool:
    """True for a ``.safetensors`` file holding a Flux.1 transformer under ComfyUI's checkpoint prefix."""
    p = Path(path)
    if p.suffix != ".safetensors" or not p.is_file():
        return False
    family = _inner_family(read_header(p).shapes)
    return family is not None and family.name == "flux"


def _part(sd: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def load_flux_checkpoint(path: str | Path, tokenizer_folders: Sequence[Path]) -> tuple[Any, Family, Any, Any]:
    """``(transformer, family, CLIP value, AutoencoderKL)`` of an all-in-one Flux.1 checkpoint on the
    CPU: float32 modules, except that the transformer's fp8 layers keep their fp8 values and scales.

    Raises:
        ValidationError: no VAE or no CLIP-L/T5 in the file (naming it, what is missing and the
            loader to use instead).
        ModelNotFoundError: ``models/tokenizers/t5`` is missing.
    """
    torch = require("torch", "diffusion")
    p = Path(path)
    quantised: dict[str, tuple[Any, Any]] = {}
    sd = load_weights(p, dtype=torch.float32, prefix="", quantised=quantised)
    family = FAMILIES["flux"]
    module = family.load(_part(sd, _MODEL), None)
    if model_fp8 := _part(quantised, _MODEL):
        keep_quantised(module, model_fp8)
    where = {"name": p.name, "folder": str(p.parent)}
    vae_sd, clip_sd, t5_sd = _part(sd, _VAE), _part(sd, _CLIP_L), _part(sd, _T5)
    del sd, quantised
    if not vae_sd:
        raise ValidationError(f"`{p.name}` (in {p.parent}) holds a Flux.1 model but no VAE (`{_VAE}*`); load the model"
                              " with UNETLoader and the VAE with VAELoader", type="invalid_model_file", extra_info=where)
    missing = [f"`{prefix}*`" for prefix, part in ((_CLIP_L, clip_sd), (_T5, t5_sd)) if not part]
    if missing:
        raise ValidationError(f"`{p.name}` (in {p.parent}) lacks its text encoders ({', '.join(missing)}); load CLIP-L"
                              " and T5-XXL with DualCLIPLoader (type flux) from models/text_encoders",
                              type="missing_text_encoder", extra_info=where)
    transformers = require("transformers", "diffusion")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(find_tokenizer("t5", tokenizer_folders, p)),
                                                           local_files_only=True)
    clip_l = load_llm_encoder("clip_l", clip_sd, None, p.name)
    t5 = load_llm_encoder("t5", t5_sd, None, p.name)
    clip = FluxClip(ClipModel((clip_l,), "flux"), t5, tokenizer)
    return module, family, clip, vae_from_state_dict(vae_sd)


def unknown_checkpoint_error(path: str | Path) -> ValidationError | None:
    """The error for a ``.safetensors`` checkpoint none of CheckpointLoaderSimple's formats match
    (None when it looks like an SD 1.x/2.x/SDXL file, which that loader reads or explains itself).
    The message names the file, the keys looked for and the loaders to use."""
    p = Path(path)
    if p.suffix != ".safetensors" or not p.is_file():
        return None
    shapes = read_header(p).shapes
    if _MODEL + "input_blocks.0.0.weight" in shapes:
        return None
    family = _inner_family(shapes)
    if family is not None:
        what = (f"it holds a {family.title} diffusion model, which CheckpointLoaderSimple does not read as an"
                " all-in-one file yet; load the model with UNETLoader from models/diffusion_models, its text"
                " encoders with CLIPLoader/DualCLIPLoader from models/text_encoders and its VAE with VAELoader")
    else:
        what = ("load a diffusion model with UNETLoader from models/diffusion_models, text encoders with CLIPLoader"
                " or DualCLIPLoader from models/text_encoders and a VAE with VAELoader from models/vae")
    return ValidationError(
        f"`{p.name}` (in {p.parent}) is not a checkpoint CheckpointLoaderSimple knows (looked for "
        f"{'; '.join(_KNOWN)}): {what}", type="unsupported_checkpoint",
        extra_info={"name": p.name, "folder": str(p.parent), "family": family.name if family else None})
