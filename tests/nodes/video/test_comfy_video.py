"""ComfyUI's core VIDEO nodes through the engine: files written and read back with PyAV."""

from __future__ import annotations

import io
import json
import math

import av
import numpy as np
import pytest
import torch
from PIL import Image

from nodeloom.errors import ValidationError
from nodeloom.ops.video_io import write_video
from nodeloom.ops.video_value import VideoComponents, VideoFromComponents, VideoFromFile
from tests.nodes.conftest import run_prompt


def _tone(seconds: float, rate: int = 44100, channels: int = 2) -> dict:
    t = torch.arange(int(seconds * rate)) / rate
    wave = torch.stack([0.3 * torch.sin(2 * math.pi * 440 * (c + 1) * t) for c in range(channels)])
    return {"waveform": wave[None], "sample_rate": rate}


def _clip(n: int = 12, h: int = 32, w: int = 48) -> torch.Tensor:
    """Smooth colour gradients that brighten over time (kind to 4:2:0 lossy codecs)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    still = torch.stack([x, y, 1 - x], dim=-1) * 0.6
    return (still[None] + torch.linspace(0, 0.4, n)[:, None, None, None]).contiguous()


def _probe(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(v))
        return {"frames": frames, "fps": float(v.average_rate), "size": (v.codec_context.width, v.codec_context.height),
                "audio": len(c.streams.audio), "tags": dict(c.metadata)}


def _out(engine, result, node):
    ui = result.outputs[node]["images"][0]
    return engine.services.paths.directory(ui["type"]) / ui["subfolder"] / ui["filename"]


def test_create_video_with_audio_saves_an_mp4_with_both_streams(image_engine):
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "frames"}},
              "2": {"class_type": "TestTensor", "inputs": {"key": "audio"}},
              "3": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 24.0, "audio": ["2", 0]}},
              "4": {"class_type": "SaveVideo", "inputs": {"video": ["3", 0], "filename_prefix": "video/test",
                                                          "format": "auto", "codec": "auto"}}}
    result = run_prompt(image_engine, prompt, {"frames": _clip(12), "audio": _tone(1.0)})
    assert result.status == "success", result.errors
    ui = result.outputs["4"]
    assert ui["animated"] == [True] and ui["images"][0]["subfolder"] == "video"
    assert ui["images"][0]["filename"].endswith("_.mp4")
    info = _probe(_out(image_engine, result, "4"))
    assert info["frames"] == 12 and info["fps"] == 24.0 and info["size"] == (48, 32) and info["audio"] == 1
    assert json.loads(info["tags"]["prompt"])["3"]["class_type"] == "CreateVideo"  # the workflow travels in the file


def test_load_video_is_lazy_and_components_round_trip(image_engine):
    input_dir = image_engine.services.paths.input_dir
    input_dir.mkdir(parents=True, exist_ok=True)
    VideoFromComponents(VideoComponents(_clip(10), 10, _tone(1.0))).save_to(input_dir / "round.mp4")
    prompt = {"1": {"class_type": "LoadVideo", "inputs": {"file": "round.mp4"}},
              "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
              "3": {"class_type": "VHS_VideoCombine", "inputs": {"images": ["2", 0], "audio": ["2", 1], "frame_rate": ["2", 2],
                                                                 "loop_count": 0, "filename_prefix": "vhs",
                                                                 "format": "video/h264-mp4", "pingpong": False,
                                                                 "save_output": True, "save_metadata": False}}}
    result = run_prompt(image_engine, prompt, sinks=[["1", 0]])
    assert result.status == "success", result.errors
    video = result.value("1")
    assert isinstance(video, VideoFromFile)
    assert video.get_dimensions() == (48, 32) and video.get_frame_count() == 10 and float(video.get_frame_rate()) == 10
    assert video.get_duration() == pytest.approx(1.0, abs=0.1) and "mp4" in video.get_container_format()
    images, audio, fps = result.value("2", 0), result.value("2", 1), result.value("2", 2)
    assert tuple(images.shape) == (10, 32, 48, 3) and fps == 10.0
    assert audio["sample_rate"] == 44100 and audio["waveform"].shape[:2] == (1, 2)
    assert (images - _clip(10)).abs().mean() < 0.03  # lossy H.264, same picture
    vhs = image_engine.services.paths.output_dir / result.outputs["3"]["gifs"][0]["filename"]
    assert _probe(vhs)["frames"] == 10 and _probe(vhs)["audio"] == 1


def test_vhs_loader_feeds_create_video(image_engine):
    input_dir = image_engine.services.paths.input_dir
    input_dir.mkdir(parents=True, exist_ok=True)
    write_video(_clip(8).numpy(), input_dir / "vhs.mkv", fps=8, format="video/ffv1-mkv")
    prompt = {"1": {"class_type": "VHS_LoadVideo", "inputs": {"video": "vhs.mkv", "force_rate": 0, "custom_width": 0,
                                                              "custom_height": 0, "frame_load_cap": 0,
                                                              "skip_first_frames": 0, "select_every_nth": 1}},
              "2": {"class_type": "VHS_VideoInfo", "inputs": {"video_info": ["1", 3]}},
              "3": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": ["2", 5]}},
              "4": {"class_type": "SaveVideo", "inputs": {"video": ["3", 0], "filename_prefix": "from_vhs",
                                                          "format": "mp4", "codec": "h264"}}}
    result = run_prompt(image_engine, prompt)
    assert result.status == "success", result.errors
    info = _probe(_out(image_engine, result, "4"))
    assert info["frames"] == 8 and info["fps"] == 8.0 and info["audio"] == 0


def test_video_slice_cuts_frames_and_audio():
    video = VideoFromComponents(VideoComponents(_clip(24), 12, _tone(2.0)))
    from nodeloom.nodes.video.comfy_video import VideoSlice

    part = VideoSlice.execute(video, start_time=0.5, duration=1.0)[0].get_components()
    assert part.images.shape[0] == 12 and torch.equal(part.images, _clip(24)[6:18])
    assert part.audio["waveform"].shape[-1] == 44100
    tail = VideoSlice.execute(video, start_time=-0.5, duration=0.0)[0]
    assert tail.get_frame_count() == 6
    assert VideoSlice.execute(video, start_time=1.5, duration=5.0)[0].get_frame_count() == 6  # what there is
    with pytest.raises(ValidationError, match="strict_duration"):
        VideoSlice.execute(video, start_time=1.5, duration=5.0, strict_duration=True)
    with pytest.raises(ValidationError, match="start_time"):
        VideoSlice.execute(video, start_time=3.0)


def test_remux_keeps_the_stream_and_adds_tags(tmp_path):
    VideoFromComponents(VideoComponents(_clip(6), 6)).save_to(tmp_path / "a.mp4", metadata={"prompt": {"x": 1}})
    buf = io.BytesIO()
    VideoFromFile(tmp_path / "a.mp4").save_to(buf, metadata={"workflow": {"y": 2}})
    copy = VideoFromFile(io.BytesIO(buf.getvalue()))
    assert copy.get_frame_count() == 6
    with av.open(io.BytesIO(buf.getvalue())) as c:
        assert json.loads(c.metadata["prompt"]) == {"x": 1} and json.loads(c.metadata["workflow"]) == {"y": 2}


def test_bad_video_input_gets_clear_errors(image_engine):
    input_dir = image_engine.services.paths.input_dir
    input_dir.mkdir(parents=True, exist_ok=True)
    (input_dir / "notes.mp4").write_text("this is not a video")
    from nodeloom.ops.audio import save_audio

    save_audio(_tone(0.5), input_dir / "voice.flac", "flac")
    with pytest.raises(ValidationError) as missing:
        run_prompt(image_engine, {"1": {"class_type": "LoadVideo", "inputs": {"file": "gone.mp4"}}}, sinks=[["1", 0]])
    assert "Invalid video file: gone.mp4" in json.dumps(missing.value.node_errors)
    prompt = {"1": {"class_type": "LoadVideo", "inputs": {"file": "notes.mp4"}}}
    result = run_prompt(image_engine, prompt, sinks=[["1", 0]])
    assert result.status == "error" and "notes.mp4" in str(result.errors) and "not a video" in str(result.errors)
    # audio without video: an MP4 holding only an audio track, through the engine
    with av.open(str(input_dir / "voice.mp4"), "w") as out:
        stream = out.add_stream("aac", rate=44100, layout="stereo")
        frame = av.AudioFrame.from_ndarray(_tone(0.5)["waveform"][0].numpy(), format="fltp", layout="stereo")
        frame.sample_rate = 44100
        for chunk in av.AudioResampler(format=stream.format.name, layout="stereo", rate=44100).resample(frame):
            out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
    audio_only = run_prompt(image_engine, {"1": {"class_type": "LoadVideo", "inputs": {"file": "voice.mp4"}}},
                            sinks=[["1", 0]])
    assert audio_only.status == "error" and "`voice.mp4` has no video stream" in str(audio_only.errors)
    with pytest.raises(ValidationError, match="no video stream"):
        VideoFromFile(input_dir / "voice.flac").get_dimensions()
    (input_dir / "empty.mp4").write_bytes(b"")
    with pytest.raises(ValidationError, match="`empty.mp4` is not a video"):
        VideoFromFile(input_dir / "empty.mp4").get_dimensions()
    from nodeloom.nodes.video.comfy_video import CreateVideo, GetVideoComponents

    with pytest.raises(ValidationError, match="at least one frame"):
        CreateVideo.execute(torch.zeros(0, 8, 8, 3), 24.0)
    with pytest.raises(ValidationError, match="`video` must be a VIDEO"):
        GetVideoComponents.execute(torch.zeros(1, 8, 8, 3))
    with pytest.raises(ValidationError, match="`audio`"):
        CreateVideo.execute(_clip(2), 24.0, audio={"waveform": torch.zeros(10)})


def test_animated_webp_and_png(image_engine):
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "frames"}},
              "2": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["1", 0], "filename_prefix": "anim",
                                                                 "fps": 8.0, "lossless": False, "quality": 80,
                                                                 "method": "fastest"}},
              "3": {"class_type": "SaveAnimatedPNG", "inputs": {"images": ["1", 0], "filename_prefix": "anim",
                                                                "fps": 8.0, "compress_level": 1}}}
    result = run_prompt(image_engine, prompt, {"frames": _clip(5)})
    assert result.status == "success", result.errors
    for node, ext in (("2", ".webp"), ("3", ".png")):
        path = _out(image_engine, result, node)
        assert path.suffix == ext and result.outputs[node]["animated"] == [True]
        with Image.open(path) as img:
            img.load()  # WebP frame timing is known once a frame is read
            assert img.n_frames == 5 and img.size == (48, 32) and img.info.get("duration") == 125
    with Image.open(_out(image_engine, result, "2")) as img:
        assert img.getexif()[0x0110].startswith("prompt:")
    assert b"comf" in _out(image_engine, result, "3").read_bytes()


def test_ui_workflow_with_the_templates_widget_values_runs(image_engine):
    """Widget values as the official templates store them: the upload widget's extra value,
    CreateVideo's fps, SaveVideo's three widgets and SaveAudioAdvanced's `format.quality`."""
    from nodeloom.workflows.files import _input_types
    from nodeloom.core.workflow_ui import to_api

    input_dir = image_engine.services.paths.input_dir
    input_dir.mkdir(parents=True, exist_ok=True)
    VideoFromComponents(VideoComponents(_clip(8), 8, _tone(1.0))).save_to(input_dir / "warrior.mp4")

    def node(i, kind, widgets, inputs=(), outputs=()):
        return {"id": i, "type": kind, "pos": [0, 0], "size": [200, 100], "flags": {}, "order": i, "mode": 0,
                "inputs": list(inputs), "outputs": list(outputs), "properties": {}, "widgets_values": widgets}

    ui = {"last_node_id": 5, "last_link_id": 4, "version": 0.4, "groups": [], "config": {}, "extra": {},
          "links": [[1, 1, 0, 2, 0, "VIDEO"], [2, 2, 0, 3, 0, "IMAGE"], [3, 3, 0, 4, 0, "VIDEO"], [4, 2, 1, 5, 0, "AUDIO"]],
          "nodes": [
              node(1, "LoadVideo", ["warrior.mp4", "image"], outputs=[{"name": "VIDEO", "type": "VIDEO", "links": [1]}]),
              node(2, "GetVideoComponents", None, [{"name": "video", "type": "VIDEO", "link": 1}],
                   [{"name": "images", "type": "IMAGE", "links": [2]}, {"name": "audio", "type": "AUDIO", "links": [4]},
                    {"name": "fps", "type": "FLOAT", "links": None}]),
              node(3, "CreateVideo", [16], [{"name": "images", "type": "IMAGE", "link": 2},
                                            {"name": "audio", "shape": 7, "type": "AUDIO", "link": None}],
                   [{"name": "VIDEO", "type": "VIDEO", "links": [3]}]),
              node(4, "SaveVideo", ["video/ComfyUI", "auto", "auto"], [{"name": "video", "type": "VIDEO", "link": 3}]),
              node(5, "SaveAudioAdvanced", ["audio/ui", "mp3", "V0"], [{"name": "audio", "type": "AUDIO", "link": 4}],
                   [{"name": "audio", "type": "AUDIO", "links": None}]),
          ]}
    prompt = to_api(ui, _input_types(image_engine), image_engine.registry.display_name)
    assert prompt["1"]["inputs"] == {"file": "warrior.mp4"} and prompt["3"]["inputs"]["fps"] == 16
    assert prompt["5"]["inputs"]["format.quality"] == "V0"
    result = image_engine.run(prompt)
    assert result.status == "success", result.errors
    info = _probe(_out(image_engine, result, "4"))
    assert info["frames"] == 8 and info["fps"] == 16.0 and info["audio"] == 0
    assert result.outputs["5"]["audio"][0]["filename"].endswith("_.mp3")


def test_values_answer_what_packs_call_with_comfyui_enums(tmp_path):
    from nodeloom.ops.video_value import VideoCodec, VideoContainer

    video = VideoFromComponents(VideoComponents(_clip(4), 8))
    assert video.get_dimensions() == (48, 32) and video.get_duration() == 0.5 and video.get_container_format() == "mp4"
    video.save_to(tmp_path / "e.mp4", format=VideoContainer.MP4, codec=VideoCodec.H264)
    assert VideoContainer.get_extension("auto") == "mp4" and VideoContainer.as_input() == ["auto", "mp4"]
    source = video.get_stream_source()
    with av.open(source) as c:
        assert c.streams.video[0].frames == 4
    with pytest.raises(ValidationError, match="`format` must be one of"):
        video.save_to(tmp_path / "x.webm", format="webm")
