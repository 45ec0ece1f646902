"""The script-to-film example end to end, and the film nodes on their own."""

from __future__ import annotations

import json
import math
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from nodeloom import Engine
from nodeloom.errors import ValidationError
from nodeloom.nodes.video import NODE_CLASS_MAPPINGS as NODES
from nodeloom.ops.storyboard import parse_script

EXAMPLE = Path(__file__).parents[3] / "examples" / "workflows" / "video_script_to_film.json"


@pytest.fixture(scope="module")
def films(tmp_path_factory):
    """The example run twice: as shipped, and with colour anchoring off."""
    out = {}
    with Engine(base_dir=tmp_path_factory.mktemp("film")) as engine:
        for name, strength in (("anchored", 1.0), ("plain", 0.0)):
            prompt = json.loads(EXAMPLE.read_text(encoding="utf-8"))
            prompt["13"]["inputs"]["anchor_strength"] = strength
            prompt["15"]["inputs"]["filename_prefix"] = f"video/{name}"
            result = engine.run(prompt)
            assert result.status == "success", result.errors
            out[name] = (engine.services.paths.output_dir, result)
    return out


def test_example_film_has_the_storyboard_shots_durations_and_transitions(films):
    folder, result = films["anchored"]
    prompt = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    board = parse_script(prompt["1"]["inputs"]["script"], fps=12)
    assert [(s.size, s.movement, s.duration) for s in board.shots] == [
        ("FS", "push in", 1.5), ("CU", "push in", 1.0), ("MS", "orbit", 2.0)]
    assert result.value("2", 3) == "18, 12, 24" and result.value("2", 4) == "0, 18, 30"
    prompts = result.value("2", 0)
    assert len(prompts) == 3 and "slow push-in" in prompts[0] and "camera orbits the subject" in prompts[2]
    saved = result.outputs["15"]["images"][0]
    with av.open(str(folder / saved["subfolder"] / saved["filename"])) as c:
        stream = c.streams.video[0]
        frames = sum(1 for _ in c.decode(stream))
        assert float(stream.average_rate) == 12.0 and (stream.codec_context.width, stream.codec_context.height) == (160, 96)
    assert frames == 18 + 12 + 24 - 4  # a cut, then a 4-frame cross-fade
    report = json.loads(result.value("14", 2))
    assert report["shot_starts"] == [0, 18, 26] and report["transitions"] == ["cut", "fade 4"]
    assert set(report["curves"]) >= {"warping_error", "flicker", "luma_jump", "delta_e"}
    assert len(report["curves"]["delta_e"]) == frames and "flagged" in report
    assert result.outputs["16"]["images"]  # the drift plot


def test_colour_anchoring_lowers_the_cross_shot_jump_in_the_film(films):
    anchored = json.loads(films["anchored"][1].value("14", 2))["cross_shot_delta_e"]
    plain = json.loads(films["plain"][1].value("14", 2))["cross_shot_delta_e"]
    assert len(anchored) == len(plain) == 2
    assert all(a < 0.5 * p for a, p in zip(anchored, plain)), (anchored, plain)
    notes = json.loads(films["anchored"][1].value("13", 2))["shots"]
    assert notes[1]["jump_after"] < notes[1]["jump_before"]


def test_frame_smoother_takes_a_list_of_clips():
    clips = [torch.full((4, 8, 8, 3), 0.3), torch.full((3, 8, 8, 3), 0.3) * torch.tensor([1.6, 1.0, 0.6])]
    images, lengths, notes = NODES["FrameSmoother"].execute(clips, shot_frames=[""], deflicker_size=[0])
    assert tuple(images.shape) == (7, 8, 8, 3) and lengths == "4, 3"
    assert json.loads(notes)["shots"][1]["jump_after"] < 1.0
    with pytest.raises(ValidationError, match="not both"):
        NODES["FrameSmoother"].execute(clips, shot_frames=["4, 3"])
    with pytest.raises(ValidationError, match="one frame size"):
        NODES["FrameSmoother"].execute([clips[0], torch.zeros(2, 4, 4, 3)], deflicker_size=[0])


def test_film_assemble_carries_an_audio_track(tmp_path):
    t = torch.arange(44100 * 2) / 44100
    audio = {"waveform": (0.3 * torch.sin(2 * math.pi * 330 * t)).repeat(2, 1)[None], "sample_rate": 44100}
    frames = torch.from_numpy(np.linspace(0.2, 0.8, 24, dtype=np.float32)[:, None, None, None].repeat(16, 1)
                              .repeat(16, 2).repeat(3, 3))
    video, plot, report = NODES["FilmAssemble"].execute(frames, shot_frames="12, 12", fps=12.0, crossfade_frames=2,
                                                        audio=audio, max_side=0)
    assert video.get_frame_count() == 22 and video.get_components().audio["sample_rate"] == 44100
    video.save_to(tmp_path / "film.mp4")
    with av.open(str(tmp_path / "film.mp4")) as c:
        assert len(c.streams.audio) == 1 and sum(1 for _ in c.decode(c.streams.video[0])) == 22
    assert plot.ndim == 4 and json.loads(report)["transitions"] == ["fade 2"]
