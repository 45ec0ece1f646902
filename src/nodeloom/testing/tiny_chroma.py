"""A tiny random Chroma model saved as users download it, for tests and benchmarks.

:func:`build_tiny_chroma` writes ``diffusion_models/`` (the original layout, the diffusers layout
and a scaled-fp8 variant), ``text_encoders/`` (a T5 encoder as ComfyUI's ``t5xxl`` file),
``vae/`` (a Flux-style VAE) and a T5-style tokenizer in ``tokenizers/t5``, and returns the
in-memory modules. :data:`CHROMA_WORKFLOW` is the Chroma template's graph at tiny sizes.
Must not import the engine.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nodeloom.testing.tiny_families import build_t5_tokenizer, save_flux_vae, scaled_fp8

__all__ = ["CHROMA_WORKFLOW", "build_tiny_chroma", "chroma_to_original"]

#: image_chroma_text_to_image.json: T5TokenizerOptions, ModelSamplingAuraFlow 1, BasicScheduler beta, CFGGuider
CHROMA_WORKFLOW = {
    "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_chroma.safetensors", "weight_dtype": "default"}},
    "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "tiny_t5xxl.safetensors", "type": "chroma",
                                                 "device": "default"}},
    "3": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_ae.safetensors"}},
    "4": {"class_type": "T5TokenizerOptions", "inputs": {"clip": ["2", 0], "min_padding": 0, "min_length": 0}},
    "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 0], "text": "a photo of a red fox in a snowy forest"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 0], "text": "blurry, low quality"}},
    "7": {"class_type": "ModelSamplingAuraFlow", "inputs": {"model": ["1", 0], "shift": 1.0}},
    "8": {"class_type": "CFGGuider", "inputs": {"model": ["7", 0], "positive": ["5", 0], "negative": ["6", 0], "cfg": 3.5}},
    "9": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
    "10": {"class_type": "BasicScheduler", "inputs": {"model": ["7", 0], "scheduler": "beta", "steps": 4, "denoise": 1.0}},
    "11": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "12": {"class_type": "RandomNoise", "inputs": {"noise_seed": 9}},
    "13": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["12", 0], "guider": ["8", 0], "sampler": ["9", 0],
                                                             "sigmas": ["10", 0], "latent_image": ["11", 0]}},
    "14": {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["3", 0]}},
    "15": {"class_type": "SaveImage", "inputs": {"images": ["14", 0], "filename_prefix": "chroma"}},
}


def chroma_to_original(sd: dict[str, Any]) -> dict[str, Any]:
    """diffusers ``ChromaTransformer2DModel`` keys → the original Chroma layout."""
    from nodeloom.diffusion.families.flux import diffusers_to_bfl

    head = "distilled_guidance_layer."
    out = diffusers_to_bfl({k: v for k, v in sd.items() if not k.startswith(head)})
    for key, value in sd.items():
        if key.startswith(head):
            key = key.replace(".linear_1.", ".in_layer.").replace(".linear_2.", ".out_layer.")
            out[re.sub(r"(norms\.\d+)\.weight$", r"\1.scale", key)] = value
    return {k: v.contiguous() for k, v in out.items()}


def build_tiny_chroma(root: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write tiny Chroma files under ``root`` (a models folder) and return the modules.

    Returns:
        ``{"transformer", "t5", "tokenizer", "vae"}`` and the file names ``unet``, ``unet_diffusers``,
        ``unet_fp8``, ``t5_file``, ``vae_file``.
    """
    import torch
    from diffusers import ChromaTransformer2DModel
    from safetensors.torch import save_file
    from transformers import T5Config, T5EncoderModel


    root = Path(root)
    for sub in ("diffusion_models", "text_encoders", "vae", "tokenizers/t5"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    tokenizer = build_t5_tokenizer()
    tokenizer.save_pretrained(root / "tokenizers" / "t5")
    torch.manual_seed(seed)
    t5 = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, num_heads=4, d_ff=37, num_layers=2,
                                 feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False)).eval()
    save_file({k: v.contiguous() for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"},
              str(root / "text_encoders" / "tiny_t5xxl.safetensors"))
    transformer = ChromaTransformer2DModel(patch_size=1, in_channels=64, num_layers=1, num_single_layers=2,
                                           attention_head_dim=32, num_attention_heads=2, joint_attention_dim=32,
                                           axes_dims_rope=(4, 14, 14), approximator_num_channels=16,
                                           approximator_hidden_dim=32, approximator_layers=2).eval()
    sd = {k: v.contiguous() for k, v in transformer.state_dict().items()}
    dm = root / "diffusion_models"
    save_file(chroma_to_original(sd), str(dm / "tiny_chroma.safetensors"))
    save_file(sd, str(dm / "tiny_chroma_diffusers.safetensors"))
    save_file(scaled_fp8(chroma_to_original(sd)), str(dm / "tiny_chroma_fp8_scaled.safetensors"))
    vae = save_flux_vae(root, seed)
    return {"transformer": transformer, "t5": t5, "tokenizer": tokenizer, "vae": vae, "unet": "tiny_chroma.safetensors",
            "unet_diffusers": "tiny_chroma_diffusers.safetensors", "unet_fp8": "tiny_chroma_fp8_scaled.safetensors",
            "t5_file": "tiny_t5xxl.safetensors", "vae_file": "tiny_ae.safetensors"}
