"""ModelSamplingDiscrete with ComfyUI's declaration: an SD-family MODEL re-read with another
prediction type (ε, v, x0, img_to_img) and optionally a zero-terminal-SNR schedule
(:class:`nodeloom.diffusion.schedules.ModelSampling`). The MODEL given is cloned, never changed."""

from __future__ import annotations

from typing import Any

from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.schedules import ModelSampling
from nodeloom.node_api import IO, Boolean, Combo, Model, Node, Output, Schema, ValidationError

__all__ = ["ModelSamplingDiscrete"]

#: ComfyUI's sampling names → nodeloom's prediction types (None: declared, not run here)
_PREDICTIONS = {"eps": "epsilon", "v_prediction": "v_prediction", "lcm": None, "x0": "x0", "img_to_img": "img_to_img"}


class ModelSamplingDiscrete(Node):
    """Sets how an SD 1.x/2.x/SDXL UNet's output is read (noise, v or the clean image) and whether its noise schedule is rescaled to zero terminal SNR (for models trained that way)."""

    SCHEMA = Schema(
        "ModelSamplingDiscrete", display_name="ModelSamplingDiscrete", category="advanced/model",
        inputs=[Model("model", tooltip="The SD-family model to patch."),
                Combo("sampling", list(_PREDICTIONS),
                      tooltip="What the UNet predicts: eps (noise), v_prediction, x0 (the clean latent),"
                              " img_to_img (the clean latent from the unscaled input, Lotus); lcm is not run by"
                              " nodeloom yet."),
                Boolean("zsnr", False, tooltip="Rescale the schedule to zero terminal SNR (the last step pure noise).")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, sampling: str, zsnr: bool) -> tuple[Any, ...]:
        if sampling not in _PREDICTIONS:
            raise ValidationError(f"ModelSamplingDiscrete: `sampling` {sampling!r} is not one of {list(_PREDICTIONS)}")
        prediction = _PREDICTIONS[sampling]
        if prediction is None:
            raise ValidationError(f"ModelSamplingDiscrete: `sampling` {sampling!r} is not supported by nodeloom yet;"
                                  " supported: eps, v_prediction, x0, img_to_img")
        if model.adapter is not None or not isinstance(model.sampling, ModelSampling):
            raise ValidationError(f"ModelSamplingDiscrete needs an SD 1.x/2.x/SDXL model on the discrete schedule;"
                                  f" `model` is a {model.family} flow model (use ModelSamplingSD3/AuraFlow/Flux)")
        return (model.clone(sampling=ModelSampling(prediction_type=prediction, zsnr=bool(zsnr))),)
