"""The inputs the detailer nodes share, and turning their values into ops settings/inpainters."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nodeloom.errors import ValidationError
from nodeloom.node_api import Boolean, Combo, Custom, Float, Input, Int, Model, Clip, Vae, Conditioning, String
from nodeloom.nodes.detail.backend import DEFAULT_SAMPLERS, DEFAULT_SCHEDULERS, DiffusionInpainter, combo_choices
from nodeloom.ops.detail.detailer import DetailSettings, Inpainter, classical_inpainter

__all__ = ["BACKENDS", "detail_inputs", "detection_inputs", "make_inpainter", "make_settings", "placeholder_list"]

BACKENDS = ("auto", "model", "telea", "ns")


def detail_inputs() -> list[Input]:
    """Inputs common to FaceDetailer and the fine-grained detail node (Impact Pack names first)."""
    return [
        Float("guide_size", 512, min=64, max=16384, step=8, tooltip="Re-draw so the short side of the box (or crop) reaches this, px."),
        Boolean("guide_size_for", True, label_on="bbox", label_off="crop_region", tooltip="True: guide_size measures the bbox; False: the whole crop region."),
        Float("max_size", 1024, min=64, max=16384, step=8, tooltip="Neither side of the re-drawn crop exceeds this, px."),
        Int("seed", 0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True, tooltip="Base seed; each segment's seed derives from it."),
        Int("steps", 20, min=1, max=10000, tooltip="Sampling steps per segment."),
        Float("cfg", 8.0, min=0.0, max=100.0, tooltip="Classifier-free guidance scale."),
        Combo("sampler_name", lambda: combo_choices("sampler_name", DEFAULT_SAMPLERS), tooltip="Sampler of the inpaint step."),
        Combo("scheduler", lambda: combo_choices("scheduler", DEFAULT_SCHEDULERS), tooltip="Noise schedule of the inpaint step."),
        Float("denoise", 0.4, min=0.0001, max=1.0, tooltip="How much of each crop is re-drawn (0.4 keeps the likeness)."),
        Int("feather", 4, min=0, max=100, tooltip="Gaussian blur (sigma, px) of the paste mask."),
        Boolean("noise_mask", True, label_on="enabled", label_off="disabled", tooltip="Only re-draw inside the mask (the rest of the crop is kept as context)."),
        Boolean("force_inpaint", True, label_on="enabled", label_off="disabled", tooltip="Re-draw even segments already larger than guide_size (off: skip them)."),
        Int("cycle", 1, min=1, max=10, tooltip="Sampling passes per segment."),
        Model("model", optional=True, tooltip="Diffusion model; without it a classical inpainting fills the masks."),
        Clip("clip", optional=True, tooltip="Text encoder for per-segment prompts."),
        Vae("vae", optional=True, tooltip="VAE of the model."),
        Conditioning("positive", optional=True, tooltip="Main positive conditioning (segments without a prompt of their own)."),
        Conditioning("negative", optional=True, tooltip="Main negative conditioning."),
        String("wildcard", "", multiline=True, optional=True, tooltip="Per-segment prompts split by [SEP]; [SKIP] leaves a segment alone; [PROMPT] inserts main_prompt."),
        String("negative_wildcard", "", multiline=True, optional=True, tooltip="Per-segment negative prompts, routed like `wildcard`."),
        String("main_prompt", "", multiline=True, optional=True, tooltip="Text that [PROMPT] and empty parts stand for."),
        Int("padding", -1, min=-1, max=4096, optional=True, tooltip="Crop this many px around the box (-1: keep the SEGS crop region)."),
        Int("inpaint_width", 0, min=0, max=16384, step=8, optional=True, tooltip="Explicit working width (0: use guide_size)."),
        Int("inpaint_height", 0, min=0, max=16384, step=8, optional=True, tooltip="Explicit working height (0: use guide_size)."),
        Float("seam_match", 1.0, min=0.0, max=1.0, optional=True, tooltip="Match the patch's Lab colour to its surroundings in the feather ring."),
        Boolean("seed_from_box", True, optional=True, tooltip="Derive each segment's seed from its box centre (order-independent); off: seed + index."),
        Combo("inpaint_backend", list(BACKENDS), default="auto", optional=True, tooltip="auto: the model when connected, else OpenCV Telea."),
        Custom("CONTROL_NET", "control_net", optional=True, tooltip="ControlNet fed with the crop (tile) or its edges (canny)."),
        Combo("control_mode", ["tile", "canny"], default="tile", optional=True, tooltip="Hint given to the ControlNet."),
        Float("control_strength", 1.0, min=0.0, max=10.0, optional=True, tooltip="ControlNet strength."),
    ]


def detection_inputs() -> list[Input]:
    """Detection inputs of the all-in-one nodes (Impact Pack FaceDetailer names)."""
    return [
        Float("bbox_threshold", 0.3, min=0.0, max=1.0, tooltip="Minimum detection confidence."),
        Int("bbox_dilation", 4, min=-512, max=512, tooltip="Grow (+) / shrink (-) masks with a square kernel, px."),
        Float("bbox_crop_factor", 3.0, min=1.0, max=10.0, step=0.1, tooltip="Crop region = box size x this."),
        Int("drop_size", 10, min=1, max=16384, tooltip="Ignore detections smaller than this on a side, px."),
        Custom("BBOX_DETECTOR", "bbox_detector", optional=True, tooltip="Detector; default: offline OpenCV faces."),
    ]


def make_settings(kw: dict[str, Any]) -> DetailSettings:
    """DetailSettings from node input values."""
    padding = int(kw.get("padding", -1))
    return DetailSettings(
        guide_size=float(kw["guide_size"]),
        guide_size_for_bbox=bool(kw["guide_size_for"]),
        max_size=float(kw["max_size"]),
        inpaint_width=int(kw.get("inpaint_width", 0)),
        inpaint_height=int(kw.get("inpaint_height", 0)),
        force_inpaint=bool(kw["force_inpaint"]),
        padding=None if padding < 0 else padding,
        feather=float(kw["feather"]),
        seam_match=float(kw.get("seam_match", 1.0)),
        seed=int(kw["seed"]),
        seed_from_box=bool(kw.get("seed_from_box", True)),
        prompt=kw.get("wildcard", "") or "",
        negative=kw.get("negative_wildcard", "") or "",
        main_prompt=kw.get("main_prompt", "") or "",
    )


def make_inpainter(kw: dict[str, Any]) -> tuple[Inpainter, str]:
    """The inpainter the inputs ask for, and its name.

    Raises:
        ValidationError: ``inpaint_backend`` is ``model`` without model and vae connected.
    """
    backend = kw.get("inpaint_backend", "auto")
    has_model = kw.get("model") is not None and kw.get("vae") is not None
    if backend == "model" and not has_model:
        raise ValidationError("`inpaint_backend` is `model` but `model` and `vae` are not both connected")
    if backend in ("telea", "ns") or (backend == "auto" and not has_model):
        name = "ns" if backend == "ns" else "telea"
        return classical_inpainter(name), f"classical ({name})"
    inpainter = DiffusionInpainter(
        model=kw["model"], vae=kw["vae"], clip=kw.get("clip"), positive=kw.get("positive"), negative=kw.get("negative"),
        steps=int(kw["steps"]), cfg=float(kw["cfg"]), sampler_name=kw["sampler_name"], scheduler=kw["scheduler"],
        denoise=float(kw["denoise"]), noise_mask=bool(kw["noise_mask"]), cycle=int(kw["cycle"]),
        control_net=kw.get("control_net"), control_mode=kw.get("control_mode", "tile"),
        control_strength=float(kw.get("control_strength", 1.0)),
    )
    return inpainter, "model"


def placeholder_list(crops: list[np.ndarray]) -> list[torch.Tensor]:
    """Crops as IMAGE tensors; one black 64x64 placeholder when empty (so list outputs are never empty)."""
    if not crops:
        return [torch.zeros((1, 64, 64, 3), dtype=torch.float32)]
    return [torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32)).unsqueeze(0) for c in crops]
