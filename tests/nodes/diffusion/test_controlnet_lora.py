"""ControlNet and LoRA change results; strength 0 is exactly none; inputs are never mutated."""

import numpy as np
import torch
from skimage import data

from nodeloom.nodes.diffusion.conditioning import CLIPTextEncode
from nodeloom.nodes.diffusion.controlnet import Canny, ControlNetApply, ControlNetApplyAdvanced, ControlNetLoader
from nodeloom.nodes.diffusion.latent import EmptyLatentImage
from nodeloom.nodes.diffusion.loaders import CheckpointLoaderSimple
from nodeloom.nodes.diffusion.lora import LoraLoader, LoraLoaderModelOnly
from nodeloom.nodes.diffusion.sampling import KSampler


def _setup():
    model, clip, vae = CheckpointLoaderSimple.execute("tiny_sd1.safetensors")
    return model, clip, CLIPTextEncode.execute("a house", clip)[0], CLIPTextEncode.execute("", clip)[0]


def _sample(model, pos, neg, steps=4):
    latent = EmptyLatentImage.execute(64, 64, 1)[0]
    return KSampler.execute(model, 7, steps, 6.0, "euler", "normal", pos, neg, latent, 1.0)[0]["samples"]


def _hint():
    img = torch.from_numpy(data.astronaut()[::8, ::8].astype(np.float32) / 255.0)[None]
    return Canny.execute(img, 0.2, 0.5)[0]


def test_canny_gives_a_binary_three_channel_edge_map():
    edges = _hint()
    assert edges.shape == (1, 64, 64, 3)
    assert set(torch.unique(edges).tolist()) <= {0.0, 1.0} and edges.mean() > 0.01


def test_controlnet_changes_the_result_and_strength_zero_equals_none(diffusion_services):
    model, _, pos, neg = _setup()
    cn = ControlNetLoader.execute("tiny_controlnet")[0]
    none = _sample(model, pos, neg)
    p1, n1 = ControlNetApplyAdvanced.execute(pos, neg, cn, _hint(), 1.0, 0.0, 1.0)
    assert "control" not in pos[0][1]  # the input conditioning is untouched
    with_cn = _sample(model, p1, n1)
    assert (with_cn - none).abs().max() > 1e-3
    p0, n0 = ControlNetApplyAdvanced.execute(pos, neg, cn, _hint(), 0.0, 0.0, 1.0)
    assert torch.equal(_sample(model, p0, n0), none)


def test_controlnet_window_limits_its_effect(diffusion_services):
    model, _, pos, neg = _setup()
    cn = ControlNetLoader.execute("tiny_controlnet")[0]
    none = _sample(model, pos, neg)
    full = _sample(model, *ControlNetApplyAdvanced.execute(pos, neg, cn, _hint(), 1.0, 0.0, 1.0))
    early = _sample(model, *ControlNetApplyAdvanced.execute(pos, neg, cn, _hint(), 1.0, 0.0, 0.3))
    assert 0 < (early - none).abs().mean() < (full - none).abs().mean()


def test_old_controlnet_node_guides_the_negative_pass_too(diffusion_services):
    model, _, pos, neg = _setup()
    cn = ControlNetLoader.execute("tiny_controlnet")[0]
    (old,) = ControlNetApply.execute(pos, cn, _hint(), 0.7)
    assert old[0][1]["control_apply_to_uncond"] and "control" not in pos[0][1]
    both = _sample(model, *ControlNetApplyAdvanced.execute(pos, neg, cn, _hint(), 0.7, 0.0, 1.0))
    assert torch.equal(_sample(model, old, neg), both)  # ComfyUI's rule: the negative takes the positive's ControlNet
    positive_only = _sample(model, ControlNetApplyAdvanced.execute(pos, neg, cn, _hint(), 0.7, 0.0, 1.0)[0], neg)
    assert (positive_only - both).abs().max() > 1e-4
    assert ControlNetApply.execute(pos, cn, _hint(), 0.0)[0] is pos
    # packs load ControlNets by path through `comfy.controlnet` (Comfyroll's stacks): the same value
    import importlib

    from nodeloom.compat import hook

    hook.install()
    path = diffusion_services.paths.get_full_path("controlnet", "tiny_controlnet")
    by_path = importlib.import_module("comfy.controlnet").load_controlnet(path)
    assert by_path.net is cn.net


def test_lora_changes_model_and_clip_and_stacks(diffusion_services):
    model, clip, pos, neg = _setup()
    base = _sample(model, pos, neg)
    m1, c1 = LoraLoader.execute(model, clip, "tiny_lora.safetensors", 1.0, 1.0)
    assert model.loras == () and clip.loras == ()
    pos1 = CLIPTextEncode.execute("a house", c1)[0]
    assert not torch.allclose(pos1[0][0], pos[0][0])
    one = _sample(m1, pos, neg)
    assert (one - base).abs().max() > 1e-3
    m2, _ = LoraLoader.execute(m1, c1, "tiny_lora.safetensors", 0.5, 0.0)
    assert len(m2.loras) == 2 and (_sample(m2, pos, neg) - one).abs().max() > 1e-4
    assert torch.equal(_sample(model, pos, neg), base)  # adapters off again for the plain model


def test_lora_strength_zero_is_a_no_op_and_model_only_leaves_clip(diffusion_services):
    model, clip, pos, neg = _setup()
    m0, c0 = LoraLoader.execute(model, clip, "tiny_lora.safetensors", 0.0, 0.0)
    assert m0 is model and c0 is clip
    only = LoraLoaderModelOnly.execute(model, "tiny_lora.safetensors", -1.0)[0]
    assert only.loras and only.loras[0].strength == -1.0
    assert (_sample(only, pos, neg) - _sample(model, pos, neg)).abs().max() > 1e-3


def test_original_single_file_controlnet_equals_its_diffusers_folder(diffusion_services):
    model, _, pos, neg = _setup()
    results = []
    for name in ("tiny_controlnet", "tiny_controlnet.safetensors"):
        cn = ControlNetLoader.execute(name)[0]
        results.append(_sample(model, *ControlNetApplyAdvanced.execute(pos, neg, cn, _hint(), 0.8, 0.0, 1.0)))
    assert torch.allclose(results[0], results[1], atol=1e-6)


def test_loha_and_lokr_apply_and_leave_the_base_model_alone(diffusion_services):
    import pytest
    from safetensors.torch import save_file

    from nodeloom.errors import ValidationError
    from nodeloom.testing.tiny_sd import build_tiny_loha, build_tiny_lokr

    model, clip, pos, neg = _setup()
    base = _sample(model, pos, neg)
    for build in (build_tiny_loha, build_tiny_lokr):
        patched = LoraLoaderModelOnly.execute(model, build(diffusion_services.paths.models_dir), 1.0)[0]
        assert (_sample(patched, pos, neg) - base).abs().max() > 1e-3
        assert torch.equal(_sample(model, pos, neg), base)
    path = diffusion_services.paths.models_dir / "loras" / "stray_lokr.safetensors"
    save_file({"lora_unet_x.lokr_w1": torch.zeros(2, 2), "lora_unet_x.lokr_w2": torch.zeros(2, 2)}, str(path))
    stray = LoraLoaderModelOnly.execute(model, "stray_lokr.safetensors", 1.0)[0]
    with pytest.raises(ValidationError, match="LoKr modules \\['x'\\] do not exist"):
        _sample(stray, pos, neg)