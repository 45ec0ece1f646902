"""WanDancerPadKeyframesList: keyframes spread over padded segments (positions, padding counts,
masks), audio cut to match, list outputs through the engine."""

from __future__ import annotations

import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.nodes.video.dance_keyframes import WanDancerPadKeyframesList
from nodeloom.ops.dance_keyframes import keyframe_positions
from tests.nodes.conftest import run_prompt


def _numbered(count, size=4):
    """Frame k filled with (k + 1) / 100, so every output frame says which keyframe it holds."""
    return (torch.arange(1, count + 1, dtype=torch.float32) / 100).view(-1, 1, 1, 1).expand(count, size, size, 3).clone()


def _which(frames):
    return [round(float(f[0, 0, 0]) * 100) - 1 for f in frames]


def test_one_segment_with_as_many_keyframes_is_all_keyframes():
    frames, masks, audio = WanDancerPadKeyframesList.execute(_numbered(9), 9, 1)
    assert len(frames) == len(masks) == len(audio) == 1 and audio == [None]
    assert _which(frames[0]) == list(range(9)) and bool(masks[0].eq(1).all())


def test_two_segments_share_the_boundary_keyframe_and_pad_between():
    frames, masks, _ = WanDancerPadKeyframesList.execute(_numbered(5), 9, 2)
    # keyframes 0..2 fill the first segment at frames 0, 4, 8; keyframes 2..4 the second
    assert _which(frames[0]) == [0, -1, -1, -1, 1, -1, -1, -1, 2]
    assert _which(frames[1]) == [2, -1, -1, -1, 3, -1, -1, -1, 4]
    for mask in masks:
        assert mask.shape == (9, 4, 4)
        assert mask[:, 0, 0].tolist() == [1, 0, 0, 0, 1, 0, 0, 0, 1]
        assert int(mask[:, 0, 0].sum()) == 3  # 3 keyframes, 6 padded frames per segment
    assert float(frames[0][1].abs().sum()) == 0.0  # padding is black


def test_positions_when_keyframes_do_not_divide_evenly():
    placed = keyframe_positions(4, 7, 2)  # u = 0, 1/3, 2/3, 1 over two halves
    assert placed == [[(0, 0), (1, 4)], [(2, 2), (3, 6)]]
    assert keyframe_positions(1, 5, 3) == [[(0, 0)], [], []]


def test_audio_is_cut_into_consecutive_segments():
    wave = torch.arange(10, dtype=torch.float32).view(1, 1, 10).repeat(1, 2, 1)
    audio = {"waveform": wave, "sample_rate": 16000}
    _, _, parts = WanDancerPadKeyframesList.execute(_numbered(3), 5, 3, audio=audio)
    assert [p["waveform"].shape[-1] for p in parts] == [3, 4, 3]
    assert torch.equal(torch.cat([p["waveform"] for p in parts], dim=-1), wave)
    assert all(p["sample_rate"] == 16000 for p in parts)


def test_bad_input_is_refused():
    with pytest.raises(ValidationError, match="`images` must be an IMAGE"):
        WanDancerPadKeyframesList.execute(torch.zeros(4, 4, 3), 9, 1)
    with pytest.raises(ValidationError, match="`audio` must be an AUDIO"):
        WanDancerPadKeyframesList.execute(_numbered(3), 9, 1, audio={"samples": 1})


def test_template_values_through_the_engine(image_engine):
    """video_wan_dancer: segment_length 149 (here 13) and num_segments 2; the lists reach the next
    node one segment at a time."""
    info = image_engine.object_info("WanDancerPadKeyframesList")["WanDancerPadKeyframesList"]
    assert info["input_order"] == {"required": ["images", "segment_length", "num_segments"], "optional": ["audio"]}
    assert info["input"]["required"]["segment_length"][1]["default"] == 149
    assert info["output"] == ["IMAGE", "MASK", "AUDIO"] and info["output_is_list"] == [True, True, True]
    audio = {"waveform": torch.zeros(1, 1, 800), "sample_rate": 8000}
    prompt = {
        "img": {"class_type": "TestTensor", "inputs": {"key": "frames"}},
        "aud": {"class_type": "TestTensor", "inputs": {"key": "audio"}},
        "670": {"class_type": "WanDancerPadKeyframesList",
                "inputs": {"images": ["img", 0], "audio": ["aud", 0], "segment_length": 13, "num_segments": 2}},
    }
    result = run_prompt(image_engine, prompt, {"frames": _numbered(13), "audio": audio},
                        sinks=[["670", 0], ["670", 1], ["670", 2]])
    assert result.ok, result.errors
    frames, masks, parts = result.value("670", 0), result.value("670", 1), result.value("670", 2)
    assert len(frames) == 2 and frames[0].shape == (13, 4, 4, 3)
    assert [int(m[:, 0, 0].sum()) for m in masks] == [7, 7]
    assert [p["waveform"].shape[-1] for p in parts] == [400, 400]
