"""MODEL patches of newer ComfyUI templates, with ComfyUI's node ids and inputs:
TemporalScoreRescaling (TSR), VideoLinearCFGGuidance, EasyCache (a step cache), ModelNoiseScale
(the absolute training noise scale), MiniMaxH3SigmaShift (video/audio flow shifts),
ModelAttentionBackend (the dense attention implementation) and HiDreamO1PatchSeamSmoothing
(shifted-grid passes late in sampling).

Each node returns a clone and never changes the MODEL it was given; the math lives in
:mod:`nodeloom.diffusion.score_patches`, :mod:`nodeloom.diffusion.easycache` and
:mod:`nodeloom.diffusion.seam_smoothing`.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from nodeloom.diffusion.easycache import EasyCache as EasyCacheAdapter
from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.score_patches import temporal_score_rescaling, video_linear_cfg
from nodeloom.diffusion.seam_smoothing import BLENDS, PASS_LEVELS, PATTERNS, PatchSeamSmoothing, SeamAdapter
from nodeloom.node_api import IO, Boolean, Combo, Float, Model, Node, Output, Schema, ValidationError

__all__ = ["ATTENTION_BACKENDS", "EasyCache", "HiDreamO1PatchSeamSmoothing", "MiniMaxH3SigmaShift", "ModelAttentionBackend", "ModelNoiseScale",
           "TemporalScoreRescaling", "VideoLinearCFGGuidance"]

log = logging.getLogger(__name__)

#: ModelAttentionBackend's choices; nodeloom's models run PyTorch attention whichever is picked
ATTENTION_BACKENDS = ["pytorch attention", "comfy kitchen attention"]


class TemporalScoreRescaling(Node):
    """[Post-CFG Function] TSR - Temporal Score Rescaling (arXiv 2510.01184): the noise the guided estimate implies is scaled by r = (SNR·σ_tsr² + 1) / (SNR·σ_tsr²/k + 1), which steers the diversity of the samples (k < 1 sharper, k > 1 smoother; k = 1 changes nothing)."""

    SCHEMA = Schema(
        "TemporalScoreRescaling", display_name="TSR - Temporal Score Rescaling", category="model_patches/unet",
        description="[Post-CFG Function]\nTSR - Temporal Score Rescaling (2510.01184)\n\nRescaling the model's score "
                    "or noise to steer the sampling diversity.\n",
        inputs=[Model("model", tooltip="The diffusion model to patch."),
                Float("tsr_k", 0.95, min=0.01, max=100.0, step=0.001,
                      tooltip="Controls the rescaling strength.\nLower k produces more detailed results; higher k "
                              "produces smoother results in image generation. Setting k = 1 disables rescaling."),
                Float("tsr_sigma", 1.0, min=0.01, max=100.0, step=0.001,
                      tooltip="Controls how early rescaling takes effect.\nLarger values take effect earlier.")],
        outputs=[Output(IO.MODEL, "patched_model")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, tsr_k: float, tsr_sigma: float) -> tuple[Any, ...]:
        for name, value in (("tsr_k", tsr_k), ("tsr_sigma", tsr_sigma)):
            if not float(value) > 0:
                raise ValidationError(f"TemporalScoreRescaling: `{name}` must be > 0, got {value}")
        flow = bool(getattr(model.sampling, "is_flow", False))
        patched = model.clone()
        patched.set_model_sampler_post_cfg_function(temporal_score_rescaling(float(tsr_k), float(tsr_sigma), flow))
        return (patched,)


class VideoLinearCFGGuidance(Node):
    """CFG rising linearly over a video's frames: the first frame is guided with `min_cfg`, the last with the sampler's cfg (the batch's items read as frames, as ComfyUI's img2vid models sample them)."""

    SCHEMA = Schema(
        "VideoLinearCFGGuidance", display_name="VideoLinearCFGGuidance", category="sampling/video_models",
        inputs=[Model("model", tooltip="The model to patch."),
                Float("min_cfg", 1.0, min=0.0, max=100.0, step=0.5, round=0.01,
                      tooltip="The CFG scale of the first frame; the last frame gets the sampler's cfg.")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, min_cfg: float) -> tuple[Any, ...]:
        patched = model.clone()
        patched.set_model_sampler_cfg_function(video_linear_cfg(float(min_cfg)))
        return (patched,)


class EasyCache(Node):
    """EasyCache: between `start_percent` and `end_percent` of the run, a step whose accumulated predicted output change stays under `reuse_threshold` reuses the last computed output-minus-input difference instead of calling the model (flow transformer models)."""

    SCHEMA = Schema(
        "EasyCache", display_name="EasyCache", category="advanced/debug/model", experimental=True,
        description="Reuse the model's output change between similar steps instead of running the model (EasyCache).",
        inputs=[Model("model", tooltip="The model whose steps may be skipped."),
                Float("reuse_threshold", 0.2, min=0.0, max=3.0, step=0.01,
                      tooltip="How much the input may change before a skipped step must run again; higher skips more."),
                Float("start_percent", 0.15, min=0.0, max=1.0, step=0.01,
                      tooltip="Sampling progress (0..1) from which steps may be skipped."),
                Float("end_percent", 0.95, min=0.0, max=1.0, step=0.01,
                      tooltip="Sampling progress (0..1) after which every step runs again."),
                Boolean("verbose", False, tooltip="Log each skipped and computed step.")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, reuse_threshold: float, start_percent: float, end_percent: float,
                verbose: bool = False) -> tuple[Any, ...]:
        if model.adapter is None:
            raise ValidationError(f"EasyCache caches the calls of flow transformer models (Wan, HunyuanVideo, Flux, "
                                  f"...); `model` is a {model.family} UNet")
        if start_percent > end_percent:
            raise ValidationError(f"EasyCache: `start_percent` {start_percent} is after `end_percent` {end_percent};"
                                  " expected start_percent <= end_percent")
        cache = EasyCacheAdapter(model.adapter, float(reuse_threshold), float(start_percent), float(end_percent),
                                 model.sampling, verbose=bool(verbose))
        return (model.clone(adapter=cache),)


class ModelNoiseScale(Node):
    """Sets the model's absolute training noise scale: the initial noise and every step's fresh noise are drawn at that standard deviation (HiDream-O1 base 8.0, dev 7.5)."""

    SCHEMA = Schema(
        "ModelNoiseScale", display_name="ModelNoiseScale", category="advanced/model",
        inputs=[Model("model", tooltip="The model to apply the noise scale to."),
                Float("noise_scale", 1.0, min=0.0, max=64.0, step=0.01,
                      tooltip="The noise scale the model was trained with, as an absolute value (HiDream-O1: "
                              "8.0 for base, 7.5 for dev).")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, noise_scale: float) -> tuple[Any, ...]:
        if not 0.0 <= float(noise_scale) <= 64.0:
            raise ValidationError(f"ModelNoiseScale: `noise_scale` must be between 0 and 64, got {noise_scale}")
        sampling = copy.copy(model.sampling)
        sampling.noise_scale = float(noise_scale)
        return (model.clone(sampling=sampling),)


class MiniMaxH3SigmaShift(Node):
    """Sets the video and audio flow shifts of a MiniMax H3 model: `shift_video` drives the sampler's sigma schedule (σ = s·t / (1 + (s − 1)·t)); `shift_audio` is carried on the model for its audio schedule."""

    SCHEMA = Schema(
        "MiniMaxH3SigmaShift", display_name="MiniMax H3 Sigma Shift", category="advanced/model",
        inputs=[Model("model", tooltip="The model to patch (cloned; the original stays unchanged)."),
                Float("shift_video", 12.0, min=0.01, max=100.0, step=0.01,
                      tooltip="The video flow shift; it drives the sampler's sigma schedule."),
                Float("shift_audio", 3.0, min=0.01, max=100.0, step=0.01,
                      tooltip="The audio flow shift; the model derives its audio schedule from it.")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, shift_video: float, shift_audio: float) -> tuple[Any, ...]:
        if model.adapter is None or not getattr(model.sampling, "is_flow", False):
            raise ValidationError(f"MiniMaxH3SigmaShift needs a flow-matching model (one loaded with UNETLoader); "
                                  f"`model` is a {model.family} UNet")
        for name, value in (("shift_video", shift_video), ("shift_audio", shift_audio)):
            if not float(value) > 0:
                raise ValidationError(f"MiniMaxH3SigmaShift: `{name}` must be > 0, got {value}")
        multiplier = float(getattr(model.sampling, "multiplier", 1000.0))
        sampling = FlowSampling(shift=float(shift_video), multiplier=multiplier)
        if hasattr(model.sampling, "noise_scale"):
            sampling.noise_scale = model.sampling.noise_scale
        patched = model.clone(sampling=sampling)
        patched.extra["audio_shift"] = float(shift_audio)
        return (patched,)


class ModelAttentionBackend(Node):
    """Selects the dense attention implementation of the model. nodeloom's models always run PyTorch attention (scaled_dot_product_attention); "comfy kitchen attention" (ComfyUI's quantized INT8 kernels) is not available here and falls back to PyTorch attention with a logged warning, as ComfyUI does where the kernels are missing."""

    SCHEMA = Schema(
        "ModelAttentionBackend", display_name="Model Attention Backend", category="advanced/model",
        inputs=[Model("model", tooltip="The model to patch."),
                Combo("attention", ATTENTION_BACKENDS,
                      tooltip="The dense attention backend. Comfy kitchen attention (INT8, Nvidia/AMD GPUs) is not "
                              "available in nodeloom and falls back to PyTorch attention.")],
        outputs=[Output(IO.MODEL, "model")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, attention: str) -> tuple[Any, ...]:
        if attention not in ATTENTION_BACKENDS:
            raise ValidationError(f"ModelAttentionBackend: `attention` must be one of {ATTENTION_BACKENDS}, "
                                  f"got {attention!r}")
        if attention != "pytorch attention":
            log.warning("ModelAttentionBackend: %r is not available in nodeloom; the model uses PyTorch attention",
                        attention)
        patched = model.clone()
        patched.extra["attention_backend"] = "pytorch attention"
        patched.extra["attention_backend_requested"] = attention
        return (patched,)


class HiDreamO1PatchSeamSmoothing(Node):
    """Late in sampling (σ between the `start_percent` and `end_percent` points of the schedule), each model call is also run on its input rolled by a few offsets against the 32-position patch grid; the rolled-back predictions are blended (mean, Hann-window weights or per-element median) and mixed in by `strength`, away from a one-patch strip along the borders where the rolls wrap around. This averages out the patch seams of HiDream-O1; it wraps any image model (the UNet's output, or a flow transformer's velocity) and refuses video latents when sampling reaches a gated step."""

    SCHEMA = Schema(
        "HiDreamO1PatchSeamSmoothing", display_name="HiDream-O1 Patch Seam Smoothing", category="advanced/model",
        experimental=True,
        description="Blends the model's predictions over several shifted positions of the 32-pixel patch grid in "
                    "the last part of sampling, so the seams between HiDream-O1's patches cancel out.",
        inputs=[Model("model", tooltip="The model whose predictions are smoothed (cloned; the input stays as it is)."),
                Float("start_percent", 0.8, min=0.0, max=1.0, step=0.01,
                      tooltip="Point of the sampling run (0 = first step, 1 = last) from which the shifted passes "
                              "are blended in."),
                Float("end_percent", 1.0, min=0.0, max=1.0, step=0.01,
                      tooltip="Point of the sampling run after which the model runs plainly again."),
                Combo("pattern", list(PATTERNS), default="single_shift",
                      tooltip="Offsets of the passes. single_shift keeps one pass on the model's own grid and moves "
                              "the others; symmetric moves every pass, spread evenly around the grid."),
                Combo("passes", list(PASS_LEVELS), default="2",
                      tooltip="Passes per smoothed call: 2 or 4 throughout, or ramp_2_4 / ramp_2_4_8 to add passes "
                              "as the run nears its end, where seams show most."),
                Combo("blend", list(BLENDS), default="average",
                      tooltip="How the passes combine: average (equal weights), window (each pass counts most "
                              "away from its own patch borders) or median (per value; an outlying pass is ignored)."),
                Float("strength", 1.0, min=0.0, max=1.0, step=0.01,
                      tooltip="Mix between the plain prediction (0) and the blended one (1).")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, start_percent: float, end_percent: float, pattern: str = "single_shift",
                passes: str = "2", blend: str = "average", strength: float = 1.0) -> tuple[Any, ...]:
        if float(strength) <= 0.0 or float(end_percent) <= float(start_percent):
            return (model,)
        smoothing = PatchSeamSmoothing(float(model.sampling.percent_to_sigma(float(start_percent))),
                                       float(model.sampling.percent_to_sigma(float(end_percent))),
                                       pattern, passes, blend, float(strength))
        if model.adapter is None:  # a UNet: around the UNet's call, inside any wrapper filed before
            patched = model.clone()
            patched.extra["unet_wrappers"] = tuple(patched.extra.get("unet_wrappers", ())) + (smoothing,)
            return (patched,)
        adapter = model.adapter
        if isinstance(adapter, EasyCacheAdapter):
            # a step cache decides per step before any model call, so it stays outside the shifted passes
            # (as ComfyUI runs its cache around the model calls): rebuild it around the smoothed adapter
            cache = EasyCacheAdapter(SeamAdapter(adapter.adapter, smoothing), adapter.reuse_threshold,
                                     adapter.start_percent, adapter.end_percent, model.sampling,
                                     verbose=adapter.verbose)
            return (model.clone(adapter=cache),)
        return (model.clone(adapter=SeamAdapter(adapter, smoothing)),)
