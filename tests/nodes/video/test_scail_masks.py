"""SCAIL2ColoredMask: SAM3 tracks (bit-packed masks) rendered in identity colours, ordered and
selected as ComfyUI does, backgrounds per mode, a plain MASK reference, and the engine run."""

from __future__ import annotations

import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.nodes.video.scail_masks import SCAIL2ColoredMask
from nodeloom.ops.scail_masks import SCAIL_PALETTE, pack_masks, unpack_masks
from tests.nodes.conftest import run_prompt

BLUE, RED, GREEN = (torch.tensor(c) for c in SCAIL_PALETTE[:3])


def _track(frames=2, size=(8, 16), boxes=(), orig=None):
    """A SAM3_TRACK_DATA with one object per ``(first_frame, x0, x1, y0, y1)`` box."""
    masks = torch.zeros(frames, len(boxes), *size, dtype=torch.bool)
    for i, (first, x0, x1, y0, y1) in enumerate(boxes):
        masks[first:, i, y0:y1, x0:x1] = True
    return {"packed_masks": pack_masks(masks), "orig_size": orig or size, "n_frames": frames,
            "scores": [0.9 - 0.1 * i for i in range(len(boxes))]}


def _run(track, **kw):
    args = {"object_indices": "", "sort_by": "left_to_right", "replacement_mode": False, **kw}
    return SCAIL2ColoredMask.execute(track, **args)


def test_pack_and_unpack_are_inverse_with_the_lowest_bit_leftmost():
    masks = torch.rand(3, 2, 4, 16, generator=torch.Generator().manual_seed(0)) > 0.5
    packed = pack_masks(masks)
    assert packed.shape == (3, 2, 4, 2) and packed.dtype == torch.uint8
    assert torch.equal(unpack_masks(packed), masks)
    one = torch.zeros(1, 8, dtype=torch.bool)
    one[0, 0] = True
    assert pack_masks(one).tolist() == [[1]]


def test_identities_get_palette_colours_left_to_right_on_black():
    # object 0 on the right, object 1 on the left, both from frame 0
    track = _track(boxes=[(0, 10, 14, 2, 6), (0, 1, 4, 2, 6)])
    pose, reference = _run(track)
    assert pose.shape == (2, 8, 16, 3)
    assert torch.equal(pose[0, 3, 2], BLUE) and torch.equal(pose[0, 3, 12], RED)  # the leftmost is blue
    assert torch.equal(pose[0, 7, 7], torch.zeros(3))  # animation mode: black background
    assert reference.shape == (1, 8, 16, 3) and bool((reference == 1).all())  # no reference: plain white
    pose_none, _ = _run(track, sort_by="none")
    assert torch.equal(pose_none[0, 3, 12], BLUE)  # SAM3's order kept


def test_earlier_appearance_wins_and_area_ordering():
    # object 0 small and appearing at frame 1; object 1 big, from frame 0
    track = _track(frames=3, boxes=[(1, 0, 2, 0, 2), (0, 8, 16, 0, 8)])
    pose, _ = _run(track)
    assert torch.equal(pose[2, 4, 12], BLUE) and torch.equal(pose[2, 1, 1], RED)
    both_now = _track(boxes=[(0, 0, 2, 0, 2), (0, 8, 16, 0, 8)])
    pose, _ = _run(both_now, sort_by="area")
    assert torch.equal(pose[0, 4, 12], BLUE) and torch.equal(pose[0, 1, 1], RED)  # the biggest first


def test_object_indices_pick_after_ordering_and_skip_nonsense():
    track = _track(boxes=[(0, 10, 14, 2, 6), (0, 1, 4, 2, 6), (0, 6, 8, 2, 6)])
    pose, _ = _run(track, object_indices="2, x, 0, 9")  # in left-to-right order: 0 = left, 2 = right
    assert torch.equal(pose[0, 3, 12], BLUE) and torch.equal(pose[0, 3, 2], RED)
    assert torch.equal(pose[0, 3, 7], torch.zeros(3))  # the middle object was not picked
    empty, _ = _run(track, object_indices="7")
    assert empty.shape == (2, 8, 16, 3) and bool((empty == 0).all())


def test_replacement_mode_swaps_backgrounds_and_masks_scale_to_the_video():
    track = _track(boxes=[(0, 0, 8, 0, 4)], orig=(16, 32))  # masks at half the video size
    ref = _track(frames=1, boxes=[(0, 8, 16, 0, 8)])
    pose, reference = _run(track, replacement_mode=True, ref_track_data=ref)
    assert pose.shape == (2, 16, 32, 3)
    assert torch.equal(pose[0, 7, 15], BLUE) and torch.equal(pose[0, 8, 16], torch.ones(3))  # white background
    assert reference.shape == (1, 8, 16, 3)
    assert torch.equal(reference[0, 4, 12], BLUE) and torch.equal(reference[0, 4, 2], torch.zeros(3))


def test_a_plain_mask_reference_is_one_identity():
    mask = torch.zeros(2, 4, 4)
    mask[:, 1:3, 1:3] = 0.8
    _, reference = _run(_track(boxes=[(0, 0, 8, 0, 4)]), ref_track_data=mask)
    assert reference.shape == (2, 4, 4, 3)
    assert torch.equal(reference[1, 1, 1], BLUE) and torch.equal(reference[1, 0, 0], torch.ones(3))


def test_bad_track_data_is_refused():
    with pytest.raises(ValidationError, match="`driving_track_data` must be SAM3_TRACK_DATA"):
        _run({"masks": torch.zeros(1)})
    with pytest.raises(ValidationError, match="`packed_masks` must be uint8"):
        _run({"packed_masks": torch.zeros(2, 8), "orig_size": (8, 16)})
    with pytest.raises(ValidationError, match="`sort_by` must be one of"):
        _run(_track(boxes=[(0, 0, 8, 0, 4)]), sort_by="height")


def test_through_the_engine_with_the_template_widgets(image_engine):
    """video_wan21_scail2_character_replacement: ["", "left_to_right", true]."""
    info = image_engine.object_info("SCAIL2ColoredMask")["SCAIL2ColoredMask"]
    assert info["display_name"] == "Create SCAIL-2 Colored Mask" and info["experimental"] is True
    assert info["input_order"] == {"required": ["driving_track_data", "object_indices", "sort_by", "replacement_mode"],
                                   "optional": ["ref_track_data"]}
    assert info["input"]["optional"]["ref_track_data"][0] == "SAM3_TRACK_DATA,MASK"
    assert info["output_name"] == ["pose_video_mask", "reference_image_mask"]
    prompt = {
        "drv": {"class_type": "TestTensor", "inputs": {"key": "driving"}},
        "ref": {"class_type": "TestTensor", "inputs": {"key": "reference"}},
        "197": {"class_type": "SCAIL2ColoredMask",
                "inputs": {"driving_track_data": ["drv", 0], "ref_track_data": ["ref", 0], "object_indices": "",
                           "sort_by": "left_to_right", "replacement_mode": True}},
    }
    tensors = {"driving": _track(boxes=[(0, 1, 4, 2, 6)]), "reference": _track(frames=1, boxes=[(0, 1, 4, 2, 6)])}
    result = run_prompt(image_engine, prompt, tensors, sinks=[["197", 0], ["197", 1]])
    assert result.ok, result.errors
    assert torch.equal(result.value("197", 0)[0, 3, 2], BLUE) and torch.equal(result.value("197", 1)[0, 3, 2], BLUE)
