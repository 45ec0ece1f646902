"""ComfyUI's "GLSL Shader" node: a GLSL ES 3.00 fragment shader run over images.

The declaration follows ComfyUI's (a ``size_mode`` dynamic combo and five Autogrow groups whose
sockets arrive as ``images.image0``, ``floats.u_float0``...); the rendering is
:mod:`nodeloom.ops.glsl` (an EGL OpenGL context through moderngl).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nodeloom.node_api import (
    MAX_RESOLUTION,
    Custom,
    Node,
    NodeOutput,
    Output,
    Schema,
    String,
    ValidationError,
    services,
)
from nodeloom.nodes.utils.previews import save_temp_images
from nodeloom.ops import glsl
from nodeloom.ops.curves import check_curve, curve_lut

__all__ = ["GLSLShader"]


def _group(io_type: str, name: str, prefix: str, count: int, minimum: int, options: dict[str, Any],
           tooltip: str) -> Custom:
    """An Autogrow group in ComfyUI's ``/object_info`` shape (``TemplatePrefix``: ``<prefix>0``...)."""
    template = {"input": {"required": {name: [io_type, options]}}, "prefix": prefix, "min": minimum, "max": count}
    return Custom("COMFY_AUTOGROW_V3", f"{name}s", tooltip=tooltip, template=template)


_WIDTH = ["INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "tooltip": "Output width."}]
_HEIGHT = ["INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "tooltip": "Output height."}]
_SIZE_MODES = [
    {"key": "from_input", "inputs": {"required": {}}},
    {"key": "custom", "inputs": {"required": {"width": _WIDTH, "height": _HEIGHT}}},
]


def _members(inputs: dict[str, Any], group: str, prefix: str) -> dict[int, Any]:
    """``{index: value}`` of an Autogrow group's connected sockets (``<group>.<prefix><index>``)."""
    head = f"{group}.{prefix}"
    found: dict[int, Any] = {}
    for key, value in inputs.items():
        if key.startswith(head) and key[len(head):].isdigit() and value is not None:
            found[int(key[len(head):])] = value
    return found


class GLSLShader(Node):
    """Run a GLSL ES 3.00 fragment shader over the images: `u_image0`.. as textures, the float,
    int, bool and curve groups as `u_float0`.., `u_int0`.., `u_bool0`.., `u_curve0`..; each
    `fragColor<n>` output becomes IMAGE<n>."""

    SCHEMA = Schema(
        "GLSLShader",
        display_name="GLSL Shader",
        category="image/shader",
        description="Apply GLSL ES fragment shaders to images. u_resolution (vec2) is always available.",
        experimental=True,
        intermediate_output=True,
        inputs=[
            String("fragment_shader", glsl.DEFAULT_FRAGMENT_SHADER, multiline=True,
                   tooltip="GLSL fragment shader source code (GLSL ES 3.00 / WebGL 2.0 compatible)"),
            Custom("COMFY_DYNAMICCOMBO_V3", "size_mode", options=_SIZE_MODES,
                   tooltip="Output size: 'from_input' uses first input image dimensions, 'custom' allows manual size"),
            _group("IMAGE", "image", "image", glsl.MAX_IMAGES, 1, {},
                   f"Images are available as u_image0-{glsl.MAX_IMAGES - 1} (sampler2D) in the shader code"),
            _group("FLOAT", "float", "u_float", glsl.MAX_UNIFORMS, 0, {"default": 0.0, "forceInput": True},
                   f"Floats are available as u_float0-{glsl.MAX_UNIFORMS - 1} in the shader code"),
            _group("INT", "int", "u_int", glsl.MAX_UNIFORMS, 0, {"default": 0, "forceInput": True},
                   f"Ints are available as u_int0-{glsl.MAX_UNIFORMS - 1} in the shader code"),
            _group("BOOLEAN", "bool", "u_bool", glsl.MAX_BOOLS, 0, {"default": False, "forceInput": True},
                   f"Booleans are available as u_bool0-{glsl.MAX_BOOLS - 1} (bool) in the shader code"),
            _group("CURVE", "curve", "u_curve", glsl.MAX_CURVES, 0, {},
                   f"Curves are available as u_curve0-{glsl.MAX_CURVES - 1} (sampler2D, 1D LUT) in the shader code. "
                   "Sample with texture(u_curve0, vec2(x, 0.5)).r"),
        ],
        outputs=[Output("IMAGE", f"IMAGE{n}", tooltip=f"Available via layout(location = {n}) out vec4 fragColor{n} "
                                                      "in the shader code")
                 for n in range(glsl.MAX_OUTPUTS)],
    )

    @classmethod
    def execute(cls, fragment_shader: str, size_mode: str = "from_input", **inputs: Any) -> NodeOutput:
        images = _members(inputs, "images", "image")
        if 0 not in images:
            raise ValidationError("`images.image0` is required: connect an image (it sets the batch size and, "
                                  "with size_mode 'from_input', the output size)")
        labels = {i: f"images.image{i}" for i in images}
        for index, image in images.items():
            if not isinstance(image, torch.Tensor) or image.ndim != 4:
                raise ValidationError(f"`{labels[index]}` must be an IMAGE [B,H,W,C]")
        if size_mode == "custom":
            size = (int(inputs.get("size_mode.width", 512)), int(inputs.get("size_mode.height", 512)))
        elif size_mode == "from_input":
            size = (int(images[0].shape[2]), int(images[0].shape[1]))
        else:
            raise ValidationError(f"`size_mode` must be 'from_input' or 'custom', got {size_mode!r}")
        uniforms = glsl.ShaderInputs(
            floats=_members(inputs, "floats", "u_float"), ints=_members(inputs, "ints", "u_int"),
            bools=_members(inputs, "bools", "u_bool"),
            curves={i: curve_lut(check_curve(v, f"curves.u_curve{i}")) for i, v in
                    _members(inputs, "curves", "u_curve").items()})
        arrays = {i: image.detach().to("cpu", torch.float32).numpy() for i, image in images.items()}
        rendered = glsl.render_shader(fragment_shader, arrays, size, uniforms, labels=labels)
        outputs = [torch.from_numpy(np.ascontiguousarray(out)) for out in rendered]
        ui = None
        if services(required=False) is not None:
            shown = [entry for i in sorted(images) for entry in save_temp_images(images[i], "GLSLShader_input")]
            ui = {"input_images": shown, "images": save_temp_images(outputs[0], "GLSLShader_output")}
        return NodeOutput(*outputs, ui=ui)
