"""The video pack through the engine: the example workflow, loaders, camera, storyboard, drift."""

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from nodeloom import Engine
from nodeloom.errors import ValidationError
from nodeloom.core.context import activate_services
from nodeloom.paths import FolderPaths
from nodeloom.services import Services
from nodeloom.nodes.video import NODE_CLASS_MAPPINGS
from nodeloom.ops.video_io import write_video

EXAMPLE = Path(__file__).parents[3] / "examples" / "workflows" / "video_astronaut_zoom_pan.json"


@pytest.fixture
def engine(tmp_path):
    with Engine(base_dir=tmp_path) as eng:
        yield eng


def _probe(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = sum(1 for _ in c.decode(s))
        return frames, s.codec_context.width, s.codec_context.height, float(s.average_rate)


def test_example_workflow_writes_a_playable_mp4_and_gif(engine, tmp_path):
    result = engine.run(json.loads(EXAMPLE.read_text()))
    assert result.status == "success", result.errors
    mp4 = result.outputs["4"]["gifs"][0]
    gif = result.outputs["6"]["gifs"][0]
    assert mp4["format"] == "video/h264-mp4" and mp4["type"] == "output" and mp4["frame_rate"] == 24
    assert result.outputs["4"]["images"][0]["filename"] == mp4["filename"]
    out = tmp_path / "output"
    assert _probe(out / mp4["filename"]) == (72, 512, 512, 24.0)  # 3 s at 24 fps
    frames, w, h, _ = _probe(out / gif["filename"])
    assert (frames, w, h) == (72, 256, 256)
    assert (out / mp4["workflow"]).is_file()  # first frame with the workflow
    saved, files = result.value("4")
    assert saved is True and files[-1].endswith(mp4["filename"])


def test_example_is_a_zoom_and_a_pan():
    prompt = json.loads(EXAMPLE.read_text())
    move = NODE_CLASS_MAPPINGS["SemanticCamera"].execute(**prompt["2"]["inputs"])[0]
    path = move.build(512, 512)
    assert path.frames == 72 and path.zoom[-1] > 1.3 and path.cam_x[-1] > 50


def test_load_video_from_the_input_folder(engine, tmp_path):
    frames = np.random.default_rng(0).random((10, 32, 48, 3)).astype(np.float32)
    (tmp_path / "input").mkdir(exist_ok=True)
    write_video(frames, tmp_path / "input" / "clip.mkv", fps=10, format="video/ffv1-mkv")
    prompt = {
        "1": {"class_type": "VHS_LoadVideo", "inputs": {"video": "clip.mkv", "force_rate": 0, "custom_width": 0,
                                                         "custom_height": 0, "frame_load_cap": 4,
                                                         "skip_first_frames": 1, "select_every_nth": 2}},
        "3": {"class_type": "VHS_VideoCombine", "inputs": {"images": ["1", 0], "frame_rate": 5, "loop_count": 0,
                                                           "filename_prefix": "sub/again", "format": "image/webp",
                                                           "pingpong": True, "save_output": False}},
    }
    result = engine.run(prompt)
    assert result.status == "success", result.errors
    images = result.value("1", 0)
    assert tuple(images.shape) == (4, 32, 48, 3) and images.dtype == torch.float32
    assert np.abs(images.numpy() - frames[[1, 3, 5, 7]]).max() < 2 / 255
    assert result.value("1", 1) == 4 and result.value("1", 2) is None
    info = NODE_CLASS_MAPPINGS["VHS_VideoInfo"].execute(video_info=result.value("1", 3))
    assert info[0] == pytest.approx(10.0) and info[1] == 10 and info[6] == 4 and info[5] == pytest.approx(5.0)
    ui = result.outputs["3"]["gifs"][0]
    assert ui["type"] == "temp" and ui["subfolder"] == "sub" and ui["filename"] == "again_00001.webp"
    assert (tmp_path / "temp" / "sub" / "again_00001.webp").is_file()


def test_missing_video_fails_validation(engine):
    prompt = {"1": {"class_type": "VHS_LoadVideo", "inputs": {"video": "nope.mp4", "force_rate": 0, "custom_width": 0,
                                                              "custom_height": 0, "frame_load_cap": 0,
                                                              "skip_first_frames": 0, "select_every_nth": 1}},
              "2": {"class_type": "VHS_VideoCombine", "inputs": {"images": ["1", 0], "frame_rate": 8, "loop_count": 0,
                                                                 "filename_prefix": "x", "format": "image/gif",
                                                                 "pingpong": False, "save_output": True}}}
    with pytest.raises(ValidationError) as info:
        engine.run(prompt)
    assert "1" in info.value.node_errors


def test_parallel_saves_never_share_a_counter(engine, tmp_path):
    prompt = {"1": {"class_type": "LoadSkimageSample", "inputs": {"name": "camera"}}}
    for i in range(2, 5):
        prompt[str(i)] = {"class_type": "VHS_VideoCombine",
                          "inputs": {"images": ["1", 0], "frame_rate": 8, "loop_count": i, "filename_prefix": "same",
                                     "format": "image/gif", "pingpong": False, "save_output": True}}
    result = engine.run(prompt)
    assert result.status == "success", result.errors
    names = {result.outputs[str(i)]["gifs"][0]["filename"] for i in range(2, 5)}
    assert len(names) == 3


def test_load_video_path_stays_inside_the_engine_folders(tmp_path):
    services = Services(FolderPaths(tmp_path))
    with activate_services(services), pytest.raises(ValidationError, match="outside the input/output/temp folders"):
        NODE_CLASS_MAPPINGS["VHS_LoadVideoPath"].execute(video="/etc/hostname")


def test_camera_nodes_render_and_combine(tmp_path):
    nodes = NODE_CLASS_MAPPINGS
    with activate_services(Services(FolderPaths(tmp_path))):
        image = nodes["LoadSkimageSample"].execute(name="coffee")[0][:, ::8, ::8]
        sched = nodes["CameraSchedule"].execute(frames=6, translation_x="0:(2)", zoom="0:(1.0), 5:(1.05)")[0]
        semantic = nodes["SemanticCamera"].execute(frames=6, preset="orbit left", easing="linear")[0]
        bez = nodes["CameraBezierPath"].execute(frames=6, points="0,0; 10,0; 20,10")[0]
        both = nodes["CameraCombine"].execute(camera_a=sched, camera_b=semantic, mode="together")[0]
        seq = nodes["CameraCombine"].execute(camera_a=both, camera_b=bez, mode="sequence")[0]
        frames = nodes["RenderCameraMove"].execute(image=image, camera=seq, width=40, height=30)[0]
        stills = torch.cat([image, 1 - image])
        fades = nodes["RenderCameraMove"].execute(image=stills, camera=bez, keyframes="0, 3", crossfade=1)[0]
    plot, text = nodes["CameraMovePlot"].execute(camera=seq, width=64, height=64)
    fields = json.loads(text)["fields"]
    assert plot.ndim == 4 and len(fields["zoom"]) == 12 and fields["x"][5] == pytest.approx(10.0)
    assert tuple(frames.shape) == (12, 30, 40, 3)
    assert tuple(fades.shape) == (6, 50, 75, 3)
    assert torch.allclose(fades[0], image[0], atol=1e-4)
    with pytest.raises(ValidationError, match="position"):
        nodes["CameraSchedule"].execute(frames=6, zoom="0:(1.0")


def test_storyboard_nodes(tmp_path):
    nodes = NODE_CLASS_MAPPINGS
    script = "A vast desert at noon.\nHe walks toward us.\n[ECU, 1s] His eyes narrow."
    board, text, sheet, camera, total, prompts = nodes["Storyboard"].execute(script=script, fps=12)
    assert [s.size for s in board.shots] == ["EWS", "WS", "ECU"]
    assert total == 24 + 24 + 12 and camera.frames == total
    assert sheet.ndim == 4 and sheet.shape[0] == 1 and len(prompts.splitlines()) == 3
    again = nodes["StoryboardFromJSON"].execute(json=text)
    assert again[1] == text
    move, frames, prompt = nodes["StoryboardCamera"].execute(storyboard=board, shot=3)
    assert frames == 12 and prompt.startswith("extreme close-up")
    custom = nodes["StoryboardContactSheet"].execute(storyboard=board, images=torch.ones(3, 16, 16, 3))[0]
    assert custom.shape[-1] == 3
    with pytest.raises(ValidationError, match="`shot` must be within 1..3"):
        nodes["StoryboardCamera"].execute(storyboard=board, shot=4)


def test_drift_nodes_measure_and_fix(tmp_path):
    nodes = NODE_CLASS_MAPPINGS
    rng = np.random.default_rng(0)
    base = torch.from_numpy(rng.random((1, 24, 24, 3)).astype(np.float32)).repeat(6, 1, 1, 1) * 0.8
    base[3] = (base[3] * 1.25).clamp(0, 1)
    plot, report, flicker, de, warp = nodes["DriftMetrics"].execute(images=base, warping_error=False)
    data = json.loads(report)
    assert [s["start"] for s in data["flagged"]["luma_jump"]] == [3]
    assert plot.ndim == 4 and 0 < flicker < 1 and warp == 0.0
    fixed = nodes["Deflicker"].execute(images=base, size=3)[0]
    assert json.loads(nodes["DriftMetrics"].execute(images=fixed, warping_error=False)[1])["flagged"]["luma_jump"] == []
    anchored = nodes["ColorAnchor"].execute(images=base, reference=base[:1])[0]
    assert nodes["DriftMetrics"].execute(images=anchored, warping_error=False)[3] < de
    smooth = nodes["FlowSmooth"].execute(images=base)[0]
    assert smooth.shape == base.shape and not torch.equal(base, base * 0)


def test_ui_workflow_with_named_widget_values_runs(engine, tmp_path):
    """VideoHelperSuite saves widgets by name, with extra preview entries and older names."""
    from nodeloom.workflows.files import _input_types
    from nodeloom.core.workflow_ui import to_api

    (tmp_path / "input").mkdir(exist_ok=True)
    write_video(np.random.default_rng(1).random((20, 40, 32, 3)).astype(np.float32), tmp_path / "input" / "in.webm",
                fps=16, format="video/webm")
    ui = {
        "last_node_id": 2, "last_link_id": 1, "version": 0.4, "groups": [], "config": {}, "extra": {},
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
        "nodes": [
            {"id": 1, "type": "VHS_LoadVideo", "pos": [0, 0], "size": [200, 300], "flags": {}, "order": 0, "mode": 0,
             "inputs": [], "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1], "slot_index": 0}],
             "properties": {}, "widgets_values": {
                 "video": "in.webm", "force_rate": 8, "custom_width": 0, "custom_height": 0, "frame_load_cap": 0,
                 "skip_first_frames": 1, "select_every_nth": 1, "videopreview": {"hidden": False}}},
            {"id": 2, "type": "VHS_VideoCombine", "pos": [300, 0], "size": [200, 300], "flags": {}, "order": 1,
             "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": 1}], "outputs": [],
             "properties": {}, "widgets_values": {
                 "frame_rate": 8, "loop_count": 0, "filename_prefix": "old", "format": "video/h264-mp4",
                 "pingpong": False, "save_image": True, "crf": 20, "videopreview": {"hidden": False}}},
        ],
    }
    result = engine.run(to_api(ui, _input_types(engine), engine.registry.display_name))
    assert result.status == "success", result.errors
    assert tuple(result.value("1", 0).shape) == (9, 40, 32, 3)  # 1.25 s at 8 fps = 10, minus 1 skipped
    assert result.outputs["2"]["gifs"][0]["filename"] == "old_00001.mp4"
