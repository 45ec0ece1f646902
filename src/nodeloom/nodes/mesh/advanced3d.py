"""Save3DAdvanced and Preview3DAdvanced: save (to the output folder) or preview (from the temp
folder) a 3D file value in the frontend's viewer, and pass the model, its scene placement, the
camera and the viewport size on — placement and camera from their sockets, else from the viewer's
``viewport_state`` value (ComfyUI's nodes, as its embedded docs and templates declare them)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from nodeloom.node_api import Custom, Hidden, Int, Node, NodeOutput, Output, Schema, String, ValidationError, services
from nodeloom.ops.mesh import File3D, with_glb_extras

__all__ = ["Preview3DAdvanced", "Save3DAdvanced", "viewport_values"]

#: what the model_3d socket takes (the templates' type list)
_MODEL_TYPES = ",".join(("FILE_3D_GLB", "FILE_3D_GLTF", "FILE_3D_FBX", "FILE_3D_OBJ", "FILE_3D_STL", "FILE_3D_USDZ",
                         "FILE_3D"))
_OUTPUTS = [Output("FILE_3D", "model_3d", tooltip="The 3D file, passed through unchanged."),
            Output("LOAD3D_MODEL_INFO", "model_3d_info", tooltip="Each model's placement in the scene: position, "
                                                                 "rotation and scale (Y-up world space)."),
            Output("LOAD3D_CAMERA", "camera_info", tooltip="The viewport camera: position, target, zoom and type."),
            Output("INT", "width", tooltip="The viewport's render width."),
            Output("INT", "height", tooltip="The viewport's render height.")]


def _model_in() -> Custom:
    return Custom(_MODEL_TYPES, "model_3d", tooltip="The 3D file from an upstream 3D node.")


def _info_in() -> Custom:
    return Custom("LOAD3D_MODEL_INFO", "model_3d_info", optional=True, advanced=True,
                  tooltip="Each model's placement (position, rotation, scale; Y-up). Overrides the placement "
                          "stored in viewport_state.")


def _camera_in() -> Custom:
    return Custom("LOAD3D_CAMERA", "camera_info", optional=True, advanced=True,
                  tooltip="The viewport camera (position, target, zoom, type). Overrides the camera stored in "
                          "viewport_state.")


def _viewport_in() -> Custom:
    return Custom("LOAD_3D", "viewport_state", tooltip="The viewer's state: its camera and model placement.")


def _size_in(name: str) -> Int:
    return Int(name, 1024, min=1, max=4096, step=1, tooltip=f"Viewport {name} to render at, in pixels.")


def viewport_values(viewport_state: Any, model_3d_info: Any, camera_info: Any) -> tuple[Any, Any]:
    """The placement and camera to pass on: the connected values, else those the viewer's state
    holds (``model_3d_info``, default ``[]``; ``camera_info``, default None). A state that is not
    a dict (the templates store ``""``) counts as empty."""
    state = viewport_state if isinstance(viewport_state, dict) else {}
    info = model_3d_info if model_3d_info is not None else state.get("model_3d_info", [])
    camera = camera_info if camera_info is not None else state.get("camera_info")
    return info, camera


def _check_file(value: Any) -> File3D:
    if not isinstance(value, File3D):
        raise ValidationError(f"`model_3d` must be a 3D file value (FILE_3D_*, e.g. from Create 3D File (from Mesh)), "
                              f"got {type(value).__name__}")
    if not value.data:
        raise ValidationError("`model_3d` holds an empty file; there is nothing to show or save")
    return value


class Save3DAdvanced(Node):
    """Save a 3D file to the output folder (in its own format) and show it in the node's viewer;
    the file, its placement, the camera and the viewport size pass on."""

    SCHEMA = Schema(
        "Save3DAdvanced", display_name="Save 3D (Advanced)", category="3d", output_node=True,
        inputs=[_model_in(),
                String("filename_prefix", "3d/ComfyUI", tooltip="The prefix for the file to save; may contain a "
                                                               "subfolder."),
                _viewport_in(), _info_in(), _camera_in(), _size_in("width"), _size_in("height")],
        outputs=_OUTPUTS, hidden={"prompt": Hidden.prompt, "extra_pnginfo": Hidden.extra_pnginfo},
    )

    @classmethod
    def execute(cls, model_3d: Any, filename_prefix: str, viewport_state: Any, width: int, height: int,
                model_3d_info: Any = None, camera_info: Any = None, prompt: Any = None,
                extra_pnginfo: Any = None) -> NodeOutput:
        model_3d = _check_file(model_3d)
        info, camera = viewport_values(viewport_state, model_3d_info, camera_info)
        ext = model_3d.format or "glb"
        data = model_3d.data
        if ext == "glb":
            extras = {"prompt": json.dumps(prompt)} if prompt is not None else {}
            extras.update({key: json.dumps(value) for key, value in (extra_pnginfo or {}).items()})
            data = with_glb_extras(data, extras)
        folder, name, counter, subfolder = services().paths.get_save_path(filename_prefix, kind="output")
        target = folder / f"{name}_{counter:05}_.{ext}"
        target.write_bytes(data)
        relative = f"{subfolder}/{target.name}" if subfolder else target.name
        saved = {"filename": target.name, "subfolder": subfolder, "type": "output"}
        ui = {"3d": [saved], "result": [relative, camera, info]}
        return NodeOutput(model_3d, info, camera, width, height, ui=ui)


class Preview3DAdvanced(Node):
    """Show a 3D file in the node's viewer without saving it (it goes to the temp folder); the file,
    its placement, the camera and the viewport size pass on."""

    SCHEMA = Schema(
        "Preview3DAdvanced", display_name="Preview 3D (Advanced)", category="3d", output_node=True,
        inputs=[_model_in(), _info_in(), _viewport_in(), _camera_in(), _size_in("width"), _size_in("height")],
        outputs=_OUTPUTS,
    )

    @classmethod
    def execute(cls, model_3d: Any, viewport_state: Any, width: int, height: int, model_3d_info: Any = None,
                camera_info: Any = None) -> NodeOutput:
        model_3d = _check_file(model_3d)
        info, camera = viewport_values(viewport_state, model_3d_info, camera_info)
        name = f"preview3d_advanced_{hashlib.sha256(model_3d.data).hexdigest()[:32]}.{model_3d.format or 'glb'}"
        folder = services().paths.temp_dir
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / name).exists():
            (folder / name).write_bytes(model_3d.data)
        ui = {"3d": [{"filename": name, "subfolder": "", "type": "temp"}], "result": [f"{name} [temp]", camera, info]}
        return NodeOutput(model_3d, info, camera, width, height, ui=ui)
