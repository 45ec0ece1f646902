"""The narration → film example runs end to end with tiny random Whisper and SD1 weights:
an MP4 with the narration's audio and length, and an SRT file beside it."""

import json
from pathlib import Path

import av
import numpy as np
import pytest

from nodeloom.ops.audio import save_audio
from nodeloom.ops.subtitles import parse_subtitles
from nodeloom.testing import tiny_sd

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "workflows" / "speech_narration_to_film.json"
SECONDS = 3.0


@pytest.fixture(scope="module")
def tiny_ckpt(models_dir):
    return tiny_sd.build_tiny_checkpoint(models_dir, "sd1")


def test_the_narration_example_makes_a_film_with_its_audio_and_subtitles(vision_engine, tiny_ckpt):
    rate = 16000
    t = np.arange(int(SECONDS * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 220 * t) * ((t % 1.0) < 0.6)).astype(np.float32)
    import torch
    save_audio({"waveform": torch.from_numpy(wave)[None, None], "sample_rate": rate},
               vision_engine.paths.input_dir / "narration.wav", "wav")
    prompt = json.loads(EXAMPLE.read_text())
    prompt["2"]["inputs"]["model_name"] = "whisper-tiny-random"
    prompt["3"]["inputs"]["max_new_tokens"] = 24
    prompt["7"]["inputs"]["ckpt_name"] = tiny_ckpt
    prompt["10"]["inputs"].update(width=64, height=64)
    prompt["11"]["inputs"]["steps"] = 1
    prompt["14"]["inputs"].update(width=64, height=48)
    result = vision_engine.run(prompt)
    assert result.ok, result.errors
    saved = result.outputs["17"]["images"][0]
    with av.open(str(vision_engine.paths.output_dir / saved["subfolder"] / saved["filename"])) as container:
        assert {s.type for s in container.streams} == {"video", "audio"}
        assert container.duration / 1e6 == pytest.approx(SECONDS, abs=0.15)
        assert container.streams.video[0].frames == round(SECONDS * 12)
    srt = result.outputs["18"]["subtitles"][0]
    cues = parse_subtitles((vision_engine.paths.output_dir / srt["subfolder"] / srt["filename"]).read_text())
    assert all(0 <= c.start <= c.end <= SECONDS for c in cues)
