"""CLIPTextEncodeSDXL: one prompt per encoder, ComfyUI's chunk padding, and the size conditioning."""

import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion.conditioning import CLIPTextEncode, CLIPTextEncodeSDXL
from nodeloom.nodes.diffusion.latent import EmptyLatentImage
from nodeloom.nodes.diffusion.loaders import CheckpointLoaderSimple
from nodeloom.nodes.diffusion.sampling import KSampler

SIZES = (1024, 1024, 0, 0, 1024, 1024)
LONG = " ".join(["a red lighthouse on a rocky shore at dusk"] * 12)  # well over 75 tokens


@pytest.fixture
def sdxl(diffusion_services):
    model, clip, _ = CheckpointLoaderSimple.execute("tiny_sdxl.safetensors")
    return model, clip, getattr(clip.encoders[0], "text_model", clip.encoders[0]).config.hidden_size


def test_same_text_for_both_encoders_equals_clip_text_encode(sdxl):
    _, clip, _ = sdxl
    (cond, extra), = CLIPTextEncodeSDXL.execute(clip, *SIZES, "a lighthouse", "a lighthouse")[0]
    (ref, ref_extra), = CLIPTextEncode.execute("a lighthouse", clip)[0]
    assert torch.equal(cond, ref) and torch.equal(extra["pooled_output"], ref_extra["pooled_output"])
    assert (extra["width"], extra["height"], extra["crop_w"], extra["crop_h"], extra["target_width"],
            extra["target_height"]) == SIZES


def test_each_encoder_reads_its_own_prompt_and_short_ones_are_padded(sdxl):
    _, clip, dim_l = sdxl
    (cond, extra), = CLIPTextEncodeSDXL.execute(clip, *SIZES, "a lighthouse", LONG)[0]
    (long_ref, _), = CLIPTextEncode.execute(LONG, clip)[0]
    (short_ref, short_extra), = CLIPTextEncode.execute("a lighthouse", clip)[0]
    (empty_ref, _), = CLIPTextEncode.execute("", clip)[0]
    assert cond.shape[1] == long_ref.shape[1] >= 154
    assert torch.equal(cond[..., :dim_l], long_ref[..., :dim_l])  # CLIP-L: text_l
    assert torch.equal(cond[:, :77, dim_l:], short_ref[:, :, dim_l:])  # CLIP-G: text_g, first chunk
    for start in range(77, cond.shape[1], 77):  # then empty-prompt chunks
        assert torch.equal(cond[:, start:start + 77, dim_l:], empty_ref[:, :, dim_l:])
    assert torch.equal(extra["pooled_output"], short_extra["pooled_output"])  # pooled comes from CLIP-G


def test_size_conditioning_reaches_the_sampler(sdxl):
    model, clip, _ = sdxl
    neg = CLIPTextEncode.execute("", clip)[0]
    latent = EmptyLatentImage.execute(64, 64, 1)[0]
    runs = []
    for width in (1024, 512):
        pos = CLIPTextEncodeSDXL.execute(clip, width, 1024, 0, 0, 1024, 1024, "a lighthouse", "a lighthouse")[0]
        runs.append(KSampler.execute(model, 5, 3, 5.0, "euler", "normal", pos, neg, latent, 1.0)[0]["samples"])
    assert (runs[0] - runs[1]).abs().max() > 1e-4


def test_an_sd1_clip_is_refused(diffusion_services):
    _, clip, _ = CheckpointLoaderSimple.execute("tiny_sd1.safetensors")
    with pytest.raises(ValidationError, match="two text encoders"):
        CLIPTextEncodeSDXL.execute(clip, *SIZES, "a", "b")
