"""ComfyUI's latent-operation nodes: LATENT_OPERATION values (Reinhard tone-map, sharpen, blend
toward a reference) and the two nodes that apply one — to a latent directly, or to the model's
estimates before CFG combines them (a MODEL patch). The maths lives in :mod:`nodeloom.ops.latent_ops`."""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import torch

from nodeloom.diffusion.models import DiffusionModel
from nodeloom.node_api import IO, Custom, Float, Int, Latent, Model, Node, Output, Schema, ValidationError
from nodeloom.ops.latent_ops import blend_toward, sharpen, tonemap_reinhard

__all__ = [
    "LatentApplyOperation",
    "LatentApplyOperationCFG",
    "LatentOperationBlend",
    "LatentOperationSharpen",
    "LatentOperationTonemapReinhard",
]

LATENT_OPERATION = "LATENT_OPERATION"
_CATEGORY = "latent/advanced/operations"
_OP_TIP = "A latent operation (from a LatentOperation… node)."

Operation = Callable[..., torch.Tensor]


def _checked(operation: Any) -> Operation:
    if not callable(operation):
        raise ValidationError(f"`operation` must be a LATENT_OPERATION (a function of `latent`), got {type(operation).__name__}")
    return operation


class LatentApplyOperation(Node):
    """Apply a latent operation to a latent's samples (its other keys are kept)."""

    SCHEMA = Schema(
        "LatentApplyOperation", display_name="LatentApplyOperation", category=_CATEGORY, experimental=True,
        inputs=[Latent("samples", tooltip="The latent to change."),
                Custom(LATENT_OPERATION, "operation", tooltip=_OP_TIP)],
        outputs=[Output(IO.LATENT, "LATENT", tooltip="The changed latent.")],
    )

    @classmethod
    def execute(cls, samples: dict[str, Any], operation: Any) -> tuple[dict[str, Any]]:
        return ({**samples, "samples": _checked(operation)(latent=samples["samples"])},)


class LatentApplyOperationCFG(Node):
    """Patch a model so that, at every step before CFG, the operation reshapes the guidance
    direction (positive minus negative estimate), or the positive estimate alone when CFG 1
    skips the negative one."""

    SCHEMA = Schema(
        "LatentApplyOperationCFG", display_name="LatentApplyOperationCFG", category=_CATEGORY, experimental=True,
        inputs=[Model("model", tooltip="The model to patch."),
                Custom(LATENT_OPERATION, "operation", tooltip=_OP_TIP)],
        outputs=[Output(IO.MODEL, "MODEL", tooltip="The patched model.")],
    )

    @classmethod
    def execute(cls, model: DiffusionModel, operation: Any) -> tuple[DiffusionModel]:
        op = _checked(operation)

        def pre_cfg(args: dict[str, Any]) -> list[torch.Tensor]:
            outs = list(args["conds_out"])
            if len(outs) == 2:
                outs[0] = op(latent=outs[0] - outs[1]) + outs[1]
            else:
                outs[0] = op(latent=outs[0])
            return outs

        patched = model.clone()
        patched.set_model_sampler_pre_cfg_function(pre_cfg)
        return (patched,)


def _as_operation(fn: Callable[..., torch.Tensor], **params: Any) -> Operation:
    """A LATENT_OPERATION: called as ``op(latent=tensor, **ignored)`` like ComfyUI's."""
    bound = partial(fn, **params)

    def operation(latent: torch.Tensor, **_: Any) -> torch.Tensor:
        return bound(latent)

    return operation


class LatentOperationTonemapReinhard(Node):
    """An operation that tone-maps a latent: each position's channel-vector length is compressed
    with Reinhard's curve (mean + 5 std of the lengths, times `multiplier`, as its scale); directions kept."""

    SCHEMA = Schema(
        "LatentOperationTonemapReinhard", display_name="LatentOperationTonemapReinhard", category=_CATEGORY,
        experimental=True,
        inputs=[Float("multiplier", 1.0, min=0.0, max=100.0, step=0.01,
                      tooltip="Scale of the curve's top; higher compresses less.")],
        outputs=[Output(LATENT_OPERATION, LATENT_OPERATION, tooltip="The tone-map operation.")],
    )

    @classmethod
    def execute(cls, multiplier: float) -> tuple[Operation]:
        return (_as_operation(tonemap_reinhard, multiplier=float(multiplier)),)


class LatentOperationSharpen(Node):
    """An operation that sharpens a latent: an unsharp mask over each channel of the
    length-normalised latent, the lengths restored afterwards."""

    SCHEMA = Schema(
        "LatentOperationSharpen", display_name="LatentOperationSharpen", category=_CATEGORY, experimental=True,
        inputs=[Int("sharpen_radius", 9, min=1, max=31, step=1, tooltip="Kernel radius in latent pixels."),
                Float("sigma", 1.0, min=0.1, max=10.0, step=0.1, tooltip="Gaussian spread, in units of the radius."),
                Float("alpha", 0.1, min=0.0, max=5.0, step=0.01, tooltip="Sharpening strength (0 leaves it).")],
        outputs=[Output(LATENT_OPERATION, LATENT_OPERATION, tooltip="The sharpen operation.")],
    )

    @classmethod
    def execute(cls, sharpen_radius: int, sigma: float, alpha: float) -> tuple[Operation]:
        return (_as_operation(sharpen, radius=int(sharpen_radius), sigma=float(sigma), alpha=float(alpha)),)


class LatentOperationBlend(Node):
    """An operation that blends a latent toward a reference latent (resized nearest-neighbour to
    it, its batch repeated); strength 0 leaves the latent, 1 gives the reference."""

    SCHEMA = Schema(
        "LatentOperationBlend", display_name="LatentOperationBlend", category=_CATEGORY, experimental=True,
        inputs=[Latent("reference", tooltip="The latent to blend toward."),
                Float("strength", 1.0, min=0.0, max=1.0, step=0.0001, tooltip="0 keeps the latent, 1 gives the reference.")],
        outputs=[Output(LATENT_OPERATION, LATENT_OPERATION, tooltip="The blend operation.")],
    )

    @classmethod
    def execute(cls, reference: dict[str, Any], strength: float) -> tuple[Operation]:
        return (_as_operation(blend_toward, reference=reference["samples"], strength=float(strength)),)
