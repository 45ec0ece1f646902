"""GLSL Shader: the source handling, then real renders on an EGL context (Mesa's llvmpipe on a
machine without a GPU) compared with numpy, and the official template's shaders through the engine."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nodeloom.errors import MissingDependencyError, ValidationError
from nodeloom.nodes.utils import NODE_CLASS_MAPPINGS as NODES
from nodeloom.ops import glsl
from tests.nodes.conftest import run_prompt

HEAD = "#version 300 es\nprecision highp float;\nuniform sampler2D u_image0;\nin vec2 v_texCoord;\n"


def shader(body: str, outputs: str = "layout(location = 0) out vec4 fragColor0;", extra: str = "") -> str:
    return f"{HEAD}{extra}\n{outputs}\nvoid main() {{\n{body}\n}}\n"


@pytest.fixture(scope="module")
def gl() -> None:
    try:
        glsl.gl_context().release()
    except MissingDependencyError as exc:
        pytest.skip(f"no OpenGL context: {exc}")


def call(**inputs: Any) -> dict[str, Any]:
    node = NODES["GLSLShader"]
    return getattr(node(), node.FUNCTION)(**inputs)


def images(out: Any) -> list[torch.Tensor]:
    return list(out["result"] if isinstance(out, dict) else out)


def _image(batch: int = 1, height: int = 6, width: int = 9, channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).random((batch, height, width, channels), dtype=np.float32))


# --- source handling (no GL needed) --------------------------------------------------------------

def test_source_keeps_the_users_lines_and_raises_precision() -> None:
    source = "// effect\n#version 300 es\n#pragma passes 2\nprecision mediump float;\nvoid main() {}\n"
    prepared = glsl.prepare_source(source)
    assert prepared.startswith("// effect\n#version 300 es\nprecision highp sampler2D;\n#line 3\n#pragma passes 2\n")
    assert "mediump" not in prepared and prepared.endswith("precision highp float;\nvoid main() {}\n")
    assert glsl.prepare_source("#version 300 es\r\nvoid main() {}\r\n").count("#line 2") == 1  # CRLF sources
    with pytest.raises(ValidationError, match=r"must begin with `#version 300 es`.*'#version 330 core'"):
        glsl.prepare_source("#version 330 core\nvoid main() {}\n")
    with pytest.raises(ValidationError, match="`fragment_shader`"):
        glsl.prepare_source("   ")


def test_outputs_and_passes_are_read_from_the_source() -> None:
    assert glsl.output_count("out vec4 fragColor;") == 1
    four = "\n".join(f"layout(location = {n}) out vec4 fragColor{n};" for n in range(4))
    assert glsl.output_count(four) == 4
    assert glsl.output_count("// layout(location = 3) out vec4 fragColor3;\nlayout(location=1) out vec4 b;") == 2
    with pytest.raises(ValidationError, match="location 4"):
        glsl.output_count("layout(location = 4) out vec4 fragColor4;")
    assert glsl.pass_count("#version 300 es\n#pragma passes 3\n") == 3 and glsl.pass_count("void main(){}") == 1
    with pytest.raises(ValidationError, match="1..64"):
        glsl.pass_count("#pragma passes 0\n")


def test_declaration_matches_comfyui() -> None:
    types = NODES["GLSLShader"].INPUT_TYPES()["required"]
    assert list(types) == ["fragment_shader", "size_mode", "images", "floats", "ints", "bools", "curves"]
    assert types["fragment_shader"][1]["default"] == glsl.DEFAULT_FRAGMENT_SHADER
    assert [o["key"] for o in types["size_mode"][1]["options"]] == ["from_input", "custom"]
    custom = types["size_mode"][1]["options"][1]["inputs"]["required"]
    assert custom["width"][1]["default"] == 512 and custom["height"][1]["max"] == 16384
    growth = {k: (v[1]["template"]["prefix"], v[1]["template"]["min"], v[1]["template"]["max"])
              for k, v in types.items() if v[0] == "COMFY_AUTOGROW_V3"}
    assert growth == {"images": ("image", 1, 5), "floats": ("u_float", 0, 20), "ints": ("u_int", 0, 20),
                      "bools": ("u_bool", 0, 10), "curves": ("u_curve", 0, 4)}
    node = NODES["GLSLShader"]
    assert node.RETURN_TYPES == ("IMAGE",) * 4 and node.RETURN_NAMES == ("IMAGE0", "IMAGE1", "IMAGE2", "IMAGE3")
    assert node.CATEGORY == "image/shader"


def test_no_context_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    moderngl = pytest.importorskip("moderngl")

    def fail(**_: Any) -> None:
        raise Exception("libEGL.so.1: cannot open shared object file")  # noqa: TRY002 - as glcontext raises

    monkeypatch.setattr(moderngl, "create_context", fail)
    with pytest.raises(MissingDependencyError) as caught:
        call(fragment_shader=glsl.DEFAULT_FRAGMENT_SHADER, size_mode="from_input", **{"images.image0": _image()})
    message = str(caught.value)
    assert "libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri" in message and "nodeloom[glsl]" in message
    assert "libEGL.so.1" in caught.value.details


# --- rendering -------------------------------------------------------------------------------------

def test_passthrough_equals_the_input_per_frame(gl: None) -> None:
    rgb = _image(batch=2)
    out = images(call(fragment_shader=glsl.DEFAULT_FRAGMENT_SHADER, size_mode="from_input", **{"images.image0": rgb}))
    assert out[0].shape == (2, 6, 9, 4) and out[0].dtype == torch.float32
    assert torch.allclose(out[0][..., :3], rgb, atol=1e-6) and bool((out[0][..., 3] == 1).all())
    assert all(bool((o == 0).all()) and o.shape == (2, 6, 9, 4) for o in out[1:])  # unused outputs are black
    rgba = _image(channels=4, seed=1)
    out = images(call(fragment_shader=glsl.DEFAULT_FRAGMENT_SHADER, size_mode="from_input", **{"images.image0": rgba}))
    assert torch.allclose(out[0], rgba, atol=1e-6)


def test_y_axis_filtering_and_edges_follow_gl(gl: None) -> None:
    """v_texCoord (0, 0) is the image's bottom-left; linear filtering between texels; clamp to edge."""
    rows = torch.linspace(0.0, 1.0, 4).reshape(1, 4, 1, 1).expand(1, 4, 2, 3).contiguous()  # top row 0, bottom 1
    coords = shader("fragColor0 = vec4(v_texCoord, texture(u_image0, vec2(0.5, -3.0)).r, "
                    "texture(u_image0, vec2(0.5, 0.5)).r);")
    out = images(call(fragment_shader=coords, size_mode="from_input", **{"images.image0": rows}))[0][0]
    assert torch.allclose(out[:, 0, 1], torch.tensor([0.875, 0.625, 0.375, 0.125]))  # the top row has the high y
    assert torch.allclose(out[..., 2], torch.ones(4, 2))  # below the bottom: the bottom row, clamped
    assert torch.allclose(out[..., 3], torch.full((4, 2), 0.5), atol=1e-6)  # halfway between rows 1 and 2
    bigger = images(call(fragment_shader=glsl.DEFAULT_FRAGMENT_SHADER, size_mode="custom", **{
        "size_mode.width": 2, "size_mode.height": 8, "images.image0": rows}))[0]
    assert bigger.shape == (1, 8, 2, 4)
    expected = np.clip((np.arange(8) + 0.5) / 2 - 0.5, 0, 3) / 3  # bilinear between the 4 rows
    assert np.allclose(bigger[0, :, 0, 0].numpy(), expected, atol=1e-5)


def test_brightness_contrast_template_shader_equals_numpy(gl: None) -> None:
    source = _template_shader("Brightness and Contrast")
    image = _image(batch=2, seed=3)
    floats = {"floats.u_float0": 20.0, "floats.u_float1": -35.0}
    out = images(call(fragment_shader=source, size_mode="from_input", **{"images.image0": image}, **floats))[0]
    lin = np.maximum(image.numpy(), 0) ** 2.2
    lin = (lin - 0.18) * (1 - 0.35) + 0.2 + 0.18
    expected = np.clip(lin, 0, 1) ** (1 / 2.2)
    assert np.allclose(out[..., :3].numpy(), expected, atol=2e-5)
    assert torch.equal(out[..., 3], torch.ones(2, 6, 9))


def test_uniforms_reach_the_shader(gl: None) -> None:
    extra = "uniform float u_float2;\nuniform int u_int1;\nuniform bool u_bool0;\nuniform vec2 u_resolution;\n"
    source = shader("fragColor0 = vec4(u_float2, float(u_int1), u_bool0 ? 1.0 : 0.0, u_resolution.x * 100.0 "
                    "+ u_resolution.y + texture(u_image0, v_texCoord).r * 0.0);", extra=extra)
    out = images(call(fragment_shader=source, size_mode="custom", **{
        "size_mode.width": 3, "size_mode.height": 5, "images.image0": _image(),
        "floats.u_float2": 0.25, "ints.u_int1": -7, "bools.u_bool0": True}))[0]
    assert out.shape == (1, 5, 3, 4)
    assert torch.equal(out[0, 2, 1], torch.tensor([0.25, -7.0, 1.0, 305.0]))
    wrong = shader("fragColor0 = vec4(u_float0, 0.0, 0.0, 1.0);", extra="uniform vec2 u_float0;\n").replace(
        "vec4(u_float0, 0.0, 0.0, 1.0)", "vec4(u_float0, 0.0, 1.0)")
    with pytest.raises(ValidationError, match="`floats.u_float0`"):
        call(fragment_shader=wrong, size_mode="from_input", **{"images.image0": _image(), "floats.u_float0": 1.0})


def test_two_images_and_four_outputs(gl: None) -> None:
    a, b = _image(batch=2, seed=4), _image(batch=1, height=3, width=4, seed=5)  # b: other size, one frame for both
    blend = ("#version 300 es\nprecision highp float;\nuniform sampler2D u_image0;\nuniform sampler2D u_image1;\n"
             "uniform float u_float0;\nin vec2 v_texCoord;\n" + "".join(
                 f"layout(location = {n}) out vec4 fragColor{n};\n" for n in range(4)) +
             "void main() {\n vec4 x = texture(u_image0, v_texCoord);\n"
             " vec4 y = texelFetch(u_image1, ivec2(0, 2), 0);\n"  # texel row 2 from the bottom = top row
             " fragColor0 = mix(x, y, u_float0);\n fragColor1 = vec4(x.r);\n fragColor2 = y;\n"
             " fragColor3 = vec4(vec2(textureSize(u_image1, 0)), 0.0, 1.0);\n}\n")
    out = images(call(fragment_shader=blend, size_mode="from_input",
                      **{"images.image0": a, "images.image1": b, "floats.u_float0": 0.25}))
    corner = torch.cat([b[0, 0, 0], torch.ones(1)])
    assert torch.allclose(out[0][..., :3], 0.75 * a + 0.25 * corner[:3], atol=1e-6)
    assert torch.allclose(out[1], a[..., :1].expand(-1, -1, -1, 4), atol=1e-6)
    assert torch.allclose(out[2], corner.expand(2, 6, 9, 4))
    assert torch.equal(out[3][0, 0, 0], torch.tensor([4.0, 3.0, 0.0, 1.0]))
    lone = blend.replace("texelFetch(u_image1, ivec2(0, 2), 0)", "texture(u_image1, v_texCoord)")
    out = images(call(fragment_shader=lone, size_mode="from_input", **{"images.image0": a}))
    assert torch.equal(out[2], torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(2, 6, 9, 4))  # not image0: nothing bound
    with pytest.raises(ValidationError, match="`images.image1`.*batch of 2"):
        call(fragment_shader=blend, size_mode="from_input", **{"images.image0": a, "images.image1": _image(batch=3)})


def test_compile_errors_quote_the_gl_log(gl: None) -> None:
    bad = shader("fragColor0 = texture(u_image0, v_texCoord) * 2;")  # no int * vec4 in GLSL ES
    with pytest.raises(ValidationError) as caught:
        call(fragment_shader=bad, size_mode="from_input", **{"images.image0": _image()})
    message = str(caught.value)
    assert message.startswith("`fragment_shader` does not compile (GLSL ES 3.00):")
    assert "0:8(" in message  # the user's line 8, not shifted by the precision line put in
    with pytest.raises(ValidationError, match="`images.image0` is required"):
        call(fragment_shader=glsl.DEFAULT_FRAGMENT_SHADER, size_mode="from_input")
    unlinked = ("#version 300 es\nprecision highp float;\nin vec3 v_missing;\nout vec4 c;\n"
                "void main() { c = vec4(v_missing, 1.0); }\n")  # links against no such vertex output
    with pytest.raises(ValidationError, match="`fragment_shader` does not compile") as caught:
        call(fragment_shader=unlinked, size_mode="from_input", **{"images.image0": _image()})
    assert "v_missing" in str(caught.value) and "Linker" not in str(caught.value) and "Program" not in str(caught.value)
    with pytest.raises(ValidationError, match="`floats.u_float20`"):
        glsl.render_shader(glsl.DEFAULT_FRAGMENT_SHADER, {0: _image().numpy()}, (2, 2),
                           glsl.ShaderInputs(floats={20: 1.0}))


def test_two_pass_box_blur_equals_numpy(gl: None) -> None:
    source = ("#version 300 es\n#pragma passes 2\nprecision highp float;\nuniform sampler2D u_image0;\n"
              "uniform int u_pass;\nin vec2 v_texCoord;\nlayout(location = 0) out vec4 fragColor0;\nvoid main() {\n"
              " vec2 texel = 1.0 / vec2(textureSize(u_image0, 0));\n"
              " vec2 dir = (u_pass == 0) ? vec2(1.0, 0.0) : vec2(0.0, 1.0);\n vec4 sum = vec4(0.0);\n"
              " for (int i = -1; i <= 1; i++) { sum += texture(u_image0, v_texCoord + dir * float(i) * texel); }\n"
              " fragColor0 = sum / 3.0;\n}\n")
    image = _image(seed=6)
    out = images(call(fragment_shader=source, size_mode="from_input", **{"images.image0": image}))[0]
    padded = np.pad(image[0].numpy(), ((1, 1), (1, 1), (0, 0)), mode="edge")
    across = (padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]) / 3
    expected = (across[:-2] + across[1:-1] + across[2:]) / 3
    assert np.allclose(out[0, ..., :3].numpy(), expected, atol=1e-5)


def test_curves_become_lookup_textures(gl: None) -> None:
    source = _template_shader("Color Curves")
    identity = {"points": [[0, 0], [1, 1]], "interpolation": "linear"}
    invert = {"points": [[0, 1], [1, 0]], "interpolation": "linear"}
    image = _image(seed=7)
    curves = {"curves.u_curve0": identity, "curves.u_curve1": invert, "curves.u_curve2": identity,
              "curves.u_curve3": identity}
    out = images(call(fragment_shader=source, size_mode="from_input", **{"images.image0": image}, **curves))[0]
    assert torch.allclose(out[..., 0], 1 - image[..., 0], atol=1e-5)
    assert torch.allclose(out[..., 1:3], image[..., 1:3], atol=1e-5)
    with pytest.raises(ValidationError, match="`curves.u_curve0`"):
        call(fragment_shader=source, size_mode="from_input", **{"images.image0": image, "curves.u_curve0": "0,0;1,1"})


# --- the official template ---------------------------------------------------------------------------

def _template() -> dict[str, Any]:
    spec = importlib.util.find_spec("comfyui_workflow_templates_json")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the official templates are not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "templates" / "basic_image_color_adjustment.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _template_shader(subgraph: str) -> str:
    for graph in _template()["definitions"]["subgraphs"]:
        if graph["name"] == subgraph:
            node = next(n for n in graph["nodes"] if n["type"] == "GLSLShader")
            assert node["widgets_values"][1] == "from_input"
            return str(node["widgets_values"][0])
    raise AssertionError(f"no subgraph {subgraph!r}")


def test_every_template_shader_compiles_and_runs(gl: None) -> None:
    shaders = [(g["name"], n["widgets_values"][0]) for g in _template()["definitions"]["subgraphs"]
               for n in g["nodes"] if n["type"] == "GLSLShader"]
    assert len(shaders) == 10
    levels = glsl.ShaderInputs(floats={1: 255.0, 2: 1.0, 4: 255.0})  # Image Levels divides by its white and gamma
    for name, source in shaders:
        out = glsl.render_shader(source, {0: _image().numpy()}, (9, 6), levels if name == "Image Levels" else None)
        assert out[0].shape == (1, 6, 9, 4) and np.isfinite(out[0]).all(), name


def test_image_channels_subgraph_through_the_engine(image_engine: Any, gl: None) -> None:
    image = _image(batch=2, seed=8)
    node = {"class_type": "GLSLShader", "inputs": {"fragment_shader": _template_shader("Image Channels"),
                                                   "size_mode": "from_input", "images.image0": ["t", 0]}}
    prompt = {"t": {"class_type": "TestTensor", "inputs": {"key": "img"}}, "g": node}
    result = run_prompt(image_engine, prompt, {"img": image}, sinks=[["g", n] for n in range(4)])
    assert result.ok, result.errors
    for channel in range(3):
        plane = result.value("g", channel)
        assert torch.allclose(plane[..., :3], image[..., channel:channel + 1].expand(-1, -1, -1, 3), atol=1e-6)
        assert bool((plane[..., 3] == 1).all())
    assert bool((result.value("g", 3) == 1).all())  # an RGB input's alpha is 1
    assert len(result.outputs["g"]["input_images"]) == 2 and len(result.outputs["g"]["images"]) == 2


def test_the_whole_template_runs(tmp_path: Path, gl: None) -> None:
    """basic_image_color_adjustment as shipped (ten shader subgraphs, curves, primitives, combos)."""
    from PIL import Image as PILImage

    from nodeloom import Engine
    from nodeloom.core.workflow_ui import to_api

    engine = Engine(base_dir=tmp_path)
    try:
        prompt = to_api(_template(), engine.input_types)
        shaders = [k for k, v in prompt.items() if v["class_type"] == "GLSLShader"]
        (load,) = [v for v in prompt.values() if v["class_type"] == "LoadImage"]
        pixels = (np.random.default_rng(9).random((12, 16, 3)) * 255).astype(np.uint8)
        PILImage.fromarray(pixels).save(engine.services.paths.input_dir / load["inputs"]["image"])
        result = engine.run(prompt)
        assert result.ok, result.errors
        assert len(shaders) == 10 and set(shaders) <= set(result.ran())
        channels = next(k for k in shaders if "fragColor3" in prompt[k]["inputs"]["fragment_shader"])
        green = result.value(channels, 1)
        assert green.shape == (1, 12, 16, 4)
        assert torch.allclose(green[0, ..., 0], torch.from_numpy(pixels[..., 1] / 255.0).float(), atol=1e-6)
    finally:
        engine.close()
