"""IP-Adapter's cost in a KSampler run: the same tiny SD1 run with and without an adapter (the
anchor), and diffusers' StableDiffusionPipeline after ``load_ip_adapter`` on the same model and
file, same process.

Tiny random weights, so the figures are the adapter path's overhead, not a real model's time.

    PYTHONPATH=src python benchmarks/bench_ip_adapter.py [--size 256] [--steps 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time  # noqa: E402

from nodeloom.core.context import activate_services  # noqa: E402
from nodeloom.diffusion.clip_vision import load_clip_vision  # noqa: E402
from nodeloom.diffusion.ip_adapter import apply_ip_adapter, load_ip_adapter  # noqa: E402
from nodeloom.diffusion.schedules import calculate_sigmas  # noqa: E402
from nodeloom.diffusion.tokenizer import clip_tokenizer  # noqa: E402
from nodeloom.models.manager import ModelManager  # noqa: E402
from nodeloom.paths import FolderPaths  # noqa: E402
from nodeloom.services import Services  # noqa: E402
from nodeloom.testing.tiny_clip_vision import save_vision_file, tiny_vision_model  # noqa: E402
from nodeloom.testing.tiny_ip_adapter import save_tiny_ip_adapter  # noqa: E402
from nodeloom.testing.tiny_sd import build_tiny_checkpoint  # noqa: E402


def _pipeline(model, clip, vae, folder: Path):
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=vae.vae, text_encoder=clip.encoders[0], tokenizer=clip_tokenizer(), unet=copy.deepcopy(model.unet),
        scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                         timestep_spacing="leading"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.load_ip_adapter(str(folder), subfolder="", weight_name="ipa.safetensors", image_encoder_folder=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from nodeloom.nodes.diffusion.conditioning import CLIPTextEncode
    from nodeloom.nodes.diffusion.latent import EmptyLatentImage
    from nodeloom.nodes.diffusion.loaders import CheckpointLoaderSimple
    from nodeloom.nodes.diffusion.sampling import KSampler

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_tiny_checkpoint(root / "models", "sd1")
        paths = FolderPaths(root / "base", models_dir=root / "models")
        paths.ensure()
        with activate_services(Services(paths, ModelManager(device="cpu"))):
            model, clip, vae = CheckpointLoaderSimple.execute("tiny_sd1.safetensors")
            vision = load_clip_vision(save_vision_file(tiny_vision_model("clip_h", seed=3), root / "vision.safetensors"))
            save_tiny_ip_adapter(model.unet, root / "ipa.safetensors", 24, seed=2)
            photo = torch.from_numpy(data.astronaut()[::8, ::8].astype(np.float32) / 255.0)[None]
            steered = apply_ip_adapter(model, load_ip_adapter(root / "ipa.safetensors"), vision, photo)
            pos, neg = CLIPTextEncode.execute("an astronaut", clip)[0], CLIPTextEncode.execute("", clip)[0]
            latent = EmptyLatentImage.execute(args.size, args.size, 1)[0]

            def run(m):
                return lambda: KSampler.execute(m, 1, args.steps, 7.0, "euler", "normal", pos, neg, latent, 1.0)

            anchor = best_time(run(model), repeat=args.repeat)
            ours = best_time(run(steered), repeat=args.repeat)
            pipe = _pipeline(model, clip, vae, root)
            embeds = vision.encode_image(photo)["image_embeds"]
            sigmas = calculate_sigmas(model.sampling, "normal", args.steps).tolist()
            ref = best_time(lambda: pipe("an astronaut", negative_prompt="", height=args.size, width=args.size,
                                         guidance_scale=7.0, sigmas=sigmas, output_type="latent",
                                         ip_adapter_image_embeds=[torch.cat([torch.zeros_like(embeds), embeds])[:, None]]),
                            repeat=args.repeat)
    print(f"tiny SD1, {args.size}x{args.size}, {args.steps} euler steps, CFG 7, best of {args.repeat}")
    print(f"anchor (KSampler, no adapter):          {anchor * 1000:.0f} ms")
    print(f"ours   (KSampler + IP-Adapter):         {ours * 1000:.0f} ms | overhead {100 * (ours - anchor) / anchor:+.1f} %")
    print(f"diffusers pipeline + load_ip_adapter:   {ref * 1000:.0f} ms (prompt encoding included)")


if __name__ == "__main__":
    main()
