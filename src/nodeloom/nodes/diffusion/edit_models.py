"""Reference-image nodes of the edit models, with ComfyUI's names: ReferenceLatent (a guiding latent
added to the conditioning; chain several for several references), FluxKontextMultiReferenceLatentMethod
(how several references are placed), FluxKontextImageScale (resize to the Kontext resolution
closest to the image's aspect), HiDreamO1ReferenceImages (reference images on both sides of a
HiDream-O1 edit) and FluxKVCache (the references' attention keys and values computed
once per run on Flux.2, :mod:`nodeloom.diffusion.reference_kv`)."""

from __future__ import annotations

from typing import Any

from nodeloom.diffusion.reference_kv import ReferenceKVCache
from nodeloom.node_api import IO, Combo, Conditioning, Custom, Image, Latent, Model, Node, Output, Schema, ValidationError
from nodeloom.nodes.utils.logic import autogrow, group_values
from nodeloom.ops.resample import upscale

__all__ = ["FluxKVCache", "FluxKontextImageScale", "FluxKontextMultiReferenceLatentMethod", "HiDreamO1ReferenceImages",
           "KONTEXT_RESOLUTIONS", "ReferenceLatent"]

#: the (width, height) pairs Flux.1 Kontext was trained at, about one megapixel each
KONTEXT_RESOLUTIONS = [(672, 1568), (688, 1504), (720, 1456), (752, 1392), (800, 1328), (832, 1248), (880, 1184),
                       (944, 1104), (1024, 1024), (1104, 944), (1184, 880), (1248, 832), (1328, 800), (1392, 752),
                       (1456, 720), (1504, 688), (1568, 672)]


class ReferenceLatent(Node):
    """This node sets the guiding latent for an edit model. If the model supports it you can chain multiple to set multiple reference images."""

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
    """This node resizes the image to one that is more optimal for flux kontext."""

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
