"""Whisper Transcribe through the engine on a tiny random Whisper; SRT/VTT forms and segments."""

import numpy as np
import pytest
import torch

from nodeloom.ops.subtitles import Segment, chunk_bounds, clean_segments, parse_subtitles, sentence_segments, to_srt, to_vtt
from tests.nodes.conftest import run_prompt

SRT_CUE = r"\d+\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n"


def _speechlike(seconds: float, rate: int = 22050, seed: int = 0) -> dict:
    """Noise bursts with silent gaps every 4 s, in stereo (so mixing and resampling run)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    envelope = ((t % 4.0) < 3.0).astype(np.float32)
    wave = rng.standard_normal((1, 2, t.size)).astype(np.float32) * 0.2 * envelope
    return {"waveform": torch.from_numpy(wave), "sample_rate": rate}


def _prompt(key, **opts):
    inputs = {"whisper": ["1", 0], "audio": ["2", 0], "language": "en", "task": "transcribe", "chunk_seconds": 12.0,
              "sentences": False, "max_new_tokens": 24} | opts
    return {"1": {"class_type": "WhisperLoader", "inputs": {"model_name": "whisper-tiny-random"}},
            "2": {"class_type": "TestTensor", "inputs": {"key": key}},
            "3": {"class_type": "WhisperTranscribe", "inputs": inputs}}


def test_the_model_folder_is_listed(vision_engine):
    choices = vision_engine.object_info()["WhisperLoader"]["input"]["required"]["model_name"][0]
    assert "whisper-tiny-random" in choices


def test_long_audio_is_chunked_with_times_in_order_and_inside_the_audio(vision_engine):
    audio = _speechlike(30.0)
    result = run_prompt(vision_engine, _prompt("long"), {"long": audio}, sinks=[["3", i] for i in range(5)])
    assert result.ok, result.errors
    text, segments, srt, vtt, report = (result.value("3", i) for i in range(5))
    import json
    facts = json.loads(report)
    assert facts["windows"] == 3 and facts["duration"] == pytest.approx(30.0, abs=0.01)
    assert segments, "the random model produced no text"
    assert text == " ".join(s.text for s in segments)
    ends = 0.0
    for seg in segments:
        assert ends <= seg.start <= seg.end <= 30.0
        ends = seg.end
    assert parse_subtitles(srt) == [Segment(s.start, s.end, s.text) for s in segments]
    assert vtt.startswith("WEBVTT\n\n") and parse_subtitles(vtt) == parse_subtitles(srt)


def test_translate_and_auto_language_run(vision_engine):
    result = run_prompt(vision_engine, _prompt("short", language="auto", task="translate", chunk_seconds=30.0),
                        {"short": _speechlike(5.0, seed=1)}, sinks=[["3", 1]])
    assert result.ok, result.errors
    segs = result.value("3", 1)
    assert all(0.0 <= s.start <= s.end <= 5.0 for s in segs), segs


def test_a_language_the_model_lacks_is_an_error_naming_language(vision_engine):
    result = run_prompt(vision_engine, _prompt("ja", language="ja"), {"ja": _speechlike(3.0)}, sinks=[["3", 0]])
    assert not result.ok
    assert "`language`" in str(result.errors)


def test_save_subtitles_writes_a_valid_file(vision_engine):
    segs = [Segment(0.0, 1.5, "Hello there."), Segment(1.5, 3.25, "Second line.")]
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "segs"}},
              "2": {"class_type": "SaveSubtitles", "inputs": {"segments": ["1", 0], "filename_prefix": "subs/test",
                                                               "format": "vtt"}}}
    result = run_prompt(vision_engine, prompt, {"segs": segs}, sinks=[["2", 0]])
    assert result.ok, result.errors
    path = vision_engine.paths.output_dir / result.value("2")
    assert path.suffix == ".vtt"
    assert parse_subtitles(path.read_text()) == segs


def test_srt_text_has_numbered_cues():
    import re
    srt = to_srt([Segment(0.0, 1.0, "a"), Segment(61.5, 3725.042, "b")])
    assert re.fullmatch(f"({SRT_CUE}.+\n\n)+", srt)
    assert "00:01:01,500 --> 01:02:05,042" in srt
    assert "00:01:01.500 --> 01:02:05.042" in to_vtt(parse_subtitles(srt))


def test_clean_segments_clamps_and_orders():
    segs = clean_segments([Segment(2.0, 5.0, "a"), Segment(1.0, 9.0, "b"), Segment(3.0, 4.0, " "), Segment(-1, 2, "c")], 6.0)
    assert segs == [Segment(2.0, 5.0, "a"), Segment(5.0, 6.0, "b"), Segment(6.0, 6.0, "c")]


def test_sentences_are_split_and_joined_across_segments():
    segs = [Segment(0.0, 4.0, "One two. Three"), Segment(4.0, 6.0, "four! Five")]
    out = sentence_segments(segs)
    assert [s.text for s in out] == ["One two.", "Three four!", "Five"]
    assert out[0].start == 0.0 and 0.0 < out[0].end < out[1].end <= out[2].start + 1e-6 and out[2].end == 6.0


def test_chunks_cut_at_the_quiet_point():
    rate = 1000
    wave = np.ones(25 * rate, np.float32)
    wave[9300:9400] = 0.0  # a pause in the last 2 s of the first 10 s window
    bounds = chunk_bounds(wave, rate, 10.0)
    assert bounds[0][0] == 0 and bounds[-1][1] == wave.size
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert 9300 <= bounds[0][1] <= 9400
    assert all(b - a <= 10 * rate for a, b in bounds)


def test_window_times_are_offset_clamped_and_kept_in_order(models_dir, monkeypatch):
    """Each window's timestamps (here: one cue at 1..2 s and one running past the window) land
    on the whole audio's clock, clamped into their window."""
    from nodeloom.speech import whisper as w

    model = w.load_whisper(models_dir / "speech" / "whisper-tiny-random")
    begin = model.model.generation_config.no_timestamps_token_id + 1
    text = model.processor.tokenizer.convert_tokens_to_ids("h")
    ticks = lambda t: begin + int(t / 0.02)  # noqa: E731
    monkeypatch.setattr(w, "_generate", lambda *a: [ticks(1.0), text, ticks(2.0), ticks(2.0), text, ticks(29.0)])
    audio = {"waveform": torch.zeros(1, 1, 16000 * 25), "sample_rate": 16000}
    segments, facts = w.transcribe(model, audio, language="en", chunk_seconds=10.0)
    assert facts["windows"] == 3
    starts = [(s.start, s.end) for s in segments]
    assert starts[:2] == [(1.0, 2.0), (2.0, pytest.approx(10.0, abs=2.0))]
    cut = segments[1].end  # the first window ends at its quiet point; the second starts there
    assert starts[2] == (pytest.approx(cut + 1.0), pytest.approx(cut + 2.0))
    assert segments[-1].end == 25.0
