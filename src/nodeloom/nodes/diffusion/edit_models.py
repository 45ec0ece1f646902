"""Reference-image nodes of the edit models, with ComfyUI's names: ReferenceLatent (a guiding latent
added to the conditioning; chain several for several references), FluxKontextMultiReferenceLatentMethod
(how several references are placed), FluxKontextImageScale (resize to the Kontext resolution
closest to the image's aspect), HiDreamO1ReferenceImages (reference images on both sides of a
HiDream-O1 edit), ReferenceMultiLatent (several reference images encoded with a VAE and
added to both conditionings at once) and FluxKVCache (the references' attention keys and values
computed once per run on Flux.2, :mod:`nodeloom.diffusion.reference_kv`)."""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from nodeloom.diffusion.reference_kv import ReferenceKVCache
from nodeloom.node_api import (IO, Combo, Conditioning, Custom, Image, Latent, Model, Node, Output, Schema, Vae,
                               ValidationError)
from nodeloom.nodes.diffusion._common import device_guard
from nodeloom.nodes.utils.logic import autogrow, group_values
from nodeloom.ops.resample import upscale, upscale_image

__all__ = ["FluxKVCache", "FluxKontextImageScale", "FluxKontextMultiReferenceLatentMethod", "HiDreamO1ReferenceImages",
           "KONTEXT_RESOLUTIONS", "ReferenceLatent", "ReferenceMultiLatent"]

#: the (width, height) pairs Flux.1 Kontext was trained at, about one megapixel each
KONTEXT_RESOLUTIONS = [(672, 1568), (688, 1504), (720, 1456), (752, 1392), (800, 1328), (832, 1248), (880, 1184),
                       (944, 1104), (1024, 1024), (1104, 944), (1184, 880), (1248, 832), (1328, 800), (1392, 752),
                       (1456, 720), (1504, 688), (1568, 672)]


class ReferenceLatent(Node):
    """Add a reference image's latent to the conditioning of an edit model; chain several for several references where the model takes them."""

    SCHEMA = Schema(
        "ReferenceLatent", display_name="ReferenceLatent", category="advanced/conditioning/edit_models",
        inputs=[Conditioning("conditioning", tooltip="The conditioning to add the reference to."),
                Latent("latent", optional=True, tooltip="The reference image's latent (VAE Encode); none leaves the"
                                                        " conditioning as it is.")],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, conditioning: list[Any], latent: dict[str, Any] | None = None) -> tuple[Any, ...]:
        if latent is None:
            return (conditioning,)
        return (_with_extra(conditioning, lambda e: {"reference_latents": list(e.get("reference_latents", []))
                                                     + [latent["samples"]]}),)


def _with_extra(conditioning: list[Any], values: Any) -> list[Any]:
    """A new conditioning whose entries' extras are updated with ``values(extra)``."""
    out = []
    for item in conditioning:
        extra = dict(item[1]) if len(item) > 1 else {}
        out.append([item[0], {**extra, **values(extra)}])
    return out


class FluxKontextMultiReferenceLatentMethod(Node):
    """How Flux.1 Kontext places several reference images: offset (side by side), index (one position index each) or uxo/uno (diagonally past the image)."""

    SCHEMA = Schema(
        "FluxKontextMultiReferenceLatentMethod", display_name="FluxKontextMultiReferenceLatentMethod",
        category="advanced/conditioning/flux", experimental=True,
        inputs=[Conditioning("conditioning", tooltip="The conditioning holding the reference latents."),
                Combo("reference_latents_method", ["offset", "index", "uxo/uno", "index_timestep_zero"],
                      tooltip="offset: beside/below each other at index 1; index: index 1, 2, ...; uxo/uno: past the"
                              " image; index_timestep_zero: index, references modulated at timestep 0 (Qwen-Image-Edit"
                              " 2511, Flux.2 Klein KV).")],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, conditioning: list[Any], reference_latents_method: str) -> tuple[Any, ...]:
        method = "uxo" if "uxo" in reference_latents_method or "uso" in reference_latents_method else reference_latents_method
        return (_with_extra(conditioning, lambda e: {"reference_latents_method": method}),)


class FluxKontextImageScale(Node):
    """Resize the image to the Flux.1 Kontext training resolution nearest its aspect ratio."""

    SCHEMA = Schema(
        "FluxKontextImageScale", display_name="FluxKontextImageScale", category="advanced/conditioning/flux",
        inputs=[Image("image", tooltip="The reference image (lanczos, center crop to the chosen aspect).")],
        outputs=[Output(IO.IMAGE, "IMAGE")],
    )

    @classmethod
    def execute(cls, image: Any) -> tuple[Any, ...]:
        aspect = image.shape[2] / image.shape[1]
        _, width, height = min((abs(aspect - w / h), w, h) for w, h in KONTEXT_RESOLUTIONS)
        return (upscale(image.movedim(-1, 1), width, height, "lanczos", "center").movedim(1, -1),)


class FluxKVCache(Node):
    """Reference images' attention keys and values computed once per sampling run on Flux.2: the
    first step runs them (modulated at timestep 0) and keeps their keys and values, later steps run
    the image and text tokens only and attend to the kept ones. Made for the Flux.2 Klein KV model;
    on other Flux.2 models the later steps are an approximation."""

    SCHEMA = Schema(
        "FluxKVCache", display_name="Flux KV Cache", category="", experimental=True,
        inputs=[Model("model", tooltip="The Flux.2 model whose reference images' keys and values are kept per run.")],
        outputs=[Output(IO.MODEL, "MODEL", tooltip="The model with the reference KV cache on.")],
    )

    @classmethod
    def execute(cls, model: Any) -> tuple[Any, ...]:
        if getattr(model, "family", None) != "flux2":
            raise ValidationError(f"FluxKVCache: `model` must be a Flux.2 model (Klein or dev); got a "
                                  f"{getattr(model, 'family', type(model).__name__)} model")
        out = model.clone(fast_path=False)
        kept = tuple(p for p in out.extra.get("attn_patches", ()) if not isinstance(p, ReferenceKVCache))
        out.extra["attn_patches"] = kept + (ReferenceKVCache(),)
        return (out,)


#: HiDream-O1 takes up to ten reference images
_HIDREAM_O1_IMAGES = [f"image_{i}" for i in range(1, 11)]


class HiDreamO1ReferenceImages(Node):
    """Add reference images to both conditionings of a HiDream-O1 edit: one image for an instruction
    edit, several (up to ten) for subject-driven generation. The pixel-space images themselves are
    appended to each entry's ``reference_latents``, in socket order, after any already there."""

    SCHEMA = Schema(
        "HiDreamO1ReferenceImages", display_name="HiDream-O1 Reference Images", category="conditioning/image",
        inputs=[Conditioning("positive", tooltip="The positive conditioning to add the images to."),
                Conditioning("negative", tooltip="The negative conditioning to add the same images to."),
                Custom("COMFY_AUTOGROW_V3", "images", tooltip="The reference images; a new socket appears for each"
                                                              " one connected (1: instruction edit, 2-10: several"
                                                              " references).",
                       **autogrow("IMAGE", names=_HIDREAM_O1_IMAGES, min_count=1, template_id="image"))],
        outputs=[Output(IO.CONDITIONING, "positive", tooltip="The positive conditioning with the references."),
                 Output(IO.CONDITIONING, "negative", tooltip="The negative conditioning with the references.")],
    )

    @classmethod
    def execute(cls, positive: list[Any], negative: list[Any], **inputs: Any) -> tuple[Any, ...]:
        given = group_values(inputs, "images")
        refs = []
        for name in _HIDREAM_O1_IMAGES:
            image = given.get(name)
            if image is None:
                continue
            if getattr(image, "ndim", 0) != 4 or image.shape[-1] not in (3, 4):
                raise ValidationError(f"`images.{name}` must be an IMAGE [B, H, W, C]; got "
                                      f"{tuple(getattr(image, 'shape', ())) or type(image).__name__}")
            refs.append(image)
        if not refs:
            raise ValidationError("`images` needs at least one reference image (image_1)")

        def add(extra: dict[str, Any]) -> dict[str, Any]:
            return {"reference_latents": list(extra.get("reference_latents", [])) + refs}

        return (_with_extra(positive, add), _with_extra(negative, add))


#: ReferenceMultiLatent's resolution choices; "resize" reveals `megapixels`
_MULTI_RESOLUTIONS = ("keep resolution", "resize")
#: the filter "resize" scales the references with
_MULTI_RESIZE_METHOD = "lanczos"
#: the side of the square empty latent when no reference is encoded ("keep resolution")
_MULTI_EMPTY_SIDE = 1024


def _image_index(name: str) -> int:
    """The number of an Autogrow socket (``image0`` → 0), for ordering them numerically."""
    found = re.search(r"(\d+)$", name)
    return int(found.group(1)) if found else -1


def _resolution_choice(resolution: Any, options: dict[str, Any]) -> tuple[str, float]:
    """The chosen resolution and its megapixels, whether they came nested or as dotted names."""
    if isinstance(resolution, dict):
        mode, megapixels = resolution.get("resolution"), resolution.get("megapixels", 1.0)
    else:
        mode, megapixels = resolution, options.get("resolution.megapixels", 1.0)
    if mode not in _MULTI_RESOLUTIONS:
        raise ValidationError(f"`resolution` must be one of {list(_MULTI_RESOLUTIONS)}, got {mode!r}")
    if isinstance(megapixels, bool) or not isinstance(megapixels, (int, float)) or not 0.01 <= megapixels <= 16.0:
        raise ValidationError(f"`resolution.megapixels` must be a number from 0.01 to 16.0, got {megapixels!r}")
    return str(mode), float(megapixels)


def _resized(image: torch.Tensor, megapixels: float, step: int) -> torch.Tensor:
    """``image`` scaled to about ``megapixels`` million pixels, its aspect kept and each side a
    multiple of ``step`` (the VAE's downscale ratio)."""
    height, width = int(image.shape[1]), int(image.shape[2])
    scale = math.sqrt(megapixels * 1024 * 1024 / (width * height))
    new_w = max(step, round(width * scale / step) * step)
    new_h = max(step, round(height * scale / step) * step)
    if (new_w, new_h) == (width, height):
        return image
    return upscale_image(image, new_w, new_h, _MULTI_RESIZE_METHOD, "disabled")


class ReferenceMultiLatent(Node):
    """Encode any number of reference images with a VAE and add their latents to an edit model's
    conditioning: appended, in socket order, to the positive's and (when connected) the negative's
    ``reference_latents``, as one ReferenceLatent per image would. Also gives a zeroed copy of the
    first reference latent to start sampling from."""

    SCHEMA = Schema(
        "ReferenceMultiLatent", display_name="Set Reference Multi Latent", category="advanced/conditioning/edit_models",
        search_aliases=["reference latent", "multi reference", "edit references", "reference images"],
        inputs=[Conditioning("positive", tooltip="The conditioning the reference latents are added to."),
                Conditioning("negative", optional=True,
                             tooltip="A second conditioning that gets the same references; left unconnected, the"
                                     " negative output repeats the positive one."),
                Vae("vae", optional=True, tooltip="The VAE that encodes the references; without one the images are"
                                                  " not used and the conditionings pass through unchanged."),
                Custom("COMFY_DYNAMICCOMBO_V3", "resolution",
                       tooltip="keep resolution: encode each image at its own size; resize: scale each image to"
                               " `megapixels`, aspect kept, sides a multiple of the VAE's downscale ratio.",
                       options=[{"key": "keep resolution", "inputs": {"required": {}}},
                                {"key": "resize", "inputs": {"required": {"megapixels": ["FLOAT", {
                                    "default": 1.0, "min": 0.01, "max": 16.0, "step": 0.01,
                                    "tooltip": "Size of each reference in millions of pixels (1.0: about"
                                               " 1024×1024)."}]}}}]),
                Custom("COMFY_AUTOGROW_V3", "images",
                       tooltip="The reference images, encoded one by one (they may differ in size) and added in"
                               " socket order; a new socket appears for each one connected.",
                       **autogrow("IMAGE", prefix="image", min_count=1, max_count=100, optional=True,
                                  template_id="image"))],
        outputs=[Output(IO.CONDITIONING, "positive", tooltip="The positive conditioning with the references."),
                 Output(IO.CONDITIONING, "negative", tooltip="The negative conditioning with the references (the"
                                                             " positive one when no negative is connected)."),
                 Output(IO.LATENT, "empty_latent", tooltip="The first reference latent zeroed, to sample into; a"
                                                           " square empty latent when nothing was encoded.")],
    )

    @classmethod
    def execute(cls, positive: list[Any], resolution: Any, negative: list[Any] | None = None, vae: Any = None,
                **inputs: Any) -> tuple[Any, ...]:
        mode, megapixels = _resolution_choice(resolution, inputs)
        given = group_values(inputs, "images")
        images = []
        for name in sorted(given, key=_image_index):
            image = given[name]
            if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] not in (3, 4):
                raise ValidationError(f"`images.{name}` must be an IMAGE [B, H, W, C]; got "
                                      f"{tuple(getattr(image, 'shape', ())) or type(image).__name__}")
            images.append(image)
        latents = []
        if vae is not None and images:
            with device_guard() as mgr:
                for image in images:
                    if mode == "resize":
                        image = _resized(image, megapixels, int(vae.downscale_ratio))
                    latents.append(vae.encode(image, mgr))
        if latents:
            def add(extra: dict[str, Any]) -> dict[str, Any]:
                return {"reference_latents": list(extra.get("reference_latents", [])) + latents}

            positive = _with_extra(positive, add)
            negative = _with_extra(negative, add) if negative is not None else None
            empty = torch.zeros_like(latents[0])
        else:
            side = _MULTI_EMPTY_SIDE
            if mode == "resize":
                side = max(16, round(_MULTI_EMPTY_SIDE * math.sqrt(megapixels) / 16) * 16)
            empty = torch.zeros([1, 4, side // 8, side // 8])
        return positive, positive if negative is None else negative, {"samples": empty}
