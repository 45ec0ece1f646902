"""A tiny random Lumina Image 2.0 model saved as users download it, for tests and benchmarks.

:func:`build_tiny_lumina2` writes ``diffusion_models/`` (the original NextDiT layout as ComfyUI's
repackaged file holds it, the diffusers layout and a scaled-fp8 variant), ``text_encoders/`` (a
Gemma 2 encoder), ``vae/`` (a Flux-style VAE) and a small tokenizer in ``tokenizers/gemma2``,
and returns the in-memory modules. :data:`LUMINA2_WORKFLOW` is the Lumina template's graph (its
system prompt joined in front of the prompt with StringConcatenate) on the split loaders.
Must not import the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nodeloom.testing.tiny_families import save_flux_vae, scaled_fp8

__all__ = ["LUMINA2_WORKFLOW", "build_tiny_lumina2", "lumina2_to_original"]

_SYSTEM = "You are an assistant designed to generate high quality anime images based on textual prompts. <Prompt Start> "
_NEGATIVE = "You are an assistant designed to generate low-quality images based on textual prompts <Prompt Start> "

#: image_netayume_lumina_t2i.json's sampling and prompt wiring, on UNETLoader + CLIPLoader lumina2, tiny sizes
LUMINA2_WORKFLOW = {
    "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_lumina2.safetensors", "weight_dtype": "default"}},
    "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "tiny_gemma2.safetensors", "type": "lumina2",
                                                 "device": "default"}},
    "3": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_ae.safetensors"}},
    "4": {"class_type": "StringConcatenate", "inputs": {"string_a": _SYSTEM, "string_b": "a red fox in a snowy forest",
                                                        "delimiter": ""}},
    "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": ["4", 0]}},
    "6": {"class_type": "StringConcatenate", "inputs": {"string_a": _NEGATIVE, "string_b": "blurry, low quality",
                                                        "delimiter": ""}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": ["6", 0]}},
    "8": {"class_type": "ModelSamplingAuraFlow", "inputs": {"model": ["1", 0], "shift": 4.0}},
    "9": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "10": {"class_type": "KSampler", "inputs": {"model": ["8", 0], "seed": 13, "steps": 4, "cfg": 4.0,
                                                "sampler_name": "res_multistep", "scheduler": "simple", "positive": ["5", 0],
                                                "negative": ["7", 0], "latent_image": ["9", 0], "denoise": 1.0}},
    "11": {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["3", 0]}},
    "12": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "NetaYume_Lumina_3.5"}},
}

_RENAMES = (("time_caption_embed.caption_embedder", "cap_embedder"),
            ("time_caption_embed.timestep_embedder.linear_1", "t_embedder.mlp.0"),
            ("time_caption_embed.timestep_embedder.linear_2", "t_embedder.mlp.2"),
            ("norm_out.linear_1", "final_layer.adaLN_modulation.1"), ("norm_out.linear_2", "final_layer.linear"),
            (".attn.to_out.0.", ".attention.out."), (".attn.norm_q.", ".attention.q_norm."),
            (".attn.norm_k.", ".attention.k_norm."), (".feed_forward.linear_1.", ".feed_forward.w1."),
            (".feed_forward.linear_2.", ".feed_forward.w2."), (".feed_forward.linear_3.", ".feed_forward.w3."),
            (".norm1.linear.", ".adaLN_modulation.1."), (".norm1.norm.", ".attention_norm1."),
            (".norm2.", ".attention_norm2."))


def lumina2_to_original(sd: dict[str, Any]) -> dict[str, Any]:
    """diffusers ``Lumina2Transformer2DModel`` keys → the original NextDiT layout (fused qkv)."""
    import torch

    out: dict[str, Any] = {}
    for key, value in sd.items():
        if ".attn.to_k." in key or ".attn.to_v." in key:
            continue
        if ".attn.to_q." in key:
            out[key.replace(".attn.to_q.", ".attention.qkv.")] = torch.cat(
                [sd[key.replace("to_q", n)] for n in ("to_q", "to_k", "to_v")])
            continue
        if key.startswith("context_refiner.") and ".norm1." in key:
            key = key.replace(".norm1.", ".attention_norm1.")
        for new, old in _RENAMES:
            key = key.replace(new, old)
        out[key] = value
    out["norm_final.weight"] = torch.ones(sd["x_embedder.weight"].shape[0])  # the release carries it, unused
    return {k: v.contiguous() for k, v in out.items()}


def build_tiny_lumina2(root: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write tiny Lumina 2 files under ``root`` (a models folder) and return the modules.

    Returns:
        ``{"transformer", "gemma", "tokenizer", "vae"}`` and the file names ``unet``, ``unet_diffusers``,
        ``unet_fp8``, ``clip``, ``vae_file``.
    """
    import torch
    from diffusers import Lumina2Transformer2DModel
    from safetensors.torch import save_file
    from transformers import Gemma2Config, Gemma2Model

    from nodeloom.testing.tiny_lm import build_tiny_tokenizer

    root = Path(root)
    for sub in ("diffusion_models", "text_encoders", "vae", "tokenizers/gemma2"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(chat_template=False)
    tokenizer.save_pretrained(root / "tokenizers" / "gemma2")
    torch.manual_seed(seed)
    gemma = Gemma2Model(Gemma2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                                     num_attention_heads=1, num_key_value_heads=1, head_dim=256, query_pre_attn_scalar=256,
                                     rms_norm_eps=1e-6, rope_theta=10000.0, sliding_window=4096,
                                     attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
                                     max_position_embeddings=1024)).eval()
    save_file({"model." + k: v.contiguous() for k, v in gemma.state_dict().items()},
              str(root / "text_encoders" / "tiny_gemma2.safetensors"))
    transformer = Lumina2Transformer2DModel(sample_size=16, patch_size=2, in_channels=16, hidden_size=48, num_layers=2,
                                            num_refiner_layers=2, num_attention_heads=2, num_kv_heads=1, multiple_of=64,
                                            norm_eps=1e-5, axes_dim_rope=(8, 8, 8), cap_feat_dim=32).eval()
    with torch.no_grad():  # some layers start at zero; random values make the test see them
        for p in transformer.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.02)
    sd = {k: v.contiguous() for k, v in transformer.state_dict().items()}
    dm = root / "diffusion_models"
    save_file({"model.diffusion_model." + k: v for k, v in lumina2_to_original(sd).items()},
              str(dm / "tiny_lumina2.safetensors"))
    save_file(sd, str(dm / "tiny_lumina2_diffusers.safetensors"))
    save_file(scaled_fp8(lumina2_to_original(sd)), str(dm / "tiny_lumina2_fp8_scaled.safetensors"))
    vae = save_flux_vae(root, seed)
    return {"transformer": transformer, "gemma": gemma, "tokenizer": tokenizer, "vae": vae,
            "unet": "tiny_lumina2.safetensors", "unet_diffusers": "tiny_lumina2_diffusers.safetensors",
            "unet_fp8": "tiny_lumina2_fp8_scaled.safetensors", "clip": "tiny_gemma2.safetensors",
            "vae_file": "tiny_ae.safetensors"}
