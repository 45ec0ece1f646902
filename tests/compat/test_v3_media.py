"""``comfy_api.input`` / ``input_impl`` / ``util`` and ``comfy_api.latest.Input`` / ``InputImpl`` /
``Types``: a pack that builds and reads VIDEO values through ComfyUI's names interoperates with
the built-in video nodes, and a saved video round-trips through ``VideoFromFile``."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from nodeloom.compat import hook
from nodeloom.engine import Engine
from nodeloom.ops import video_value

MEDIA_PACK = r'''
from fractions import Fraction

import torch
from comfy_api.input import AudioInput, ImageInput, VideoInput
from comfy_api.input.video_types import VideoInput as VideoInputAgain
from comfy_api.input_impl import VideoFromComponents, VideoFromFile
from comfy_api.latest import ComfyExtension, Input, InputImpl, Types, io
from comfy_api.util import VideoCodec, VideoComponents, VideoContainer

assert VideoInputAgain is VideoInput and Input.Video is VideoInput and InputImpl.VideoFromFile is VideoFromFile


class Ramp(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="MediaRamp", category="mediatest",
                         inputs=[io.Int.Input("frames", default=4, min=1, max=16)], outputs=[io.Video.Output()])

    @classmethod
    def execute(cls, frames):
        images = torch.linspace(0, 1, frames).view(frames, 1, 1, 1).expand(frames, 16, 16, 3).contiguous()
        return io.NodeOutput(InputImpl.VideoFromComponents(Types.VideoComponents(images=images, frame_rate=Fraction(12))))


class Describe(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="MediaDescribe", category="mediatest", is_output_node=True,
                         inputs=[io.Video.Input("video")], outputs=[])

    @classmethod
    def execute(cls, video: VideoInput):
        assert isinstance(video, Input.Video)
        parts = video.get_components()
        width, height = video.get_dimensions()
        text = f"{type(video).__name__} {parts.images.shape[0]}x{width}x{height}@{float(parts.frame_rate)}"
        return io.NodeOutput(ui={"text": [text]})


class Save(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="MediaSave", category="mediatest", is_output_node=True,
                         inputs=[io.Video.Input("video"), io.String.Input("path")], outputs=[])

    @classmethod
    def execute(cls, video, path):
        video.save_to(path, format=Types.VideoContainer.MP4, codec=VideoCodec.H264)
        again = VideoFromFile(path)
        return io.NodeOutput(ui={"text": [f"{again.get_frame_count()} {again.get_container_format()}"]})


class Ext(ComfyExtension):
    async def get_node_list(self):
        return [Ramp, Describe, Save]


async def comfy_entrypoint():
    return Ext()
'''


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    root = tmp_path_factory.mktemp("v3media")
    (root / "custom_nodes" / "media_pack").mkdir(parents=True)
    (root / "custom_nodes" / "media_pack" / "__init__.py").write_text(MEDIA_PACK)
    engine = Engine(base_dir=root / "base", custom_nodes_dirs=[root / "custom_nodes"])
    yield engine
    engine.close()


def test_comfyui_value_modules_are_nodeloom_video_values() -> None:
    hook.install()
    names = ("comfy_api.input", "comfy_api.input_impl", "comfy_api.util", "comfy_api.util.video_types",
             "comfy_api.latest._input", "comfy_api.latest._input_impl.video_types", "comfy_api.latest._util")
    modules = [importlib.import_module(name) for name in names]
    for name in ("VideoFromFile", "VideoFromComponents", "VideoComponents", "VideoContainer", "VideoCodec", "VideoInput"):
        assert all(getattr(m, name) is getattr(video_value, name) for m in modules if hasattr(m, name)), name
    latest = importlib.import_module("comfy_api.latest")
    assert latest.Input.Image is torch.Tensor and latest.Types.VideoCodec.as_input() == ["auto", "h264"]
    assert latest.Input.Audio.__annotations__.keys() == {"waveform", "sample_rate"}
    with pytest.raises(AttributeError, match="`comfy_api.latest.Types.Curve` is not provided"):
        latest.Types.Curve  # noqa: B018 - a newer name


def test_pack_video_reaches_built_in_nodes_and_back(engine: Engine) -> None:
    pack = next(p for p in engine.registry.packs if p.name == "media_pack")
    assert pack.error is None, pack.error
    prompt = {
        "1": {"class_type": "MediaRamp", "inputs": {"frames": 5}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "CreateVideo", "inputs": {"images": ["2", 0], "fps": 24.0}},
        "4": {"class_type": "MediaDescribe", "inputs": {"video": ["3", 0]}},
        "5": {"class_type": "MediaDescribe", "inputs": {"video": ["1", 0]}},
    }
    result = engine.run(prompt)
    assert result.status == "success", result.errors
    assert result.value("2", 2) == 12.0 and tuple(result.value("2", 0).shape) == (5, 16, 16, 3)
    assert result.outputs["4"] == {"text": ["VideoFromComponents 5x16x16@24.0"]}
    assert result.outputs["5"] == {"text": ["VideoFromComponents 5x16x16@12.0"]}


def test_pack_saves_with_comfyui_enums_and_reads_the_file_back(engine: Engine, tmp_path: Path) -> None:
    pytest.importorskip("av")
    target = tmp_path / "ramp.mp4"
    result = engine.run({"1": {"class_type": "MediaRamp", "inputs": {"frames": 6}},
                         "2": {"class_type": "MediaSave", "inputs": {"video": ["1", 0], "path": str(target)}}})
    assert result.status == "success", result.errors
    assert target.is_file() and result.outputs["2"]["text"][0].startswith("6 ")
