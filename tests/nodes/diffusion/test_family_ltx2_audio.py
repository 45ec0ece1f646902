"""LTX-2's audio side end to end on tiny random weights: the audio VAE and vocoder read from an
LTX-2 checkpoint's ``audio_vae.``/``vocoder.`` keys by LTXVAudioVAELoader, LTXVEmptyLatentAudio's
length against LTX2Pipeline's count, LTXVAudioVAEDecode against the pipeline's decoding
(denormalise, audio VAE, vocoder) within 1e-4, the AUDIO muxed into an MP4 by CreateVideo +
SaveVideo and read back by PyAV, and the nodes' errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nodeloom.diffusion.ltx2_audio import LTX2AudioVae, audio_latent_frames, load_ltx2_audio
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion.ltx2_audio_nodes import LTXVAudioVAEDecode, LTXVEmptyLatentAudio
from nodeloom.testing.tiny_ltx2 import build_tiny_ltx2_audio
from tests.nodes.diffusion.family_helpers import engine_for, run_ok, run_served


@pytest.fixture(scope="module")
def ltx2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return root, build_tiny_ltx2_audio(root)


def _pipeline_decode(vae: torch.nn.Module, vocoder: torch.nn.Module, latent: torch.Tensor) -> torch.Tensor:
    """LTX2Pipeline's own steps after denoising: denormalise packed, unpack, decode, vocoder."""
    from diffusers import LTX2Pipeline

    packed = LTX2Pipeline._pack_audio_latents(latent)
    raw = LTX2Pipeline._denormalize_audio_latents(packed, vae.latents_mean, vae.latents_std)
    raw = LTX2Pipeline._unpack_audio_latents(raw, latent.shape[2], num_mel_bins=latent.shape[3])
    with torch.no_grad():
        return vocoder(vae.decode(raw, return_dict=False)[0])


def _workflow(ckpt: str, frames: int = 9, rate: float = 24.0) -> dict:
    return {
        "1": {"class_type": "LTXVAudioVAELoader", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "LTXVEmptyLatentAudio",
              "inputs": {"frames_number": frames, "frame_rate": rate, "batch_size": 1, "audio_vae": ["1", 0]}},
        "3": {"class_type": "LTXVAudioVAEDecode", "inputs": {"samples": ["2", 0], "audio_vae": ["1", 0]}},
        "4": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": frames, "color": 255}},
        "5": {"class_type": "CreateVideo", "inputs": {"images": ["4", 0], "fps": rate, "audio": ["3", 0]}},
        "6": {"class_type": "SaveVideo", "inputs": {"video": ["5", 0], "filename_prefix": "video/ltx2",
                                                    "format": "auto", "codec": "auto"}},
    }


def test_loader_reads_the_release_layout_and_decodes_as_the_pipeline(ltx2: tuple[Path, dict]) -> None:
    from safetensors.torch import load_file

    root, built = ltx2
    vae, vocoder = load_ltx2_audio(load_file(str(root / "checkpoints" / built["ckpt"])))
    assert vae.config.latent_channels == 8 and vocoder.config.hidden_channels == 32
    latent = torch.randn(1, 8, 6, 16, generator=torch.Generator().manual_seed(3))
    ours = LTX2AudioVae(vae, vocoder).decode(latent)
    ref = _pipeline_decode(built["audio_vae"], built["vocoder"], latent)
    assert ours["sample_rate"] == 24000
    assert ours["waveform"].shape == ref.shape and ref.shape[1] == 2
    assert (ours["waveform"] - ref).abs().max().item() <= 1e-4
    assert ours["waveform"].abs().max().item() > 0  # a real signal, not silence


def test_empty_latent_length_matches_the_pipeline_count(ltx2: tuple[Path, dict]) -> None:
    _, built = ltx2
    value = LTX2AudioVae(built["audio_vae"], built["vocoder"])
    for frames, rate in ((97, 25.0), (121, 24.0), (9, 24.0), (33, 30.0)):
        latent = LTXVEmptyLatentAudio.execute(frames, rate, 2, value)[0]
        # LTX2Pipeline: round(duration · sample_rate / hop / temporal ratio) latents
        expected = round(frames / rate * 16000 / 160 / 4.0)
        assert latent["samples"].shape == (2, 8, expected, 16) and latent["type"] == "audio"
        assert not latent["samples"].any()
    assert audio_latent_frames(121, 24.0, 16000, 160, 4) == 126


def test_audio_through_the_engine_muxes_into_the_mp4(ltx2: tuple[Path, dict], tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    root, built = ltx2
    with engine_for(tmp_path, root) as engine:
        result = run_ok(engine, _workflow(built["ckpt"]))
    saved = list((tmp_path / "output" / "video").glob("ltx2*.mp4"))
    assert len(saved) == 1, result
    with av.open(str(saved[0])) as clip:
        assert clip.streams.video[0].frames == 9
        audio = clip.streams.audio[0]
        assert audio.rate == 24000 and audio.channels == 2
        samples = sum(frame.samples for frame in clip.decode(audio))
    expected = round(9 / 24.0 * 100 / 4) * 4 * 160 * 24000 // 16000  # latents → mel frames → vocoder samples
    assert abs(samples - expected) <= 2048  # the encoder's frame padding


def test_audio_graph_through_a_live_server(ltx2: tuple[Path, dict], tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    root, built = ltx2
    entry = run_served(tmp_path, root, _workflow(built["ckpt"], frames=17, rate=25.0))
    files = entry["outputs"]["6"]["images"]
    assert len(files) == 1 and files[0]["filename"].endswith(".mp4")
    with av.open(str(tmp_path / "output" / files[0]["subfolder"] / files[0]["filename"])) as clip:
        assert clip.streams.video[0].frames == 17 and clip.streams.audio[0].rate == 24000


def test_bad_inputs_say_what_was_expected(ltx2: tuple[Path, dict]) -> None:
    _, built = ltx2
    value = LTX2AudioVae(built["audio_vae"], built["vocoder"])
    with pytest.raises(ValidationError, match="audio_vae"):
        LTXVEmptyLatentAudio.execute(97, 25.0, 1, object())
    with pytest.raises(ValidationError, match="shorter than one audio latent"):
        LTXVEmptyLatentAudio.execute(1, 1000.0, 1, value)
    with pytest.raises(ValidationError, match=r"audio latent \[B,C,L,M\]"):
        LTXVAudioVAEDecode.execute({"samples": torch.zeros(1, 128, 2, 2, 2)}, value)
    with pytest.raises(ValidationError, match="8×16"):
        LTXVAudioVAEDecode.execute({"samples": torch.zeros(1, 4, 3, 16)}, value)
    with pytest.raises(ValidationError, match="no LTX-2 audio VAE"):
        load_ltx2_audio({"vae.decoder.conv_in.weight": torch.zeros(1)})
