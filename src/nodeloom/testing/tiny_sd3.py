"""Tiny random SD3.5 models saved as users download them, for tests and benchmarks.

:func:`build_tiny_sd3` writes ``diffusion_models/`` (Stability AI's original MMDiT layout with
ComfyUI's prefix, the diffusers layout and a scaled-fp8 variant), ``text_encoders/`` (CLIP-L,
CLIP-G with its projection, T5 as ComfyUI's ``clip_l``/``clip_g``/``t5xxl`` files), ``vae/`` (a
16-channel VAE in the original single-file layout), ``checkpoints/`` (an all-in-one file as ComfyUI
repackages SD3.5) and a T5-style tokenizer in ``tokenizers/t5``; it returns the modules so tests
can build diffusers' pipeline on the same weights. Must not import the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nodeloom.testing.tiny_families import build_t5_tokenizer, flux_vae, scaled_fp8

__all__ = ["SD35_WORKFLOW", "build_tiny_sd3", "sd3_to_original"]

#: the SD3.5 medium split-file graph (ComfyUI's SD3.5 examples: TripleCLIPLoader, ModelSamplingSD3,
#: SkipLayerGuidanceDiTSimple), tiny sizes; the official template's sampler settings (euler, sgm_uniform)
SD35_WORKFLOW = {
    "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_sd3.5_medium.safetensors", "weight_dtype": "default"}},
    "2": {"class_type": "TripleCLIPLoader", "inputs": {"clip_name1": "tiny_clip_l.safetensors",
                                                       "clip_name2": "tiny_clip_g.safetensors",
                                                       "clip_name3": "tiny_t5xxl.safetensors"}},
    "3": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_sd3_vae.safetensors"}},
    "4": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": 3.0}},
    "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": "a bottle with a galaxy inside it"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": ""}},
    "7": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "8": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "seed": 5, "steps": 4, "cfg": 4.0,
                                               "sampler_name": "euler", "scheduler": "sgm_uniform",
                                               "positive": ["5", 0], "negative": ["6", 0], "latent_image": ["7", 0],
                                               "denoise": 1.0}},
    "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["3", 0]}},
    "10": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "sd3.5"}},
}


def _block_map(i: int, last: bool, dual: bool) -> list[tuple[str, str]]:
    """(original, diffusers) prefixes of one joint block's plainly renamed tensors."""
    x, c, d = f"joint_blocks.{i}.x_block.", f"joint_blocks.{i}.context_block.", f"transformer_blocks.{i}."
    pairs = [(x + "attn.ln_q", d + "attn.norm_q"), (x + "attn.ln_k", d + "attn.norm_k"),
             (c + "attn.ln_q", d + "attn.norm_added_q"), (c + "attn.ln_k", d + "attn.norm_added_k"),
             (x + "attn.proj", d + "attn.to_out.0"), (x + "adaLN_modulation.1", d + "norm1.linear"),
             (x + "mlp.fc1", d + "ff.net.0.proj"), (x + "mlp.fc2", d + "ff.net.2")]
    if not last:
        pairs += [(c + "attn.proj", d + "attn.to_add_out"), (c + "adaLN_modulation.1", d + "norm1_context.linear"),
                  (c + "mlp.fc1", d + "ff_context.net.0.proj"), (c + "mlp.fc2", d + "ff_context.net.2")]
    if dual:
        pairs += [(x + "attn2.ln_q", d + "attn2.norm_q"), (x + "attn2.ln_k", d + "attn2.norm_k"),
                  (x + "attn2.proj", d + "attn2.to_out.0")]
    return pairs


def sd3_to_original(sd: dict[str, Any], layers: int, dual_layers: tuple[int, ...] = ()) -> dict[str, Any]:
    """A diffusers ``SD3Transformer2DModel`` state dict in Stability AI's MMDiT layout (the inverse
    of diffusers' single-file converter)."""
    import torch

    def swap(t: Any) -> Any:  # (scale, shift) ↔ (shift, scale)
        a, b = t.chunk(2, dim=0)
        return torch.cat([b, a])

    src = dict(sd)
    out = {"pos_embed": src.pop("pos_embed.pos_embed")}
    pairs = [("x_embedder.proj", "pos_embed.proj"), ("t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1"),
             ("t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2"), ("context_embedder", "context_embedder"),
             ("y_embedder.mlp.0", "time_text_embed.text_embedder.linear_1"),
             ("y_embedder.mlp.2", "time_text_embed.text_embedder.linear_2"), ("final_layer.linear", "proj_out")]
    for i in range(layers):
        last = i == layers - 1
        pairs += _block_map(i, last, i in dual_layers)
        for suffix in (".weight", ".bias"):
            d, x, c = f"transformer_blocks.{i}.", f"joint_blocks.{i}.x_block.", f"joint_blocks.{i}.context_block."
            out[x + "attn.qkv" + suffix] = torch.cat([src.pop(d + f"attn.to_{n}{suffix}") for n in "qkv"])
            out[c + "attn.qkv" + suffix] = torch.cat([src.pop(d + f"attn.add_{n}_proj{suffix}") for n in "qkv"])
            if i in dual_layers:
                out[x + "attn2.qkv" + suffix] = torch.cat([src.pop(d + f"attn2.to_{n}{suffix}") for n in "qkv"])
            if last:
                out[c + "adaLN_modulation.1" + suffix] = swap(src.pop(d + "norm1_context.linear" + suffix))
    for old, new in pairs:
        for suffix in (".weight", ".bias"):
            if new + suffix in src:
                out[old + suffix] = src.pop(new + suffix)
    for suffix in (".weight", ".bias"):
        out["final_layer.adaLN_modulation.1" + suffix] = swap(src.pop("norm_out.linear" + suffix))
    if src:
        raise ValueError(f"tensors left unplaced: {sorted(src)[:3]}")
    return out


def _encoders(t5_vocab: int, seed: int) -> tuple[Any, Any, Any]:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    common = dict(num_hidden_layers=2, vocab_size=49408, max_position_embeddings=77, bos_token_id=49406,
                  eos_token_id=49407, pad_token_id=1)
    clip_l = CLIPTextModel(CLIPTextConfig(hidden_size=32, intermediate_size=37, num_attention_heads=1,
                                          hidden_act="quick_gelu", **common)).eval()
    clip_g = CLIPTextModelWithProjection(CLIPTextConfig(hidden_size=64, intermediate_size=80, num_attention_heads=1,
                                                        hidden_act="gelu", projection_dim=64, **common)).eval()
    t5 = T5EncoderModel(T5Config(vocab_size=t5_vocab, d_model=128, d_kv=16, num_heads=4, d_ff=64, num_layers=2,
                                 feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False)).eval()
    return clip_l, clip_g, t5


def _transformer(seed: int) -> Any:
    import torch
    from diffusers import SD3Transformer2DModel

    torch.manual_seed(seed)
    return SD3Transformer2DModel(sample_size=32, patch_size=2, in_channels=16, num_layers=2, attention_head_dim=16,
                                 num_attention_heads=2, joint_attention_dim=128, caption_projection_dim=32,
                                 pooled_projection_dim=96, out_channels=16, pos_embed_max_size=32, qk_norm="rms_norm",
                                 dual_attention_layers=(0,)).eval()


def build_tiny_sd3(root: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write tiny SD3.5-medium-shaped files under ``root`` (a models folder) and return the modules.

    Returns:
        ``{"transformer", "clip_l", "clip_g", "t5", "tokenizer", "vae"}`` modules and the file
        names (``unet``, ``unet_diffusers``, ``unet_fp8``, ``checkpoint``).
    """
    from safetensors.torch import save_file

    from nodeloom.diffusion.ldm_export import vae_to_ldm

    root = Path(root)
    for sub in ("diffusion_models", "text_encoders", "vae", "checkpoints", "tokenizers/t5"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    tokenizer = build_t5_tokenizer()
    tokenizer.save_pretrained(root / "tokenizers" / "t5")
    clip_l, clip_g, t5 = _encoders(len(tokenizer), seed)
    files = {"clip_l": clip_l.state_dict(), "clip_g": clip_g.state_dict(),
             "t5xxl": {k: v for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"}}
    for name, sd in files.items():
        save_file({k: v.contiguous() for k, v in sd.items()}, str(root / "text_encoders" / f"tiny_{name}.safetensors"))
    transformer = _transformer(seed)
    sd = {k: v.contiguous() for k, v in transformer.state_dict().items()}
    original = {"model.diffusion_model." + k: v for k, v in sd3_to_original(sd, 2, (0,)).items()}
    save_file(original, str(root / "diffusion_models" / "tiny_sd3.5_medium.safetensors"))
    save_file(sd, str(root / "diffusion_models" / "tiny_sd3.5_medium_diffusers.safetensors"))
    save_file(scaled_fp8(sd3_to_original(sd, 2, (0,))),
              str(root / "diffusion_models" / "tiny_sd3.5_medium_fp8_scaled.safetensors"))
    vae = flux_vae(seed)
    vae_sd = {k: v.contiguous() for k, v in vae_to_ldm(vae.state_dict(), vae.config, prefix="").items()}
    save_file(vae_sd, str(root / "vae" / "tiny_sd3_vae.safetensors"))
    everything = dict(original)
    everything.update({"first_stage_model." + k: v for k, v in vae_sd.items()})
    for name, part in files.items():
        everything.update({f"text_encoders.{name}.transformer.{k}": v.contiguous() for k, v in part.items()})
    save_file(everything, str(root / "checkpoints" / "tiny_sd3.5_medium_aio.safetensors"))
    return {"transformer": transformer, "clip_l": clip_l, "clip_g": clip_g, "t5": t5, "tokenizer": tokenizer,
            "vae": vae, "unet": "tiny_sd3.5_medium.safetensors", "unet_diffusers": "tiny_sd3.5_medium_diffusers.safetensors",
            "unet_fp8": "tiny_sd3.5_medium_fp8_scaled.safetensors", "checkpoint": "tiny_sd3.5_medium_aio.safetensors"}
