"""ComfyUI_IPAdapter_plus's regional nodes on the tiny SD1 checkpoint, CLIP-vision model and adapters
of ``test_ipadapter``: IPAdapterRegionalConditioning → IPAdapterCombineParams → IPAdapterFromParams
equals chaining IPAdapterAdvanced once per region with its mask, and the region's prompts come back
confined to its mask (ComfyUI's conditioning ``mask`` / ``mask_strength``), which the sampler honours."""

import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.nodes.portrait.ipadapter_params_nodes import IPAdapterCombineParams, IPAdapterRegionalConditioning
from tests.nodes.conftest import run_prompt
from tests.nodes.portrait.test_ipadapter import _photo, _workflow, ipa_files  # noqa: F401

ADV = {"combine_embeds": "concat", "embeds_scaling": "V only"}


def _run(engine, wf, tensors):
    result = run_prompt(engine, wf, tensors, sinks=[["k", 0]])
    assert result.ok, [(e.get("exception_type"), e.get("exception_message")) for e in result.errors]
    return result.value("k", 0)["samples"]


def _halves():
    left, right = torch.zeros(1, 64, 64), torch.zeros(1, 64, 64)
    left[..., :32], right[..., 32:] = 1.0, 1.0
    return left, right


def _region(image, mask, weight, weight_type, start=0.0, end=1.0, **prompts):
    return {"class_type": "IPAdapterRegionalConditioning",
            "inputs": {"image": [image, 0], "mask": [mask, 0], "image_weight": weight, "prompt_weight": 1.0,
                       "weight_type": weight_type, "start_at": start, "end_at": end, **prompts}}


def test_from_params_equals_one_advanced_node_per_region(vision_engine, ipa_files):  # noqa: F811
    left, right = _halves()
    tensors = {"image": _photo(), "flipped": _photo().flip(2), "left": left, "right": right}
    wf = _workflow(("IPAdapterAdvanced", {**ADV, "weight": 0.8, "weight_type": "linear", "start_at": 0.0,
                                          "end_at": 1.0, "attn_mask": ["ml", 0]}))
    wf["ml"] = {"class_type": "TestTensor", "inputs": {"key": "left"}}
    wf["mr"] = {"class_type": "TestTensor", "inputs": {"key": "right"}}
    wf["img2"] = {"class_type": "TestTensor", "inputs": {"key": "flipped"}}
    wf["a2"] = {"class_type": "IPAdapterAdvanced",
                "inputs": {"model": ["a", 0], "ipadapter": ["u", 1], "image": ["img2", 0], **ADV, "weight": 0.6,
                           "weight_type": "ease in", "start_at": 0.0, "end_at": 0.7, "attn_mask": ["mr", 0]}}
    wf["k"]["inputs"]["model"] = ["a2", 0]
    chained = _run(vision_engine, wf, tensors)

    wf = _workflow()
    wf["u"] = {"class_type": "IPAdapterUnifiedLoader", "inputs": {"model": ["1", 0], "preset": "STANDARD (medium strength)"}}
    wf["ml"] = {"class_type": "TestTensor", "inputs": {"key": "left"}}
    wf["mr"] = {"class_type": "TestTensor", "inputs": {"key": "right"}}
    wf["img2"] = {"class_type": "TestTensor", "inputs": {"key": "flipped"}}
    wf["r1"] = _region("img", "ml", 0.8, "linear")
    wf["r2"] = _region("img2", "mr", 0.6, "ease in", end=0.7)
    wf["c"] = {"class_type": "IPAdapterCombineParams", "inputs": {"params_1": ["r1", 0], "params_2": ["r2", 0]}}
    wf["f"] = {"class_type": "IPAdapterFromParams",
               "inputs": {"model": ["u", 0], "ipadapter": ["u", 1], "ipadapter_params": ["c", 0], **ADV}}
    wf["k"]["inputs"]["model"] = ["f", 0]
    from_params = _run(vision_engine, wf, tensors)
    assert torch.allclose(from_params, chained, atol=1e-6)
    assert (from_params - _run(vision_engine, _workflow(), tensors)).abs().max() > 1e-3


def test_the_region_prompts_are_masked_and_steer_their_half(vision_engine, ipa_files):  # noqa: F811
    left, _ = _halves()
    tensors = {"image": _photo(), "left": left}
    wf = _workflow()
    wf["u"] = {"class_type": "IPAdapterUnifiedLoader", "inputs": {"model": ["1", 0], "preset": "STANDARD (medium strength)"}}
    wf["ml"] = {"class_type": "TestTensor", "inputs": {"key": "left"}}
    wf["cat"] = {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a cat on the grass"}}
    wf["r"] = _region("img", "ml", 0.0, "linear", positive=["cat", 0], negative=["3", 0])
    wf["pos"] = {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["2", 0], "conditioning_2": ["r", 1]}}
    wf["neg"] = {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["3", 0], "conditioning_2": ["r", 2]}}
    wf["f"] = {"class_type": "IPAdapterFromParams",
               "inputs": {"model": ["u", 0], "ipadapter": ["u", 1], "ipadapter_params": ["r", 0], **ADV}}
    wf["k"]["inputs"].update(model=["f", 0], positive=["pos", 0], negative=["neg", 0], steps=1)
    regional = _run(vision_engine, wf, tensors)
    # image weight 0: only the prompts act; one step: the result is the blended estimate, so the
    # right half (outside the mask) is the base prompt's alone and the left half differs
    base = _run(vision_engine, _workflow(steps=1), tensors)
    scale = base.abs().max()  # one step to σ 0 from σ_max: latents in the hundreds
    assert (regional[..., 4:] - base[..., 4:]).abs().max() < 1e-5 * scale  # batching rounds differently
    assert (regional[..., :4] - base[..., :4]).abs().max() > 1e-2 * scale


def test_node_values_and_errors():
    prompt = [[torch.zeros(1, 3, 8), {"pooled_output": None}]]
    mask = torch.ones(16, 16)
    params, pos, neg = IPAdapterRegionalConditioning.execute(torch.zeros(1, 8, 8, 3), 0.5, 2.0, "linear", 0.1, 0.9,
                                                            mask, prompt, None)
    assert params == {"image": [params["image"][0]], "attn_mask": [mask], "weight": [0.5], "weight_type": ["linear"],
                      "start_at": [0.1], "end_at": [0.9]}
    assert torch.equal(pos[0][1]["mask"], mask[None]) and pos[0][1]["mask_strength"] == 2.0 and not pos[0][1]["set_area_to_bounds"]
    assert neg is None and "mask" not in prompt[0][1]
    unmasked = IPAdapterRegionalConditioning.execute(torch.zeros(1, 8, 8, 3), 1.0, 1.0, "linear", 0.0, 1.0,
                                                     None, prompt, prompt)
    assert unmasked[1] is prompt and unmasked[0]["attn_mask"] == [None]
    joined = IPAdapterCombineParams.execute(params, unmasked[0])[0]
    assert joined["weight"] == [0.5, 1.0] and joined["attn_mask"] == [mask, None]
    with pytest.raises(ValidationError, match="`params_2`"):
        IPAdapterCombineParams.execute(params, {"image": []})
    with pytest.raises(ValidationError, match="IPAdapterRegionalConditioning: `mask`"):
        IPAdapterRegionalConditioning.execute(torch.zeros(1, 8, 8, 3), 1.0, 1.0, "linear", 0.0, 1.0, torch.ones(1, 1, 4, 4))
    with pytest.raises(ValidationError, match="`weight_type`"):
        IPAdapterRegionalConditioning.execute(torch.zeros(1, 8, 8, 3), 1.0, 1.0, "sideways", 0.0, 1.0)
