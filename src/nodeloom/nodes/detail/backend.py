"""Model-based inpainting for the detail pass, built from the diffusion pack's nodes.

Each crop goes CLIPTextEncode → VAEEncode → SetLatentNoiseMask → (ControlNetApplyAdvanced)
→ KSampler (x cycles) → VAEDecode, calling those nodes' ``execute`` by their ComfyUI names,
so the detailer re-uses whatever the diffusion pack implements. Also: image/tensor helpers
shared by the detail nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from nodeloom.errors import MissingDependencyError, ValidationError
from nodeloom.ops.detail.detailer import InpaintJob

__all__ = [
    "DiffusionInpainter",
    "call_node",
    "combo_choices",
    "diffusion_node",
    "mask_to_tensor",
    "to_numpy_image",
    "to_tensor_image",
]

DEFAULT_SAMPLERS = ("euler", "euler_ancestral", "heun", "dpm_2", "dpmpp_2m", "dpmpp_sde", "ddim", "uni_pc")
DEFAULT_SCHEDULERS = ("normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta")


def diffusion_node(class_type: str) -> type:
    """The diffusion pack's node class for a ComfyUI ``class_type``.

    Raises:
        MissingDependencyError: the diffusion pack (or that node) is not available.
    """
    import importlib

    try:
        diffusion = importlib.import_module("nodeloom.nodes.diffusion")
    except ImportError as exc:
        raise MissingDependencyError(
            "the detailer's model inpainting needs the `diffusion` node pack; install `nodeloom[diffusion]`",
            details=str(exc),
            extra_info={"extra": "diffusion"},
        ) from exc
    cls = getattr(diffusion, "NODE_CLASS_MAPPINGS", {}).get(class_type)
    if cls is None:
        raise MissingDependencyError(
            f"the diffusion pack has no `{class_type}` node", extra_info={"extra": "diffusion", "node": class_type}
        )
    return cls


def call_node(class_type: str, **inputs: Any) -> tuple[Any, ...]:
    """Run a diffusion node by class_type and return its output values as a tuple."""
    cls = diffusion_node(class_type)
    execute = getattr(cls, "execute", None)
    result = execute(**inputs) if execute is not None and hasattr(cls, "SCHEMA") else getattr(cls(), cls.FUNCTION)(**inputs)
    if hasattr(result, "values") and hasattr(result, "to_v1"):
        return tuple(result.values)
    if isinstance(result, dict):
        return tuple(result["result"])
    return tuple(result)


def combo_choices(input_name: str, fallback: tuple[str, ...]) -> list[str]:
    """KSampler's choices for ``sampler_name`` / ``scheduler`` (a fallback list without the pack)."""
    try:
        spec = diffusion_node("KSampler").INPUT_TYPES()["required"][input_name][0]
    except (MissingDependencyError, KeyError, IndexError, TypeError):
        return list(fallback)
    return list(spec) if isinstance(spec, (list, tuple)) else list(fallback)


def to_numpy_image(image: torch.Tensor, index: int = 0) -> np.ndarray:
    """Frame ``index`` of an IMAGE as float32 ``[H, W, 3]``."""
    if image.ndim != 4 or image.shape[-1] < 3:
        raise ValidationError(f"`image` must be IMAGE [B, H, W, C], got shape {tuple(image.shape)}")
    return image[index, ..., :3].detach().cpu().float().numpy().copy()


def to_tensor_image(arr: np.ndarray) -> torch.Tensor:
    """float ``[H, W, 3]`` (or ``[N, H, W, 3]``) → IMAGE ``[B, H, W, 3]``."""
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    return t if t.ndim == 4 else t.unsqueeze(0)


def mask_to_tensor(mask: np.ndarray) -> torch.Tensor:
    """float ``[H, W]`` (or ``[N, H, W]``) → MASK ``[B, H, W]``."""
    t = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))
    return t if t.ndim == 3 else t.unsqueeze(0)


@dataclass
class DiffusionInpainter:
    """Re-draw crops with a connected MODEL/CLIP/VAE.

    ``positive``/``negative`` are the main conditionings used when a segment has no prompt of
    its own; a routed prompt is encoded with ``clip`` per segment. ``control_net`` (optional)
    is fed the crop itself (``tile``) or its Canny edges (``canny``).
    """

    model: Any
    vae: Any
    clip: Any = None
    positive: Any = None
    negative: Any = None
    steps: int = 20
    cfg: float = 8.0
    sampler_name: str = "euler"
    scheduler: str = "normal"
    denoise: float = 0.4
    noise_mask: bool = True
    cycle: int = 1
    control_net: Any = None
    control_mode: str = "tile"
    control_strength: float = 1.0
    control_start: float = 0.0
    control_end: float = 1.0
    #: ControlNet hint images fed so far (debug output)
    hints: list[torch.Tensor] = field(default_factory=list)
    _encoded: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValidationError(f"`steps` must be ≥ 1, got {self.steps}")
        if self.cycle < 1:
            raise ValidationError(f"`cycle` must be ≥ 1, got {self.cycle}")
        if not 0.0 < self.denoise <= 1.0:
            raise ValidationError(f"`denoise` must be in (0, 1], got {self.denoise}")
        if self.control_mode not in ("tile", "canny"):
            raise ValidationError(f"`control_mode` must be `tile` or `canny`, got {self.control_mode!r}")

    def _conditioning(self, text: str, main: Any, which: str) -> Any:
        if not text and main is not None:
            return main
        if self.clip is None:
            need = f"a per-segment {which} prompt needs `clip`" if text else f"`{which}` conditioning or `clip` must be"
            raise ValidationError(f"{need} connected")
        if text not in self._encoded:  # segments sharing a prompt share its encoding
            self._encoded[text] = call_node("CLIPTextEncode", text=text, clip=self.clip)[0]
        return self._encoded[text]

    def _control(self, crop: torch.Tensor, positive: Any, negative: Any) -> tuple[Any, Any]:
        if self.control_net is None:
            return positive, negative
        hint = crop
        if self.control_mode == "canny":
            import cv2

            gray = cv2.cvtColor((crop[0].numpy() * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
            edges = cv2.Canny(gray, 100, 200).astype(np.float32) / 255.0
            hint = torch.from_numpy(np.repeat(edges[..., None], 3, axis=2)).unsqueeze(0)
        self.hints.append(hint)
        out = call_node(
            "ControlNetApplyAdvanced", positive=positive, negative=negative, control_net=self.control_net,
            image=hint, strength=self.control_strength, start_percent=self.control_start, end_percent=self.control_end,
            vae=self.vae,
        )
        return out[0], out[1]

    def __call__(self, crop: np.ndarray, mask: np.ndarray, job: InpaintJob) -> np.ndarray:
        """Re-draw one crop at its working size (see :data:`~nodeloom.ops.detail.detailer.Inpainter`)."""
        pixels = to_tensor_image(crop)
        positive = self._conditioning(job.prompt, self.positive, "positive")
        negative = self._conditioning(job.negative, self.negative, "negative")
        positive, negative = self._control(pixels, positive, negative)
        image = pixels
        for i in range(self.cycle):
            latent = call_node("VAEEncode", pixels=image, vae=self.vae)[0]
            if self.noise_mask:
                latent = call_node("SetLatentNoiseMask", samples=latent, mask=mask_to_tensor(mask))[0]
            latent = call_node(
                "KSampler", model=self.model, seed=int(job.seed) + i, steps=self.steps, cfg=self.cfg,
                sampler_name=self.sampler_name, scheduler=self.scheduler, positive=positive, negative=negative,
                latent_image=latent, denoise=self.denoise,
            )[0]
            image = call_node("VAEDecode", samples=latent, vae=self.vae)[0]
        out = image[0, ..., :3].detach().cpu().float().numpy()
        if out.shape[:2] != crop.shape[:2]:
            import cv2

            out = cv2.resize(out, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_LINEAR)
        return np.clip(out, 0.0, 1.0)

