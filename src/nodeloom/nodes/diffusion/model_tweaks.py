"""MODEL patches of newer ComfyUI templates, with ComfyUI's node ids and inputs:
TemporalScoreRescaling (TSR), VideoLinearCFGGuidance, EasyCache (a step cache), ModelNoiseScale
(the absolute training noise scale), MiniMaxH3SigmaShift (video/audio flow shifts) and
ModelAttentionBackend (the dense attention implementation).

Each node returns a clone and never changes the MODEL it was given; the math lives in
:mod:`nodeloom.diffusion.score_patches` and :mod:`nodeloom.diffusion.easycache`.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from nodeloom.diffusion.easycache import EasyCache as EasyCacheAdapter
from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.score_patches import temporal_score_rescaling, video_linear_cfg
from nodeloom.node_api import IO, Boolean, Combo, Float, Model, Node, Output, Schema, ValidationError

__all__ = ["ATTENTION_BACKENDS", "EasyCache", "MiniMaxH3SigmaShift", "ModelAttentionBackend", "ModelNoiseScale",
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
    """Native EasyCache implementation: between `start_percent` and `end_percent` of the run, a step whose accumulated predicted output change stays under `reuse_threshold` reuses the last computed output-minus-input difference instead of calling the model (flow transformer models)."""

    SCHEMA = Schema(
        "EasyCache", display_name="EasyCache", category="advanced/debug/model", experimental=True,
        description="Native EasyCache implementation.",
        inputs=[Model("model", tooltip="The model to add EasyCache to."),
                Float("reuse_threshold", 0.2, min=0.0, max=3.0, step=0.01,
                      tooltip="The threshold for reusing cached steps."),
                Float("start_percent", 0.15, min=0.0, max=1.0, step=0.01,
                      tooltip="The relative sampling step to begin use of EasyCache."),
                Float("end_percent", 0.95, min=0.0, max=1.0, step=0.01,
                      tooltip="The relative sampling step to end use of EasyCache."),
                Boolean("verbose", False, tooltip="Whether to log verbose information.")],
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
                      tooltip="Absolute training noise scale. For example HiDream-O1 base: 8.0, dev: 7.5.")],
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
