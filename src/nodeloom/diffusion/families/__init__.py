"""The flow-transformer model families loaded from split files (ComfyUI's UNETLoader path).

Each family module describes itself with a :class:`Family`: how to recognise its diffusion-model
file from the header (keys and shapes, ComfyUI's repackaged layout and the original release
layout), how to build the diffusers transformer from it (sizes read from tensor shapes, the rest
from the JSON configs shipped in ``data/families/``), how the transformer is called (an adapter
returning ComfyUI's velocity convention), its default flow schedule and its VAE latent format.
Lotus-D (:mod:`~nodeloom.diffusion.families.lotus`), an SD 2 UNet, is a family without an adapter:
it samples on SD's discrete schedule through the UNet path. :func:`identify` returns the family of a header or raises an error that says what was looked for.
Imports no node, engine or adapter.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from nodeloom.diffusion.single_file import FileHeader
from nodeloom.errors import ValidationError

__all__ = ["FAMILIES", "Family", "family_config", "from_diffusers_layout", "from_original_layout", "identify"]


@dataclass(frozen=True)
class Family:
    """One model family.

    Attributes:
        name: the family id (``z_image``, ``flux``, ...).
        title: how users call it.
        matches: ``matches(shapes)`` — True when a header (prefix stripped) is this family's.
        load: ``load(state_dict, dtype) -> module`` — the diffusers transformer, eval mode.
        adapter: ``adapter(module, x, sigma, group) -> velocity`` (ComfyUI's CONST convention); None for
            a diffusers UNet, which the sampler calls itself (discrete schedule, ``prediction_type``).
        sampling: ``sampling(module)`` — a fresh default model sampling (before any ModelSampling* node).
        latent_scale / latent_shift: raw VAE latent → model space ``(raw − shift)·scale`` (floats, or
            per-channel tensors ``[1, C, 1, 1]``: Qwen-Image).
        latent_channels: channels of the family's latent.
        signature: the keys :func:`identify` reports it looked for.
        video_mask: the adapter takes ``mask=`` (the latent's noise mask) and the area it keeps is
            held at the clean latent, not re-noised (ComfyUI's LTX-Video image-to-video).
        joint_latent: the adapter takes ``shapes=`` and a packed audio-video latent (LTX-2).
        pad_context: prompts of different token counts share one transformer call, the shorter ones
            padded with zeros that the adapter masks out of cross-attention (``ModelCall.context_mask``).
        area_crop: the patch size when the adapter can denoise a crop of the latent on its own
            (no latent-shaped conditioning to crop with it), for ConditioningSetArea; 0 when not.
        window_guides: for context windows along the frames: ``window_guides(group, x, start)`` →
            ``(tail, group)`` — how many trailing latent frames are guides every window keeps
            (LTXVAddGuide's), and the call's conditioning placed for a window starting at frame ``start``.
    """

    name: str
    title: str
    matches: Callable[[dict[str, tuple[int, ...]]], bool]
    load: Callable[[dict[str, Any], Any], Any]
    adapter: Callable[..., Any] | None
    sampling: Callable[[Any], Any]
    latent_scale: Any
    latent_shift: Any
    latent_channels: int
    signature: tuple[str, ...]
    #: the adapter takes the noise mask (per-token times) and the masked-off area stays the clean latent
    video_mask: bool = False
    #: the model denoises a joint audio-video latent (LTXVConcatAVLatent), packed for the adapter
    joint_latent: bool = False
    #: prompts of different lengths batch into one call (padded, the padding masked by the adapter)
    pad_context: bool = False
    #: guide frames appended to the latent that every context window keeps (LTX-Video's keyframes)
    window_guides: Callable[..., Any] | None = None
    #: the adapter takes a crop of the latent (regional conditioning's ``area``) whose sides are
    #: multiples of this (the patch size); 0: the family takes whole latents only
    area_crop: int = 0


def family_config(name: str) -> dict[str, Any]:
    """The shipped base config ``data/families/<name>.json`` (conventions shapes cannot tell)."""
    text = resources.files("nodeloom.diffusion").joinpath(f"data/families/{name}.json").read_text("utf-8")
    return dict(json.loads(text))


def from_original_layout(model_class: Any, sd: dict[str, Any], cfg: dict[str, Any], dtype: Any) -> Any:
    """A diffusers transformer from original-layout weights through diffusers' own single-file key
    converter, with ``cfg`` written to a temporary folder (nothing fetched). Eval mode."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="nodeloom-cfg-") as tmp:
        (Path(tmp) / "transformer").mkdir()
        (Path(tmp) / "transformer" / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
        model = model_class.from_single_file(dict(sd), config=tmp, subfolder="transformer", local_files_only=True,
                                             torch_dtype=dtype)
    return model.eval()


def from_diffusers_layout(model_class: Any, sd: dict[str, Any], cfg: dict[str, Any], dtype: Any, title: str) -> Any:
    """A diffusers transformer from weights already in its own key names. Eval mode.

    Raises:
        ValidationError: tensors the module needs are missing (``title`` names the family).
    """
    model = model_class.from_config(cfg)
    missing, _ = model.load_state_dict(sd, strict=False)
    if missing:
        raise ValidationError(f"the {title} weights lack {len(missing)} tensors, e.g. `{missing[0]}`",
                              type="invalid_model_file")
    return (model.to(dtype) if dtype is not None else model).eval()


def _registry() -> dict[str, Family]:
    from nodeloom.diffusion.families import (
        chroma,
        flux,
        flux2,
        hidream,
        hunyuan_video,
        hunyuan_video15,
        lotus,
        ltx2,
        ltxv,
        lumina2,
        qwen,
        sd3,
        wan,
        zimage,
    )

    # Flux.2 and Chroma before Flux.1 (their original layouts share Flux.1's block names), Lumina 2
    # before Z-Image (likewise NextDiT's), LTX-2 before LTX-Video (its video stream has LTX-Video's names)
    return {f.name: f for f in (lumina2.FAMILY, zimage.FAMILY, flux2.FAMILY, chroma.FAMILY, flux.FAMILY, sd3.FAMILY,
                                ltx2.FAMILY, ltxv.FAMILY, qwen.FAMILY, wan.FAMILY, hidream.FAMILY, hunyuan_video15.FAMILY,
                                hunyuan_video.FAMILY, lotus.FAMILY)}


FAMILIES: dict[str, Family] = _registry()


def identify(header: FileHeader, shapes: dict[str, tuple[int, ...]]) -> Family:
    """The family of a diffusion-model file.

    Args:
        header: the file's header (for the error message).
        shapes: its key → shape map with any wrapper prefix removed.

    Raises:
        ValidationError: no family matches; the message names the file, the keys looked for,
            and the loader to use for full checkpoints, LoRAs or text encoders.
    """
    for family in FAMILIES.values():
        if family.matches(shapes):
            return family
    looked = "; ".join(f"{f.title}: {', '.join(f.signature)}" for f in FAMILIES.values())
    hint = _other_kind(shapes)
    raise ValidationError(
        f"`{header.path.name}` is not a diffusion model nodeloom knows (looked for {looked}){hint}",
        type="unknown_model_family",
        extra_info={"name": header.path.name, "folder": str(header.path.parent), "families": list(FAMILIES)},
    )


def _other_kind(shapes: dict[str, tuple[int, ...]]) -> str:
    """A hint naming the right loader when the file is some other kind of model."""
    keys = list(shapes)
    if any(k.startswith(("model.diffusion_model.input_blocks", "first_stage_model.")) for k in keys):
        return "; it is a full Stable Diffusion checkpoint: load it with CheckpointLoaderSimple from models/checkpoints"
    if "input_blocks.0.0.weight" in shapes and "out.2.weight" in shapes:
        return ("; it is an SD 1.x/2.x/SDXL UNet on its own: nodeloom reads those from full checkpoints"
                " (CheckpointLoaderSimple, models/checkpoints); the only bare LDM UNet UNETLoader reads is Lotus-D's"
                " (a 4-input `label_emb`)")
    if any("lora_" in k or ".lora_A" in k or ".lora_down" in k for k in keys):
        return "; it is a LoRA: load it with LoraLoader or LoraLoaderModelOnly from models/loras"
    if any(k.startswith(("model.layers.", "encoder.block.", "text_model.", "shared.")) for k in keys):
        return "; it is a text encoder: load it with CLIPLoader from models/text_encoders"
    if any(k.startswith(("encoder.down.", "decoder.up.", "encoder.down_blocks.")) for k in keys):
        return "; it is a VAE: load it with VAELoader from models/vae"
    return ""
