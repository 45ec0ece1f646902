"""Lumina 2 all-in-one checkpoints (``models/checkpoints``, CheckpointLoaderSimple), as ComfyUI
saves them and the NetaYume Lumina template loads them: the NextDiT under
``model.diffusion_model.``, Gemma 2 under ``text_encoders.gemma2_2b.transformer.``, the VAE under
``vae.``. Each part loads as its split file would. Imports no node, engine or adapter."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nodeloom.diffusion.checkpoint import vae_from_state_dict
from nodeloom.diffusion.families import FAMILIES
from nodeloom.diffusion.lumina_text import lumina2_clip
from nodeloom.diffusion.single_file import load_weights, read_header
from nodeloom.diffusion.text_encoders import find_tokenizer, load_llm_encoder
from nodeloom.errors import ValidationError, require

__all__ = ["is_lumina2_checkpoint", "load_lumina2_checkpoint"]

_MODEL = "model.diffusion_model."
_GEMMA = "text_encoders.gemma2_2b.transformer."


def is_lumina2_checkpoint(path: str | Path) -> bool:
    """True for a ``.safetensors`` file holding a Lumina 2 NextDiT under ComfyUI's checkpoint prefix."""
    p = Path(path)
    if p.suffix != ".safetensors" or not p.is_file():
        return False
    shapes = read_header(p).shapes
    inner = {k[len(_MODEL):]: v for k, v in shapes.items() if k.startswith(_MODEL)}
    return bool(inner) and FAMILIES["lumina2"].matches(inner)


def _part(sd: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def load_lumina2_checkpoint(path: str | Path, tokenizer_folders: Sequence[Path]) -> tuple[Any, Any, Any, Any]:
    """``(transformer, family, CLIP value, AutoencoderKL)`` of an all-in-one Lumina 2 checkpoint, CPU float32.

    Raises:
        ValidationError: no VAE or no Gemma 2 in the file (naming it and what is missing).
        ModelNotFoundError: ``models/tokenizers/gemma2`` is missing.
    """
    torch = require("torch", "diffusion")
    p = Path(path)
    sd = load_weights(p, dtype=torch.float32, prefix="")
    family = FAMILIES["lumina2"]
    module = family.load(_part(sd, _MODEL), None)
    where = {"name": p.name, "folder": str(p.parent)}
    vae_sd, gemma_sd = _part(sd, "vae."), _part(sd, _GEMMA)
    if not vae_sd:
        raise ValidationError(f"`{p.name}` (in {p.parent}) holds a Lumina 2 model but no VAE (`vae.*`); load the model"
                              " with UNETLoader and the VAE with VAELoader", type="invalid_model_file", extra_info=where)
    if not gemma_sd:
        raise ValidationError(f"`{p.name}` (in {p.parent}) lacks its Gemma 2 text encoder (`{_GEMMA}*`); load it with"
                              " CLIPLoader (type lumina2) from models/text_encoders", type="missing_text_encoder",
                              extra_info=where)
    transformers = require("transformers", "diffusion")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(find_tokenizer("gemma2", tokenizer_folders, p)),
                                                           local_files_only=True)
    clip = lumina2_clip(load_llm_encoder("gemma2", gemma_sd, None, p.name), tokenizer)
    return module, family, clip, vae_from_state_dict(vae_sd)
