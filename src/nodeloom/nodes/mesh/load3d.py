"""Load3D: a 3D file from the input folder's ``3d`` subfolder, with what the frontend's viewer
rendered of it (ComfyUI's node: image, mask, normal and lineart passes, the camera, and an
optional recording, as the ``LOAD_3D`` widget value names them)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nodeloom.errors import NodeloomError
from nodeloom.node_api import Combo, Custom, Int, Node, Output, Schema, ValidationError, safe_join, services
from nodeloom.ops import imageio
from nodeloom.ops.video_value import VideoFromFile

__all__ = ["LOAD3D_EXTENSIONS", "Load3D", "input_3d_files"]

#: the model files Load3D lists (ComfyUI's set)
LOAD3D_EXTENSIONS = (".gltf", ".glb", ".obj", ".fbx", ".stl")
#: the rendered passes the widget value must name
_PASSES = ("image", "mask", "normal", "lineart")


def input_3d_files() -> list[str]:
    """3D files anywhere under the input folder's ``3d`` subfolder, as input-relative paths with
    forward slashes, sorted (empty without an active engine)."""
    try:
        input_dir = services().paths.input_dir
    except NodeloomError:  # no engine active: listing choices must still work
        return []
    folder = input_dir / "3d"
    if not folder.is_dir():
        return []
    return sorted(path.relative_to(input_dir).as_posix() for path in folder.rglob("*")
                  if path.is_file() and path.suffix.lower() in LOAD3D_EXTENSIONS)


def _annotated(name: str) -> Path:
    """A path the viewer names, with ComfyUI's ``" [input]"`` / ``" [output]"`` / ``" [temp]"``
    annotation choosing the folder (the input folder by default)."""
    paths = services().paths
    for kind in ("input", "output", "temp"):
        suffix = f" [{kind}]"
        if name.endswith(suffix):
            return safe_join(paths.directory(kind), name[: -len(suffix)])
    return safe_join(paths.input_dir, name)


def _rendered(image: Any, key: str) -> Path:
    value = image.get(key)
    if not isinstance(value, str) or not value:
        raise ValidationError(f"`image` (the 3D viewer's value) must name its rendered `{key}` file, got {value!r}")
    path = _annotated(value)
    if not path.is_file():
        raise ValidationError(f"`image`: the rendered `{key}` file {value!r} does not exist (expected under {path.parent})")
    return path


class Load3D(Node):
    """Load a 3D model from ``input/3d`` and return the viewer's rendering of it: the image, the
    model's mask (from the mask pass's alpha), the normal and lineart passes, the camera, and the
    viewer's recording when one was made."""

    SCHEMA = Schema(
        "Load3D", display_name="Load 3D", category="3d", experimental=True,
        inputs=[Combo("model_file", input_3d_files, file_upload=True,
                      tooltip="A .gltf, .glb, .obj, .fbx or .stl file under the input folder's 3d subfolder."),
                Custom("LOAD_3D", "image", tooltip="The 3D viewer's value: its rendered passes, camera and recording."),
                Int("width", 1024, min=1, max=4096, step=1, tooltip="Width the viewer renders at."),
                Int("height", 1024, min=1, max=4096, step=1, tooltip="Height the viewer renders at.")],
        outputs=[Output("IMAGE", "image"), Output("MASK", "mask"), Output("STRING", "mesh_path"),
                 Output("IMAGE", "normal"), Output("IMAGE", "lineart"), Output("LOAD3D_CAMERA", "camera_info"),
                 Output("VIDEO", "recording_video")],
    )

    @classmethod
    def execute(cls, model_file: str, image: Any, width: int = 1024, height: int = 1024) -> tuple[Any, ...]:
        if not isinstance(model_file, str) or Path(model_file).suffix.lower() not in LOAD3D_EXTENSIONS:
            raise ValidationError(f"`model_file` must be one of {list(LOAD3D_EXTENSIONS)} under the input folder's 3d "
                                  f"subfolder, got {model_file!r}")
        if not safe_join(services().paths.input_dir, model_file).is_file():
            raise ValidationError(f"`model_file` {model_file!r} is not a file in the input folder")
        if not isinstance(image, dict):
            raise ValidationError(f"`image` must be the 3D viewer's value (a dict naming its rendered files), "
                                  f"got {type(image).__name__}")
        limit = getattr(getattr(services(required=False), "limits", None), "max_pixels", None) or None
        rendered, _ = imageio.load_image_file(_rendered(image, "image"), max_pixels=limit)
        _, mask = imageio.load_image_file(_rendered(image, "mask"), max_pixels=limit)
        normal, _ = imageio.load_image_file(_rendered(image, "normal"), max_pixels=limit)
        lineart, _ = imageio.load_image_file(_rendered(image, "lineart"), max_pixels=limit)
        recording = image.get("recording") or ""
        video = None
        if recording:
            path = _annotated(recording)
            if not path.is_file():
                raise ValidationError(f"`image`: the recording {recording!r} does not exist")
            video = VideoFromFile(path)
        return rendered, mask, model_file, normal, lineart, image.get("camera_info"), video

    @classmethod
    def validate_inputs(cls, model_file: str) -> bool | str:
        try:
            path = safe_join(services().paths.input_dir, model_file)
        except ValueError as exc:
            return f"Invalid 3D file: {model_file} ({exc})"
        if not os.path.isfile(path):
            return f"Invalid 3D file: {model_file}"
        return True
