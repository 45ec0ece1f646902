"""MoGeRender, MoGePointMapToMesh and DA3Render (ComfyUI's ids): a MoGe or Depth Anything 3
geometry value turned into an image or a mesh, with no model. The maths is
:mod:`nodeloom.ops.geometry_render`.

``MOGE_GEOMETRY`` is laid out as :mod:`nodeloom.nodes.utils.geometry` says. ``DA3_GEOMETRY`` is
ComfyUI's dict: ``depth`` ``[B,H,W]`` (raw model depth), ``image`` ``[B,H,W,3]`` and ``mode``
("mono" or "multiview") always; ``sky`` ``[B,H,W]`` (sky probability, Mono/Metric models) and
``confidence`` ``[B,H,W]`` (raw, Small/Base models) when the model gives them; multi-view adds
``extrinsics`` ``[1,S,3,4]`` and ``intrinsics`` ``[1,S,3,3]``, which rendering does not read.
"""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.node_api import Boolean, Combo, Custom, Float, Int, Node, Output, Schema, ValidationError
from nodeloom.ops.geometry_render import (clip_sky, minmax_depth, moge_disparity, normals_from_points,
                                          triangulate_grid, turbo, v2_style_depth)
from nodeloom.ops.mesh import Mesh

__all__ = ["DA3Render", "MoGePointMapToMesh", "MoGeRender"]

_CATEGORY = "image/geometry estimation"
MOGE_OUTPUTS = ("depth", "depth_colored", "normal_opengl", "normal_directx", "mask")
DA3_OUTPUTS = ("depth", "depth_colored", "sky_mask", "confidence")
NORMALIZATIONS = ("v2_style", "min_max", "raw")


def _geometry_dict(value: Any, name: str, type_name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(f"`{name}` must be a {type_name} dict, got {type(value).__name__}")
    return value


def _maps(value: Any, name: str, key: str, channels: int | None = None) -> torch.Tensor:
    """``value`` as a float tensor ``[B,H,W]`` (or ``[B,H,W,channels]``), refused otherwise."""
    t = torch.as_tensor(value)
    want = 3 if channels is None else 4
    if t.ndim != want or (channels is not None and t.shape[-1] != channels):
        shape = "[B,H,W]" if channels is None else f"[B,H,W,{channels}]"
        raise ValidationError(f"`{name}` {key} must be shaped {shape}, got {tuple(t.shape)}")
    return t.float()


def _grey(x: torch.Tensor) -> torch.Tensor:
    return x[..., None].expand(*x.shape, 3).contiguous()


class MoGeRender(Node):
    """Render a MoGe geometry as an image: disparity (near bright) in grey or Turbo colours, a
    tangent-style normal map (OpenGL: green up; DirectX: green down), or the validity mask."""

    SCHEMA = Schema(
        "MoGeRender", display_name="Render MoGe Geometry", category=_CATEGORY,
        inputs=[
            Custom("MOGE_GEOMETRY", "moge_geometry", tooltip="The geometry from a MoGe estimation node."),
            Combo("output", list(MOGE_OUTPUTS), default="depth",
                  tooltip="What to render. For normal maps the two variants differ only in the green channel: "
                          "normal_directx points it down (-Y, as Unreal expects), normal_opengl points it up (+Y, "
                          "as Blender, Substance, Unity and glTF expect)."),
        ],
        outputs=[Output("IMAGE", "IMAGE", tooltip="One image per geometry item.")],
    )

    @classmethod
    def execute(cls, moge_geometry: Any, output: str) -> tuple[torch.Tensor]:
        geo = _geometry_dict(moge_geometry, "moge_geometry", "MOGE_GEOMETRY")
        if output not in MOGE_OUTPUTS:
            raise ValidationError(f"`output` must be one of {list(MOGE_OUTPUTS)}, got {output!r}")
        if output in ("depth", "depth_colored"):
            if geo.get("depth") is None:
                raise ValidationError("`moge_geometry` has no depth to render")
            d = moge_disparity(_maps(geo["depth"], "moge_geometry", "depth"))
            return (turbo(d) if output == "depth_colored" else _grey(d),)
        if output == "mask":
            if geo.get("mask") is None:
                raise ValidationError("`moge_geometry` has no mask to render")
            return (_grey(_maps(geo["mask"], "moge_geometry", "mask")),)
        if geo.get("normal") is not None:
            normals = _maps(geo["normal"], "moge_geometry", "normal", 3)
        elif geo.get("points") is not None:
            normals = normals_from_points(_maps(geo["points"], "moge_geometry", "points", 3))
        else:
            raise ValidationError("`moge_geometry` has neither normals nor points to derive normals from")
        # MoGe's camera space is OpenCV's (Y down, Z into the scene); a normal map's Z faces the viewer
        green = -1.0 if output == "normal_opengl" else 1.0
        flipped = normals * torch.tensor([1.0, green, -1.0])
        return (((flipped + 1.0) * 0.5).clamp(0.0, 1.0),)


class MoGePointMapToMesh(Node):
    """Triangulate one item of a MoGe point map into a mesh in glTF axes (Y up, Z towards the
    viewer), with the image as its UV-mapped base-colour texture; depth discontinuities are cut."""

    SCHEMA = Schema(
        "MoGePointMapToMesh", display_name="Convert MoGe Point Map to Mesh", category=_CATEGORY,
        inputs=[
            Custom("MOGE_GEOMETRY", "moge_geometry",
                   tooltip="The geometry from a MoGe estimation node (needs points)."),
            Int("batch_index", 0, min=0, max=4096,
                tooltip="Which image of a batched MoGe geometry to mesh. Per-image vertex counts differ, so batches "
                        "can't be stacked into a single MESH."),
            Int("decimation", 1, min=1, max=8, tooltip="Vertex stride; 1 = full resolution."),
            Float("discontinuity_threshold", 0.04, min=0.0, max=1.0, step=0.01,
                  tooltip="Drop pixels whose 3x3 depth span exceeds this fraction. 0 = off."),
            Boolean("texture", True, tooltip="Carry the source image through as the baseColor texture."),
        ],
        outputs=[Output("MESH", "MESH", tooltip="The triangulated point map with UVs (and texture).")],
    )

    @classmethod
    def execute(cls, moge_geometry: Any, batch_index: int, decimation: int, discontinuity_threshold: float,
                texture: bool) -> tuple[Mesh]:
        geo = _geometry_dict(moge_geometry, "moge_geometry", "MOGE_GEOMETRY")
        if geo.get("points") is None:
            raise ValidationError("`moge_geometry` has no points to mesh")
        points = _maps(geo["points"], "moge_geometry", "points", 3)
        if not 0 <= int(batch_index) < points.shape[0]:
            raise ValidationError(f"`batch_index` must be below the geometry's batch size {points.shape[0]}, "
                                  f"got {batch_index}")
        if int(decimation) < 1:
            raise ValidationError(f"`decimation` must be ≥ 1, got {decimation}")
        i = int(batch_index)
        # radial depth for the edge test: a panorama's Z turns negative below the horizon
        depth = _maps(geo["depth"], "moge_geometry", "depth")[i] if geo.get("depth") is not None else None
        verts, faces, uvs = triangulate_grid(points[i], int(decimation), float(discontinuity_threshold), depth)
        if verts.shape[0] == 0 or faces.shape[0] == 0:
            raise ValidationError("the point map gave an empty mesh; set `discontinuity_threshold` to 0, or run MoGe "
                                  "with apply_mask off")
        if geo.get("intrinsics") is None:  # panorama: MoGe's Z-up spherical frame turned to glTF's Y up
            verts = verts[:, [1, 2, 0]].contiguous()
        else:  # perspective: OpenCV (Y down, Z forward) turned to glTF; the grid's triangles wind clockwise
            # seen from the camera, so they are reversed to face it
            verts = verts * torch.tensor([1.0, -1.0, -1.0])
            faces = faces[:, [0, 2, 1]].contiguous()
        tex = None
        if texture:
            if geo.get("image") is None:
                raise ValidationError("`moge_geometry` has no image to use as the texture; set `texture` off")
            tex = _maps(geo["image"], "moge_geometry", "image", 3)[i:i + 1].clamp(0.0, 1.0)
        return (Mesh(vertices=verts[None], faces=faces[None], uvs=uvs[None], texture=tex),)


_DEPTH_OPTIONS = {
    "normalization": [list(NORMALIZATIONS), {
        "default": "v2_style",
        "tooltip": "- v2_style: mean/std normalisation for perceptually balanced results (default).\n- min_max: "
                   "stretches the full depth range to [0, 1] for maximum contrast.\n- raw: no scaling, preserves "
                   "metric units for Metric model."}],
    "apply_sky_clip": ["BOOLEAN", {
        "default": False,
        "tooltip": "Before normalising, cap the depth of sky pixels at the 99th percentile of the non-sky "
                   "depth. Needs sky data in da3_geometry, which only the Mono and Metric models give."}],
}


def _colored(tip: str) -> dict[str, Any]:
    return {"colored": ["BOOLEAN", {"default": False, "tooltip": f"Colour the {tip} with the Turbo colormap instead of greyscale."}]}


def _option(output: Any, options: dict[str, Any], name: str, default: Any) -> Any:
    if isinstance(output, dict) and name in output:
        return output[name]
    return options.get(f"output.{name}", default)


class DA3Render(Node):
    """Render a depth map, confidence map, or sky mask from Depth Anything 3 geometry data."""

    SCHEMA = Schema(
        "DA3Render", display_name="Render Depth Anything 3", category=_CATEGORY,
        inputs=[
            Custom("DA3_GEOMETRY", "da3_geometry", tooltip="The geometry from Run Depth Anything 3."),
            Custom("COMFY_DYNAMICCOMBO_V3", "output",
                   tooltip="- depth: normalised greyscale depth image.\n- depth_colored: depth mapped through the "
                           "Turbo colormap.\n- sky_mask: sky probability in [0, 1] (for Mono/Metric models only).\n"
                           "- confidence: normalised depth confidence (for Small/Base models only).",
                   options=[{"key": "depth", "inputs": {"required": _DEPTH_OPTIONS}},
                            {"key": "depth_colored", "inputs": {"required": _DEPTH_OPTIONS}},
                            {"key": "sky_mask", "inputs": {"required": _colored("sky mask")}},
                            {"key": "confidence", "inputs": {"required": _colored("confidence map")}}]),
        ],
        outputs=[Output("IMAGE", "IMAGE", tooltip="One image per geometry item.")],
    )

    @classmethod
    def execute(cls, da3_geometry: Any, output: Any, **options: Any) -> tuple[torch.Tensor]:
        geo = _geometry_dict(da3_geometry, "da3_geometry", "DA3_GEOMETRY")
        chosen = str(output.get("output")) if isinstance(output, dict) else str(output)
        if chosen not in DA3_OUTPUTS:
            raise ValidationError(f"`output` must be one of {list(DA3_OUTPUTS)}, got {chosen!r}")
        if chosen in ("sky_mask", "confidence"):
            key = "sky" if chosen == "sky_mask" else "confidence"
            if geo.get(key) is None:
                models = "Mono/Metric" if key == "sky" else "Small/Base"
                raise ValidationError(f"`da3_geometry` has no {key} map; only the {models} models give one")
            values = _maps(geo[key], "da3_geometry", key)
            if key == "confidence":  # raw confidence stretched to 0..1 per image
                lo = values.amin(dim=(1, 2), keepdim=True)
                hi = values.amax(dim=(1, 2), keepdim=True)
                values = torch.where(hi > lo, (values - lo) / (hi - lo).clamp_min(1e-12), torch.ones_like(values))
            return (turbo(values) if _option(output, options, "colored", False) else _grey(values),)
        normalization = str(_option(output, options, "normalization", "v2_style"))
        if normalization not in NORMALIZATIONS:
            raise ValidationError(f"`output.normalization` must be one of {list(NORMALIZATIONS)}, "
                                  f"got {normalization!r}")
        if geo.get("depth") is None:
            raise ValidationError("`da3_geometry` has no depth map")
        depth = _maps(geo["depth"], "da3_geometry", "depth")
        sky = _maps(geo["sky"], "da3_geometry", "sky") if geo.get("sky") is not None else None
        if sky is not None and sky.shape != depth.shape:
            raise ValidationError(f"`da3_geometry` sky {tuple(sky.shape)} must match its depth {tuple(depth.shape)}")
        if _option(output, options, "apply_sky_clip", False):
            if sky is None:
                raise ValidationError("`output.apply_sky_clip` needs a sky map in `da3_geometry` (Mono/Metric models); "
                                      "turn it off")
            depth = torch.stack([clip_sky(d, s) for d, s in zip(depth, sky)])
        if normalization == "v2_style":
            norm = torch.stack([v2_style_depth(d, None if sky is None else sky[i]) for i, d in enumerate(depth)])
        elif normalization == "min_max":
            norm = minmax_depth(depth)
        else:
            norm = depth  # raw: metric units, not clamped
        if chosen == "depth_colored":
            return (turbo(norm.clamp(0.0, 1.0)),)
        return (_grey(norm if normalization == "raw" else norm.clamp(0.0, 1.0)),)
