"""Preview3D: show a 3D file in the frontend's viewer, with an optional camera and background
(ComfyUI's node: UI ``{"result": [model_file, camera_info, background path]}``)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import numpy as np
from PIL import Image as PILImage

from nodeloom.node_api import Custom, Image, Node, NodeOutput, Schema, String, ValidationError, services
from nodeloom.ops.mesh import File3D

__all__ = ["Preview3D"]

#: the model_file socket: a path string, or a 3D file value
_MODEL_TYPES = ",".join(("STRING", "FILE_3D_GLB", "FILE_3D_GLTF", "FILE_3D_FBX", "FILE_3D_OBJ", "FILE_3D_STL",
                         "FILE_3D_USDZ", "FILE_3D"))


def _temp_file(value: File3D) -> str:
    """Write a 3D file value to the temp folder once (named by its content); its annotated name."""
    ext = value.format or "glb"
    name = f"preview3d_{hashlib.sha256(value.data).hexdigest()[:16]}.{ext}"
    folder = services().paths.temp_dir / "3d"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if not target.exists():
        target.write_bytes(value.data)
    return f"3d/{name} [temp]"


def _background(image: Any) -> str:
    name = f"bg_{uuid.uuid4().hex}.png"
    folder = services().paths.temp_dir
    folder.mkdir(parents=True, exist_ok=True)
    pixels = (image[0].clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)
    PILImage.fromarray(pixels).save(folder / name, compress_level=1)
    return f"temp/{name}"


class Preview3D(Node):
    """Show a 3D model in the node's viewer: a file path (under the output folder, or annotated
    ``[temp]`` / ``[input]``) or a 3D file value, with an optional camera and background image."""

    SCHEMA = Schema(
        "Preview3D", display_name="Preview 3D & Animation", category="3d", output_node=True, experimental=True,
        inputs=[Custom(_MODEL_TYPES, "model_file", default="", multiline=False,
                       tooltip="The 3D file to show: a path, or a 3D file value (written to the temp folder)."),
                Custom("LOAD3D_CAMERA", "camera_info", optional=True, tooltip="The camera to show it from."),
                Image("bg_image", optional=True, tooltip="A background image for the viewer.")],
        outputs=[],
    )

    @classmethod
    def execute(cls, model_file: Any, camera_info: Any = None, bg_image: Any = None) -> NodeOutput:
        if isinstance(model_file, File3D):
            model_file = _temp_file(model_file)
        elif not isinstance(model_file, str):
            raise ValidationError(f"`model_file` must be a path or a 3D file value, got {type(model_file).__name__}")
        background = _background(bg_image) if bg_image is not None else None
        return NodeOutput(ui={"result": [model_file, camera_info, background]})
