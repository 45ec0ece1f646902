"""SplatToFile3D and SplatToMesh: a gaussian splat (SPLAT, ``ops.splat``) as a 3D file value for
the Save / Preview 3D nodes, or as a coloured mesh (``ops.splat_mesh``) — ComfyUI's nodes, as its
embedded docs and the TripoSplat template declare them."""

from __future__ import annotations

import logging
from typing import Any

from nodeloom.node_api import Combo, Custom, Float, Int, Node, Output, Schema, ValidationError
from nodeloom.ops.mesh import File3D, Mesh
from nodeloom.ops.splat import Splat, to_ply, to_spz
from nodeloom.ops.splat_mesh import splat_to_mesh

__all__ = ["SplatToFile3D", "SplatToMesh"]

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
