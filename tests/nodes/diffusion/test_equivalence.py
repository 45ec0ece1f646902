"""KSampler against diffusers' pipelines on the same tiny model, seed and noise schedule.

Tolerance: max |Δ| ≤ 1e-4 on the decoded image (0..1). The diffusers scheduler is given our
"normal" sigmas (``sigmas=`` or an override of ``set_timesteps``) and ``timestep_spacing="leading"``
so its initial noise scale is √(σ_max²+1) like KSampler's; nothing else is adapted.
"""

import torch
from diffusers import (
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
)

from nodeloom.diffusion.schedules import calculate_sigmas
from nodeloom.diffusion.tokenizer import clip_tokenizer
from nodeloom.nodes.diffusion.conditioning import CLIPTextEncode
from nodeloom.nodes.diffusion.latent import EmptyLatentImage
from nodeloom.nodes.diffusion.loaders import CheckpointLoaderSimple
from nodeloom.nodes.diffusion.sampling import KSampler
from nodeloom.nodes.diffusion.vae import VAEDecode, VAEEncode

ATOL = 1e-4
PROMPT, NEGATIVE = "a photo of an astronaut riding a horse", "blurry"
SEED, STEPS, CFG, SIZE = 1234, 6, 7.5, 64
_SCHED = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="leading")


def _ours(sampler_name, latent=None, denoise=1.0, steps=STEPS):
    model, clip, vae = CheckpointLoaderSimple.execute("tiny_sd1.safetensors")
    pos = CLIPTextEncode.execute(PROMPT, clip)[0]
    neg = CLIPTextEncode.execute(NEGATIVE, clip)[0]
    latent = latent or EmptyLatentImage.execute(SIZE, SIZE, 1)[0]
    out = KSampler.execute(model, SEED, steps, CFG, sampler_name, "normal", pos, neg, latent, denoise)[0]
    return VAEDecode.execute(out, vae)[0], model, vae


def _pipe(cls, model, vae, scheduler):
    _, clip, _ = CheckpointLoaderSimple.execute("tiny_sd1.safetensors")
    return cls(vae=vae.vae, text_encoder=clip.encoders[0], tokenizer=clip_tokenizer(), unet=model.unet,
               scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def test_euler_normal_matches_stable_diffusion_pipeline(diffusion_services):
    image, model, vae = _ours("euler")
    sigmas = calculate_sigmas(model.sampling, "normal", STEPS).tolist()
    pipe = _pipe(StableDiffusionPipeline, model, vae, EulerDiscreteScheduler(**_SCHED))
    ref = pipe(PROMPT, negative_prompt=NEGATIVE, height=SIZE, width=SIZE, guidance_scale=CFG, sigmas=sigmas,
               generator=torch.Generator().manual_seed(SEED), output_type="pt").images.movedim(1, -1)
    assert image.shape == ref.shape == (1, SIZE, SIZE, 3)
    assert (image - ref).abs().max() <= ATOL


class _FixedSigmas(EulerAncestralDiscreteScheduler):
    """diffusers' Euler-ancestral step on a given sigma list (this scheduler takes no ``sigmas=``)."""

    fixed: list = []

    def set_timesteps(self, num_inference_steps, device=None):
        super().set_timesteps(num_inference_steps, device)
        log_sigmas = ((1 - self.alphas_cumprod) / self.alphas_cumprod).sqrt().log().numpy()
        sig = torch.tensor(self.fixed)
        self.timesteps = torch.tensor([float(EulerDiscreteScheduler._sigma_to_t(self, s, log_sigmas)) for s in sig[:-1].numpy()], dtype=torch.float32)
        self.sigmas = sig


def test_euler_ancestral_matches_pipeline(diffusion_services):
    image, model, vae = _ours("euler_ancestral")
    sched = _FixedSigmas(**_SCHED)
    sched.fixed = calculate_sigmas(model.sampling, "normal", STEPS).tolist()
    pipe = _pipe(StableDiffusionPipeline, model, vae, sched)
    # ComfyUI's two streams: the initial noise from one generator seeded with the seed, the step
    # noise from a second one seeded alike (diffusers draws the step noise from `generator`)
    initial = torch.randn(1, 4, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(SEED))
    ref = pipe(PROMPT, negative_prompt=NEGATIVE, height=SIZE, width=SIZE, guidance_scale=CFG, num_inference_steps=STEPS,
               latents=initial, generator=torch.Generator().manual_seed(SEED), output_type="pt").images.movedim(1, -1)
    assert (image - ref).abs().max() <= ATOL
    plain, _, _ = _ours("euler")
    assert (image - plain).abs().max() > 1e-3  # the ancestral noise really acts


def test_img2img_half_denoise_matches_img2img_pipeline(diffusion_services):
    from skimage import data
    from PIL import Image

    photo = Image.fromarray(data.astronaut()).resize((SIZE, SIZE), Image.BICUBIC)
    pixels = torch.from_numpy(__import__("numpy").asarray(photo, dtype="float32") / 255.0)[None]
    _, _, vae = CheckpointLoaderSimple.execute("tiny_sd1.safetensors")
    latent = VAEEncode.execute(pixels, vae)[0]
    image, model, vae = _ours("euler", latent=latent, denoise=0.5, steps=4)
    # KSampler with denoise 0.5 walks the last 4 sigmas of an 8-step schedule; so does strength 0.5 of 8 steps
    sigmas = calculate_sigmas(model.sampling, "normal", 8).tolist()
    pipe = _pipe(StableDiffusionImg2ImgPipeline, model, vae, EulerDiscreteScheduler(**_SCHED))
    ref = pipe(PROMPT, image=latent["samples"] * model.latent_scale, negative_prompt=NEGATIVE, strength=0.5,
               guidance_scale=CFG, sigmas=sigmas, generator=torch.Generator().manual_seed(SEED),
               output_type="pt").images.movedim(1, -1)
    assert (image - ref).abs().max() <= ATOL


def test_sdxl_euler_matches_sdxl_pipeline(diffusion_services):
    """SDXL: two encoders (penultimate layers), pooled output and size conditioning as diffusers builds them."""
    from diffusers import StableDiffusionXLPipeline

    model, clip, vae = CheckpointLoaderSimple.execute("tiny_sdxl.safetensors")
    pos = CLIPTextEncode.execute(PROMPT, clip)[0]
    neg = CLIPTextEncode.execute(NEGATIVE, clip)[0]
    latent = EmptyLatentImage.execute(SIZE, SIZE, 1)[0]
    out = KSampler.execute(model, SEED, STEPS, CFG, "euler", "normal", pos, neg, latent, 1.0)[0]
    image = VAEDecode.execute(out, vae)[0]
    tokenizer_2 = clip_tokenizer()
    tokenizer_2.pad_token = "!"  # OpenCLIP-G pads with token 0
    pipe = StableDiffusionXLPipeline(vae=vae.vae, text_encoder=clip.encoders[0], text_encoder_2=clip.encoders[1],
                                     tokenizer=clip_tokenizer(), tokenizer_2=tokenizer_2, unet=model.unet,
                                     scheduler=EulerDiscreteScheduler(**_SCHED))
    ref = pipe(PROMPT, negative_prompt=NEGATIVE, height=SIZE, width=SIZE, guidance_scale=CFG,
               sigmas=calculate_sigmas(model.sampling, "normal", STEPS).tolist(),
               generator=torch.Generator().manual_seed(SEED), output_type="pt").images.movedim(1, -1)
    assert (image - ref).abs().max() <= ATOL
