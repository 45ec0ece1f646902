"""The latent upscaling nodes with ComfyUI's names and inputs: LatentUpscaleModelLoader (a
Lightricks latent upsampler from ``models/latent_upscale_models``) and LTXVLatentUpsampler (an
LTX-Video latent enlarged by it, between the VAE's per-channel statistics). Model code is
:mod:`nodeloom.diffusion.latent_upsampler`."""

from __future__ import annotations

from typing import Any

from nodeloom.diffusion.latent_upsampler import load_latent_upsampler, upsample
from nodeloom.diffusion.models import _prepare
from nodeloom.diffusion.single_file import load_weights, read_header
from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, Combo, Custom, Latent, Node, Output, Schema, Vae, model_key, services
from nodeloom.nodes.diffusion._common import device_guard, file_list

__all__ = ["LTXVLatentUpsampler", "LatentUpscaleModelLoader"]

LATENT_UPSCALE_MODEL = "LATENT_UPSCALE_MODEL"


def _load(path: Any) -> Any:
    return load_latent_upsampler(load_weights(path, prefix=""), read_header(path).metadata)


class LatentUpscaleModelLoader(Node):
    """Loads a latent upscale model (Lightricks' LTX-Video / LTX-2 spatial upscalers)."""

    SCHEMA = Schema(
        "LatentUpscaleModelLoader", display_name="Load Latent Upscale Model", category="loaders",
        inputs=[Combo("model_name", file_list("latent_upscale_models"),
                      tooltip="The latent upscale model file in models/latent_upscale_models.")],
        outputs=[Output(LATENT_UPSCALE_MODEL, "LATENT_UPSCALE_MODEL")],
    )

    @classmethod
    def execute(cls, model_name: str) -> tuple[Any, ...]:
        svc = services()
        path = svc.paths.get_full_path("latent_upscale_models", model_name)
        return (svc.models.load(model_key(path, "latent-upsampler"), lambda: _load(path)),)


class LTXVLatentUpsampler(Node):
    """Enlarges an LTX-Video latent with a latent upscale model: un-normalised with the VAE's
    statistics, upsampled, normalised again; the noise mask is dropped."""

    SCHEMA = Schema(
        "LTXVLatentUpsampler", display_name="LTXVLatentUpsampler", category="latent/video",
        inputs=[Latent("samples", tooltip="The video latent to upscale."),
                Custom(LATENT_UPSCALE_MODEL, "upscale_model", tooltip="The latent upscale model."),
                Vae("vae", tooltip="The video VAE whose per-channel statistics the latent is normalised by.")],
        outputs=[Output(IO.LATENT, "LATENT")],
    )

    @classmethod
    def execute(cls, samples: dict[str, Any], upscale_model: Any, vae: Any) -> tuple[Any, ...]:
        inner = getattr(vae, "vae", None)
        if not hasattr(inner, "latents_mean") or not hasattr(inner, "latents_std"):
            raise ValidationError("LTXVLatentUpsampler: `vae` must be an LTX-Video VAE (one with per-channel latent "
                                  "statistics)")
        with device_guard() as mgr:
            module = _prepare(upscale_model, mgr)
            out = upsample(module, samples["samples"], inner.latents_mean, inner.latents_std)
        return ({k: v for k, v in samples.items() if k not in ("samples", "noise_mask")} | {"samples": out},)
