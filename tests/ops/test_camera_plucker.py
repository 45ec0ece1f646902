"""Plücker ray embeddings of the Wan Fun camera presets: poses, rays and the four-frame fold."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nodeloom.ops.camera_plucker import WAN_CAMERA_MOTIONS, fold_frames, motion_poses, plucker_rays


def test_static_camera_has_unit_directions_and_no_moment():
    rays = plucker_rays(motion_poses("Static", 5), 32, 16)
    assert rays.shape == (5, 16, 32, 6)
    assert torch.allclose(rays[..., :3], torch.zeros_like(rays[..., :3]))
    assert torch.allclose(rays[..., 3:].norm(dim=-1), torch.ones(5, 16, 32), atol=1e-6)
    assert torch.equal(rays[0], rays[4])  # nothing moves


def test_rays_through_the_principal_point_look_straight_ahead():
    rays = plucker_rays(motion_poses("Static", 1), 16, 16, cx=0.5, cy=0.5)
    centre = rays[0, 7:9, 7:9, 3:].mean(dim=(0, 1))
    centre = centre / centre.norm()  # the four pixels around the centre, symmetric about the axis
    assert torch.allclose(centre, torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    assert rays[0, 0, 0, 3] < 0 < rays[0, 0, -1, 3]  # left pixels look left, right ones right


def test_pan_right_moves_the_origin_along_x_in_proportion():
    poses = motion_poses("Pan Right", 9, speed=2.0)
    assert np.allclose(poses[:, :3, :3], np.eye(3))
    assert np.allclose(poses[:, 0, 3], np.arange(9) / 9 * 2.0 * 1.5) and np.allclose(poses[:, 1:3, 3], 0)
    rays = plucker_rays(poses, 16, 16)
    origin = torch.tensor([poses[8, 0, 3], 0.0, 0.0], dtype=torch.float32)
    assert torch.allclose(rays[8, ..., :3], torch.linalg.cross(origin.expand(16, 16, 3), rays[8, ..., 3:]), atol=1e-5)


def test_roll_turns_about_the_view_axis():
    poses = motion_poses("ClockWise (CW)", 4)
    angle = 3 / 4 * np.pi / 3
    assert np.allclose(poses[3, :3, :3], [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])


def test_fold_counts_the_first_frame_four_times_and_groups_channels():
    rays = torch.arange(9 * 2 * 2 * 6, dtype=torch.float32).reshape(9, 2, 2, 6)
    folded = fold_frames(rays)
    assert folded.shape == (1, 24, 3, 2, 2)
    for c in range(6):
        for j in range(4):
            assert torch.equal(folded[0, 4 * c + j, 0], rays[0, ..., c])  # latent frame 0: frame 0 four times
            assert torch.equal(folded[0, 4 * c + j, 2], rays[5 + j, ..., c])  # latent frame 2: frames 5..8


def test_bad_presets_and_lengths_are_named():
    with pytest.raises(ValueError, match="`camera_pose` must be one of"):
        motion_poses("Dolly Zoom", 5)
    with pytest.raises(ValueError, match="4k \\+ 1"):
        fold_frames(torch.zeros(6, 2, 2, 6))
    assert len(WAN_CAMERA_MOTIONS) == 9


def test_path_poses_are_the_cameras_that_render_the_path():
    """Projecting the still (a card one focal length away) through each pose gives exactly the
    renderer's homography for that frame: 2D and 3D moves, off-centre pivots and turns together."""
    from nodeloom.ops.camera import CameraPath, focal_length, frame_matrices
    from nodeloom.ops.camera_plucker import path_poses

    width, height = 64, 48
    path = CameraPath.static(3).with_values(
        x=[0, 5, -3], y=[0, 2, 4], zoom=[1, 1.3, 0.8], angle=[0, 10, -20], pivot_x=[0.5, 0.3, 0.7],
        pivot_y=[0.5, 0.6, 0.2], pan=[0, 5, -4], tilt=[0, 3, 2], roll=[0, 7, -5], cam_x=[0, 4, -6],
        cam_y=[0, -3, 2], dolly=[0, 10, -20])
    poses, homographies = path_poses(path, width, height, scale=2.0), frame_matrices(path, width, height)
    f0, centre = focal_length(width, 60.0), np.array([(width - 1) / 2, (height - 1) / 2])
    pixels = np.array([[3.0, 4.0], [50.0, 10.0], [20.0, 40.0], [60.0, 45.0]])
    card = np.c_[pixels - centre, np.full(len(pixels), f0)]
    for pose, homography in zip(poses, homographies):
        seen = (card - pose[:3, 3] / 2.0 * f0) @ pose[:3, :3]  # world → camera: Rᵀ(X − C)
        projected = seen[:, :2] / seen[:, 2:] * f0 + centre
        mapped = np.c_[pixels, np.ones(len(pixels))] @ homography.T
        assert np.allclose(projected, mapped[:, :2] / mapped[:, 2:], atol=1e-9)


def test_path_poses_stretch_over_the_clip_and_check_their_inputs():
    from nodeloom.ops.camera import CameraPath
    from nodeloom.ops.camera_plucker import path_poses

    path = CameraPath.static(5).with_values(dolly=[0, 5, 10, 15, 20])
    poses = path_poses(path, 32, 32, frames=9)
    assert np.allclose(poses[:, 2, 3], np.linspace(0, 0.2, 9)) and np.allclose(poses[:, :3, :3], np.eye(3))
    with pytest.raises(ValueError, match="`length` must be at least 1"):
        path_poses(path, 32, 32, frames=0)
    with pytest.raises(ValueError, match="`scale` must be 0 or more"):
        path_poses(path, 32, 32, scale=-0.5)
