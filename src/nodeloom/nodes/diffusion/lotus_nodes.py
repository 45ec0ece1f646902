"""LotusConditioning with ComfyUI's declaration (no inputs, one CONDITIONING): Lotus's frozen null
prompt, computed here from SD 2's text encoder found in the model folders
(:mod:`nodeloom.diffusion.lotus_prompt`) and cached per file by the engine's model manager. The
Lotus-D UNet itself loads with UNETLoader (:mod:`nodeloom.diffusion.families.lotus`)."""

from __future__ import annotations

from typing import Any

from nodeloom.diffusion.lotus_prompt import find_sd2_text_encoder, null_conditioning
from nodeloom.node_api import IO, Node, Output, Schema, model_key, services

__all__ = ["LotusConditioning"]


class LotusConditioning(Node):
    """Lotus's fixed conditioning: the empty prompt through SD 2's text encoder, as Lotus was trained. nodeloom computes it from SD 2's text encoder in models/text_encoders (or an SD 2.x checkpoint in models/checkpoints) and caches it; ComfyUI ships the numbers inline."""

    SCHEMA = Schema(
        "LotusConditioning", display_name="LotusConditioning", category="conditioning/lotus",
        inputs=[],
        outputs=[Output(IO.CONDITIONING, "conditioning",
                        tooltip="Lotus's null prompt, [1, 2, 1024], for BasicGuider with a Lotus-D model.")],
    )

    @classmethod
    def execute(cls) -> tuple[Any, ...]:
        svc = services()
        tower = find_sd2_text_encoder(svc.paths.model_folders("text_encoders"), svc.paths.model_folders("checkpoints"))
        states = svc.models.load(model_key(tower.path, "lotus-null-conditioning", tower.prefix, tower.layers),
                                 lambda: null_conditioning(tower))
        return ([[states, {}]],)
