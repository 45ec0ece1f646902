"""ModelPatcher-style calls packs make on a MODEL: clone isolation, CFG functions honoured by our
sampler, and clear errors (naming the pack) for patches nodeloom cannot apply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from nodeloom.core.graph_builder import GraphBuilder
from nodeloom.engine import Engine
from nodeloom.testing.diffusion_fixtures import no_network, single_thread, tiny_models_dir  # noqa: F401
from tests.compat.pack_fixtures import pack_engine, sample_tiny

PATCH_PACK = '''
class CFGRecorder:
    """Like packs' CFG rescalers: a sampler_cfg_function on a clone of the MODEL."""
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "mode": (["plain", "post", "weights"],)}}
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "test"

    def patch(self, model, mode):
        m = model.clone()
        if mode == "plain":
            # the same guidance as the built-in formula, written as ComfyUI packs write it
            m.set_model_sampler_cfg_function(lambda a: a["uncond"] + (a["cond"] - a["uncond"]) * a["cond_scale"])
        elif mode == "post":
            m.set_model_sampler_post_cfg_function(lambda a: a["denoised"] * 0.0)
        else:
            m.add_patches({"diffusion_model.out.2.weight": (torch.zeros(1),)}, 1.0)
        return (m,)

NODE_CLASS_MAPPINGS = {"CFGRecorder": CFGRecorder}
'''


@pytest.fixture
def engine(tmp_path: Path, tiny_models_dir: Path, no_network: None, single_thread: None) -> Any:  # noqa: F811
    yield from pack_engine(tmp_path, "patch_pack", PATCH_PACK, tiny_models_dir)


def test_cfg_functions_are_honoured_on_a_clone(engine: Engine) -> None:
    g = GraphBuilder(prefix="")
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name="tiny_sd1.safetensors")
    plain = sample_tiny(g, ckpt.out(0), ckpt.out(1))
    same = sample_tiny(g, g.node("CFGRecorder", model=ckpt.out(0), mode="plain").out(0), ckpt.out(1))
    zeroed = sample_tiny(g, g.node("CFGRecorder", model=ckpt.out(0), mode="post").out(0), ckpt.out(1))
    again = sample_tiny(g, ckpt.out(0), ckpt.out(1))
    result = engine.run(g.finalize())
    assert result.status == "success", result.errors
    reference = result.value(plain.id)["samples"]
    assert torch.allclose(result.value(same.id)["samples"], reference, atol=1e-5)
    assert not torch.allclose(result.value(zeroed.id)["samples"], reference)
    assert torch.equal(result.value(again.id)["samples"], reference)  # the original MODEL was not patched


def test_unsupported_patch_names_the_pack_and_the_call(engine: Engine) -> None:
    g = GraphBuilder(prefix="")
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name="tiny_sd1.safetensors")
    sample_tiny(g, g.node("CFGRecorder", model=ckpt.out(0), mode="weights").out(0), ckpt.out(1))
    result = engine.run(g.finalize())
    assert result.status == "error"
    message = result.errors[0]["exception_message"]
    assert "custom nodes `patch_pack` call `MODEL.add_patches`" in message and "LoraLoader" in message
