"""A detailer-style pack that samples with ``comfy.samplers`` / ``comfy.sample`` on a MODEL from our
loader, encodes with ``clip.tokenize`` / ``encode_from_tokens`` and pastes with
``comfy_extras.nodes_mask.composite`` — the calls Impact Pack's detailers make — compared with the
built-in KSampler on the same inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from nodeloom.core.graph_builder import GraphBuilder
from nodeloom.engine import Engine
from nodeloom.testing.diffusion_fixtures import no_network, single_thread, tiny_models_dir  # noqa: F401
from tests.compat.pack_fixtures import pack_engine

DETAIL_PACK = '''
import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.sd
import folder_paths
import latent_preview
import nodes
from comfy_extras.nodes_mask import composite

def _conds(clip, text):
    cond, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
    return [[cond, {"pooled_output": pooled}]], clip.encode_from_tokens_scheduled(clip.tokenize(""))

class TinyDetailer:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE",), "model": ("MODEL",), "clip": ("CLIP",), "vae": ("VAE",),
            "seed": ("INT", {"default": 0}), "steps": ("INT", {"default": 2}), "cfg": ("FLOAT", {"default": 4.0}),
            "sampler_name": (comfy.samplers.KSampler.SAMPLERS,), "scheduler": (comfy.samplers.KSampler.SCHEDULERS,),
            "denoise": ("FLOAT", {"default": 0.5}), "text": ("STRING", {"default": "a face"})}}
    RETURN_TYPES = ("IMAGE", "LATENT")
    FUNCTION = "detail"
    CATEGORY = "test"

    def detail(self, image, model, clip, vae, seed, steps, cfg, sampler_name, scheduler, denoise, text):
        comfy.model_management.throw_exception_if_processing_interrupted()
        positive, negative = _conds(clip, text)
        crop = image[:, 8:40, 8:40, :]
        latent = vae.encode(crop)
        noise = comfy.sample.prepare_noise(latent, seed)
        callback = latent_preview.prepare_callback(model, steps)
        samples = comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative,
                                      latent, denoise=denoise, callback=callback, seed=seed)
        patch = vae.decode(samples)
        pasted = composite(image.movedim(-1, 1), patch.movedim(-1, 1), 8, 8, None, 1).movedim(1, -1)
        return (pasted, {"samples": samples})

class CommonSampler:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "positive": ("CONDITIONING",), "negative": ("CONDITIONING",),
                             "latent": ("LATENT",), "seed": ("INT", {"default": 0})}}
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "run"
    CATEGORY = "test"

    def run(self, model, positive, negative, latent, seed):
        return nodes.common_ksampler(model, seed, 2, 4.0, "euler_ancestral", "karras", positive, negative, latent)

class CheckpointByPath:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": (folder_paths.get_filename_list("checkpoints"),)}}
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load"
    CATEGORY = "test"

    def load(self, ckpt_name):
        return comfy.sd.load_checkpoint_guess_config(folder_paths.get_full_path("checkpoints", ckpt_name))[:3]

NODE_CLASS_MAPPINGS = {"TinyDetailer": TinyDetailer, "CommonSampler": CommonSampler,
                       "CheckpointByPath": CheckpointByPath}
'''


@pytest.fixture
def engine(tmp_path: Path, tiny_models_dir: Path, no_network: None, single_thread: None) -> Any:  # noqa: F811
    yield from pack_engine(tmp_path, "detail_pack", DETAIL_PACK, tiny_models_dir)


def test_detailer_pack_samples_like_the_builtin_ksampler(engine: Engine) -> None:
    g = GraphBuilder(prefix="")
    ckpt = g.node("CheckpointByPath", ckpt_name="tiny_sd1.safetensors")
    image = g.node("EmptyImage", width=48, height=48, batch_size=1, color=0x8040C0)
    detail = g.node("TinyDetailer", image=image.out(0), model=ckpt.out(0), clip=ckpt.out(1), vae=ckpt.out(2),
                    seed=3, steps=2, cfg=4.0, sampler_name="euler", scheduler="normal", denoise=0.5, text="a face")
    # the same sampling with built-in nodes
    crop = g.node("ImageCrop", image=image.out(0), width=32, height=32, x=8, y=8)
    encoded = g.node("VAEEncode", pixels=crop.out(0), vae=ckpt.out(2))
    pos = g.node("CLIPTextEncode", text="a face", clip=ckpt.out(1))
    neg = g.node("CLIPTextEncode", text="", clip=ckpt.out(1))
    builtin = g.node("KSampler", model=ckpt.out(0), seed=3, steps=2, cfg=4.0, sampler_name="euler", scheduler="normal",
                     positive=pos.out(0), negative=neg.out(0), latent_image=encoded.out(0), denoise=0.5)
    common = g.node("CommonSampler", model=ckpt.out(0), positive=pos.out(0), negative=neg.out(0),
                    latent=encoded.out(0), seed=5)
    ancestral = g.node("KSampler", model=ckpt.out(0), seed=5, steps=2, cfg=4.0, sampler_name="euler_ancestral",
                       scheduler="karras", positive=pos.out(0), negative=neg.out(0), latent_image=encoded.out(0),
                       denoise=1.0)
    g.node("PreviewImage", images=detail.out(0))
    for node, slot in ((detail, 1), (builtin, 0), (common, 0), (ancestral, 0)):
        g.node("KeepLatent", latent=node.out(slot))
    result = engine.run(g.finalize())
    assert result.status == "success", result.errors
    pasted, latent = result.value(detail.id, 0), result.value(detail.id, 1)
    assert torch.equal(latent["samples"], result.value(builtin.id)["samples"])
    assert torch.equal(result.value(common.id)["samples"], result.value(ancestral.id)["samples"])
    source = result.value(image.id)
    assert pasted.shape == source.shape
    assert torch.equal(pasted[:, :8], source[:, :8])  # outside the crop nothing changed
    assert not torch.equal(pasted[:, 8:40, 8:40], source[:, 8:40, 8:40])


def test_sampling_surface_refuses_what_it_cannot_honour() -> None:
    import importlib

    from nodeloom.compat import hook

    hook.install()
    samplers = importlib.import_module("comfy.samplers")
    sd = importlib.import_module("comfy.sd")
    with pytest.raises(TypeError, match="needs a nodeloom MODEL"):
        samplers.KSampler(object(), steps=2)
    with pytest.raises(ValueError, match="not supported"):
        samplers.sampler_object("no_such_sampler")
    with pytest.raises(NotImplementedError, match="LoraLoader"):
        sd.load_lora_for_models(None, None, {}, 1.0, 1.0)
    assert "euler" in samplers.KSampler.SAMPLERS and "karras" in samplers.KSampler.SCHEDULERS
