"""CameraToWanEmbedding: our camera moves (semantic, Deforum schedule, storyboard shots) as the Wan
Fun camera models' Plücker embedding, against WanCameraEmbedding's presets.

Scale convention under test: a pose unit is ``1 / scale`` of the starting distance to the still,
the still sitting one focal length (of the move's ``fov``) in front of the camera. Where our move
and a preset describe the same poses the embeddings agree to 1e-5 (float32 rays); where they only
share a direction (an eased, exponential zoom against the preset's linear one) the embeddings'
cosine similarity is at least 0.99.
"""

from __future__ import annotations

import math

import pytest
import torch

from nodeloom.nodes.diffusion.wan_camera_nodes import CameraToWanEmbedding, WanCameraEmbedding
from nodeloom.nodes.video.camera_nodes import CameraSchedule, SemanticCamera
from nodeloom.ops.camera import focal_length

W, H, F = 32, 32, 9


def _preset(name: str, speed: float = 1.0) -> torch.Tensor:
    return WanCameraEmbedding.execute(name, W, H, F, speed=speed)[0]


def _ours(move, scale: float = 1.0, length: int = F) -> torch.Tensor:
    return CameraToWanEmbedding.execute(move, W, H, length, scale=scale)[0]


def _frames(embedding: torch.Tensor) -> torch.Tensor:
    """The folded ``[1, 4·6, T, H, W]`` (channel-major) back to ``[4·T, 6, H, W]`` rays a frame."""
    rays = embedding[0].reshape(6, 4, -1, H, W).permute(2, 1, 0, 3, 4)
    return rays.reshape(-1, 6, H, W)


def _same_way(ours: torch.Tensor, preset: torch.Tensor) -> bool:
    """Every moving frame's moments (``o × d``, the translation's trace) point the preset's way:
    per-frame cosine ≥ 0.9999, and the frames that stand still in one stand still in the other."""
    a, b = _frames(ours)[:, :3].flatten(1), _frames(preset)[:, :3].flatten(1)
    moving = b.norm(dim=1) > 1e-6
    if not torch.equal(moving, a.norm(dim=1) > 1e-6):
        return False
    return bool((torch.nn.functional.cosine_similarity(a[moving], b[moving], dim=1) >= 0.9999).all())


def test_static_move_is_the_static_preset():
    (move,) = SemanticCamera.execute(F, preset="static")
    ours, width, height, length = CameraToWanEmbedding.execute(move, W, H, F)
    assert (width, height, length) == (W, H, F) and ours.shape == (1, 24, 3, H, W)
    assert torch.equal(ours, _preset("Static"))


def test_sideways_move_left_equals_pan_left_at_the_same_speed():
    """WanCameraEmbedding's ``Pan Left`` moves the camera sideways (a truck): our ``horizontal`` axis.
    At frame i the preset is −1.5·speed·i/F units left; ours −0.03·W·5·i/(F−1) pixels at the still,
    ÷ the focal length, × scale."""
    (move,) = SemanticCamera.execute(F, horizontal=-5.0, easing="linear")
    scale = 1.5 * focal_length(W, 60.0) * (F - 1) / (F * 0.03 * W * 5.0)
    assert (_ours(move, scale) - _preset("Pan Left")).abs().max() < 1e-5
    (right,) = SemanticCamera.execute(F, horizontal=5.0, easing="linear")
    assert (_ours(right, 2 * scale) - _preset("Pan Right", speed=2.0)).abs().max() < 1e-5


def test_dolly_forward_equals_zoom_in_at_the_same_speed():
    """A Deforum ``translation_z`` of c % a frame reaches c·i % of the distance at frame i; the
    preset ``Zoom In`` 3·speed·i/F units: equal with scale = 300·speed / (F·c)."""
    (move,) = CameraSchedule.execute(F, translation_z="0:(2.5)")
    assert (_ours(move, 300.0 / (F * 2.5)) - _preset("Zoom In")).abs().max() < 1e-5
    (back,) = CameraSchedule.execute(F, translation_z="0:(-2.5)")
    assert (_ours(back, 150.0 / (F * 2.5)) - _preset("Zoom Out", speed=0.5)).abs().max() < 1e-5


def test_semantic_zoom_in_points_the_way_of_zoom_in():
    """The semantic ``zoom in`` (eased, ×√2) moves straight forward like ``Zoom In``, only with a
    different profile over the frames: the same direction every frame, not ``Zoom Out``'s."""
    (move,) = SemanticCamera.execute(F, preset="zoom in")
    ours = _ours(move)
    assert _same_way(ours, _preset("Zoom In")) and not _same_way(ours, _preset("Zoom Out"))
    (out,) = SemanticCamera.execute(F, preset="zoom out")
    assert _same_way(_ours(out), _preset("Zoom Out"))
    assert torch.equal(_frames(ours)[:, 3:], _frames(_preset("Zoom In"))[:, 3:])  # no turn: same directions


def test_semantic_pan_left_turns_the_rays_left():
    """Our ``pan left`` preset turns the camera (a yaw of −10°), where Wan's ``Pan Left`` slides it:
    the rays' origin stays put (no moment) and the centre ray swings left by the yaw."""
    (move,) = SemanticCamera.execute(F, preset="pan left")
    rays = _frames(_ours(move))
    assert rays[:, :3].abs().max() < 1e-6
    centre = rays[-1, 3:, H // 2 - 1: H // 2 + 1, W // 2 - 1: W // 2 + 1].mean(dim=(1, 2))
    assert math.degrees(math.atan2(float(centre[0]), float(centre[2]))) == pytest.approx(-10.0, abs=0.5)


def test_roll_follows_the_clockwise_preset():
    """A Deforum ``rotation_3d_z`` (roll clockwise) of 60·speed/F degrees a frame is ``ClockWise (CW)``."""
    (move,) = CameraSchedule.execute(F, rotation_3d_z=f"0:({60.0 / F})")
    assert (_ours(move) - _preset("ClockWise (CW)")).abs().max() < 1e-5
    (content,) = CameraSchedule.execute(F, angle=f"0:({60.0 / F})")  # content turned the other way
    assert (_ours(content) - _preset("ClockWise (CW)")).abs().max() < 1e-5


def test_a_longer_move_is_stretched_over_the_clip():
    (long_move,) = CameraSchedule.execute(4 * (F - 1) + 1, translation_z="0:(0.625)")
    (short_move,) = CameraSchedule.execute(F, translation_z="0:(2.5)")
    assert (_ours(long_move, 2.0) - _ours(short_move, 2.0)).abs().max() < 1e-5


def test_bad_inputs_say_what_was_expected():
    (move,) = SemanticCamera.execute(F, preset="zoom in")
    with pytest.raises(Exception, match="4k"):
        CameraToWanEmbedding.execute(move, W, H, 10)
    with pytest.raises(Exception, match="`camera` must be a camera move"):
        CameraToWanEmbedding.execute("zoom in", W, H, F)
    with pytest.raises(Exception, match="`fx` and `fy` must be above 0"):
        CameraToWanEmbedding.execute(move, W, H, F, fx=0.0)
    with pytest.raises(Exception, match="`scale` must be 0 or more"):
        CameraToWanEmbedding.execute(move, W, H, F, scale=-1.0)


def test_storyboard_push_in_reaches_a_zoom_in_embedding_through_the_graph(tmp_path):
    """Storyboard → Storyboard Shots → CameraToWanEmbedding on the Engine: the ``[push in]`` shot
    comes out as a forward move (the way of ``Zoom In``), the static shot as ``Static``."""
    from nodeloom import Engine

    script = "[WS, static, 1s] A quiet harbour at dawn.\n[CU, push in, 1s] She reaches for the door."
    prompt = {
        "1": {"class_type": "Storyboard", "inputs": {"script": script, "fps": 16.0, "default_duration": 1.0,
                                                     "style": "", "columns": 2}},
        "2": {"class_type": "StoryboardShots", "inputs": {"storyboard": ["1", 0]}},
        "3": {"class_type": "CameraToWanEmbedding", "inputs": {"camera": ["2", 2], "width": W, "height": H,
                                                               "length": 17, "scale": 10.0}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
    }
    with Engine(base_dir=tmp_path, models_dir=tmp_path, load_custom_nodes=False) as engine:
        result = engine.run(prompt)
    assert result.status == "success", result.errors
    static, push = result.value("3")
    zoom_in = WanCameraEmbedding.execute("Zoom In", W, H, 17)[0]
    assert torch.equal(static, WanCameraEmbedding.execute("Static", W, H, 17)[0])
    assert _same_way(push, zoom_in) and not torch.equal(push, zoom_in)
