"""Tiny random Flux.2 dev and Klein models saved as users download them, for tests and benchmarks.

:func:`build_tiny_flux2` writes a models folder the way ComfyUI's Flux.2 templates lay it out —
``diffusion_models/`` (the original release layout, the diffusers layout and a scaled-fp8
variant), ``text_encoders/`` (a Qwen3 encoder for Klein, a Mistral one with Mistral's vocabulary
size for dev), ``vae/`` (a Flux.2 VAE in the original single-file layout with random batch-norm
statistics) — plus small tokenizers in ``tokenizers/qwen3`` and ``tokenizers/mistral3``, and
returns the in-memory modules so tests can build the diffusers pipelines on the same weights.
:func:`flux2_to_bfl` turns diffusers-layout weights into the release layout. Must not import the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nodeloom.testing.tiny_families import build_qwen_tokenizer, scaled_fp8

__all__ = ["FLUX2_DEV_WORKFLOW", "FLUX2_KLEIN_EDIT_WORKFLOW", "FLUX2_KLEIN_WORKFLOW", "build_tiny_flux2",
           "flux2_to_bfl"]

#: Qwen3's chat template for one user turn, thinking switched off when asked (as the real template renders it)
_QWEN3_THINKING_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)

_LOADERS = {
    "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_flux2_klein.safetensors", "weight_dtype": "default"}},
    "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "tiny_qwen3_flux2.safetensors", "type": "flux2",
                                                 "device": "default"}},
    "3": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_flux2_vae.safetensors"}},
}
_SAMPLING = {
    "7": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
    "8": {"class_type": "Flux2Scheduler", "inputs": {"steps": 4, "width": 64, "height": 64}},
    "9": {"class_type": "EmptyFlux2LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "10": {"class_type": "RandomNoise", "inputs": {"noise_seed": 5}},
    "11": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["10", 0], "guider": ["6", 0], "sampler": ["7", 0],
                                                             "sigmas": ["8", 0], "latent_image": ["9", 0]}},
    "12": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["3", 0]}},
    "13": {"class_type": "SaveImage", "inputs": {"images": ["12", 0], "filename_prefix": "Flux2-Klein"}},
}

#: image_flux2_klein_text_to_image.json (distilled): CFGGuider at cfg 1 with a zeroed negative, tiny sizes
FLUX2_KLEIN_WORKFLOW = {
    **_LOADERS,
    "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": "a red fox in a snowy forest"}},
    "5": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["4", 0]}},
    "6": {"class_type": "CFGGuider", "inputs": {"model": ["1", 0], "positive": ["4", 0], "negative": ["5", 0], "cfg": 1.0}},
    **_SAMPLING,
}

#: image_flux2_klein_image_edit_4b_distilled.json: the input image scaled, encoded and set as a
#: reference on both conditionings; the output takes the scaled image's size
FLUX2_KLEIN_EDIT_WORKFLOW = {
    **FLUX2_KLEIN_WORKFLOW,
    "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": "change the bag colour to blue"}},
    "14": {"class_type": "LoadImage", "inputs": {"image": "flux2_input.png"}},
    "15": {"class_type": "ImageScaleToTotalPixels", "inputs": {"image": ["14", 0], "upscale_method": "nearest-exact",
                                                               "megapixels": 0.01, "resolution_steps": 16}},
    "16": {"class_type": "VAEEncode", "inputs": {"pixels": ["15", 0], "vae": ["3", 0]}},
    "17": {"class_type": "GetImageSize", "inputs": {"image": ["15", 0]}},
    "18": {"class_type": "ReferenceLatent", "inputs": {"conditioning": ["4", 0], "latent": ["16", 0]}},
    "19": {"class_type": "ReferenceLatent", "inputs": {"conditioning": ["5", 0], "latent": ["16", 0]}},
    "6": {"class_type": "CFGGuider", "inputs": {"model": ["1", 0], "positive": ["18", 0], "negative": ["19", 0],
                                                "cfg": 1.0}},
    "8": {"class_type": "Flux2Scheduler", "inputs": {"steps": 4, "width": ["17", 0], "height": ["17", 1]}},
    "9": {"class_type": "EmptyFlux2LatentImage", "inputs": {"width": ["17", 0], "height": ["17", 1], "batch_size": 1}},
}

#: image_flux2_text_to_image.json (dev): Mistral text encoder, FluxGuidance and BasicGuider, tiny sizes
FLUX2_DEV_WORKFLOW = {
    **_LOADERS,
    "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_flux2_dev.safetensors", "weight_dtype": "default"}},
    "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "tiny_mistral3_flux2.safetensors", "type": "flux2",
                                                 "device": "default"}},
    "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": "a castle on a hill under a stormy sky"}},
    "5": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["4", 0], "guidance": 4.0}},
    "6": {"class_type": "BasicGuider", "inputs": {"model": ["1", 0], "conditioning": ["5", 0]}},
    **_SAMPLING,
    "13": {"class_type": "SaveImage", "inputs": {"images": ["12", 0], "filename_prefix": "Flux2_dev"}},
}

_DOUBLE = {"attn.norm_q": "img_attn.norm.query_norm", "attn.norm_k": "img_attn.norm.key_norm",
           "attn.to_out.0": "img_attn.proj", "ff.linear_in": "img_mlp.0", "ff.linear_out": "img_mlp.2",
           "attn.norm_added_q": "txt_attn.norm.query_norm", "attn.norm_added_k": "txt_attn.norm.key_norm",
           "attn.to_add_out": "txt_attn.proj", "ff_context.linear_in": "txt_mlp.0",
           "ff_context.linear_out": "txt_mlp.2"}
_SINGLE = {"attn.to_qkv_mlp_proj": "linear1", "attn.to_out": "linear2", "attn.norm_q": "norm.query_norm",
           "attn.norm_k": "norm.key_norm"}
_TOP = {"x_embedder": "img_in", "context_embedder": "txt_in", "proj_out": "final_layer.linear",
        "time_guidance_embed.timestep_embedder.linear_1": "time_in.in_layer",
        "time_guidance_embed.timestep_embedder.linear_2": "time_in.out_layer",
        "time_guidance_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
        "time_guidance_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
        "double_stream_modulation_img.linear": "double_stream_modulation_img.lin",
        "double_stream_modulation_txt.linear": "double_stream_modulation_txt.lin",
        "single_stream_modulation.linear": "single_stream_modulation.lin"}


def _renamed(name: str, table: dict[str, str], param: str) -> str:
    return table[name] + ("." + ("scale" if "norm" in table[name] else param))


def flux2_to_bfl(sd: dict[str, Any]) -> dict[str, Any]:
    """diffusers ``Flux2Transformer2DModel`` keys → the release layout (fused qkv, ``.scale`` norms)."""
    import torch

    out: dict[str, Any] = {}
    for key, value in sd.items():
        head, _, param = key.rpartition(".")
        parts = head.split(".")
        if parts[0] == "transformer_blocks":
            inner = ".".join(parts[2:])
            if inner in ("attn.to_k", "attn.to_v", "attn.add_k_proj", "attn.add_v_proj"):
                continue
            if inner in ("attn.to_q", "attn.add_q_proj"):
                names = ("to_q", "to_k", "to_v") if inner == "attn.to_q" else ("add_q_proj", "add_k_proj", "add_v_proj")
                side = "img" if inner == "attn.to_q" else "txt"
                out[f"double_blocks.{parts[1]}.{side}_attn.qkv.{param}"] = torch.cat(
                    [sd[f"transformer_blocks.{parts[1]}.attn.{n}.{param}"] for n in names])
                continue
            out[f"double_blocks.{parts[1]}." + _renamed(inner, _DOUBLE, param)] = value
        elif parts[0] == "single_transformer_blocks":
            out[f"single_blocks.{parts[1]}." + _renamed(".".join(parts[2:]), _SINGLE, param)] = value
        elif head == "norm_out.linear":
            scale, shift = value.chunk(2, dim=0)  # diffusers holds (scale, shift), the release (shift, scale)
            out["final_layer.adaLN_modulation.1." + param] = torch.cat([shift, scale])
        else:
            out[_TOP[head] + "." + param] = value
    return {k: v.contiguous() for k, v in out.items()}


def _tiny_vae(seed: int) -> Any:
    import torch
    from diffusers import AutoencoderKLFlux2

    torch.manual_seed(seed)
    vae = AutoencoderKLFlux2(block_out_channels=(32, 32, 32, 32), layers_per_block=1, latent_channels=32,
                             norm_num_groups=32, sample_size=64).eval()
    with torch.no_grad():  # statistics as a trained VAE has them, so the normalisation is exercised
        vae.bn.running_mean.copy_(torch.randn(128) * 0.1)
        vae.bn.running_var.copy_(torch.rand(128) + 0.5)
    return vae


def _vae_file(vae: Any) -> dict[str, Any]:
    from nodeloom.diffusion.ldm_export import vae_to_ldm

    body = {k: v for k, v in vae.state_dict().items() if not k.startswith("bn.")}
    out = vae_to_ldm(body, vae.config, prefix="")
    out.update({"bn.running_mean": vae.bn.running_mean, "bn.running_var": vae.bn.running_var})
    return {k: v.contiguous() for k, v in out.items()}


def _encoders(qwen_vocab: int, mistral_vocab: int, seed: int) -> tuple[Any, Any]:
    import torch
    from transformers import MistralConfig, MistralModel, Qwen3Config, Qwen3Model

    torch.manual_seed(seed)
    qwen = Qwen3Model(Qwen3Config(vocab_size=qwen_vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=27,
                                  num_attention_heads=2, num_key_value_heads=1, head_dim=16, rope_theta=1000000.0,
                                  rms_norm_eps=1e-6, max_position_embeddings=1024, tie_word_embeddings=False)).eval()
    mistral = MistralModel(MistralConfig(vocab_size=mistral_vocab, hidden_size=32, intermediate_size=48,
                                         num_hidden_layers=30, num_attention_heads=1, num_key_value_heads=1, head_dim=128,
                                         rope_theta=1000000000.0, rms_norm_eps=1e-5, max_position_embeddings=1024,
                                         sliding_window=None, tie_word_embeddings=False)).eval()
    return qwen, mistral


def _transformer(guidance: bool, seed: int) -> Any:
    import torch
    from diffusers import Flux2Transformer2DModel

    torch.manual_seed(seed)
    model = Flux2Transformer2DModel(in_channels=128, num_layers=1, num_single_layers=2, attention_head_dim=32,
                                    num_attention_heads=2, joint_attention_dim=96, axes_dims_rope=(8, 8, 8, 8),
                                    guidance_embeds=guidance).eval()
    return model


def build_tiny_flux2(root: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write tiny Flux.2 Klein and dev files under ``root`` (a models folder) and return the modules.

    Returns:
        modules ``klein``, ``dev`` (transformers), ``qwen3``, ``mistral3`` (encoders), ``tokenizer``
        (Qwen's), ``mistral_tokenizer``, ``vae``; file names ``klein_unet``, ``klein_diffusers``,
        ``klein_fp8``, ``dev_unet``, ``qwen3_file``, ``mistral3_file``, ``vae_file``.
    """
    from safetensors.torch import save_file

    from nodeloom.diffusion.flux2_text import MISTRAL_VOCAB
    from nodeloom.testing.tiny_lm import build_tiny_tokenizer

    root = Path(root)
    for sub in ("diffusion_models", "text_encoders", "vae", "tokenizers/qwen3", "tokenizers/mistral3"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    tokenizer = build_qwen_tokenizer()
    tokenizer.chat_template = _QWEN3_THINKING_TEMPLATE
    tokenizer.save_pretrained(root / "tokenizers" / "qwen3")
    mistral_tokenizer = build_tiny_tokenizer(chat_template=False)
    mistral_tokenizer.save_pretrained(root / "tokenizers" / "mistral3")
    qwen, mistral = _encoders(len(tokenizer), MISTRAL_VOCAB, seed)
    for name, enc in (("tiny_qwen3_flux2", qwen), ("tiny_mistral3_flux2", mistral)):
        save_file({"model." + k: v.contiguous() for k, v in enc.state_dict().items()},
                  str(root / "text_encoders" / f"{name}.safetensors"))
    klein, dev = _transformer(False, seed), _transformer(True, seed + 1)
    klein_sd = {k: v.contiguous() for k, v in klein.state_dict().items()}
    dm = root / "diffusion_models"
    save_file(flux2_to_bfl(klein_sd), str(dm / "tiny_flux2_klein.safetensors"))
    save_file(klein_sd, str(dm / "tiny_flux2_klein_diffusers.safetensors"))
    save_file(scaled_fp8(flux2_to_bfl(klein_sd)), str(dm / "tiny_flux2_klein_fp8_scaled.safetensors"))
    save_file({"model.diffusion_model." + k: v for k, v in flux2_to_bfl(dev.state_dict()).items()},
              str(dm / "tiny_flux2_dev.safetensors"))
    vae = _tiny_vae(seed)
    save_file(_vae_file(vae), str(root / "vae" / "tiny_flux2_vae.safetensors"))
    return {"klein": klein, "dev": dev, "qwen3": qwen, "mistral3": mistral, "tokenizer": tokenizer,
            "mistral_tokenizer": mistral_tokenizer, "vae": vae, "klein_unet": "tiny_flux2_klein.safetensors",
            "klein_diffusers": "tiny_flux2_klein_diffusers.safetensors",
            "klein_fp8": "tiny_flux2_klein_fp8_scaled.safetensors", "dev_unet": "tiny_flux2_dev.safetensors",
            "qwen3_file": "tiny_qwen3_flux2.safetensors", "mistral3_file": "tiny_mistral3_flux2.safetensors",
            "vae_file": "tiny_flux2_vae.safetensors"}
