"""WanDancerPadKeyframesList: keyframes spread over padded 30 fps segments (positions, padding
counts, masks), audio cut per segment, list outputs through the engine."""

from __future__ import annotations

import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.nodes.video.dance_keyframes import WanDancerPadKeyframesList
from nodeloom.ops.dance_keyframes import keyframe_positions, total_frames_for
from tests.nodes.conftest import run_prompt


def _numbered(count, size=4):
    """Frame k filled with (k + 1) / 100, so every output frame says which keyframe it holds."""
    return (torch.arange(1, count + 1, dtype=torch.float32) / 100).view(-1, 1, 1, 1).expand(count, size, size, 3).clone()


def _which(frames):
    return [round(float(f[0, 0, 0]) * 100) - 1 for f in frames]


def _audio(seconds, rate=1000):
    return {"waveform": torch.arange(int(seconds * rate), dtype=torch.float32).view(1, 1, -1).repeat(1, 2, 1),
            "sample_rate": rate}


def test_total_frames_follow_the_audio_at_30_fps():
    # 9-frame segments last 0.3 s; a tail of up to 0.2 s starts no new segment
    assert total_frames_for(0.6, 9) == 18
    assert total_frames_for(0.5, 9) == 18 and total_frames_for(0.49, 9) == 9
    assert total_frames_for(0.2, 9) == 0


def test_two_segments_share_the_boundary_keyframe_and_pad_between():
    frames, masks, audio = WanDancerPadKeyframesList.execute(_numbered(5), 9, 2, _audio(0.6))
    # 5 keyframes over 18 frames, 3.6 apart: frames 0, 4 and 8 of each segment
    assert _which(frames[0]) == [0, -1, -1, -1, 1, -1, -1, -1, 2]
    assert _which(frames[1]) == [2, -1, -1, -1, 3, -1, -1, -1, 4]
    for mask in masks:
        assert mask.shape == (9, 4, 4)
        assert mask[:, 0, 0].tolist() == [1, 0, 0, 0, 1, 0, 0, 0, 1]  # 3 keyframes, 6 padded frames
    assert float(frames[0][1].abs().sum()) == 0.0  # padding is black
    # each segment gets its 0.3 s of audio
    assert [a["waveform"].shape[-1] for a in audio] == [300, 300]
    assert audio[1]["waveform"][0, 0, 0] == 300 and audio[1]["sample_rate"] == 1000


def test_segments_past_the_song_run_out_of_keyframes_and_audio():
    frames, masks, audio = WanDancerPadKeyframesList.execute(_numbered(5), 9, 3, _audio(0.6))
    assert _which(frames[2]) == [4] + [-1] * 8 and int(masks[2][:, 0, 0].sum()) == 1
    assert audio[2]["waveform"].shape[-1] == 0


def test_one_segment_keeps_comfyui_spacing():
    # 9 keyframes over 9 frames: the last keyframe slot lands on the final frame, one frame is padding
    assert keyframe_positions(9, 9, 0, 9) == [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (8, 7)]
    frames, masks, _ = WanDancerPadKeyframesList.execute(_numbered(9), 9, 1, _audio(0.4))
    assert _which(frames[0]) == [0, 1, 2, 3, 4, 5, 6, -1, 7]


def test_silent_audio_gives_empty_segments_and_bad_input_is_refused():
    frames, masks, _ = WanDancerPadKeyframesList.execute(_numbered(3), 9, 1, _audio(0.1))
    assert float(masks[0].sum()) == 0 and float(frames[0].sum()) == 0
    with pytest.raises(ValidationError, match="`images` must be an IMAGE"):
        WanDancerPadKeyframesList.execute(torch.zeros(4, 4, 3), 9, 1, _audio(0.6))
    with pytest.raises(ValidationError, match="`audio` must be an AUDIO"):
        WanDancerPadKeyframesList.execute(_numbered(3), 9, 1, {"samples": 1})


def test_template_values_through_the_engine(image_engine):
    """video_wan_dancer: segment_length 149 (here 13) and num_segments 2; the lists reach the next
    node one segment at a time."""
    info = image_engine.object_info("WanDancerPadKeyframesList")["WanDancerPadKeyframesList"]
    assert info["input_order"] == {"required": ["images", "segment_length", "num_segments", "audio"]}
    assert info["input"]["required"]["segment_length"][1]["default"] == 149 and info["category"] == "image/video"
    assert info["output"] == ["IMAGE", "MASK", "AUDIO"] and info["output_is_list"] == [True, True, True]
    prompt = {
        "img": {"class_type": "TestTensor", "inputs": {"key": "frames"}},
        "aud": {"class_type": "TestTensor", "inputs": {"key": "audio"}},
        "670": {"class_type": "WanDancerPadKeyframesList",
                "inputs": {"images": ["img", 0], "audio": ["aud", 0], "segment_length": 13, "num_segments": 2}},
    }
    result = run_prompt(image_engine, prompt, {"frames": _numbered(13), "audio": _audio(0.8, rate=8000)},
                        sinks=[["670", 0], ["670", 1], ["670", 2]])
    assert result.ok, result.errors
    frames, masks, parts = result.value("670", 0), result.value("670", 1), result.value("670", 2)
    assert len(frames) == 2 and frames[0].shape == (13, 4, 4, 3)
    # 13 keyframes over 26 frames, 2 apart: frames 0, 2, 4, 6, 8 and the last of each segment
    assert _which(frames[0])[:9:2] == [0, 1, 2, 3, 4] and _which(frames[0])[12] == 5
    assert _which(frames[1])[0] == 5 and _which(frames[1])[12] == 10
    assert [int(m[:, 0, 0].sum()) for m in masks] == [6, 6]
    assert [p["waveform"].shape[-1] for p in parts] == [3466, 2934]
