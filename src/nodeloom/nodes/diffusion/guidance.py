"""Guidance patches with ComfyUI's names: CFGNorm (caps the guided estimate's per-pixel norm at the
positive estimate's, as the Qwen-Image and Z-Image edit templates use it)."""

from __future__ import annotations

from typing import Any

from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.post_cfg import cfg_norm
from nodeloom.node_api import IO, Float, Model, Node, Output, Schema

__all__ = ["CFGNorm"]


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
