"""GLSL ES 3.00 fragment shaders over float images, rendered offscreen (ComfyUI's GLSLShader).

Owns the OpenGL side: an EGL context through ``moderngl`` (Mesa's llvmpipe renders it on the
CPU when there is no GPU), float RGBA textures with linear filtering and clamp-to-edge, the
``u_*`` uniforms, up to four ``fragColor`` outputs and ``#pragma passes N`` ping-pong. Arrays in,
arrays out; imports no node, engine or torch.
"""

from __future__ import annotations

import ctypes.util
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nodeloom.errors import MissingDependencyError, ValidationError, require

__all__ = [
    "DEBIAN_PACKAGES",
    "DEFAULT_FRAGMENT_SHADER",
    "EXTRA",
    "MAX_BOOLS",
    "MAX_CURVES",
    "MAX_IMAGES",
    "MAX_OUTPUTS",
    "MAX_UNIFORMS",
    "ShaderInputs",
    "gl_context",
    "output_count",
    "pass_count",
    "prepare_source",
    "render_shader",
]

MAX_IMAGES = 5  # u_image0..4
MAX_UNIFORMS = 20  # u_float0..19, u_int0..19
MAX_BOOLS = 10  # u_bool0..9
MAX_CURVES = 4  # u_curve0..3
MAX_OUTPUTS = 4  # fragColor0..3
#: the pip extra and the Debian packages an EGL context on Mesa needs
EXTRA = "glsl"
DEBIAN_PACKAGES = ("libegl1", "libegl-mesa0", "libgl1", "libgl1-mesa-dri")

DEFAULT_FRAGMENT_SHADER = """#version 300 es
precision highp float;

uniform sampler2D u_image0;
uniform vec2 u_resolution;

in vec2 v_texCoord;
layout(location = 0) out vec4 fragColor0;

void main() {
    fragColor0 = texture(u_image0, v_texCoord);
}
"""

# One triangle larger than the viewport; v_texCoord is 0..1 across the visible square, (0, 0)
# at the bottom-left, so images are uploaded bottom row first.
_VERTEX_SHADER = """#version 300 es
out vec2 v_texCoord;
void main() {
    vec2 corner = vec2(float((gl_VertexID & 1) * 4 - 1), float((gl_VertexID & 2) * 2 - 1));
    v_texCoord = corner * 0.5 + 0.5;
    gl_Position = vec4(corner, 0.0, 1.0);
}
"""

_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_VERSION = re.compile(r"\A(?:\s|//[^\n]*|/\*.*?\*/)*#[ \t]*version[ \t]+300[ \t]+es[ \t]*(?://[^\n]*)?\r?\n", re.DOTALL)
_LOW_PRECISION = re.compile(r"\b(?:lowp|mediump)\b")
_OUT_LOCATION = re.compile(r"layout\s*\(\s*location\s*=\s*(\d+)\s*\)\s*out\b")
_MODERNGL_HEADINGS = {"GLSL Compiler failed", "GLSL Linker failed", "fragment_shader", "vertex_shader", "Program"}
_PASSES = re.compile(r"^[ \t]*#[ \t]*pragma[ \t]+passes[ \t]+(\d+)", re.MULTILINE)


@dataclass
class ShaderInputs:
    """What the shader reads besides its images: numbered uniform values by index (``None``:
    not connected, the uniform keeps GL's 0) and curve look-up tables (1-D float arrays)."""

    floats: dict[int, float] = field(default_factory=dict)
    ints: dict[int, int] = field(default_factory=dict)
    bools: dict[int, bool] = field(default_factory=dict)
    curves: dict[int, np.ndarray] = field(default_factory=dict)


def prepare_source(source: str, name: str = "fragment_shader") -> str:
    """The shader as the GL driver compiles it: GLSL ES 3.00 as written, at high precision.

    The ES compiler runs it (no translation to desktop GLSL). Two changes, both about
    precision: ``lowp``/``mediump`` become ``highp`` (desktop GPUs compute them at 32 bits; Mesa
    would use 16) and samplers default to ``highp`` (ES makes them ``lowp``, which Mesa honours
    by returning 16-bit texels). A ``#line`` directive keeps the compiler's line numbers the
    user's.

    Raises:
        ValidationError: the source does not start with ``#version 300 es``.
    """
    if not isinstance(source, str) or not source.strip():
        raise ValidationError(f"`{name}` must be GLSL ES 3.00 source text, got {source!r}")
    head = _VERSION.match(source)
    if head is None:
        first = next((line.strip() for line in source.splitlines() if line.strip()), "")
        raise ValidationError(f"`{name}` must begin with `#version 300 es` (GLSL ES 3.00, as ComfyUI's GLSLShader "
                              f"expects), got {first[:60]!r}")
    body = _LOW_PRECISION.sub("highp", source[head.end():])
    next_line = head.group(0).count("\n") + 1
    return f"{head.group(0)}precision highp sampler2D;\n#line {next_line}\n{body}"


def output_count(source: str, name: str = "fragment_shader") -> int:
    """How many render targets the shader writes: its highest ``layout(location = n) out`` + 1
    (1 when it declares a plain ``out vec4``).

    Raises:
        ValidationError: a location past ``fragColor3``.
    """
    locations = [int(m) for m in _OUT_LOCATION.findall(_COMMENTS.sub(" ", source))]
    highest = max(locations, default=0)
    if highest >= MAX_OUTPUTS:
        raise ValidationError(f"`{name}` writes output location {highest}; GLSLShader has outputs at locations "
                              f"0..{MAX_OUTPUTS - 1} (IMAGE0..IMAGE{MAX_OUTPUTS - 1})")
    return highest + 1


def pass_count(source: str, name: str = "fragment_shader") -> int:
    """The ``#pragma passes N`` count (1 without one).

    Raises:
        ValidationError: N is 0 or above 64.
    """
    found = _PASSES.search(_COMMENTS.sub(" ", source))
    if found is None:
        return 1
    passes = int(found.group(1))
    if not 1 <= passes <= 64:
        raise ValidationError(f"`{name}`: `#pragma passes` must be 1..64, got {passes}")
    return passes


def gl_context() -> Any:
    """A new standalone OpenGL context on EGL (the caller releases it).

    Raises:
        MissingDependencyError: moderngl is missing, or no EGL context could be made; the message
            names the Debian packages and the pip extra.
    """
    moderngl = require("moderngl", EXTRA)
    libs = {"libgl": ctypes.util.find_library("GL") or "libGL.so.1",
            "libegl": ctypes.util.find_library("EGL") or "libEGL.so.1"}
    try:
        ctx = moderngl.create_context(standalone=True, backend="egl", **libs)
    except Exception as exc:  # glcontext raises bare Exceptions for a missing library or display
        raise MissingDependencyError(
            "GLSLShader could not create an OpenGL context on EGL. Install an EGL driver (on Debian/Ubuntu: "
            f"`apt-get install {' '.join(DEBIAN_PACKAGES)}`; Mesa's llvmpipe renders on the CPU without a GPU) "
            f"and moderngl (`pip install 'nodeloom[{EXTRA}]'`)",
            details=str(exc), extra_info={"extra": EXTRA, "debian_packages": list(DEBIAN_PACKAGES)}) from exc
    if ctx.version_code < 430 and "GL_ARB_ES3_compatibility" not in ctx.extensions:
        version = ctx.info.get("GL_VERSION", "?")
        ctx.release()
        raise MissingDependencyError(
            f"GLSLShader needs OpenGL 4.3 or GL_ARB_ES3_compatibility to compile GLSL ES 3.00; the EGL driver offers "
            f"{version}. Install Mesa's (`apt-get install {' '.join(DEBIAN_PACKAGES)}`)",
            extra_info={"extra": EXTRA, "debian_packages": list(DEBIAN_PACKAGES)})
    return ctx


def _compile(ctx: Any, source: str, name: str) -> Any:
    try:
        return ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=source)
    except Exception as exc:  # moderngl.Error carries the driver's log
        lines = [line.strip() for line in str(exc).splitlines()]
        log = "\n".join(line for line in lines if line.strip("=") and line not in _MODERNGL_HEADINGS)
        raise ValidationError(f"`{name}` does not compile (GLSL ES 3.00):\n{log}", details=str(exc)) from exc


def _rgba(image: np.ndarray, label: str) -> np.ndarray:
    """``[H,W,3|4]`` as bottom-row-first float32 RGBA (alpha 1 for RGB)."""
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise ValidationError(f"`{label}` must be an IMAGE [B,H,W,3 or 4], got a frame of shape {tuple(image.shape)}")
    flipped = image[::-1].astype(np.float32, copy=False)
    if image.shape[-1] == 4:
        return np.ascontiguousarray(flipped)
    out = np.ones((*image.shape[:2], 4), dtype=np.float32)
    out[..., :3] = flipped
    return out


def _set_uniform(program: Any, uniform: str, value: Any, label: str) -> None:
    if uniform not in program:
        return  # not declared, or optimised away because unused
    try:
        program[uniform].value = value
    except Exception as exc:  # a declaration of another type (e.g. `uniform vec2 u_float0`)
        raise ValidationError(f"`{label}`: the shader's `{uniform}` cannot take {value!r} "
                              f"({exc}); declare it as the node passes it (float, int, bool)") from exc


def _texture(ctx: Any, size: tuple[int, int], components: int, data: bytes | None = None) -> Any:
    import moderngl

    tex = ctx.texture(size, components, data, dtype="f4")
    tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
    tex.repeat_x = tex.repeat_y = False  # clamp to edge
    return tex


def render_shader(source: str, images: dict[int, np.ndarray], size: tuple[int, int],
                  inputs: ShaderInputs | None = None, name: str = "fragment_shader",
                  labels: dict[int, str] | None = None) -> list[np.ndarray]:
    """Run a GLSL ES 3.00 fragment shader once per batch frame.

    Args:
        source: the shader (``#version 300 es``); ``#pragma passes N`` renders N times, each pass
            after the first reading the previous one's ``fragColor0`` as ``u_image0``.
        images: ``u_image<i>`` → ``[B,H,W,3|4]`` float arrays, 0..1 (top row first); index 0 is
            required and sets the batch size; the others have that batch size or 1.
        size: output ``(width, height)``.
        inputs: uniform values and curve tables.
        name: the input the source came from, for messages.
        labels: ``u_image<i>`` index → the input name it came from, for messages.

    Returns:
        ``MAX_OUTPUTS`` float32 arrays ``[B, height, width, 4]`` (RGBA, top row first): one per
        ``fragColor`` location; locations the shader does not write are zeros.

    Raises:
        ValidationError: bad source (the GL log quoted), images or uniform types.
        MissingDependencyError: no OpenGL context (names what to install).
    """
    inputs = inputs or ShaderInputs()
    labels = labels or {}
    width, height = int(size[0]), int(size[1])
    if width < 1 or height < 1:
        raise ValidationError(f"`size_mode`: the output size must be at least 1×1, got {width}×{height}")
    if 0 not in images:
        raise ValidationError("`images.image0` is required: the shader's `u_image0` sets the batch size")
    batch = int(images[0].shape[0])
    _check_indices(images, inputs)
    for index, array in images.items():
        label = labels.get(index, f"images.image{index}")
        if array.ndim != 4 or array.shape[0] not in (batch, 1):
            raise ValidationError(f"`{label}` must be an IMAGE [B,H,W,C] with a batch of {batch} (image0's) or 1, "
                                  f"got shape {tuple(array.shape)}")
    prepared = prepare_source(source, name)
    outputs, passes = output_count(source, name), pass_count(source, name)
    results = [np.zeros((batch, height, width, 4), dtype=np.float32) for _ in range(outputs)]
    ctx = gl_context()
    try:
        program = _compile(ctx, prepared, name)
        _bind_uniforms(ctx, program, inputs, width, height)
        targets = [_texture(ctx, (width, height), 4) for _ in range(outputs)]
        final = ctx.framebuffer(color_attachments=targets)
        pingpong = [_texture(ctx, (width, height), 4) for _ in range(2 if passes > 1 else 0)]
        between = [ctx.framebuffer(color_attachments=[tex]) for tex in pingpong]
        quad = ctx.vertex_array(program, [])
        textures: dict[int, Any] = {}
        for frame in range(batch):
            for index, array in images.items():
                pixels = _rgba(array[min(frame, array.shape[0] - 1)], labels.get(index, f"images.image{index}"))
                if index in textures and textures[index].size == (pixels.shape[1], pixels.shape[0]):
                    textures[index].write(pixels.tobytes())
                else:
                    textures[index] = _texture(ctx, (pixels.shape[1], pixels.shape[0]), 4, pixels.tobytes())
                textures[index].use(location=index)
            for step in range(passes):
                _set_uniform(program, "u_pass", step, name)
                target = final if step == passes - 1 else between[step % 2]
                (pingpong[(step - 1) % 2] if step > 0 else textures[0]).use(location=0)
                target.use()
                target.clear(0.0, 0.0, 0.0, 0.0)
                quad.render(mode=ctx.TRIANGLES, vertices=3)
            for location in range(outputs):
                raw = final.read(components=4, dtype="f4", attachment=location)
                results[location][frame] = np.frombuffer(raw, dtype=np.float32).reshape(height, width, 4)[::-1]
    finally:
        ctx.release()
    unused = np.zeros((batch, height, width, 4), dtype=np.float32)  # one array for every unwritten output
    return results + [unused] * (MAX_OUTPUTS - outputs)


def _check_indices(images: dict[int, np.ndarray], inputs: ShaderInputs) -> None:
    groups = (("images.image", images, MAX_IMAGES), ("floats.u_float", inputs.floats, MAX_UNIFORMS),
              ("ints.u_int", inputs.ints, MAX_UNIFORMS), ("bools.u_bool", inputs.bools, MAX_BOOLS),
              ("curves.u_curve", inputs.curves, MAX_CURVES))
    for prefix, values, count in groups:
        for index in values:
            if not 0 <= index < count:
                raise ValidationError(f"`{prefix}{index}`: GLSLShader has {prefix}0..{prefix}{count - 1}")


def _bind_uniforms(ctx: Any, program: Any, inputs: ShaderInputs, width: int, height: int) -> None:
    ctx.disable(ctx.BLEND)
    # every sampler gets its own unit, so one whose input is not connected reads (0, 0, 0, 1)
    # instead of unit 0's image
    for index in range(MAX_IMAGES):
        _set_uniform(program, f"u_image{index}", index, f"images.image{index}")
    for index in range(MAX_CURVES):
        _set_uniform(program, f"u_curve{index}", MAX_IMAGES + index, f"curves.u_curve{index}")
    _set_uniform(program, "u_resolution", (float(width), float(height)), "size_mode")
    for index, value in inputs.floats.items():
        _set_uniform(program, f"u_float{index}", float(value), f"floats.u_float{index}")
    for index, value in inputs.ints.items():
        _set_uniform(program, f"u_int{index}", int(value), f"ints.u_int{index}")
    for index, value in inputs.bools.items():
        _set_uniform(program, f"u_bool{index}", bool(value), f"bools.u_bool{index}")
    for index, lut in inputs.curves.items():
        table = np.ascontiguousarray(np.asarray(lut, dtype=np.float32).reshape(-1))
        curve = _texture(ctx, (len(table), 1), 1, table.tobytes())
        curve.use(location=MAX_IMAGES + index)
