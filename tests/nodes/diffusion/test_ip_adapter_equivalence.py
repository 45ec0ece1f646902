"""IP-Adapter through KSampler against diffusers' StableDiffusionPipeline with ``load_ip_adapter``
on the same tiny SD1 model, adapter file, image embedding, seed and sigmas: max |Δ| ≤ 1e-4 on the
decoded image (the setup of test_equivalence.py)."""

import copy

import numpy as np
import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline
from skimage import data

from nodeloom.diffusion.clip_vision import load_clip_vision
from nodeloom.diffusion.ip_adapter import apply_ip_adapter, load_ip_adapter
from nodeloom.diffusion.schedules import calculate_sigmas
from nodeloom.diffusion.tokenizer import clip_tokenizer
from nodeloom.nodes.diffusion.conditioning import CLIPTextEncode
from nodeloom.nodes.diffusion.latent import EmptyLatentImage
from nodeloom.nodes.diffusion.loaders import CheckpointLoaderSimple
from nodeloom.nodes.diffusion.sampling import KSampler
from nodeloom.nodes.diffusion.vae import VAEDecode
from nodeloom.testing.tiny_clip_vision import save_vision_file, tiny_vision_model
from nodeloom.testing.tiny_ip_adapter import save_tiny_ip_adapter

PROMPT, NEGATIVE = "a photo of an astronaut riding a horse", "blurry"
SEED, STEPS, CFG, SIZE = 1234, 6, 7.5, 64
_SCHED = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="leading")


def test_ksampler_with_ip_adapter_matches_pipeline_with_load_ip_adapter(diffusion_services, tmp_path):
    model, clip, vae = CheckpointLoaderSimple.execute("tiny_sd1.safetensors")
    vision = load_clip_vision(save_vision_file(tiny_vision_model("clip_h", seed=3), tmp_path / "vision.safetensors"))
    path = save_tiny_ip_adapter(model.unet, tmp_path / "ipa.safetensors", 24, seed=2)
    photo = torch.from_numpy(data.astronaut()[::8, ::8].astype(np.float32) / 255.0)[None]
    steered = apply_ip_adapter(model, load_ip_adapter(path), vision, photo, weight=0.8)
    pos, neg = CLIPTextEncode.execute(PROMPT, clip)[0], CLIPTextEncode.execute(NEGATIVE, clip)[0]
    latent = KSampler.execute(steered, SEED, STEPS, CFG, "euler", "normal", pos, neg,
                              EmptyLatentImage.execute(SIZE, SIZE, 1)[0], 1.0)[0]
    ours = VAEDecode.execute(latent, vae)[0]
    plain = VAEDecode.execute(KSampler.execute(model, SEED, STEPS, CFG, "euler", "normal", pos, neg,
                                               EmptyLatentImage.execute(SIZE, SIZE, 1)[0], 1.0)[0], vae)[0]

    pipe = StableDiffusionPipeline(vae=vae.vae, text_encoder=clip.encoders[0], tokenizer=clip_tokenizer(),
                                   unet=copy.deepcopy(model.unet), scheduler=EulerDiscreteScheduler(**_SCHED),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.load_ip_adapter(str(tmp_path), subfolder="", weight_name="ipa.safetensors", image_encoder_folder=None)
    pipe.set_ip_adapter_scale(0.8)
    embeds = vision.encode_image(photo)["image_embeds"]
    ref = pipe(PROMPT, negative_prompt=NEGATIVE, height=SIZE, width=SIZE, guidance_scale=CFG,
               sigmas=calculate_sigmas(model.sampling, "normal", STEPS).tolist(),
               ip_adapter_image_embeds=[torch.cat([torch.zeros_like(embeds), embeds])[:, None]],
               generator=torch.Generator().manual_seed(SEED), output_type="pt").images.movedim(1, -1)
    assert (ours - plain).abs().max() > 1e-3
    assert (ours - ref).abs().max() <= 1e-4
