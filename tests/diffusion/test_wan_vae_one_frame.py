"""The Wan 2.1 VAE value's one-frame fast path (2-D convolutions for a lone frame with no cached
past) equals diffusers' 3-D causal path: on images (one-frame clips, as the Qwen-Image VAE file
now loads), on the first frame of a clip, and through the VAELoader value."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from nodeloom.diffusion import wan_vae
from nodeloom.testing.tiny_wan import tiny_wan_vae, vae_to_original


def _saved(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    vae = tiny_wan_vae(0)
    with torch.no_grad():  # the release zero-initialises some layers; random values let the test see them
        for p in vae.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.02)
    path = tmp_path / "qwen_image_vae.safetensors"
    save_file(vae_to_original({k: v.contiguous() for k, v in vae.state_dict().items()}), str(path))
    return path


def _plain(module: torch.nn.Module) -> torch.nn.Module:
    """The same module with every causal convolution back on diffusers' own 3-D forward."""
    for m in module.modules():
        m.__dict__.pop("forward", None)
    return module


def test_one_frame_path_equals_the_3d_path(tmp_path):
    torch.set_num_threads(1)
    path = _saved(tmp_path)
    fast = wan_vae.read_wan_vae(path)
    slow = _plain(wan_vae.read_wan_vae(path))
    convs = [m for m in fast.modules() if isinstance(m, torch.nn.Conv3d) and hasattr(m, "_padding")]
    assert convs and all("forward" in m.__dict__ for m in convs)
    assert not any("forward" in m.__dict__ for m in slow.modules())
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(2, 64, 48, 3, generator=gen)
    a, b = wan_vae.WanVae(fast), wan_vae.WanVae(slow)
    for frame in image:  # an image is a one-frame clip
        la, lb = a.encode(frame[None]), b.encode(frame[None])
        assert la.shape == (1, 16, 1, 8, 6)
        assert (la - lb).abs().max() <= 1e-5
    latent = torch.randn(1, 16, 8, 6, generator=gen)
    assert (a.decode(latent) - b.decode(latent)).abs().max() <= 1e-5
    clip = torch.randn(1, 16, 3, 8, 6, generator=gen)  # first frame fast, the rest through the cache
    da, db = a.decode(clip), b.decode(clip)
    assert da.shape == (9, 64, 48, 3) and (da - db).abs().max() <= 1e-5
    video = torch.rand(5, 32, 32, 3, generator=gen)
    assert (a.encode(video) - b.encode(video)).abs().max() <= 1e-5


def test_qwen_image_vae_value_takes_the_fast_path(tmp_path):
    """The Qwen-Image VAE file (Wan 2.1 layout) loads through VAELoader as the shared Wan value."""
    from nodeloom import Engine

    path = _saved(tmp_path)
    (tmp_path / "models" / "vae").mkdir(parents=True)
    path.rename(tmp_path / "models" / "vae" / path.name)
    with Engine(base_dir=tmp_path / "base", models_dir=tmp_path / "models", load_custom_nodes=False) as engine:
        prompt = {"1": {"class_type": "VAELoader", "inputs": {"vae_name": path.name}},
                  "2": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
                  "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 0]}},
                  "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}}
        result = engine.run(prompt)
        assert result.status == "success", result.errors
        value = result.value("1")
    assert isinstance(value, wan_vae.WanVae)
    assert any("forward" in m.__dict__ for m in value.vae.modules() if isinstance(m, torch.nn.Conv3d))
    assert result.value("3").shape == (1, 64, 64, 3)
