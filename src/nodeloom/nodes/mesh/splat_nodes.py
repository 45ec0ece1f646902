"""SplatToFile3D: a gaussian splat (SPLAT, ``ops.splat``) as a 3D file value for the Save /
Preview 3D nodes (ComfyUI's node, as its embedded docs and the TripoSplat template declare it)."""

from __future__ import annotations

import logging
from typing import Any

from nodeloom.node_api import Combo, Custom, Node, Output, Schema, ValidationError
from nodeloom.ops.mesh import File3D
from nodeloom.ops.splat import Splat, to_ply, to_spz

__all__ = ["SplatToFile3D"]

log = logging.getLogger(__name__)

_WRITERS = {"ply": to_ply, "spz": to_spz}


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
        if not isinstance(splat, Splat):
            raise ValidationError(f"`splat` must be a SPLAT value, got {type(splat).__name__}")
        if format not in _WRITERS:
            raise ValidationError(f"`format` {format!r} cannot be written yet; choose one of {sorted(_WRITERS)}")
        if splat.batch_size > 1:
            log.warning("SplatToFile3D: the splat batch holds %d items; only the first is written", splat.batch_size)
        if splat.count(0) == 0:
            raise ValidationError("`splat` item 0 holds no gaussians; there is nothing to write")
        return (File3D(_WRITERS[format](splat, 0), format),)
