"""CUDA-only checks (marker ``gpu``): fp16 placement and the CUDA-graph fast path give the plain path's images."""

import pytest
import torch

from nodeloom.diffusion.checkpoint import load_checkpoint
from nodeloom.diffusion.models import ClipModel, DiffusionModel
from nodeloom.diffusion.sampling import sample
from nodeloom.diffusion.schedules import ModelSampling
from nodeloom.models.manager import ModelManager

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("ckpt", ["tiny_sd1.safetensors", "tiny_sdxl.safetensors"])
def test_fast_path_matches_plain_on_cuda(tiny_models_dir, ckpt):
    parts = load_checkpoint(tiny_models_dir / "checkpoints" / ckpt)  # fresh modules: the session cache stays on CPU
    model = DiffusionModel(parts.unet, parts.family, ModelSampling(), parts.latent_scale)
    clip = ClipModel(tuple(parts.text_encoders), parts.family, parts.clip_layer_norm_hidden)
    mgr = ModelManager(device="cuda")
    pos, pooled = clip.encode("a cat", mgr)
    neg, npooled = clip.encode("", mgr)
    conds = dict(positive=[[pos, {"pooled_output": pooled}]], negative=[[neg, {"pooled_output": npooled}]])
    latent = {"samples": torch.zeros(1, 4, 16, 16)}
    kw = dict(seed=3, steps=6, cfg=7.0, sampler_name="euler_ancestral", scheduler="karras", manager=mgr, **conds)
    with torch.inference_mode():
        plain = sample(model.clone(extra={}), latent, **kw)["samples"]
        fast = sample(model.clone(fast_path=True, extra={}), latent, **kw)["samples"]
        again = sample(model.clone(fast_path=True, extra={}), latent, **kw)["samples"]
    assert next(model.unet.parameters()).dtype == torch.float16
    assert torch.isfinite(plain).all()
    assert (plain - fast).abs().max() <= 1e-2 * plain.abs().max()
    assert torch.equal(fast, again)
