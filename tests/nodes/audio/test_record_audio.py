"""RecordAudio: the recorder widget's uploaded file (an annotated input name) becomes AUDIO."""

from __future__ import annotations

import math

import torch

from nodeloom.nodes.audio import NODE_CLASS_MAPPINGS as AUDIO_NODES
from nodeloom.ops.audio import save_audio
from tests.nodes.conftest import run_prompt


def test_a_recording_in_the_input_folder_loads_as_audio(image_engine):
    folder = image_engine.services.paths.input_dir / "audio"
    folder.mkdir(parents=True, exist_ok=True)
    t = torch.arange(8000) / 16000
    tone = {"waveform": (0.3 * torch.sin(2 * math.pi * 330 * t))[None, None], "sample_rate": 16000}
    save_audio(tone, folder / "recording-7.wav", "wav")
    prompt = {"1": {"class_type": "RecordAudio", "inputs": {"audio": "audio/recording-7.wav [input]"}}}
    result = run_prompt(image_engine, prompt, sinks=[["1", 0]])
    assert result.status == "success", result.errors
    audio = result.value("1")
    assert audio["sample_rate"] == 16000 and tuple(audio["waveform"].shape) == (1, 1, 8000)
    assert (audio["waveform"] - tone["waveform"]).abs().max() < 1e-3
    info = image_engine.object_info("RecordAudio")["RecordAudio"]
    assert info["input"]["required"]["audio"][0] == "AUDIO_RECORD" and info["output"] == ["AUDIO"]
    assert info["category"] == "audio" and AUDIO_NODES["RecordAudio"].SCHEMA.display_name == "Record Audio"


def test_a_missing_recording_is_refused_by_name(image_engine):
    prompt = {"1": {"class_type": "RecordAudio", "inputs": {"audio": "audio/never-recorded.wav [input]"}},
              "sink": {"class_type": "TestSink", "inputs": {"value": ["1", 0]}}}
    checked = image_engine.validate(prompt)
    assert not checked.ok
    (error,) = checked.node_errors["1"]["errors"]
    assert "Invalid audio file: audio/never-recorded.wav [input]" in error["details"]
