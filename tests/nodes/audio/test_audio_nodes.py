"""ComfyUI's core AUDIO nodes: files written and read back, waveform arithmetic, bad input."""

from __future__ import annotations

import json
import math

import av
import pytest
import torch

from nodeloom.core.context import activate_services
from nodeloom.errors import ValidationError
from nodeloom.nodes.audio import NODE_CLASS_MAPPINGS as AUDIO_NODES
from nodeloom.ops.audio import load_audio, resample, save_audio
from nodeloom.ops.video_io import write_video
from tests.nodes.conftest import run_prompt


def _tone(seconds: float, rate: int = 44100, channels: int = 2, hz: float = 440.0) -> dict:
    t = torch.arange(int(round(seconds * rate))) / rate
    wave = torch.stack([0.4 * torch.sin(2 * math.pi * hz * (c + 1) * t) for c in range(channels)])
    return {"waveform": wave[None], "sample_rate": rate}


def _files(engine, ui):
    return [engine.services.paths.directory(f["type"]) / f["subfolder"] / f["filename"] for f in ui["audio"]]


def test_save_nodes_write_files_that_read_back(image_engine):
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "tone"}},
              "2": {"class_type": "SaveAudio", "inputs": {"audio": ["1", 0], "filename_prefix": "audio/t"}},
              "3": {"class_type": "SaveAudioMP3", "inputs": {"audio": ["1", 0], "filename_prefix": "audio/t",
                                                             "quality": "128k"}},
              "4": {"class_type": "SaveAudioOpus", "inputs": {"audio": ["1", 0], "filename_prefix": "audio/t",
                                                              "quality": "64k"}},
              "5": {"class_type": "SaveAudioAdvanced", "inputs": {"audio": ["1", 0], "filename_prefix": "audio/adv",
                                                                  "format": "mp3", "format.quality": "320k"}},
              "6": {"class_type": "PreviewAudio", "inputs": {"audio": ["1", 0]}}}
    result = run_prompt(image_engine, prompt, {"tone": _tone(1.0)})
    assert result.status == "success", result.errors
    expect = {"2": ("flac", 44100), "3": ("mp3", 44100), "4": ("opus", 48000), "5": ("mp3", 44100), "6": ("flac", 44100)}
    for node, (ext, rate) in expect.items():
        (path,) = _files(image_engine, result.outputs[node])
        assert path.suffix == f".{ext}" and path.name.endswith(f"_.{ext}")
        audio = load_audio(path)
        assert audio["sample_rate"] == rate and audio["waveform"].shape[1] == 2
        assert audio["waveform"].shape[-1] == pytest.approx(rate, rel=0.05)
    assert result.outputs["6"]["audio"][0]["type"] == "temp"
    with av.open(str(_files(image_engine, result.outputs["2"])[0])) as c:
        assert json.loads(c.metadata["prompt"])["2"]["class_type"] == "SaveAudio"
    flac = load_audio(_files(image_engine, result.outputs["2"])[0])["waveform"]
    assert (flac - _tone(1.0)["waveform"]).abs().max() < 1e-3  # lossless
    assert result.value("5")["sample_rate"] == 44100  # Advanced passes the audio on


def test_load_audio_from_audio_and_video_files(image_engine):
    input_dir = image_engine.services.paths.input_dir
    input_dir.mkdir(parents=True, exist_ok=True)
    save_audio(_tone(0.5, 22050, 1), input_dir / "voice.flac", "flac")
    frames = torch.full((6, 16, 16, 3), 0.5).numpy()
    write_video(frames, input_dir / "talk.mp4", fps=12, audio=_tone(0.5))
    write_video(frames, input_dir / "mute.mp4", fps=12)
    with activate_services(image_engine.services):
        choices = AUDIO_NODES["LoadAudio"].INPUT_TYPES()["required"]["audio"]
    assert {"voice.flac", "talk.mp4"} <= set(choices[0]) and choices[1]["audio_upload"] is True
    prompt = {"1": {"class_type": "LoadAudio", "inputs": {"audio": "voice.flac"}},
              "2": {"class_type": "LoadAudio", "inputs": {"audio": "talk.mp4"}}}
    result = run_prompt(image_engine, prompt, sinks=[["1", 0], ["2", 0]])
    assert result.status == "success", result.errors
    voice, talk = result.value("1"), result.value("2")
    assert voice["sample_rate"] == 22050 and tuple(voice["waveform"].shape) == (1, 1, 11025)
    assert talk["waveform"].shape[1] == 2 and talk["waveform"].shape[-1] >= 22050
    bad = run_prompt(image_engine, {"1": {"class_type": "LoadAudio", "inputs": {"audio": "mute.mp4"}}}, sinks=[["1", 0]])
    assert bad.status == "error" and "mute.mp4` has no audio track" in str(bad.errors)


def test_trim_concat_merge_split_volume_empty():
    n = AUDIO_NODES
    tone = _tone(2.0)
    part = n["TrimAudioDuration"].execute(tone, start_index=0.5, duration=1.0)[0]
    assert torch.equal(part["waveform"], tone["waveform"][..., 22050:66150])
    assert n["TrimAudioDuration"].execute(tone, start_index=-0.25, duration=60.0)[0]["waveform"].shape[-1] == 11025
    with pytest.raises(ValidationError, match="select nothing"):
        n["TrimAudioDuration"].execute(tone, start_index=0.5, duration=0.0)
    mono = _tone(1.0, 22050, 1)
    joined = n["AudioConcat"].execute(tone, mono, "before")[0]
    assert joined["sample_rate"] == 44100 and tuple(joined["waveform"].shape) == (1, 2, 44100 * 3)
    assert torch.equal(joined["waveform"][..., 44100:], tone["waveform"])  # audio1 after audio2
    mixed = n["AudioMerge"].execute(tone, _tone(0.5), "add")[0]["waveform"]
    assert mixed.shape == tone["waveform"].shape and mixed.abs().max() <= 1.0
    assert torch.allclose(mixed[..., 30000:], tone["waveform"][..., 30000:])  # padded with silence
    left, right = n["SplitAudioChannels"].execute(tone)
    assert torch.equal(left["waveform"][:, 0], tone["waveform"][:, 0]) and right["waveform"].shape[1] == 1
    with pytest.raises(ValidationError, match="stereo"):
        n["SplitAudioChannels"].execute(mono)
    louder = n["AudioAdjustVolume"].execute(tone, volume=6)[0]["waveform"]
    assert torch.allclose(louder, tone["waveform"] * 10 ** 0.3)
    empty = n["EmptyAudio"].execute(duration=1.5, sample_rate=16000, channels=1)[0]
    assert tuple(empty["waveform"].shape) == (1, 1, 24000) and not empty["waveform"].any()


def test_resample_keeps_the_pitch():
    tone = _tone(1.0, 48000, 1, hz=1000.0)
    down = resample(tone["waveform"], 48000, 16000)[0, 0]
    spectrum = torch.fft.rfft(down).abs()
    assert down.shape[-1] == pytest.approx(16000, abs=32) and abs(int(spectrum.argmax()) - 1000) <= 2


def test_bad_audio_gets_clear_errors(tmp_path):
    with pytest.raises(ValidationError, match="`audio` must be an AUDIO dict"):
        AUDIO_NODES["TrimAudioDuration"].execute(torch.zeros(3), 0.0, 1.0)
    with pytest.raises(ValidationError, match="`format` must be one of"):
        save_audio(_tone(0.1), tmp_path / "x.aac", "aac")
    with pytest.raises(ValidationError, match="`quality` for mp3"):
        save_audio(_tone(0.1), tmp_path / "x.mp3", "mp3", "64k")
    (tmp_path / "junk.wav").write_bytes(b"RIFF nope")
    with pytest.raises(ValidationError, match="junk.wav"):
        load_audio(tmp_path / "junk.wav")
