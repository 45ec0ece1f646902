"""unCLIPConditioning, PiDConditioning, VOIDWarpedNoiseSource and the Hunyuan3D 2 conditionings:
the values they store (ComfyUI's keys and layouts), their declarations as ComfyUI writes them, the
errors for bad inputs, and a given-noise run through SamplerCustomAdvanced on the tiny SD model."""

from __future__ import annotations

import math

import pytest
import torch

from nodeloom.diffusion.clip_vision import ClipVisionOutput
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion import NODE_CLASS_MAPPINGS as NODES
from nodeloom.nodes.diffusion.custom_sampling import (
    CFGGuider,
    KSamplerSelect,
    NoiseSource,
    RandomNoise,
    SamplerCustomAdvanced,
)
from nodeloom.nodes.diffusion.vision_conditioning import view_codes


def _vision(tokens: torch.Tensor) -> ClipVisionOutput:
    out = ClipVisionOutput()
    out["last_hidden_state"] = tokens
    out["image_embeds"] = tokens[:, 0]
    out["penultimate_hidden_states"] = tokens
    return out


def _cond(value: float = 1.0) -> list:
    return [[torch.full((1, 3, 4), value), {"pooled_output": torch.zeros(1, 4)}]]


# ---------------------------------------------------------------- unCLIPConditioning

def test_unclip_appends_one_item_per_application_and_leaves_the_input():
    node, vision, other = NODES["unCLIPConditioning"], _vision(torch.ones(1, 2, 4)), _vision(torch.zeros(1, 2, 4))
    source = _cond()
    (once,) = node.execute(source, vision, 0.8, 0.1)
    (twice,) = node.execute(once, other, -1.5, 0.0)
    items = twice[0][1]["unclip_conditioning"]
    assert [i["clip_vision_output"] is v for i, v in zip(items, (vision, other))] == [True, True]
    assert [(i["strength"], i["noise_augmentation"]) for i in items] == [(0.8, 0.1), (-1.5, 0.0)]
    assert once[0][1]["unclip_conditioning"] == items[:1] and "unclip_conditioning" not in source[0][1]
    assert torch.equal(twice[0][0], source[0][0]) and "pooled_output" in twice[0][1]


def test_unclip_strength_zero_returns_the_conditioning_itself():
    source = _cond()
    assert NODES["unCLIPConditioning"].execute(source, _vision(torch.ones(1, 2, 4)), 0.0, 0.5)[0] is source


def test_unclip_bad_inputs_are_named():
    node = NODES["unCLIPConditioning"]
    with pytest.raises(ValidationError, match="clip_vision_output"):
        node.execute(_cond(), torch.zeros(1, 4), 1.0, 0.0)
    with pytest.raises(ValidationError, match="conditioning"):
        node.execute(torch.zeros(1, 3, 4), _vision(torch.ones(1, 2, 4)), 1.0, 0.0)


def test_unclip_is_ignored_by_a_model_without_an_unclip_input(chain):
    """As ComfyUI's non-unCLIP models ignore it, sampling SD 1.x with it equals sampling without."""
    model, pos, neg, latent = chain
    (with_image,) = NODES["unCLIPConditioning"].execute(pos, _vision(torch.randn(1, 5, 8)), 1.0, 0.0)
    sampler, sigmas = KSamplerSelect.execute("euler")[0], torch.tensor([14.6, 3.0, 0.0])
    runs = [SamplerCustomAdvanced.execute(RandomNoise.execute(3)[0], CFGGuider.execute(model, p, neg, 5.0)[0],
                                          sampler, sigmas, latent)[0]["samples"] for p in (pos, with_image)]
    assert torch.equal(runs[0], runs[1])


# ---------------------------------------------------------------- PiDConditioning

@pytest.mark.parametrize(("fmt", "channels", "expect"), [
    ("flux", 16, lambda x: (x - 0.1159) * 0.3611),
    ("flux", 128, lambda x: x),  # Flux.2 latents go in as they are
    ("sd3", 16, lambda x: (x - 0.0609) * 1.5305),
    ("sdxl", 4, lambda x: x * 0.13025),
])
def test_pid_attaches_the_latent_in_its_model_space_and_the_sigma(fmt, channels, expect):
    samples = torch.randn(2, channels, 3, 5)
    source = _cond()
    (out,) = NODES["PiDConditioning"].execute(source, {"samples": samples}, fmt, 0.25)
    options = out[0][1]
    assert torch.allclose(options["lq_latent"], expect(samples))
    sigma = options["degrade_sigma"]
    assert sigma.dtype == torch.float32 and sigma.shape == (1,) and math.isclose(float(sigma), 0.25)
    assert "lq_latent" not in source[0][1] and "pooled_output" in options


def test_pid_qwenimage_normalises_each_channel_and_keeps_a_video_latents_first_frame():
    from nodeloom.diffusion.families.qwen import LATENTS_MEAN, LATENTS_STD

    samples = torch.randn(1, 16, 2, 3, 4)
    (out,) = NODES["PiDConditioning"].execute(_cond(), {"samples": samples}, "qwenimage", 0.0)
    lq = out[0][1]["lq_latent"]
    assert lq.shape == (1, 16, 3, 4)
    assert torch.allclose(lq[0, 5], (samples[0, 5, 0] - LATENTS_MEAN[5]) / LATENTS_STD[5])
    (flat,) = NODES["PiDConditioning"].execute(_cond(), {"samples": samples[:, :, 0]}, "qwenimage", 0.0)
    assert torch.allclose(flat[0][1]["lq_latent"], lq)


def test_pid_bad_inputs_are_named():
    node = NODES["PiDConditioning"]
    with pytest.raises(ValidationError, match="latent_format"):
        node.execute(_cond(), {"samples": torch.zeros(1, 16, 2, 2)}, "sd15", 0.0)
    with pytest.raises(ValidationError, match="`latent`"):
        node.execute(_cond(), torch.zeros(1, 16, 2, 2), "flux", 0.0)
    with pytest.raises(ValidationError, match="16 channels"):
        node.execute(_cond(), {"samples": torch.zeros(1, 4, 2, 2)}, "qwenimage", 0.0)


# ---------------------------------------------------------------- VOIDWarpedNoiseSource

def test_warped_noise_source_samples_exactly_as_that_noise(chain):
    """The latent's samples are the initial noise: giving the seeded draw equals RandomNoise."""
    model, pos, neg, latent = chain
    guider, sampler = CFGGuider.execute(model, pos, neg, 5.0)[0], KSamplerSelect.execute("euler")[0]
    sigmas = torch.tensor([14.6, 3.0, 0.6, 0.0])
    drawn = NoiseSource(11).generate(latent)
    (noise,) = NODES["VOIDWarpedNoiseSource"].execute({"samples": drawn})
    assert noise.seed == 0 and torch.equal(noise.generate_noise(latent), drawn)
    given = SamplerCustomAdvanced.execute(noise, guider, sampler, sigmas, latent)[0]["samples"]
    seeded = SamplerCustomAdvanced.execute(RandomNoise.execute(11)[0], guider, sampler, sigmas, latent)[0]["samples"]
    assert torch.equal(given, seeded)
    other = SamplerCustomAdvanced.execute(NODES["VOIDWarpedNoiseSource"].execute({"samples": drawn * 0.5})[0],
                                          guider, sampler, sigmas, latent)[0]["samples"]
    assert not torch.allclose(other, given)


def test_warped_noise_source_one_item_serves_a_batch_and_a_wrong_shape_is_refused(chain):
    model, pos, neg, latent = chain
    guider, sampler = CFGGuider.execute(model, pos, neg, 5.0)[0], KSamplerSelect.execute("euler")[0]
    sigmas = torch.tensor([14.6, 2.0, 0.0])
    pair = {"samples": torch.zeros(2, *latent["samples"].shape[1:])}
    one = torch.randn(1, *latent["samples"].shape[1:])
    out = SamplerCustomAdvanced.execute(NODES["VOIDWarpedNoiseSource"].execute({"samples": one})[0],
                                        guider, sampler, sigmas, pair)[0]["samples"]
    assert out.shape[0] == 2 and torch.allclose(out[0], out[1])
    wrong = NODES["VOIDWarpedNoiseSource"].execute({"samples": torch.zeros(1, 4, 3, 3)})[0]
    with pytest.raises(ValidationError, match="noise"):
        SamplerCustomAdvanced.execute(wrong, guider, sampler, sigmas, latent)
    with pytest.raises(ValidationError, match="warped_noise"):
        NODES["VOIDWarpedNoiseSource"].execute(torch.zeros(1, 4, 8, 8))


# ---------------------------------------------------------------- Hunyuan3D 2

def test_hunyuan3d_single_view_is_the_tokens_with_a_zero_negative():
    tokens = torch.randn(2, 5, 8)
    pos, neg = NODES["Hunyuan3Dv2Conditioning"].execute(_vision(tokens))
    assert pos[0][0] is tokens and pos[0][1] == {} and neg[0][1] == {}
    assert torch.equal(neg[0][0], torch.zeros(2, 5, 8))
    with pytest.raises(ValidationError, match="clip_vision_output"):
        NODES["Hunyuan3Dv2Conditioning"].execute(torch.zeros(1, 5, 8))


def test_view_codes_are_the_sine_cosine_table():
    codes = view_codes(6)
    for slot in range(4):
        for k in range(3):
            omega = 1.0 / 10000 ** (k / 3)
            assert math.isclose(float(codes[slot, k]), math.sin(slot * omega), abs_tol=1e-6)
            assert math.isclose(float(codes[slot, 3 + k]), math.cos(slot * omega), abs_tol=1e-6)


def test_hunyuan3d_multi_view_codes_each_view_by_its_slot_and_joins_them_in_order():
    front, back, right = torch.randn(1, 2, 6), torch.randn(1, 3, 6), torch.randn(1, 2, 6)
    node = NODES["Hunyuan3Dv2ConditioningMultiView"]
    pos, neg = node.execute(front=_vision(front), back=_vision(back), right=_vision(right))
    codes = view_codes(6)
    expect = torch.cat([front + codes[0], back + codes[2], right + codes[3]], dim=1)
    assert torch.equal(pos[0][0], expect) and torch.equal(neg[0][0], torch.zeros(1, 7, 6))
    (only_left, _) = node.execute(left=_vision(front))
    assert torch.equal(only_left[0][0], front + codes[1])


def test_hunyuan3d_multi_view_bad_inputs_are_named():
    node = NODES["Hunyuan3Dv2ConditioningMultiView"]
    with pytest.raises(ValidationError, match="at least one view"):
        node.execute()
    with pytest.raises(ValidationError, match="`back`"):
        node.execute(front=_vision(torch.zeros(1, 2, 6)), back=_vision(torch.zeros(1, 2, 8)))
    with pytest.raises(ValidationError, match="`left`"):
        node.execute(left=torch.zeros(1, 2, 6))


# ---------------------------------------------------------------- declarations

def _spec(node_id: str) -> dict:
    return {n: (t[0], {k: v for k, v in t[1].items() if k != "tooltip"})
            for section in NODES[node_id].INPUT_TYPES().values() for n, t in section.items()}


def test_declarations_are_comfyuis():
    unclip = NODES["unCLIPConditioning"]
    assert unclip.CATEGORY == "conditioning" and unclip.RETURN_TYPES == ("CONDITIONING",)
    assert _spec("unCLIPConditioning") == {
        "conditioning": ("CONDITIONING", {}), "clip_vision_output": ("CLIP_VISION_OUTPUT", {}),
        "strength": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01}),
        "noise_augmentation": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01})}
    pid = NODES["PiDConditioning"]
    assert (pid.CATEGORY, pid.RETURN_TYPES) == ("model/conditioning", ("CONDITIONING",))
    assert _spec("PiDConditioning") == {
        "positive": ("CONDITIONING", {}), "latent": ("LATENT", {}),
        "latent_format": (["flux", "sd3", "sdxl", "qwenimage"], {"default": "flux"}),
        "degrade_sigma": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01})}
    void = NODES["VOIDWarpedNoiseSource"]
    assert (void.CATEGORY, void.RETURN_TYPES) == ("sampling/noise", ("NOISE",))
    assert _spec("VOIDWarpedNoiseSource") == {"warped_noise": ("LATENT", {})}
    single, multi = NODES["Hunyuan3Dv2Conditioning"], NODES["Hunyuan3Dv2ConditioningMultiView"]
    for node in (single, multi):
        assert node.CATEGORY == "conditioning/video_models"
        assert node.RETURN_TYPES == ("CONDITIONING", "CONDITIONING") and node.RETURN_NAMES == ("positive", "negative")
    assert _spec("Hunyuan3Dv2Conditioning") == {"clip_vision_output": ("CLIP_VISION_OUTPUT", {})}
    assert multi.INPUT_TYPES()["required"] == {}
    assert list(multi.INPUT_TYPES()["optional"]) == ["front", "left", "back", "right"]


def test_display_names(image_engine):
    info = image_engine.object_info()
    assert info["PiDConditioning"]["display_name"] == "PiD Conditioning"
    for node_id in ("unCLIPConditioning", "VOIDWarpedNoiseSource", "Hunyuan3Dv2Conditioning",
                    "Hunyuan3Dv2ConditioningMultiView"):
        assert info[node_id]["display_name"] == node_id


# ---------------------------------------------------------------- SDXL Revision (unclip_conditioning read by SDXL)

def _comfy_schedule():
    """ComfyUI's noise-augmentation schedule, computed independently (numpy, float64, then float32)."""
    import numpy as np

    def bar(t):
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = np.array([min(1 - bar((i + 1) / 1000) / bar(i / 1000), 0.999) for i in range(1000)])
    cumulative = np.cumprod(1.0 - betas, axis=0)
    return (torch.tensor(np.sqrt(cumulative), dtype=torch.float32),
            torch.tensor(np.sqrt(1.0 - cumulative), dtype=torch.float32))


def test_revision_pooled_is_the_noised_scaled_embedding():
    from nodeloom.diffusion.unclip import revision_pooled

    keep, add = _comfy_schedule()
    embed = torch.randn(1, 1280)
    item = {"clip_vision_output": _vision(torch.zeros(1, 2, 4)), "strength": 0.75, "noise_augmentation": 0.3}
    item["clip_vision_output"]["image_embeds"] = embed
    noise = torch.randn(1, 1280, generator=torch.manual_seed(42 - 10))
    level = round(999 * 0.3)
    expect = (keep[level] * embed + add[level] * noise) * 0.75
    assert torch.allclose(revision_pooled([item], 42), expect, atol=1e-6)
    two = revision_pooled([item, dict(item, strength=0.25)], 42)
    summed = expect + expect / 3
    assert two.shape == (1, 1280) and torch.allclose(two, summed * keep[0], atol=add[0].item() * 6)
    bad = {"clip_vision_output": _vision(torch.zeros(1, 2, 4)), "strength": 1.0, "noise_augmentation": 0.0}
    bad["clip_vision_output"]["image_embeds"] = torch.zeros(1, 1024)
    with pytest.raises(ValidationError, match="clip_vision_g"):
        revision_pooled([bad], 0)


def test_sdxl_samples_with_the_revision_pooled_embedding_in_place_of_the_texts(diffusion_services, monkeypatch):
    """Through the sampler: SDXL with unCLIPConditioning equals SDXL given that pooled embedding
    (the tiny test model's pooled width stands in for CLIP-G's 1280)."""
    from nodeloom.diffusion import unclip
    from nodeloom.nodes.diffusion.conditioning import CLIPTextEncode
    from nodeloom.nodes.diffusion.latent import EmptyLatentImage
    from nodeloom.nodes.diffusion.loaders import CheckpointLoaderSimple

    model, clip, _ = CheckpointLoaderSimple.execute("tiny_sdxl.safetensors")
    pos, neg = CLIPTextEncode.execute("a lighthouse", clip)[0], CLIPTextEncode.execute("blurry", clip)[0]
    width = pos[0][1]["pooled_output"].shape[-1]
    monkeypatch.setattr(unclip, "REVISION_WIDTH", width)
    vision = _vision(torch.zeros(1, 2, 4))
    vision["image_embeds"] = torch.randn(1, width)
    (with_image,) = NODES["unCLIPConditioning"].execute(pos, vision, 0.9, 0.1)
    by_hand = [[pos[0][0], {**pos[0][1], "pooled_output": unclip.revision_pooled(
        with_image[0][1]["unclip_conditioning"], 5)}]]
    latent = EmptyLatentImage.execute(64, 64, 1)[0]
    sampler, sigmas = KSamplerSelect.execute("euler")[0], torch.tensor([14.6, 3.0, 0.0])
    runs = [SamplerCustomAdvanced.execute(RandomNoise.execute(5)[0], CFGGuider.execute(model, p, neg, 5.0)[0],
                                          sampler, sigmas, latent)[0]["samples"] for p in (with_image, by_hand, pos)]
    assert torch.equal(runs[0], runs[1]) and not torch.allclose(runs[0], runs[2])


def test_sdxl_paths_that_do_not_apply_revision_refuse_it(diffusion_services):
    from nodeloom.diffusion.sampling import guided_estimate
    from nodeloom.nodes.diffusion.conditioning import CLIPTextEncode
    from nodeloom.nodes.diffusion.loaders import CheckpointLoaderSimple

    model, clip, _ = CheckpointLoaderSimple.execute("tiny_sdxl.safetensors")
    pos = CLIPTextEncode.execute("a lighthouse", clip)[0]
    (with_image,) = NODES["unCLIPConditioning"].execute(pos, _vision(torch.zeros(1, 2, 4)), 1.0, 0.0)
    with pytest.raises(ValidationError, match="unCLIPConditioning"):
        guided_estimate(model, torch.zeros(1, 4, 8, 8), torch.tensor(1.0), with_image, None, 1.0)


@pytest.mark.parametrize(("template", "node_id", "widgets"), [
    ("sdxl_revision_text_prompts", "unCLIPConditioning", {"strength": 0.75, "noise_augmentation": 0}),
    ("utility_pid_latent_upscale_dit", "PiDConditioning", {"latent_format": "flux", "degrade_sigma": 0}),
])
def test_templates_convert_with_the_nodes_widgets(image_engine, template, node_id, widgets):
    from pathlib import Path

    from nodeloom.workflows.files import load_prompt

    path = Path(__import__("comfyui_workflow_templates_json").__file__).parent / "templates" / f"{template}.json"
    if not path.exists():
        pytest.skip(f"the installed templates package has no {template} template")
    prompt = load_prompt(image_engine, str(path))  # raises naming any node type nodeloom does not know
    nodes = [n for n in prompt.values() if n["class_type"] == node_id]
    assert nodes and all({k: n["inputs"][k] for k in widgets} == widgets for n in nodes)
