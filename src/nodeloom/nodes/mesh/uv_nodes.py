"""UnwrapMesh and RenderUVAtlas: give a MESH a packed UV atlas, and draw a mesh's UV layout
(ComfyUI's nodes, as its embedded docs and templates declare them; the work is ``ops.mesh_uv``)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from nodeloom.node_api import Combo, Float, Int, Node, Output, Schema, ValidationError
from nodeloom.nodes.mesh.mesh_nodes import MESH, _check_mesh, _mesh_in
from nodeloom.ops.mesh import mesh_item, stack_items
from nodeloom.ops.mesh_uv import render_uv_atlas, unwrap_item, weld

__all__ = ["RenderUVAtlas", "UnwrapMesh"]

log = logging.getLogger(__name__)


def _warn_if_unwelded(item: dict[str, torch.Tensor], index: int) -> None:
    """Faces that share no edge with another unwrap one chart each: say how to fix that."""
    verts = item["vertices"].detach().double().cpu().numpy()
    faces = item["faces"].cpu().numpy()
    _, welded, _ = weld(verts, faces, 0.0)
    edges = np.sort(np.concatenate([welded[:, [0, 1]], welded[:, [1, 2]], welded[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    if counts.size and float(np.mean(counts == 1)) > 0.9:
        log.warning("UnwrapMesh: mesh item %d has little face adjacency (unwelded vertices?); it may unwrap into one "
                    "chart per triangle: raise `weld_distance` (about 0.001)", index)


class UnwrapMesh(Node):
    """Give a mesh a UV atlas: split its surface into charts, flatten each and pack them into
    [0, 1]. Seam vertices are duplicated (one copy per chart); colours and texture are kept."""

    SCHEMA = Schema(
        "UnwrapMesh", display_name="Unwrap Mesh UVs", category="3d",
        inputs=[_mesh_in("The mesh to unwrap; a batch is unwrapped item by item."),
                Combo("segmenter", ["pec", "adaptive"], default="pec",
                      tooltip="Charting: pec = fast default charts; adaptive = larger, flatter charts with more "
                              "iterations (slower). Both run on the CPU here."),
                Int("resolution", 1024, min=0, max=8192, step=256,
                    tooltip="Atlas resolution the packing plans texels for (0 = fit to content)."),
                Int("padding", 1, min=0, max=16, tooltip="Texels of padding between charts."),
                Float("weld_distance", 0.0, min=0.0, max=1.0, step=0.0001,
                      tooltip="Merge radius for coincident vertices, as a fraction of the mesh extent (0 = auto). "
                              "Raise to ~0.001 if you get per-triangle charts (unwelded input).")],
        outputs=[Output(MESH, "mesh", tooltip="The mesh with a UV atlas in [0, 1]; seam vertices are duplicated.")],
    )

    @classmethod
    def execute(cls, mesh: Any, segmenter: str, resolution: int, padding: int, weld_distance: float) -> tuple[Any]:
        mesh = _check_mesh(mesh)
        items = []
        for b in range(mesh.batch_size):
            item = mesh_item(mesh, b)
            if item["faces"].shape[0] == 0:
                log.warning("UnwrapMesh: mesh item %d has no faces; it stays empty", b)
                items.append({**item, "uvs": item["vertices"].new_zeros((item["vertices"].shape[0], 2))})
                continue
            _warn_if_unwelded(item, b)
            items.append(unwrap_item(item, segmenter, int(resolution), int(padding), float(weld_distance)))
        return (replace(stack_items(items), extras=mesh.extras),)


class RenderUVAtlas(Node):
    """Draw a mesh's UV layout: each chart in its own colour, chart borders in black, on dark grey
    (the first item of a batch)."""

    SCHEMA = Schema(
        "RenderUVAtlas", display_name="Render UV Atlas", category="3d",
        inputs=[_mesh_in("The mesh whose UV layout to draw; it must have UVs."),
                Int("resolution", 1024, min=64, max=4096, step=64, tooltip="Width and height of the image.")],
        outputs=[Output("IMAGE", "image", tooltip="The UV layout, one square image.")],
    )

    @classmethod
    def execute(cls, mesh: Any, resolution: int) -> tuple[Any]:
        mesh = _check_mesh(mesh)
        if mesh.uvs is None:
            raise ValidationError("`mesh` has no UVs to render. Run UnwrapMesh first.")
        if mesh.batch_size > 1:
            log.info("RenderUVAtlas: drawing the first of %d mesh items", mesh.batch_size)
        item = mesh_item(mesh, 0)
        image = render_uv_atlas(item["uvs"].detach().double().cpu().numpy(), item["faces"].cpu().numpy(),
                                int(resolution))
        return (torch.from_numpy(image)[None],)
