"""DecimateMesh: simplify a MESH to a target face count by QEM edge collapse, with ComfyUI's
node id, inputs (the ``placement_mode`` dynamic combo and its ``qem`` options) and the face
summary it shows on the node; the geometry is ``nodeloom.ops.mesh_decimate``."""

from __future__ import annotations

from typing import Any

from nodeloom.node_api import Custom, Int, Node, NodeOutput, Output, Schema
from nodeloom.nodes.mesh.mesh_nodes import MESH, _check_mesh, _mesh_in
from nodeloom.ops.mesh_decimate import decimate_mesh

__all__ = ["DecimateMesh", "face_summary"]

_QEM = {
    "line_quadric_weight": ["FLOAT", {"default": 0.0, "min": 0.0, "max": 100.0, "step": 0.01,
                                      "tooltip": "Weight of a line quadric added along every edge, which keeps "
                                                 "ridges and valleys sharp; 0 turns it off."}],
    "feature_edge_quadric_weight": ["FLOAT", {"default": 0.0, "min": 0.0, "max": 1000.0, "step": 0.1,
                                              "tooltip": "Additional quadric weight on crease (feature) edges; 0 "
                                                         "turns it off."}],
    "feature_edge_min_dihedral_deg": ["FLOAT", {"default": 30.0, "min": 0.0, "max": 180.0, "step": 1.0,
                                                "tooltip": "An edge is a crease (feature) edge when the angle "
                                                           "between its faces is at least this many degrees."}],
    "clamp_v_to_edge": ["BOOLEAN", {"default": True,
                                    "tooltip": "Keep the new vertex on the edge being collapsed (clamp the quadric optimum to it)."}],
}


def _short(n: int) -> str:
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if n >= size:
            scaled = n / size
            digits = 2 if scaled < 10 else 1 if scaled < 100 else 0
            text = f"{scaled:.{digits}f}"
            return (text.rstrip("0").rstrip(".") if "." in text else text) + suffix
    return str(n)


def face_summary(before: int, after: int) -> str:
    """``faces: 1.23M → 200K (-84%)``."""
    change = 0 if before == 0 else round((after - before) / before * 100)
    return f"faces: {_short(before)} → {_short(after)} ({change:+d}%)"


class DecimateMesh(Node):
    """Simplify a mesh to at most ``target_face_count`` faces by quadric-error edge collapse
    (midpoint placement, or the quadric's optimum with ridge and crease weights); it stays welded."""

    SCHEMA = Schema(
        "DecimateMesh", display_name="Decimate Mesh", category="3d",
        inputs=[_mesh_in("The 3D mesh to simplify."),
                Int("target_face_count", 200000, min=0, max=50000000, tooltip="Target max faces. 0 disables."),
                Custom("COMFY_DYNAMICCOMBO_V3", "placement_mode",
                       tooltip="Where a collapsed edge's new vertex goes. midpoint: halfway along the edge, as cumesh does "
                               "(the recommended choice). qem: at the quadric-error optimum.",
                       options=[{"key": "midpoint", "inputs": {"required": {}}},
                                {"key": "qem", "inputs": {"optional": _QEM}}])],
        outputs=[Output(MESH, "mesh", tooltip="The simplified mesh.")],
    )

    @classmethod
    def execute(cls, mesh: Any, target_face_count: int, placement_mode: str, **options: Any) -> NodeOutput:
        mesh = _check_mesh(mesh)
        before = sum(mesh.counts(b)[1] for b in range(mesh.batch_size))
        opts: dict[str, Any] = {}
        if placement_mode == "qem":
            given = {k.split(".", 1)[1]: v for k, v in options.items() if k.startswith("placement_mode.")}
            opts = {name: given.get(name, spec[1]["default"]) for name, spec in _QEM.items()}
        out = decimate_mesh(mesh, target_face_count, placement_mode, **opts)
        after = sum(out.counts(b)[1] for b in range(out.batch_size))
        return NodeOutput(out, ui={"text": [face_summary(before, after)]})
