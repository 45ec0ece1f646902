"""The texturing tail of the official TRELLIS.2 / Pixal3D template, run on small meshes: unwrap,
bake normals and occlusion against a finer mesh, apply the maps, smooth normals, write the 3D
file and save it — with the template's own widget values (only the map sizes made small)."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nodeloom.ops.mesh import Mesh
from tests.nodes.conftest import run_prompt

trimesh = pytest.importorskip("trimesh")
pytest.importorskip("xatlas")

_TEMPLATE = "3d_pixal3d_trellis2_image_to_model.json"
#: the widgets of each node in the template's order
_WIDGETS = {"UnwrapMesh": ["segmenter", "resolution", "padding", "weld_distance"],
            "BakeNormalMapFromMesh": ["resolution", "cage_distance", "ignore_backfaces"],
            "BakeAmbientOcclusion": ["resolution", "samples", "max_distance", "strength", "bias"],
            "MeshSmoothNormals": ["crease_angle"],
            "Save3DAdvanced": ["filename_prefix", "viewport_state", "width", "height"]}


def _template_widgets() -> dict[str, dict]:
    spec = importlib.util.find_spec("comfyui_workflow_templates_json")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the official templates are not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "templates" / _TEMPLATE
    nodes = json.loads(path.read_text(encoding="utf-8"))["nodes"]
    found = {}
    for node in nodes:
        if node["type"] in _WIDGETS and node["type"] not in found:
            found[node["type"]] = dict(zip(_WIDGETS[node["type"]], node["widgets_values"]))
    assert set(found) == set(_WIDGETS)
    return found


def _mesh(tm) -> Mesh:
    return Mesh(torch.tensor(tm.vertices, dtype=torch.float32)[None], torch.tensor(tm.faces)[None])


def test_the_templates_texturing_chain_saves_a_textured_glb(image_engine):
    widgets = _template_widgets()
    assert widgets["UnwrapMesh"] == {"segmenter": "pec", "resolution": 2048, "padding": 1, "weld_distance": 0.0002}
    small = {"UnwrapMesh": {"resolution": 64}, "BakeNormalMapFromMesh": {"resolution": 64},
             "BakeAmbientOcclusion": {"resolution": 64, "samples": 8}}
    w = {k: {**v, **small.get(k, {})} for k, v in widgets.items()}
    base = torch.zeros(1, 32, 32, 3)
    base[..., 0] = torch.linspace(0, 1, 32)
    prompt = {"low": {"class_type": "TestTensor", "inputs": {"key": "template low"}},
              "high": {"class_type": "TestTensor", "inputs": {"key": "template high"}},
              "color": {"class_type": "TestTensor", "inputs": {"key": "template base colour"}},
              "grey": {"class_type": "TestTensor", "inputs": {"key": "template grey"}},
              "196": {"class_type": "UnwrapMesh", "inputs": {"mesh": ["low", 0], **w["UnwrapMesh"]}},
              "224": {"class_type": "BakeNormalMapFromMesh",
                      "inputs": {"low_poly": ["196", 0], "high_poly": ["high", 0], **w["BakeNormalMapFromMesh"]}},
              "233": {"class_type": "BakeAmbientOcclusion",
                      "inputs": {"low_poly": ["196", 0], "high_poly": ["high", 0], **w["BakeAmbientOcclusion"]}},
              "210": {"class_type": "ApplyTextureToMesh",
                      "inputs": {"mesh": ["196", 0], "base_color": ["color", 0], "metallic": ["grey", 0],
                                 "roughness": ["grey", 0], "occlusion": ["233", 0], "normal_map": ["224", 0]}},
              "260": {"class_type": "MeshSmoothNormals", "inputs": {"mesh": ["210", 0], **w["MeshSmoothNormals"]}},
              "285": {"class_type": "MeshToFile3D", "inputs": {"mesh": ["260", 0]}},
              "322": {"class_type": "Save3DAdvanced", "inputs": {"model_3d": ["285", 0], **w["Save3DAdvanced"]}}}
    tensors = {"template low": _mesh(trimesh.creation.icosphere(1)), "template high": _mesh(trimesh.creation.icosphere(3)),
               "template base colour": base, "template grey": torch.full((1, 16, 16, 3), 0.5)}
    result = run_prompt(image_engine, prompt, tensors, sinks=[["196", 0], ["224", 0], ["322", 3]])
    assert result.status == "success", result.errors
    assert result.value("322", 3) == 1024
    (saved,) = result.outputs["322"]["3d"]
    path = image_engine.services.paths.output_dir / saved["subfolder"] / saved["filename"]
    back = trimesh.load(io.BytesIO(path.read_bytes()), file_type="glb", force="mesh", process=False)
    unwrapped = result.value("196")
    assert np.allclose(back.visual.uv, unwrapped.uvs[0].numpy(), atol=1e-6)
    material = back.visual.material
    assert np.asarray(material.baseColorTexture).shape[:2] == (32, 32)
    assert np.asarray(material.normalTexture).shape[:2] == (64, 64)
    orm = np.asarray(material.metallicRoughnessTexture)
    assert orm.shape[:2] == (64, 64) and abs(int(orm[..., 1].mean()) - 128) <= 1  # roughness 0.5
    assert material.occlusionTexture is not None
    normal = result.value("224")[0] * 2 - 1
    assert float(normal[..., 2].mean()) > 0.9  # a sphere baked onto a coarser sphere stays near its own normal
