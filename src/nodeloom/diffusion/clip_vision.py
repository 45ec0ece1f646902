"""CLIP-vision encoders (OpenAI ViT-L/14, OpenCLIP ViT-H/14 and bigG, SigLIP, DINOv2) on transformers.

Owns loading a CLIP-vision file into a transformers vision model built from the config that
:mod:`nodeloom.diffusion.clip_vision_layout` reads off the tensors, and encoding images the way
ComfyUI's ``CLIP_VISION`` object does, so packs that read its output keep working:

* ``last_hidden_state``: CLIP — the encoder's last layer before the final layernorm;
  SigLIP — after it.
* ``penultimate_hidden_states``: the output of the second-to-last layer.
* ``image_embeds``: CLIP — the projected, layer-normed class token; SigLIP (no projection) —
  the normed tokens, i.e. ``last_hidden_state``; DINOv2 — the normed class token.
  (DINOv2's ``last_hidden_state`` is after its final layernorm.)
* ``all_hidden_states`` (SigLIP only): every layer's output, ``[B, layers, tokens, width]``.
* ``mm_projected``: the LLaVA projector's output where the file carries one, else None.

Imports torch and transformers lazily; no node class, engine or adapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nodeloom.diffusion.clip_vision_layout import VisionSpec, convert_openclip, vision_spec
from nodeloom.diffusion.weights import read_weights
from nodeloom.errors import ValidationError, require

__all__ = ["ClipVisionModel", "ClipVisionOutput", "load_clip_vision"]


class ClipVisionOutput:
    """ComfyUI's ``CLIP_VISION_OUTPUT``: attributes that may also be read and set by key."""

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)


def _llava_projector(width_in: int, width_out: int) -> Any:
    torch = require("torch", "vision")

    class LlavaProjector(torch.nn.Module):
        """Two linear layers with a GELU, applied to the patch tokens (class token dropped)."""

        def __init__(self) -> None:
            super().__init__()
            self.linear_1 = torch.nn.Linear(width_in, width_out)
            self.linear_2 = torch.nn.Linear(width_out, width_out)

        def forward(self, hidden: Any) -> Any:
            return self.linear_2(torch.nn.functional.gelu(self.linear_1(hidden[:, 1:])))

    return LlavaProjector()


def _dinov2(spec: VisionSpec, sd: dict[str, Any], name: str) -> Any:
    """A DINOv2 model through ``from_pretrained(state_dict=...)``, which maps the released key
    layout onto the installed transformers' module names (they changed in transformers 5)."""
    transformers = require("transformers", "vision")
    try:
        model, info = transformers.Dinov2Model.from_pretrained(
            None, config=transformers.Dinov2Config(**spec.config), state_dict=sd, output_loading_info=True)
    except (RuntimeError, ValueError) as exc:
        raise ValidationError(f"`{name}`: its tensors do not fit one DINOv2 model: {str(exc).splitlines()[-1].strip()}",
                              extra_info={"name": name}) from exc
    _check_missing(name, list(info.get("missing_keys", [])))
    return model.float()


def _check_missing(name: str, missing: list[str]) -> None:
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing:
        raise ValidationError(f"`{name}` lacks {len(missing)} tensor(s) of the vision model its shapes describe,"
                              f" e.g. {missing[:3]}", extra_info={"name": name, "missing": missing[:20]})


def _build(spec: VisionSpec) -> Any:
    transformers = require("transformers", "vision")
    if spec.model_type == "siglip_vision_model":
        return transformers.SiglipVisionModel(transformers.SiglipVisionConfig(**spec.config))
    config = transformers.CLIPVisionConfig(**spec.config)
    cls = transformers.CLIPVisionModelWithProjection if spec.projection else transformers.CLIPVisionModel
    return cls(config)


class ClipVisionModel:
    """A loaded vision encoder with ComfyUI's ``CLIP_VISION`` surface.

    Attributes:
        model: the transformers vision model.
        image_size, image_mean, image_std: preprocessing values.
        manager: the model manager that places it on a device (None: run where it is).
    """

    def __init__(self, model: Any, spec: VisionSpec, projector: Any = None, manager: Any = None) -> None:
        self.model, self.spec, self.projector, self.manager = model.eval(), spec, projector, manager
        self.image_size = spec.image_size
        self.image_mean, self.image_std = spec.image_mean, spec.image_std
        self.return_all_hidden_states = spec.model_type == "siglip_vision_model"

    def load_sd(self, sd: dict[str, Any]) -> Any:
        """Load a transformers-layout state dict (non-strict); returns (missing, unexpected)."""
        return self.model.load_state_dict(_fit_prefix(sd, self.model), strict=False)

    def get_sd(self) -> dict[str, Any]:
        return self.model.state_dict()

    def _device(self) -> Any:
        if self.manager is None:
            return next(self.model.parameters()).device
        self.manager.prepare(self.model)
        if self.projector is not None:
            self.manager.prepare(self.projector)
        return self.manager.device

    def encode_image(self, image: Any, crop: bool = True, pixel_mask: Any = None) -> ClipVisionOutput:
        """Encode IMAGE ``[B,H,W,C]``; ``crop`` centre-crops to a square, else the image is squashed.
        ``pixel_mask`` (a MASK, one or one per image) multiplies the normalised pixels after the
        same crop and resize (IP-Adapter's encoder mask)."""
        torch = require("torch", "vision")
        from nodeloom.ops.clip_preprocess import clip_preprocess

        device = self._device()
        dtype = next(self.model.parameters()).dtype
        pixels = clip_preprocess(image.to(device), self.image_size, self.image_mean, self.image_std, crop=crop)
        if pixel_mask is not None:
            pixels = pixels * _square_mask(pixel_mask, self.image_size, crop).to(pixels.device, pixels.dtype)
        with torch.inference_mode():
            out = self.model(pixel_values=pixels.to(dtype), output_hidden_states=True)
            result = ClipVisionOutput()
            result["last_hidden_state"] = out.last_hidden_state.float().cpu()
            if self.return_all_hidden_states:
                stacked = torch.stack(out.hidden_states[1:], dim=1).float().cpu()
                result["all_hidden_states"] = stacked
                result["penultimate_hidden_states"] = stacked[:, -2]
                result["image_embeds"] = result["last_hidden_state"]
            else:
                result["penultimate_hidden_states"] = out.hidden_states[-2].float().cpu()
                embeds = out.image_embeds if self.spec.projection else out.pooler_output
                result["image_embeds"] = embeds.float().cpu()
            projected = self.projector(out.hidden_states[-2]) if self.projector is not None else None
            result["mm_projected"] = projected.float().cpu() if projected is not None else None
        return result


def _square_mask(mask: Any, size: int, crop: bool) -> Any:
    """A MASK ``[B,H,W]`` centre-cropped (with ``crop``) and resized to ``[B,1,size,size]``."""
    torch = require("torch", "vision")
    mask = mask.float()[None] if mask.ndim == 2 else mask.float()
    h, w = mask.shape[-2:]
    if crop:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        mask = mask[:, top:top + side, left:left + side]
    return torch.nn.functional.interpolate(mask[:, None], size=(size, size), mode="bicubic",
                                           align_corners=False, antialias=True).clamp(0, 1)


def _fit_prefix(sd: dict[str, Any], model: Any) -> dict[str, Any]:
    """The tensors for ``model``: the projector's removed, and ``vision_model.`` dropped where the
    transformers class keeps the tower at its top level (SigLIP in transformers 5)."""
    own = next(iter(model.state_dict()))
    strip = not own.startswith("vision_model.")
    return {(k[len("vision_model."):] if strip and k.startswith("vision_model.") else k): v
            for k, v in sd.items() if not k.startswith("multi_modal_projector.")}


def load_clip_vision(path: str | Path, *, manager: Any = None) -> ClipVisionModel:
    """Load a CLIP-vision file (transformers or OpenAI/OpenCLIP layout) on the CPU.

    Raises:
        ValidationError: the file is not a vision tower, or its tensors do not fit the model
            its shapes describe; the message names the file.
    """
    p = Path(path)
    sd = read_weights(p)
    if "visual.transformer.resblocks.0.attn.in_proj_weight" in sd:
        sd = convert_openclip(sd)
    spec = vision_spec(sd, p.name)
    if spec.model_type == "dinov2":
        return ClipVisionModel(_dinov2(spec, sd, p.name), spec, None, manager)
    model = _build(spec)
    projector = None
    if spec.llava_projector is not None:
        projector = _llava_projector(*spec.llava_projector).eval()
        projector.load_state_dict({k.split(".", 1)[1]: v for k, v in sd.items() if k.startswith("multi_modal_projector.")})
    try:
        missing, _ = model.load_state_dict(_fit_prefix(sd, model), strict=False)
    except RuntimeError as exc:  # a tensor whose shape contradicts the others
        raise ValidationError(f"`{p.name}`: its tensors do not fit one vision model: {str(exc).splitlines()[-1].strip()}",
                              extra_info={"name": p.name}) from exc
    _check_missing(p.name, list(missing))
    return ClipVisionModel(model, spec, projector, manager)
