"""ScaleROPE on a tiny Wan 2.1 model through the engine: identity positions change nothing,
the ChronoEdit template's time scale changes the video, other families are refused by name."""

from __future__ import annotations

import copy

import pytest
import torch

from nodeloom.testing.tiny_wan import WAN21_T2V_WORKFLOW, build_tiny_wan
from tests.nodes.diffusion.family_helpers import engine_for, run_ok


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    build_tiny_wan(root)
    return root


def _prompt(**rope: float) -> dict:
    prompt = {k: v for k, v in copy.deepcopy(WAN21_T2V_WORKFLOW).items() if k not in ("8", "49", "50")}
    prompt["3"]["inputs"].update(sampler_name="euler", steps=2)
    if rope:
        prompt["60"] = {"class_type": "ScaleROPE", "inputs": {"model": ["37", 0], **{
            k: rope.get(k, 1.0 if k.startswith("scale") else 0.0)
            for k in ("scale_x", "shift_x", "scale_y", "shift_y", "scale_t", "shift_t")}}}
        prompt["48"]["inputs"]["model"] = ["60", 0]
    prompt["sink"] = {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}}
    return prompt


def test_scale_rope_on_wan(tmp_path, wan):
    with engine_for(tmp_path, wan) as engine:
        plain = run_ok(engine, _prompt()).value("3")["samples"]
        same = run_ok(engine, _prompt(scale_t=1.0)).value("3")["samples"]
        moved = run_ok(engine, _prompt(scale_t=7.0)).value("3")["samples"]
        # the template's setting (ChronoEdit): positions 0, 7, 14... in time; the model is not changed for others
        again = run_ok(engine, _prompt()).value("3")["samples"]
        info = engine.object_info("ScaleROPE")["ScaleROPE"]
    assert torch.equal(same, plain) and torch.equal(again, plain)
    assert (moved - plain).abs().max() > 1e-4
    assert info["input"]["required"]["scale_t"][1] | {"tooltip": None} == {
        "default": 1.0, "min": 0.0, "max": 100.0, "step": 0.1, "tooltip": None}


def test_scale_rope_refuses_other_families(diffusion_services):
    from nodeloom.errors import ValidationError
    from nodeloom.nodes.diffusion.loaders import CheckpointLoaderSimple
    from nodeloom.nodes.diffusion.rope_nodes import ScaleROPE

    model = CheckpointLoaderSimple.execute("tiny_sd1.safetensors")[0]
    with pytest.raises(ValidationError, match="ScaleROPE applies to Wan models in nodeloom; `model` is a sd1 model"):
        ScaleROPE.execute(model, 1.0, 0.0, 1.0, 0.0, 7.0, 0.0)
