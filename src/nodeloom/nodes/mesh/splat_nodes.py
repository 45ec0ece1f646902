"""SplatToFile3D, SplatToMesh and RenderSplat: a gaussian splat (SPLAT, ``ops.splat``) as a 3D
file value for the Save / Preview 3D nodes, as a coloured mesh (``ops.splat_mesh``), or rendered
to images (``ops.splat_render``) — ComfyUI's nodes, as its embedded docs and the TripoSplat
template declare them."""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F

from nodeloom.node_api import Combo, Custom, Float, Image, Int, Node, Output, ProgressBar, Schema, ValidationError
from nodeloom.ops.mesh import File3D, Mesh
from nodeloom.ops.splat import SH_C0, Splat, splat_item, to_ply, to_spz
from nodeloom.ops.splat_mesh import splat_to_mesh
from nodeloom.ops.splat_render import STYLES, auto_camera, render_gaussians, turntable

__all__ = ["RenderSplat", "SplatToFile3D", "SplatToMesh"]

log = logging.getLogger(__name__)

_WRITERS = {"ply": to_ply, "spz": to_spz}


def _check_splat(value: Any) -> Splat:
    if not isinstance(value, Splat):
        raise ValidationError(f"`splat` must be a SPLAT value, got {type(value).__name__}")
    return value


class SplatToFile3D(Node):
    """Serialise a gaussian splat (its first batch item) into a 3D file: ply (full spherical
    harmonics) or spz (compressed); ksplat is not written yet."""

    SCHEMA = Schema(
        "SplatToFile3D", display_name="Create 3D File (from Splat)", category="3d",
        inputs=[Custom("SPLAT", "splat", tooltip="The gaussian splat to write; only the first item of a batch."),
                Combo("format", ["ply", "ksplat", "spz"], default="ply",
                      tooltip="ply: standard 3D Gaussian Splat with full spherical harmonics. ksplat: mkkellogg "
                              "SplatBuffer (not written here yet). spz: Niantic gzip-compressed (~10x smaller).")],
        outputs=[Output("FILE_3D", "model_3d", tooltip="The splat as a 3D file value.")],
    )

    @classmethod
    def execute(cls, splat: Any, format: str) -> tuple[File3D]:  # noqa: A002 - ComfyUI's input name
        splat = _check_splat(splat)
        if format not in _WRITERS:
            raise ValidationError(f"`format` {format!r} cannot be written yet; choose one of {sorted(_WRITERS)}")
        if splat.batch_size > 1:
            log.warning("SplatToFile3D: the splat batch holds %d items; only the first is written", splat.batch_size)
        if splat.count(0) == 0:
            raise ValidationError("`splat` item 0 holds no gaussians; there is nothing to write")
        return (File3D(_WRITERS[format](splat, 0), format),)


class SplatToMesh(Node):
    """Turn a gaussian splat into a coloured mesh: density grid, iso-surface at an Otsu-picked
    level, optional Taubin smoothing, small components dropped, vertex colours from the gaussians."""

    SCHEMA = Schema(
        "SplatToMesh", display_name="Extract Mesh from Splat", category="3d",
        inputs=[Custom("SPLAT", "splat", tooltip="The gaussian splat to mesh."),
                Int("resolution", 384, min=64, max=768, step=16,
                    tooltip="Density-grid cells along the longest axis; cost grows with its cube."),
                Int("kernel", 5, min=1, max=8, tooltip="Largest splat half-width in cells (each gaussian covers its "
                                                        "3 sigma up to this). Raise if sparse splats leave gaps."),
                Int("smooth", 0, min=0, max=60, tooltip="Taubin smoothing passes (volume-preserving); 0 = none."),
                Float("level", 0.4, min=0.0, max=2.0, step=0.01,
                      tooltip="Iso level as a factor of the Otsu-picked density (1.0 = auto; lower = fatter, "
                              "higher = thinner surfaces)."),
                Int("min_component", 500, min=0, max=100000, step=50,
                    tooltip="Drop connected parts with fewer vertices than this (floaters); 0 keeps all."),
                Float("min_opacity", 0.02, min=0.0, max=1.0, step=0.01,
                      tooltip="Ignore gaussians fainter than this."),
                Float("color_sharpen", 2.0, min=1.0, max=8.0, step=0.5,
                      tooltip="Bias each cell's colour toward its dominant gaussian (1.0 = plain density-weighted "
                              "blend); colour only, not geometry.")],
        outputs=[Output("MESH", "mesh", tooltip="The extracted mesh with vertex colours.")],
    )

    @classmethod
    def execute(cls, splat: Any, resolution: int, kernel: int, smooth: int, level: float, min_component: int,
                min_opacity: float, color_sharpen: float) -> tuple[Mesh]:
        return (splat_to_mesh(_check_splat(splat), int(resolution), int(kernel), int(smooth), float(level),
                              int(min_component), float(min_opacity), float(color_sharpen)),)


def _hex_rgb(color: Any) -> torch.Tensor:
    text = color.strip().lstrip("#") if isinstance(color, str) else ""
    if len(text) == 3:
        text = "".join(c * 2 for c in text)
    if len(text) not in (6, 8) or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise ValidationError(f"`background` must look like #RRGGBB, got {color!r}")
    return torch.tensor([int(text[i:i + 2], 16) / 255.0 for i in (0, 2, 4)])


def _plates(bg_image: Any, width: int, height: int) -> torch.Tensor | None:
    if bg_image is None:
        return None
    if not isinstance(bg_image, torch.Tensor) or bg_image.ndim != 4 or bg_image.shape[-1] < 3 or bg_image.shape[0] == 0:
        shape = tuple(bg_image.shape) if isinstance(bg_image, torch.Tensor) else type(bg_image).__name__
        raise ValidationError(f"`bg_image` must be an IMAGE [B,H,W,C] with 3 or 4 channels, got {shape}")
    x = bg_image[..., :3].float().permute(0, 3, 1, 2)
    if tuple(x.shape[-2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False)
    return x.permute(0, 2, 3, 1).clamp(0.0, 1.0)


def _gaussians(splat: Splat, index: int, opacity_threshold: float) -> dict[str, torch.Tensor]:
    item = {k: torch.from_numpy(v).float() for k, v in splat_item(splat, index).items()}
    keep = item["opacities"] >= opacity_threshold if opacity_threshold > 0 else torch.ones(len(item["opacities"]),
                                                                                           dtype=torch.bool)
    return {"positions": item["positions"][keep], "scales": item["scales"][keep],
            "rotations": item["rotations"][keep], "opacities": item["opacities"][keep],
            "rgb": (0.5 + SH_C0 * item["sh"][keep, 0, :]).clamp(0.0, 1.0)}


class RenderSplat(Node):
    """Render a gaussian splat as an image with an anisotropic EWA rasteriser (oriented elliptical
    splats, antialiased, depth-sorted front-to-back). The camera comes from a camera_info input
    (Load / Preview 3D, or a Create Camera Info node); leave it empty to auto-frame the splat. Set
    frames greater than 1 for a turntable batch of images to feed a Video node."""

    SCHEMA = Schema(
        "RenderSplat", display_name="Render Splat", category="3d/splat",
        search_aliases=["splat to image", "render splat", "gaussian turntable"],
        inputs=[
            Custom("SPLAT", "splat", tooltip="The gaussian splat to render; each batch item gives its own frames."),
            Int("width", 1024, min=64, max=2048, step=8, tooltip="Width of the output image."),
            Int("height", 1024, min=64, max=2048, step=8, tooltip="Height of the output image."),
            Int("frames", 1, min=-240, max=240,
                tooltip="-1, 0, 1 = single still image; >1 = turntable, the camera orbits over a full 360 turn (works "
                        "with any camera_info). Negative value orbits the other way."),
            Float("splat_scale", 1.0, min=0.1, max=5.0, step=0.05, advanced=True,
                  tooltip="Multiplier on each splat's projected footprint (lower = crisper points, higher = "
                          "softer/fuller surface)."),
            Float("sharpen", 2.0, min=1.0, max=8.0, step=0.5,
                  tooltip="Sharpen overlapping splats: 1.0 = physically-correct blend; higher biases each pixel toward "
                          "its dominant (nearest) splat for crisper texture, without shrinking splats or opening "
                          "gaps. Non-physical above 1."),
            Float("headlight_shading", 0.0, min=0.0, max=3.0, step=0.05, advanced=True,
                  tooltip="Diffuse shading from a light at the camera (headlight), using the splat surfel normals: "
                          "darkens surfaces that turn away from view to reveal form/curvature. 0 = flat albedo, 1 = "
                          "strongest shading."),
            Float("opacity_threshold", 0.0, min=0.0, max=1.0, step=0.01, advanced=True,
                  tooltip="Cull gaussians with opacity below this (removes faint floaters)."),
            Combo("render_style", list(STYLES),
                  tooltip="What the image output shows: color, clay (neutral-albedo shaded), depth (near=bright), "
                          "normal (OpenGL normal map)."),
            Custom("COLOR", "background", default="#000000", tooltip="Solid background colour behind the splat."),
            Image("bg_image", optional=True,
                  tooltip="Optional background plate composited behind the splat (overrides the solid background "
                          "colour). Resized to the render size; a batch is used per frame, a single image for all. "
                          "color/clay only."),
            Custom("LOAD3D_CAMERA", "camera_info", optional=True,
                   tooltip="Camera to render from - a Load3D / Preview3D camera or a Create Camera Info node. If "
                           "empty, the splat is auto-framed from a default 3/4 view."),
        ],
        outputs=[Output("IMAGE", "image", tooltip="The rendered frames: per batch item, its frames in order."),
                 Output("MASK", "mask", tooltip="The splat's coverage (alpha) per frame.")],
    )

    @classmethod
    def execute(cls, splat: Any, width: int, height: int, frames: int, splat_scale: float, sharpen: float,
                headlight_shading: float, opacity_threshold: float, render_style: str, background: str,
                bg_image: torch.Tensor | None = None, camera_info: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        splat = _check_splat(splat)
        width, height = int(width), int(height)
        if width < 1 or height < 1:
            raise ValidationError(f"`width` and `height` must be ≥ 1, got {width}×{height}")
        if render_style not in STYLES:
            raise ValidationError(f"`render_style` must be one of {list(STYLES)}, got {render_style!r}")
        if float(sharpen) < 1.0:
            raise ValidationError(f"`sharpen` must be ≥ 1, got {sharpen}")
        if camera_info is not None and not isinstance(camera_info, dict):
            raise ValidationError(f"`camera_info` must be a LOAD3D_CAMERA dict, got {type(camera_info).__name__}")
        solid, plates = _hex_rgb(background), _plates(bg_image, width, height)
        count, direction = abs(int(frames)) or 1, -1.0 if int(frames) < 0 else 1.0
        pbar = ProgressBar(splat.batch_size * count)
        images, masks = [], []
        for index in range(splat.batch_size):
            gauss = _gaussians(splat, index, float(opacity_threshold))
            base = camera_info if camera_info is not None else auto_camera(gauss["positions"])
            for frame in range(count):
                camera = base if count == 1 else turntable(base, direction * 360.0 * frame / count)
                bg = solid if plates is None or render_style not in ("color", "clay") else \
                    plates[len(images) % plates.shape[0]]
                image, mask = render_gaussians(gauss, camera, width, height, splat_scale=float(splat_scale),
                                               sharpen=float(sharpen), headlight=float(headlight_shading),
                                               style=render_style, background=bg)
                images.append(image)
                masks.append(mask)
                pbar.update(1)
        return torch.stack(images), torch.stack(masks)
