"""Audio sync: clicks at known times become cuts (± one frame), sentences become shots, the
film carries the audio and subtitles; the onset and beat detectors on synthetic signals."""

import json

import av
import numpy as np
import pytest
import torch

from nodeloom.ops.audio_timing import board_from_cuts, parse_times, snap_cuts
from nodeloom.ops.onsets import detect_beats, detect_onsets
from nodeloom.ops.subtitle_render import burn_subtitles
from nodeloom.ops.subtitles import Segment
from tests.nodes.conftest import run_prompt

RATE = 22050
CLICKS = [0.62, 1.37, 2.05, 2.91, 3.58]
FPS = 24.0


def _clicks(times, seconds=4.4, rate=RATE, seed=0):
    rng = np.random.default_rng(seed)
    wave = rng.standard_normal(int(seconds * rate)).astype(np.float32) * 0.002  # a quiet noise floor
    for t in times:
        i = int(t * rate)
        n = int(0.004 * rate)
        wave[i:i + n] += np.hanning(2 * n)[n:] * rng.choice([-1.0, 1.0], n) * 0.8
    return wave


def _audio(wave, rate=RATE):
    return {"waveform": torch.from_numpy(np.stack([wave, wave]))[None], "sample_rate": rate}


def test_onsets_find_the_clicks_to_the_millisecond():
    found = detect_onsets(_clicks(CLICKS), RATE)
    assert found == pytest.approx(CLICKS, abs=0.003)


def test_beats_follow_a_steady_pulse():
    period = 0.5  # 120 BPM
    times = [0.25 + period * i for i in range(16)]
    beats, bpm = detect_beats(_clicks(times, seconds=8.4), RATE)
    assert bpm == pytest.approx(120, rel=0.05)
    assert beats == pytest.approx(times, abs=0.003)


def test_silence_has_no_onsets_or_beats():
    silent = np.zeros(RATE * 2, np.float32)
    assert detect_onsets(silent, RATE) == []
    assert detect_beats(silent, RATE) == ([], 0.0)


def test_clicks_become_cuts_within_one_frame(vision_engine):
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "clicks"}},
              "2": {"class_type": "AudioStoryboard", "inputs": {
                  "audio": ["1", 0], "mode": "beats", "fps": FPS, "beats_per_shot": 1, "snap_to_beats": True,
                  "snap_window": 0.25, "style": "", "columns": 3, "script": "A drum.\nA cymbal."}}}
    result = run_prompt(vision_engine, prompt, {"clicks": _audio(_clicks(CLICKS))}, sinks=[["2", 6], ["2", 4], ["2", 0]])
    assert result.ok, result.errors
    cuts = parse_times(result.value("2", 6))
    assert len(cuts) == len(CLICKS)
    assert all(abs(c - t) <= 1 / FPS for c, t in zip(cuts, CLICKS))
    assert result.value("2", 4) == round(4.4 * FPS)  # the film is as long as the audio
    board = result.value("2", 0)
    assert [s.text for s in board.shots[:3]] == ["A drum.", "A cymbal.", "A drum."]


def _sentence_film(tmp_key):
    segs = [Segment(0.3, 1.3, "The city wakes at dawn."), Segment(1.4, 2.8, "Mara walks down the street."),
            Segment(2.95, 4.2, "She reaches for the door.")]
    return segs, {
        "1": {"class_type": "TestTensor", "inputs": {"key": f"{tmp_key}-audio"}},
        "2": {"class_type": "TestTensor", "inputs": {"key": f"{tmp_key}-segs"}},
        "3": {"class_type": "AudioStoryboard", "inputs": {
            "audio": ["1", 0], "segments": ["2", 0], "mode": "sentence", "fps": FPS, "beats_per_shot": 4,
            "snap_to_beats": True, "snap_window": 0.2, "style": "", "columns": 3}},
        "4": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": ["3", 4], "color": 3355443}},
        "5": {"class_type": "SubtitlesBurnIn", "inputs": {"images": ["4", 0], "segments": ["2", 0], "fps": FPS,
                                                           "font_size": 0, "position": "bottom", "start_time": 0.0}},
        "6": {"class_type": "FilmAssemble", "inputs": {"images": ["5", 0], "shot_frames": ["3", 4], "fps": FPS,
                                                        "crossfade_frames": 0, "transitions": "", "anchor_frames": 4,
                                                        "max_side": 64, "audio": ["1", 0]}},
        "7": {"class_type": "SaveVideo", "inputs": {"video": ["6", 0], "filename_prefix": "video/narrated",
                                                     "format": "mp4", "codec": "h264"}},
    }


def test_a_shot_per_sentence_cut_on_beats_with_audio_and_subtitles_in_the_mp4(vision_engine):
    segs, prompt = _sentence_film("film")
    prompt["8"] = {"class_type": "StoryboardShots", "inputs": {"storyboard": ["3", 0]}}
    prompt["6"]["inputs"]["shot_frames"] = ["8", 3]
    wave = _clicks([1.45, 2.9], seconds=4.4)  # a beat 50 ms after the second sentence starts, one 50 ms before the third
    result = run_prompt(vision_engine, prompt, {"film-audio": _audio(wave), "film-segs": segs},
                        sinks=[["3", 6], ["5", 0], ["8", 0]])
    assert result.ok, result.errors
    assert parse_times(result.value("3", 6)) == pytest.approx([1.45, 2.9], abs=1 / FPS)
    prompts = result.value("8", 0)
    assert len(prompts) == 3 and all(s.text.rstrip(".") in p for s, p in zip(segs, prompts))
    frames = result.value("5", 0)
    assert frames[int(0.8 * FPS)].std() > 0.01 and frames[0].std() < 1e-6  # text shows only while spoken
    saved = result.outputs["7"]["images"][0]
    path = vision_engine.paths.output_dir / saved["subfolder"] / saved["filename"]
    with av.open(str(path)) as container:
        kinds = {s.type for s in container.streams}
        assert kinds == {"video", "audio"}
        assert container.duration / 1e6 == pytest.approx(4.4, abs=0.1)
        assert container.streams.video[0].frames == round(4.4 * FPS)


def test_snap_moves_cuts_only_within_the_window():
    assert snap_cuts([1.0, 2.0, 3.0], [1.1, 2.5, 3.05], 0.2) == [1.1, 2.0, 3.05]
    assert snap_cuts([1.0, 1.05], [1.02], 0.2) == [1.02]  # two cuts on one beat make one


def test_board_lengths_add_up_to_the_audio_on_frames():
    board = board_from_cuts([0.51, 1.26, 2.01], 3.0, ["A", "B", "C", "D"], fps=24.0)
    frames = [s.frames(24.0) for s in board.shots]
    assert sum(frames) == 72 and frames == [12, 18, 18, 24]


def test_bad_beats_text_names_the_input():
    with pytest.raises(ValueError, match="`beats`"):
        parse_times("1.0, soon")


def test_burn_in_draws_only_while_a_segment_is_active():
    frames = np.zeros((10, 40, 80, 3), np.float32)
    out = burn_subtitles(frames, [Segment(0.2, 0.5, "Hi there")], fps=10.0)
    assert out[:2].max() == 0 and out[2:5].max() > 0.5 and out[5:].max() == 0
    assert frames.max() == 0  # the input is untouched
