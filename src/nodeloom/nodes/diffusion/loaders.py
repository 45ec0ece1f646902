"""Loader nodes: CheckpointLoaderSimple, VAELoader, CLIPSetLastLayer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nodeloom.diffusion.checkpoint import load_checkpoint, load_state_dict, load_vae_file
from nodeloom.diffusion.flux2_vae import Flux2Vae, is_flux2_vae
from nodeloom.diffusion.flux_checkpoint import is_flux_checkpoint, load_flux_checkpoint, unknown_checkpoint_error
from nodeloom.diffusion.ltxv_vae import (
    LtxvVae,
    is_ltxv_checkpoint,
    is_ltxv_vae_file,
    load_ltxv_checkpoint,
    load_ltxv_vae,
)
from nodeloom.diffusion.ltx2_checkpoint import is_ltx2_checkpoint, load_ltx2_checkpoint
from nodeloom.diffusion.lumina_checkpoint import is_lumina2_checkpoint, load_lumina2_checkpoint
from nodeloom.diffusion.models import ClipModel, DiffusionModel, VaeModel
from nodeloom.diffusion.qwen_vae import vae_value
from nodeloom.diffusion.schedules import ModelSampling
from nodeloom.diffusion.sd3_checkpoint import is_sd3_checkpoint, load_sd3_checkpoint
from nodeloom.diffusion.split_models import model_value
from nodeloom.node_api import IO, Clip, Combo, Int, Node, Output, Schema, model_key, services
from nodeloom.nodes.diffusion._common import file_list, settings

__all__ = ["CLIPSetLastLayer", "CheckpointLoaderSimple", "DiffusersLoader", "VAELoader", "checkpoint_values_from_path",
           "load_checkpoint_values"]


def load_checkpoint_values(ckpt_name: str, folder: str = "checkpoints") -> tuple[DiffusionModel, Any, VaeModel]:
    """Resolve ``ckpt_name`` in a model folder and return (MODEL, CLIP, VAE), cached by file
    (SD 1.x/2.x/SDXL, or an SD3/SD3.5, Flux.1, Lumina 2 or LTX all-in-one file)."""
    return checkpoint_values_from_path(services().paths.get_full_path(folder, ckpt_name))


def checkpoint_values_from_path(path: Any) -> tuple[DiffusionModel, Any, VaeModel]:
    """(MODEL, CLIP, VAE) of a checkpoint file or diffusers folder, cached by file in the engine."""
    svc = services()
    if is_sd3_checkpoint(path):  # SD3/SD3.5 all-in-one: an MMDiT, three text encoders and the VAE
        module, family, clip, vae_module = svc.models.load(
            model_key(path, "sd3-checkpoint"), lambda: load_sd3_checkpoint(path, svc.paths.model_folders("tokenizers")))
        return model_value(module, family, Path(path).name), clip, VaeModel(vae_module, manager=svc.models)
    if is_flux_checkpoint(path):  # Flux.1 dev/schnell all-in-one: the transformer (fp8 kept), CLIP-L + T5 and the VAE
        module, family, clip, vae_module = svc.models.load(
            model_key(path, "flux-checkpoint"), lambda: load_flux_checkpoint(path, svc.paths.model_folders("tokenizers")))
        return model_value(module, family, Path(path).name), clip, vae_value(vae_module, svc.models)
    if is_lumina2_checkpoint(path):  # Lumina 2 all-in-one: the NextDiT, Gemma 2 and the VAE
        module, family, clip, vae_module = svc.models.load(
            model_key(path, "lumina2-checkpoint"),
            lambda: load_lumina2_checkpoint(path, svc.paths.model_folders("tokenizers")))
        return model_value(module, family, Path(path).name), clip, VaeModel(vae_module, manager=svc.models)
    if is_ltx2_checkpoint(path):  # LTX-2 all-in-one: the AV transformer and the video VAE; LTXAVTextEncoderLoader for CLIP
        module, family, vae_module = svc.models.load(model_key(path, "ltx2-checkpoint"), lambda: load_ltx2_checkpoint(path))
        return model_value(module, family, Path(path).name), None, LtxvVae(vae_module, manager=svc.models)
    if is_ltxv_checkpoint(path):  # LTX-Video all-in-one: the transformer and the VAE; T5 loads with CLIPLoader
        module, family, vae_module = svc.models.load(model_key(path, "ltxv-checkpoint"), lambda: load_ltxv_checkpoint(path))
        return model_value(module, family, Path(path).name), None, LtxvVae(vae_module, manager=svc.models)
    if (error := unknown_checkpoint_error(path)) is not None:
        raise error
    allow = bool(svc.settings.get("allow_unsafe_pickle", False))
    parts = svc.models.load(model_key(path, "sd-checkpoint"), lambda: load_checkpoint(path, allow_pickle=allow))
    vae = VaeModel(parts.vae, manager=svc.models)
    model = DiffusionModel(parts.unet, parts.family, ModelSampling(prediction_type=parts.prediction_type),
                           parts.latent_scale, parts.inpaint,
                           fast_path=bool(settings().get("diffusion_fast_path", False)), extra={"vae": vae})
    clip = ClipModel(tuple(parts.text_encoders), parts.family, parts.clip_layer_norm_hidden, manager=svc.models)
    return model, clip, vae


class CheckpointLoaderSimple(Node):
    """Load a checkpoint file: the diffusion model, its text encoder and its VAE."""

    SCHEMA = Schema(
        "CheckpointLoaderSimple", display_name="Load Checkpoint", category="loaders",
        inputs=[Combo("ckpt_name", file_list("checkpoints"), tooltip="Checkpoint file to load from the checkpoints folder.")],
        outputs=[Output(IO.MODEL, "MODEL", tooltip="The diffusion model, for the samplers."),
                 Output(IO.CLIP, "CLIP", tooltip="The text encoder, for the prompt nodes."),
                 Output(IO.VAE, "VAE", tooltip="The VAE, to encode images into latents and decode them back.")],
    )

    @classmethod
    def execute(cls, ckpt_name: str) -> tuple[Any, ...]:
        return load_checkpoint_values(ckpt_name)


def _diffusers_folders() -> list[str]:
    svc = services(required=False)
    if svc is None:
        return []
    return [name for name in svc.paths.get_filename_list("diffusers")
            if any((root / name / "model_index.json").is_file() for root in svc.paths.model_folders("diffusers"))]


class DiffusersLoader(Node):
    """Loads a Stable Diffusion pipeline folder (diffusers layout, with model_index.json) from models/diffusers."""

    SCHEMA = Schema(
        "DiffusersLoader", display_name="DiffusersLoader", category="advanced/loaders/deprecated",
        inputs=[Combo("model_path", _diffusers_folders, tooltip="A diffusers folder under models/diffusers.")],
        outputs=[Output(IO.MODEL, "MODEL"), Output(IO.CLIP, "CLIP"), Output(IO.VAE, "VAE")],
    )

    @classmethod
    def execute(cls, model_path: str) -> tuple[Any, ...]:
        return load_checkpoint_values(model_path, folder="diffusers")


class VAELoader(Node):
    """Loads a VAE (single .safetensors in the SD layout, or a diffusers folder) from models/vae."""

    SCHEMA = Schema(
        "VAELoader", display_name="Load VAE", category="loaders",
        inputs=[Combo("vae_name", file_list("vae"), tooltip="The name of the VAE to load.")],
        outputs=[Output(IO.VAE, "VAE")],
    )

    @classmethod
    def execute(cls, vae_name: str) -> tuple[Any, ...]:
        svc = services()
        path = svc.paths.get_full_path("vae", vae_name)
        if Path(path).suffix == ".safetensors":  # the Wan video VAE has its own value (5-D latents)
            from nodeloom.diffusion.single_file import read_header
            from nodeloom.diffusion.wan_vae import WanVae, is_wan_vae, read_wan_vae

            shapes = read_header(path).shapes
            if is_wan_vae(shapes):
                return (WanVae(svc.models.load(model_key(path, "wan-vae"), lambda: read_wan_vae(path)),
                               manager=svc.models),)
            from nodeloom.diffusion import hunyuan_video15_vae as hv15

            if hv15.is_hunyuan_video15_vae(shapes):
                return (hv15.HunyuanVideo15Vae(svc.models.load(model_key(path, "hunyuan-video15-vae"),
                                                               lambda: hv15.read_hunyuan_video15_vae(path)),
                                               manager=svc.models),)
            from nodeloom.diffusion import hunyuan_video_vae as hv10

            if hv10.is_hunyuan_video_vae(shapes):
                return (hv10.HunyuanVideoVae(svc.models.load(model_key(path, "hunyuan-video-vae"),
                                                             lambda: hv10.read_hunyuan_video_vae(path)),
                                             manager=svc.models),)
        allow = bool(svc.settings.get("allow_unsafe_pickle", False))
        if is_ltxv_vae_file(path):
            vae = svc.models.load(model_key(path, "ltxv-vae"), lambda: load_ltxv_vae(load_state_dict(path), vae_name))
            return (LtxvVae(vae, manager=svc.models),)
        vae = svc.models.load(model_key(path, "vae"), lambda: load_vae_file(path, allow_pickle=allow))
        if is_flux2_vae(dict.fromkeys(vae.state_dict())):
            return (Flux2Vae(vae, manager=svc.models),)
        return (vae_value(vae, svc.models),)


class CLIPSetLastLayer(Node):
    """Uses the output of an earlier CLIP layer (ComfyUI's "CLIP skip"): -1 is the last layer, -2 the one before."""

    SCHEMA = Schema(
        "CLIPSetLastLayer", display_name="CLIP Set Last Layer", category="conditioning",
        inputs=[Clip("clip", tooltip="The CLIP model to change."),
                Int("stop_at_clip_layer", -1, min=-24, max=-1, step=1,
                    tooltip="The layer whose output is used (-1 = last).")],
        outputs=[Output(IO.CLIP, "CLIP")],
    )

    @classmethod
    def execute(cls, clip: ClipModel, stop_at_clip_layer: int) -> tuple[Any, ...]:
        return (clip.clone(layer=int(stop_at_clip_layer)),)
