"""The ImageExpression node: element-wise math over images, masks and scalars.

Its intermediate results are bounded, before they are computed, by the running prompt's
``max_memory`` limit (and never beyond :data:`nodeloom.ops.expr.MAX_ELEMENTS`).
"""

from __future__ import annotations

import numpy as np
import torch

from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, Boolean, Custom, Float, Mask, Node, Output, Schema, String, services
from nodeloom.ops.expr import ExpressionError, compile_expression

_IMAGE_OR_MASK = "IMAGE,MASK"
_NAMES = ("a", "b", "c", "mask", "x", "y", "z", "u", "v", "w", "h")


def _operand(name: str) -> Custom:
    return Custom(_IMAGE_OR_MASK, name, optional=True, tooltip=f"`{name}`: an image [B,H,W,C] or a mask (as one channel).")


def _scalar(name: str) -> Float:
    return Float(name, 0.0, min=-1e6, max=1e6, step=0.01, tooltip=f"The number `{name}` in the expression.")


def _as_operand(name: str, value: torch.Tensor) -> torch.Tensor:
    if value.ndim == 3:
        return value.float().unsqueeze(-1)  # a mask broadcasts against images as one channel
    if value.ndim == 4:
        return value.float()
    raise ValidationError(f"`{name}` must be an IMAGE [B,H,W,C] or a MASK [B,H,W], got shape {tuple(value.shape)}")


def _max_elements() -> int | None:
    """Float32 elements the running prompt's memory limit leaves room for (None: no limit)."""
    limits = getattr(services(required=False), "limits", None)  # None outside an engine
    memory = getattr(limits, "max_memory", 0) if limits is not None else 0
    return memory // 4 if memory else None


class ImageExpression(Node):
    """Compute an image from a formula, e.g. `where(mask > 0.5, a * 1.2, b) ** 0.9`.

    Names: `a`, `b`, `c` (images, or masks as one channel), `mask`, numbers `x`, `y`, `z`,
    the pixel grid `u`, `v` (0..1 across the width and height) and the size `w`, `h`.
    Operators + - * / // % ** and comparisons, `and or not & | ^ ~` (element-wise), and
    `A if cond else B`. Functions: sqrt exp log log2 log10 sin cos tan asin acos atan atan2
    tanh abs sign floor ceil round hypot pow clip/clamp min max where lerp/mix step
    smoothstep luma. Broadcasting follows numpy. Nothing but this whitelist can run.
    """

    SCHEMA = Schema(
        "ImageExpression", display_name="Image Expression", category="image/math",
        inputs=[
            String("expression", "clip(a * 1.2, 0, 1)", tooltip="The formula (one line, at most 2000 characters)."),
            _operand("a"), _operand("b"), _operand("c"),
            Mask("mask", optional=True, tooltip="`mask`: a mask, as one channel."),
            _scalar("x"), _scalar("y"), _scalar("z"),
            Boolean("clamp", True, tooltip="Clip the result to 0..1 (NaN becomes 0)."),
        ],
        outputs=[Output(IO.IMAGE, "IMAGE", tooltip="The result; one channel is repeated to RGB."),
                 Output(IO.MASK, "MASK", tooltip="The result's channel mean.")],
    )  # fmt: skip

    @classmethod
    def validate_inputs(cls, expression):
        if expression is None:  # linked: checked when it runs
            return True
        try:
            compile_expression(expression, _NAMES)
        except ExpressionError as exc:
            return f"`expression`: {exc.message}"
        return True

    @classmethod
    def execute(cls, expression, x=0.0, y=0.0, z=0.0, clamp=True, a=None, b=None, c=None, mask=None):
        compiled = compile_expression(expression, _NAMES)
        operands = {k: _as_operand(k, v) for k, v in (("a", a), ("b", b), ("c", c), ("mask", mask)) if v is not None}
        if not operands:
            raise ValidationError("connect at least one of `a`, `b`, `c` or `mask`")
        first = next(iter(operands.values()))
        height, width = first.shape[1:3]
        variables: dict[str, object] = {**operands, "x": float(x), "y": float(y), "z": float(z),
                                        "w": float(width), "h": float(height)}  # fmt: skip
        if "u" in compiled.names or "v" in compiled.names:
            variables["u"] = ((torch.arange(width, dtype=torch.float32) + 0.5) / width).reshape(1, 1, width, 1)
            variables["v"] = ((torch.arange(height, dtype=torch.float32) + 0.5) / height).reshape(1, height, 1, 1)
        out = compiled.run(variables, max_elements=_max_elements())
        out = torch.as_tensor(np.asarray(out) if not isinstance(out, torch.Tensor) else out, dtype=torch.float32)
        shapes = [tuple(t.shape) for t in operands.values()]
        target = torch.broadcast_shapes(tuple(out.shape), *[s[:3] + (1,) for s in shapes])
        if len(target) != 4:
            raise ValidationError(f"the expression's result has shape {tuple(out.shape)}; expected [B,H,W,C]")
        out = out.expand(target)
        if clamp:
            out = torch.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0).clamp(0.0, 1.0)
        image = out.expand(*target[:3], 3) if target[3] == 1 else out
        return (image.contiguous(), out[..., : min(3, target[3])].mean(dim=-1))


__all__ = ["ImageExpression"]
