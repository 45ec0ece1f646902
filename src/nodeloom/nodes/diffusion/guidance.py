"""Model patches with ComfyUI's names: CFGNorm (caps the guided estimate's per-pixel norm at the
positive estimate's) and DifferentialDiffusion (a soft inpainting mask read as per-pixel strength)."""

from __future__ import annotations

from typing import Any

from nodeloom.diffusion.differential import differential_mask
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.post_cfg import cfg_norm
from nodeloom.node_api import IO, Float, Model, Node, Output, Schema

__all__ = ["CFGNorm", "DifferentialDiffusion"]


class CFGNorm(Node):
    """Keeps classifier-free guidance from inflating the estimate: per pixel, the guided estimate is scaled down to the positive estimate's norm, then by `strength`."""

    SCHEMA = Schema(
        "CFGNorm", display_name="CFGNorm", category="advanced/guidance", experimental=True,
        inputs=[Model("model", tooltip="The model to patch."),
                Float("strength", 1.0, min=0.0, max=100.0, step=0.01,
                      tooltip="Factor applied to the normalised estimate (1 keeps it).")],
        outputs=[Output(IO.MODEL, "patched_model")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, strength: float) -> tuple[Any, ...]:
        return (model.clone(post_cfg=model.post_cfg + (cfg_norm(float(strength)),)),)


class DifferentialDiffusion(Node):
    """Reads a soft inpainting mask as per-pixel strength: a pixel is regenerated only while the run's remaining share is at most its mask value."""

    SCHEMA = Schema(
        "DifferentialDiffusion", display_name="Differential Diffusion", category="_for_testing", experimental=True,
        inputs=[Model("model", tooltip="The model to patch."),
                Float("strength", 1.0, min=0.0, max=1.0, step=0.01, optional=True,
                      tooltip="1 uses the stepwise binary mask; lower blends in the soft mask.")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, strength: float = 1.0) -> tuple[Any, ...]:
        return (model.clone(denoise_mask_fn=differential_mask(float(strength))),)
