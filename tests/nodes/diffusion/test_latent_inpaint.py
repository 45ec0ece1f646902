"""Latent nodes, KSamplerAdvanced step splitting, inpainting with plain and 9-channel UNets, VAE nodes."""

import numpy as np
import torch
from skimage import data

from nodeloom.nodes.diffusion.conditioning import CLIPTextEncode
from nodeloom.nodes.diffusion.latent import EmptyLatentImage, LatentUpscale, LatentUpscaleBy, SetLatentNoiseMask
from nodeloom.nodes.diffusion.loaders import CheckpointLoaderSimple
from nodeloom.nodes.diffusion.sampling import KSampler, KSamplerAdvanced
from nodeloom.nodes.diffusion.vae import VAEDecode, VAEDecodeTiled, VAEEncode, VAEEncodeForInpaint, VAEEncodeTiled


def _photo(size=64):
    return torch.from_numpy(data.coffee()[:400:400 // size, :400:400 // size][:size, :size].astype(np.float32) / 255.0)[None]


def _conds(ckpt):
    model, clip, vae = CheckpointLoaderSimple.execute(ckpt)
    return model, vae, CLIPTextEncode.execute("a cup", clip)[0], CLIPTextEncode.execute("", clip)[0]


def test_empty_latent_and_upscale_shapes():
    lat = EmptyLatentImage.execute(512, 768, 2)[0]
    assert lat["samples"].shape == (2, 4, 96, 64)
    assert LatentUpscale.execute(lat, "bilinear", 1024, 0, "disabled")[0]["samples"].shape == (2, 4, 192, 128)
    assert LatentUpscale.execute(lat, "nearest-exact", 0, 0, "disabled")[0] is lat
    assert LatentUpscale.execute(lat, "area", 256, 256, "center")[0]["samples"].shape == (2, 4, 32, 32)
    up = LatentUpscaleBy.execute({"samples": torch.randn(1, 4, 8, 8)}, "bislerp", 1.5)[0]["samples"]
    assert up.shape == (1, 4, 12, 12) and torch.isfinite(up).all()


def test_advanced_split_equals_one_full_run(diffusion_services):
    model, _, pos, neg = _conds("tiny_sd1.safetensors")
    lat = EmptyLatentImage.execute(64, 64, 1)[0]
    full = KSampler.execute(model, 3, 6, 5.0, "euler", "normal", pos, neg, lat, 1.0)[0]["samples"]
    first = KSamplerAdvanced.execute(model, "enable", 3, 6, 5.0, "euler", "normal", pos, neg, lat, 0, 3, "enable")[0]
    second = KSamplerAdvanced.execute(model, "disable", 3, 6, 5.0, "euler", "normal", pos, neg, first, 3, 10000, "disable")[0]
    assert torch.allclose(second["samples"], full, atol=1e-5)


def test_noise_mask_keeps_the_unmasked_latent(diffusion_services):
    model, vae, pos, neg = _conds("tiny_sd1.safetensors")
    lat = VAEEncode.execute(_photo(), vae)[0]
    mask = torch.zeros(1, 64, 64)
    mask[:, 16:48, 16:48] = 1.0
    masked = SetLatentNoiseMask.execute(lat, mask)[0]
    assert "noise_mask" not in lat
    out = KSampler.execute(model, 1, 4, 5.0, "euler", "normal", pos, neg, masked, 1.0)[0]["samples"]
    keep = torch.ones(8, 8, dtype=torch.bool)
    keep[1:7, 1:7] = False
    assert torch.allclose(out[..., keep], lat["samples"][..., keep], atol=1e-5)
    assert (out[..., 3:5, 3:5] - lat["samples"][..., 3:5, 3:5]).abs().max() > 1e-2


def test_inpainting_checkpoint_uses_mask_and_masked_image(diffusion_services):
    model, vae, pos, neg = _conds("tiny_sd1_inpaint.safetensors")
    assert model.inpaint
    mask = torch.zeros(1, 64, 64)
    mask[:, 24:40, 24:40] = 1.0
    lat = VAEEncodeForInpaint.execute(_photo(), vae, mask, 6)[0]
    assert lat["noise_mask"].shape == (1, 1, 64, 64) and lat["noise_mask"].sum() > mask.sum()
    out = KSampler.execute(model, 1, 4, 5.0, "euler", "normal", pos, neg, lat, 1.0)[0]
    image = VAEDecode.execute(out, vae)[0]
    assert image.shape == (1, 64, 64, 3) and torch.isfinite(image).all()
    no_mask = KSampler.execute(model, 1, 4, 5.0, "euler", "normal", pos, neg, {"samples": lat["samples"]}, 1.0)[0]
    assert (no_mask["samples"] - out["samples"]).abs().max() > 1e-3


def test_tiled_decode_matches_plain_decode_with_one_tile_and_blends_many(diffusion_services):
    _, vae, _, _ = _conds("tiny_sd1.safetensors")
    lat = {"samples": torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))}
    plain = VAEDecode.execute(lat, vae)[0]
    one = VAEDecodeTiled.execute(lat, vae, 128, 0)[0]
    assert torch.allclose(one, plain, atol=1e-5)
    many = VAEDecodeTiled.execute(lat, vae, 64, 32)[0]
    assert many.shape == plain.shape and (many - plain).abs().mean() < 0.1


def test_tiled_encode_matches_plain_encode_with_one_tile_and_blends_many(diffusion_services):
    _, vae, _, _ = _conds("tiny_sd1.safetensors")
    pixels = torch.cat([_photo(), torch.ones(1, 64, 64, 1)], dim=-1)  # an alpha channel is dropped
    plain = VAEEncode.execute(pixels[..., :3], vae)[0]["samples"]
    one = VAEEncodeTiled.execute(pixels, vae, 128, 0)[0]["samples"]
    assert one.shape == plain.shape == (1, 4, 8, 8) and torch.allclose(one, plain, atol=1e-4)
    big = _photo(128)
    plain_big = VAEEncode.execute(big, vae)[0]["samples"]
    many = VAEEncodeTiled.execute(big, vae, 64, 32)[0]["samples"]
    assert many.shape == plain_big.shape == (1, 4, 16, 16)
    assert (many - plain_big).abs().mean() < 0.5 * plain_big.abs().mean() and not torch.allclose(many, plain_big)


def test_batches_get_distinct_noise_and_batch_index_reproduces_items(diffusion_services):
    model, _, pos, neg = _conds("tiny_sd1.safetensors")
    batch = EmptyLatentImage.execute(64, 64, 3)[0]
    out = KSampler.execute(model, 5, 2, 5.0, "euler", "normal", pos, neg, batch, 1.0)[0]["samples"]
    assert out.shape == (3, 4, 8, 8) and (out[0] - out[1]).abs().max() > 1e-3
    single = {"samples": torch.zeros(1, 4, 8, 8), "batch_index": [2]}
    third = KSampler.execute(model, 5, 2, 5.0, "euler", "normal", pos, neg, single, 1.0)[0]["samples"]
    assert torch.allclose(third[0], out[2], rtol=1e-4, atol=1e-3)  # batched vs single convolutions


def test_diffusers_loader_reads_the_diffusers_folder(diffusion_services, tmp_path):
    import shutil

    from nodeloom.nodes.diffusion.loaders import DiffusersLoader

    src = diffusion_services.paths.models_dir / "checkpoints" / "tiny_sd1"
    dst = diffusion_services.paths.models_dir / "diffusers" / "tiny_sd1"
    if not dst.exists():
        shutil.copytree(src, dst)
    assert "tiny_sd1" in DiffusersLoader.INPUT_TYPES()["required"]["model_path"][0]
    model, clip, vae = DiffusersLoader.execute("tiny_sd1")
    assert model.family == "sd1" and len(clip.encoders) == 1 and vae.downscale_ratio == 8


def test_inpaint_model_conditioning_feeds_the_masked_image_to_inpainting_unets(diffusion_services):
    from nodeloom.nodes.diffusion.vae import InpaintModelConditioning

    model, vae, pos, neg = _conds("tiny_sd1_inpaint.safetensors")
    mask = torch.zeros(1, 64, 64)
    mask[:, 24:40, 24:40] = 1.0
    p, n, lat = InpaintModelConditioning.execute(pos, neg, vae, _photo(), mask, True)
    assert "concat_latent_image" in p[0][1] and "concat_latent_image" not in pos[0][1]
    assert lat["noise_mask"].shape == (1, 1, 64, 64)
    assert torch.allclose(lat["samples"], VAEEncode.execute(_photo(), vae)[0]["samples"], atol=1e-6)
    out = KSampler.execute(model, 1, 4, 5.0, "euler", "normal", p, n, lat, 1.0)[0]["samples"]
    plain = KSampler.execute(model, 1, 4, 5.0, "euler", "normal", pos, neg, lat, 1.0)[0]["samples"]
    assert torch.isfinite(out).all() and (out - plain).abs().max() > 1e-3
    keep = torch.ones(8, 8, dtype=torch.bool)
    keep[2:6, 2:6] = False
    assert torch.allclose(out[..., keep], lat["samples"][..., keep], atol=1e-5)
