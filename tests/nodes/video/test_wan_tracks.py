"""Wan-Move track nodes: coordinates parsed, tracks generated along paths, joined, and drawn where
they should be; the video_wanmove_480p template's track graph through the engine."""

from __future__ import annotations

import json

import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.nodes.video.wan_tracks import (
    GenerateTracks,
    WanMoveConcatTrack,
    WanMoveTracksFromCoords,
    WanMoveVisualizeTracks,
)
from nodeloom.ops.wan_tracks import TRACK_COLORS, parse_track_coords
from tests.nodes.conftest import run_prompt


def _coords(*tracks):
    return json.dumps([[{"x": x, "y": y} for x, y in track] for track in tracks])


def test_coords_become_frames_by_points_paths():
    tracks, length = WanMoveTracksFromCoords.execute(_coords([(1, 2), (3, 4), (5, 6)], [(10, 20), (30, 40), (50, 60)]))
    assert length == 3
    path = tracks["track_path"]
    assert path.shape == (3, 2, 2) and path.dtype == torch.float32
    assert path[1].tolist() == [[3.0, 4.0], [30.0, 40.0]]
    assert tracks["track_visibility"].dtype == torch.bool and bool(tracks["track_visibility"].all())


def test_one_bare_track_and_single_quotes_are_read():
    assert parse_track_coords("[{'x': 1, 'y': 2}, {'x': 3, 'y': 4}]") == [[(1.0, 2.0), (3.0, 4.0)]]


def test_mask_sets_visibility_per_frame():
    mask = torch.zeros(3, 4, 4)
    mask[0, 1, 1] = 1.0
    mask[2, 3, 0] = 0.5
    tracks, _ = WanMoveTracksFromCoords.execute(_coords([(0, 0)] * 3, [(1, 1)] * 3), track_mask=mask)
    assert tracks["track_visibility"].tolist() == [[True, True], [False, False], [True, True]]


@pytest.mark.parametrize("text, match", [
    ("not json", "not valid JSON"),
    ("[]", "non-empty"),
    ('[[{"x": 1}]]', "track 0 frame 0"),
    (_coords([(0, 0), (1, 1)], [(0, 0)]), "same number of frames"),
])
def test_bad_coordinates_are_refused(text, match):
    with pytest.raises(ValidationError, match=match):
        WanMoveTracksFromCoords.execute(text)


def test_mask_with_another_frame_count_is_refused():
    with pytest.raises(ValidationError, match="`track_mask` has 2 frames; the tracks have 3"):
        WanMoveTracksFromCoords.execute(_coords([(0, 0)] * 3), track_mask=torch.ones(2, 4, 4))


def test_straight_tracks_run_parallel_from_start_to_end():
    tracks, length = GenerateTracks.execute(100, 50, 0.0, 0.5, 1.0, 0.5, 11, 3, 0.1, False, 0.5, 0.5, "linear")
    path = tracks["track_path"]
    assert length == 11 and path.shape == (11, 3, 2)
    # the middle track follows the line y = 25 at constant speed, 10 px a frame
    assert torch.allclose(path[:, 1, 0], torch.arange(11, dtype=torch.float32) * 10, atol=1e-4)
    assert torch.allclose(path[:, 1, 1], torch.full((11,), 25.0))
    # neighbours sit 0.1 of the mean side (75 px) = 7.5 px across the motion, same x
    assert torch.allclose(path[:, 0, 1], torch.full((11,), 17.5)) and torch.allclose(path[:, 2, 1], torch.full((11,), 32.5))
    assert torch.allclose(path[:, 0, 0], path[:, 1, 0])


def test_tracks_without_motion_spread_along_x():
    tracks, _ = GenerateTracks.execute(64, 64, 0.5, 0.5, 0.5, 0.5, 3, 2, 0.25, False, 0.5, 0.5, "linear")
    assert tracks["track_path"][0].tolist() == [[24.0, 32.0], [40.0, 32.0]]


def test_easing_and_constant_timing():
    def xs(kind):
        t, _ = GenerateTracks.execute(100, 100, 0.0, 0.0, 1.0, 0.0, 5, 1, 0.0, False, 0.5, 0.5, kind)
        return t["track_path"][:, 0, 0].tolist()

    assert xs("linear") == pytest.approx([0, 25, 50, 75, 100])
    assert xs("ease_in") == pytest.approx([0, 6.25, 25, 56.25, 100])
    assert xs("ease_out") == pytest.approx([0, 43.75, 75, 93.75, 100])
    assert xs("ease_in_out")[2] == pytest.approx(50) and xs("ease_in_out")[1] < 25
    assert xs("constant") == pytest.approx([0, 0, 0, 0, 0])


def test_bezier_passes_through_the_curve_midpoint():
    tracks, _ = GenerateTracks.execute(200, 100, 0.0, 1.0, 1.0, 1.0, 3, 1, 0.0, True, 0.5, 0.0, "linear")
    # quadratic Bezier at u = 0.5: (p0 + 2 p1 + p2) / 4 = (0.5, 0.5) normalised
    assert tracks["track_path"][1, 0].tolist() == pytest.approx([100.0, 50.0])
    assert tracks["track_path"][0, 0].tolist() == pytest.approx([0.0, 100.0])


def test_generated_mask_visibility_and_bad_interpolation():
    mask = torch.zeros(4, 2, 2)
    mask[1:3] = 1.0
    tracks, _ = GenerateTracks.execute(64, 64, 0, 0, 1, 1, 4, 2, 0.1, False, 0.5, 0.5, "linear", track_mask=mask)
    assert tracks["track_visibility"][:, 0].tolist() == [False, True, True, False]
    with pytest.raises(ValidationError, match="`interpolation` must be one of"):
        GenerateTracks.execute(64, 64, 0, 0, 1, 1, 4, 2, 0.1, False, 0.5, 0.5, "bounce")


def test_concat_joins_points_and_checks_frames():
    a, _ = GenerateTracks.execute(64, 64, 0, 0, 1, 1, 5, 2, 0.1, False, 0.5, 0.5, "linear")
    b, _ = GenerateTracks.execute(64, 64, 1, 0, 0, 1, 5, 3, 0.1, False, 0.5, 0.5, "linear")
    (both,) = WanMoveConcatTrack.execute(a, b)
    assert both["track_path"].shape == (5, 5, 2) and both["track_visibility"].shape == (5, 5)
    assert torch.equal(both["track_path"][:, :2], a["track_path"]) and torch.equal(both["track_path"][:, 2:], b["track_path"])
    assert WanMoveConcatTrack.execute(a)[0] is a
    short, _ = GenerateTracks.execute(64, 64, 0, 0, 1, 1, 4, 1, 0.1, False, 0.5, 0.5, "linear")
    with pytest.raises(ValidationError, match="`tracks_1` has 5 frames and `tracks_2` 4"):
        WanMoveConcatTrack.execute(a, short)
    with pytest.raises(ValidationError, match="`tracks_2` must be TRACKS"):
        WanMoveConcatTrack.execute(a, {"track_path": torch.zeros(5, 2)})


def test_visualize_draws_dot_and_trail_where_the_point_is():
    path = torch.tensor([[[8.0, 16.0]], [[24.0, 16.0]], [[40.0, 16.0]]])
    tracks = {"track_path": path, "track_visibility": torch.tensor([[True], [True], [False]])}
    images = torch.full((1, 32, 48, 3), 0.5)
    (out,) = WanMoveVisualizeTracks.execute(images, 24, 3, 1.0, 2, tracks=tracks)
    assert out.shape == (3, 32, 48, 3)  # the single image repeated for each track frame
    color = torch.tensor(TRACK_COLORS[0])
    assert torch.allclose(out[0, 16, 8], color, atol=1e-3)      # the dot at frame 0
    assert torch.allclose(out[1, 16, 24], color, atol=1e-3)     # the dot at frame 1
    assert torch.allclose(out[0, 16, 24], torch.full((3,), 0.5))  # not yet there at frame 0
    assert torch.allclose(out[2], images[0])                    # invisible at frame 2: nothing drawn
    assert torch.allclose(out[1, 2, 2], torch.full((3,), 0.5))  # far away pixels untouched

    def share(pixel):  # how far a pixel moved from grey towards the track colour
        return float(((pixel - 0.5) / (color - 0.5))[2])

    # the trail between the two positions fades towards its older end
    assert 0.5 < share(out[1, 16, 19]) < 1.0 and 0.05 < share(out[1, 16, 11]) < share(out[1, 16, 19])
    (half,) = WanMoveVisualizeTracks.execute(images, 24, 3, 0.5, 2, tracks=tracks)
    assert torch.allclose(half[0, 16, 8], (color + 0.5) / 2, atol=1e-3)
    (short,) = WanMoveVisualizeTracks.execute(images, 1, 3, 1.0, 2, tracks={"track_path": path[:, :, :] * 0 + path[:1],
                                                                          "track_visibility": tracks["track_visibility"]})
    assert torch.allclose(short[1], short[0])  # a point that does not move leaves no trail


def test_visualize_passes_images_through_without_tracks_and_refuses_bad_images():
    images = torch.rand(2, 8, 8, 3)
    assert WanMoveVisualizeTracks.execute(images, 24, 12, 0.75, 16)[0] is images
    with pytest.raises(ValidationError, match="`images` must be an IMAGE"):
        WanMoveVisualizeTracks.execute(torch.rand(8, 8, 3), 24, 12, 0.75, 16, tracks=None)


def test_template_track_graph_runs(image_engine):
    """video_wanmove_480p: three GenerateTracks, two WanMoveConcatTrack, drawn by WanMoveVisualizeTracks
    (the template's widget values, at a smaller frame size)."""
    def generate(values):
        names = ["width", "height", "start_x", "start_y", "end_x", "end_y", "num_frames", "num_tracks",
                 "track_spread", "bezier", "mid_x", "mid_y", "interpolation"]
        return {"class_type": "GenerateTracks", "inputs": dict(zip(names, values, strict=True))}

    prompt = {
        "246": generate([72, 48, 0.12, 1, 0.55, 0.63, 9, 5, 0.012, True, 0.42, 0.96, "linear"]),
        "245": generate([72, 48, 0.48, 0.97, 0.96, 0.16, 9, 7, 0.017, True, 0.88, 0.72, "linear"]),
        "244": generate([72, 48, 0.6, 0.27, 0.22, 0.45, 9, 5, 0.007, True, 0.46, 0.44, "linear"]),
        "247": {"class_type": "WanMoveConcatTrack", "inputs": {"tracks_1": ["244", 0], "tracks_2": ["245", 0]}},
        "248": {"class_type": "WanMoveConcatTrack", "inputs": {"tracks_1": ["247", 0], "tracks_2": ["246", 0]}},
        "img": {"class_type": "TestTensor", "inputs": {"key": "start"}},
        "210": {"class_type": "WanMoveVisualizeTracks",
                "inputs": {"images": ["img", 0], "tracks": ["248", 0], "line_resolution": 24, "circle_size": 22,
                           "opacity": 0.9, "line_width": 8}},
    }
    result = run_prompt(image_engine, prompt, {"start": torch.zeros(1, 48, 72, 3)}, sinks=[["248", 0], ["210", 0]])
    assert result.ok, result.errors
    tracks = result.value("248", 0)
    assert tracks["track_path"].shape == (9, 17, 2)
    # the third generator's middle track starts at (0.12, 1) and ends at (0.55, 0.63), in pixels
    assert tracks["track_path"][0, 14].tolist() == pytest.approx([0.12 * 72, 48.0], abs=1e-3)
    assert tracks["track_path"][-1, 14].tolist() == pytest.approx([0.55 * 72, 0.63 * 48], abs=1e-3)
    drawn = result.value("210", 0)
    assert drawn.shape == (9, 48, 72, 3) and drawn.amax() > 0.5


def test_declarations_follow_comfyui(image_engine):
    info = image_engine.object_info()
    gen = info["GenerateTracks"]
    assert gen["display_name"] == "Generate Video Tracks" and gen["search_aliases"][0] == "motion paths"
    assert gen["input"]["required"]["width"][1]["step"] == 16
    assert gen["input_order"]["required"] == ["width", "height", "start_x", "start_y", "end_x", "end_y", "num_frames",
                                              "num_tracks", "track_spread", "bezier", "mid_x", "mid_y", "interpolation"]
    assert gen["input"]["required"]["interpolation"][0] == ["linear", "ease_in", "ease_out", "ease_in_out", "constant"]
    assert gen["output"] == ["TRACKS", "INT"] and gen["output_name"] == ["TRACKS", "track_length"]
    vis = info["WanMoveVisualizeTracks"]
    assert vis["input_order"]["required"] == ["images", "line_resolution", "circle_size", "opacity", "line_width"]
    assert vis["input"]["required"]["circle_size"][1]["advanced"] is True
    assert vis["category"] == "model/conditioning/video_models"
    assert [vis["input"]["required"][n][1]["default"] for n in vis["input_order"]["required"][1:]] == [24, 12, 0.75, 16]
    coords = info["WanMoveTracksFromCoords"]["input"]["optional"]["track_coords"][1]
    assert coords["forceInput"] is True and coords["default"] == "[]"
