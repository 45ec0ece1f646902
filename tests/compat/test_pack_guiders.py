"""Pack guiders and samplers on nodeloom's loop: a ``comfy.samplers.CFGGuider`` subclass overriding
``predict_noise`` with ``sampling_function`` (KJNodes' scheduled CFG), and a SAMPLER made by
``comfy.samplers.KSAMPLER`` from ``comfy.k_diffusion.sampling`` — through ``SamplerCustomAdvanced``,
compared with the built-in guiders and samplers on a tiny SD model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from nodeloom.core.graph_builder import GraphBuilder
from nodeloom.engine import Engine
from nodeloom.testing.diffusion_fixtures import no_network, single_thread, tiny_models_dir  # noqa: F401
from tests.compat.pack_fixtures import pack_engine

GUIDER_PACK = '''
import torch
import comfy.samplers
from comfy.samplers import CFGGuider, sampling_function
from comfy.k_diffusion import sampling as k_sampling

class ScheduledGuider(CFGGuider):
    def set_cfg(self, cfg, start_percent, end_percent):
        self.cfg, self.start_percent, self.end_percent = cfg, start_percent, end_percent

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        steps = model_options["transformer_options"]["sample_sigmas"]
        index = int(torch.isclose(steps, timestep.reshape(-1)[0].to(steps)).nonzero()[0])
        if self.start_percent <= index / (len(steps) - 1) <= self.end_percent:
            return sampling_function(self.inner_model, x, timestep, self.conds.get("negative"),
                                     self.conds.get("positive"), self.cfg, model_options=model_options, seed=seed)
        return sampling_function(self.inner_model, x, timestep, None, self.conds.get("positive"), 1.0,
                                 model_options=model_options, seed=seed)

class ScheduledCFG:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "positive": ("CONDITIONING",), "negative": ("CONDITIONING",),
                             "cfg": ("FLOAT", {"default": 6.0}), "start_percent": ("FLOAT", {"default": 0.0}),
                             "end_percent": ("FLOAT", {"default": 1.0})}}
    RETURN_TYPES = ("GUIDER",)
    FUNCTION = "get_guider"
    CATEGORY = "test"

    def get_guider(self, model, positive, negative, cfg, start_percent, end_percent):
        guider = ScheduledGuider(model)
        guider.set_conds(positive, negative)
        guider.set_cfg(cfg, start_percent, end_percent)
        return (guider,)

def sample_my_euler(model, x, sigmas, extra_args=None, callback=None, disable=None, **kwargs):
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * x.new_ones([x.shape[0]]), **(extra_args or {}))
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        x = x + k_sampling.to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
    return x

class PackSampler:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"function": (["own_euler", "dpmpp_2m"],)}}
    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get_sampler"
    CATEGORY = "test"

    def get_sampler(self, function):
        chosen = sample_my_euler if function == "own_euler" else k_sampling.sample_dpmpp_2m
        return (comfy.samplers.KSAMPLER(chosen),)

NODE_CLASS_MAPPINGS = {"ScheduledCFG": ScheduledCFG, "PackSampler": PackSampler}
'''


@pytest.fixture
def engine(tmp_path: Path, tiny_models_dir: Path, no_network: None, single_thread: None) -> Any:  # noqa: F811
    yield from pack_engine(tmp_path, "guider_pack", GUIDER_PACK, tiny_models_dir)


def _sample(g: GraphBuilder, guider: Any, sampler: Any, sigmas: Any, latent: Any) -> Any:
    noise = g.node("RandomNoise", noise_seed=11)
    node = g.node("SamplerCustomAdvanced", noise=noise.out(0), guider=guider.out(0), sampler=sampler.out(0),
                  sigmas=sigmas.out(0), latent_image=latent.out(0))
    g.node("KeepLatent", latent=node.out(0))
    return node


def test_pack_guider_and_ksampler_run_like_the_builtin_ones(engine: Engine) -> None:
    g = GraphBuilder(prefix="")
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name="tiny_sd1.safetensors")
    pos = g.node("CLIPTextEncode", text="a red cube", clip=ckpt.out(1))
    neg = g.node("CLIPTextEncode", text="blurry", clip=ckpt.out(1))
    latent = g.node("EmptyLatentImage", width=64, height=64, batch_size=1)  # 1 sample: the tiny UNet needs 2×2 at its bottom
    sigmas = g.node("BasicScheduler", model=ckpt.out(0), scheduler="normal", steps=3, denoise=1.0)
    euler = g.node("KSamplerSelect", sampler_name="euler")
    dpm = g.node("KSamplerSelect", sampler_name="dpmpp_2m")
    cfg = g.node("CFGGuider", model=ckpt.out(0), positive=pos.out(0), negative=neg.out(0), cfg=5.0)
    basic = g.node("BasicGuider", model=ckpt.out(0), conditioning=pos.out(0))
    full = g.node("ScheduledCFG", model=ckpt.out(0), positive=pos.out(0), negative=neg.out(0), cfg=5.0,
                  start_percent=0.0, end_percent=1.0)
    never = g.node("ScheduledCFG", model=ckpt.out(0), positive=pos.out(0), negative=neg.out(0), cfg=5.0,
                   start_percent=1.0, end_percent=1.0)
    first = g.node("ScheduledCFG", model=ckpt.out(0), positive=pos.out(0), negative=neg.out(0), cfg=5.0,
                   start_percent=0.0, end_percent=0.0)
    runs = {
        "builtin": _sample(g, cfg, euler, sigmas, latent), "basic": _sample(g, basic, euler, sigmas, latent),
        "full": _sample(g, full, euler, sigmas, latent), "never": _sample(g, never, euler, sigmas, latent),
        "first": _sample(g, first, euler, sigmas, latent),
        "k_euler": _sample(g, cfg, g.node("PackSampler", function="own_euler"), sigmas, latent),
        "builtin_dpm": _sample(g, cfg, dpm, sigmas, latent), "k_dpm": _sample(g, cfg, g.node("PackSampler", function="dpmpp_2m"), sigmas, latent),
    }
    result = engine.run(g.finalize())
    assert result.status == "success", [(e.get("node_id"), e.get("exception_message")) for e in result.errors]
    out = {name: result.value(node.id, 0)["samples"] for name, node in runs.items()}
    assert torch.allclose(out["full"], out["builtin"], atol=1e-5)  # CFG on every step: the built-in guidance
    assert torch.allclose(out["never"], out["basic"], atol=1e-5)  # CFG on no step: the positive alone
    assert not torch.allclose(out["first"], out["builtin"], atol=1e-3)
    assert not torch.allclose(out["first"], out["basic"], atol=1e-3)
    assert torch.allclose(out["k_euler"], out["builtin"], atol=1e-5)  # a pack's own Euler loop
    assert torch.allclose(out["k_dpm"], out["builtin_dpm"], atol=1e-5)  # k-diffusion's name over nodeloom's sampler
