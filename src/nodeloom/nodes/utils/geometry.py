"""Model-free geometry-estimation nodes: ``MarigoldV2PostProcess`` turns a decoded Marigold V2
prediction into a viewable image, ``MoGeGeometryToFOV`` reads the field of view and focal length
out of a MoGe geometry's intrinsics.

A ``MOGE_GEOMETRY`` is ComfyUI's dict: ``image`` ``[B,H,W,3]`` and, when the model gave them,
``points`` ``[B,H,W,3]``, ``depth`` ``[B,H,W]``, ``mask``, ``normal`` and ``intrinsics``
``[B,3,3]`` (perspective only; fx normalised by the width, fy by the height, centre 0.5).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from nodeloom.node_api import Combo, Custom, Image, Node, Output, Schema, ValidationError
from nodeloom.ops.color import linear_to_srgb

__all__ = ["MarigoldV2PostProcess", "MoGeGeometryToFOV", "fov_from_intrinsics"]

_CATEGORY = "image/geometry estimation"
PREDICTIONS = ("depth", "disparity", "normals", "albedo")


class MarigoldV2PostProcess(Node):
    """Turns a decoded Marigold V2 prediction into an image: normalized depth with near as bright,
    unit surface normals, or sRGB albedo."""

    SCHEMA = Schema(
        "MarigoldV2PostProcess", display_name="Marigold V2 Post-Process", category=_CATEGORY,
        inputs=[
            Image("image", tooltip="The decoded Marigold V2 prediction."),
            Combo("prediction", list(PREDICTIONS),
                  tooltip="depth for the Log and Uniform checkpoints, disparity for the Disparity ones; normals and "
                          "albedo for those checkpoints."),
        ],
        outputs=[Output("IMAGE", "IMAGE", tooltip="Depth or disparity as grey (near bright), unit normals, or sRGB albedo.")],
    )

    @classmethod
    def execute(cls, image: torch.Tensor, prediction: str) -> tuple[torch.Tensor]:
        if prediction not in PREDICTIONS:
            raise ValidationError(f"`prediction` must be one of {list(PREDICTIONS)}, got {prediction!r}")
        if image.ndim != 4:
            raise ValidationError(f"`image` must be an IMAGE [B,H,W,C], got shape {tuple(image.shape)}")
        x = image.float()
        if prediction == "normals":
            return ((F.normalize(x[..., :3] * 2.0 - 1.0, dim=-1) + 1.0) * 0.5,)
        if prediction == "albedo":
            return (linear_to_srgb(x),)
        d = x.mean(dim=-1, keepdim=True)
        lo = d.amin(dim=(1, 2, 3), keepdim=True)
        hi = d.amax(dim=(1, 2, 3), keepdim=True)
        d = (d - lo) / (hi - lo).clamp(min=1e-6)
        if prediction == "depth":  # Marigold's depth grows with distance; near is shown bright
            d = 1.0 - d
        return (d.expand(*d.shape[:-1], 3).contiguous(),)


def fov_from_intrinsics(intrinsics: torch.Tensor, axis: str) -> float:
    """Field of view in radians from MoGe's normalised intrinsics (the first of a batch).

    Raises:
        ValidationError: not a 3x3 matrix, a non-positive focal length, or an unknown ``axis``.
    """
    k = intrinsics[0] if intrinsics.ndim == 3 else intrinsics
    if tuple(k.shape) != (3, 3):
        raise ValidationError(f"`moge_geometry` intrinsics must be 3x3 (or [B,3,3]), got shape {tuple(intrinsics.shape)}")
    fx, fy = float(k[0, 0]), float(k[1, 1])
    if not (fx > 0 and fy > 0):
        raise ValidationError(f"`moge_geometry` intrinsics need positive focal lengths, got fx={fx}, fy={fy}")
    hx, hy = 0.5 / fx, 0.5 / fy
    halves = {"horizontal": hx, "vertical": hy, "diagonal": math.hypot(hx, hy)}
    if axis not in halves:
        raise ValidationError(f"`axis` must be one of {list(halves)}, got {axis!r}")
    return 2.0 * math.atan(halves[axis])


class MoGeGeometryToFOV(Node):
    """Derive the field of view and focal length from MoGe intrinsics, e.g. the vertical FOV to feed
    SAM3DBody_Predict or the horizontal one to feed Pixal3DConditioning."""

    SCHEMA = Schema(
        "MoGeGeometryToFOV", display_name="Get FoV from MoGe Geometry", category=_CATEGORY,
        search_aliases=["moge", "fov", "geometry", "intrinsics", "field of view"],
        inputs=[
            Custom("MOGE_GEOMETRY", "moge_geometry", tooltip="The MoGe geometry (needs intrinsics: not a panorama)."),
            Combo("axis", ["vertical", "horizontal", "diagonal"], default="vertical",
                  tooltip="'vertical' (fov_y), 'horizontal' (fov_x), or 'diagonal'."),
            Combo("unit", ["degrees", "radians"], default="degrees", tooltip="Output unit for the FOV."),
        ],
        outputs=[Output("FLOAT", "fov", tooltip="The field of view along the axis."),
                 Output("FLOAT", "focal_pixels", tooltip="The focal length in pixels (fy times the pixel height).")],
    )

    @classmethod
    def execute(cls, moge_geometry: Any, axis: str, unit: str) -> tuple[float, float]:
        if unit not in ("degrees", "radians"):
            raise ValidationError(f"`unit` must be 'degrees' or 'radians', got {unit!r}")
        k = moge_geometry.get("intrinsics") if isinstance(moge_geometry, dict) else None
        if k is None:
            raise ValidationError("`moge_geometry` has no intrinsics (panorama geometry has none)")
        k = torch.as_tensor(k, dtype=torch.float64)
        fov = fov_from_intrinsics(k, axis)
        source = next((moge_geometry[n] for n in ("image", "points", "depth") if moge_geometry.get(n) is not None), None)
        if source is None:
            raise ValidationError("`moge_geometry` has no image, points or depth to read the pixel height from")
        focal_pixels = float((k[0] if k.ndim == 3 else k)[1, 1]) * int(source.shape[1])
        return (fov if unit == "radians" else math.degrees(fov), focal_pixels)
