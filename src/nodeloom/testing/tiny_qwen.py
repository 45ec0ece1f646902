"""Tiny random Qwen-Image models saved as users download them, for tests and benchmarks.

:func:`build_tiny_qwen_image` writes a models folder the way ComfyUI's Qwen-Image templates lay it
out — ``diffusion_models/`` (ComfyUI's repackaged layout with its prefix, the original release's
prefix-free keys and a scaled-fp8 variant), ``text_encoders/`` (a Qwen2.5-VL encoder with its
vision tower, ComfyUI's key layout), ``vae/`` (the Wan-2.1-style VAE in its original layout) — plus
a small Qwen-style tokenizer with the vision markers and a Qwen2-VL image processor config in
``tokenizers/qwen2.5_vl``, and returns the
in-memory modules so tests can build the diffusers pipelines on the same weights. Must not import
the engine.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nodeloom.testing.tiny_families import build_qwen_tokenizer, scaled_fp8

__all__ = ["QWEN_IMAGE_EDIT_PLUS_WORKFLOW", "QWEN_IMAGE_EDIT_WORKFLOW", "QWEN_IMAGE_WORKFLOW", "build_tiny_qwen_image",
           "image_processor", "qwen_vae_to_wan", "vl_processor"]

_VISION_MARKERS = ["<|vision_start|>", "<|image_pad|>", "<|vision_end|>"]

_LOADERS = {
    "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_qwen_image.safetensors", "weight_dtype": "default"}},
    "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "tiny_qwen_2.5_vl.safetensors", "type": "qwen_image",
                                                 "device": "default"}},
    "3": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_qwen_image_vae.safetensors"}},
    "4": {"class_type": "ModelSamplingAuraFlow", "inputs": {"model": ["1", 0], "shift": 3.1}},
}

#: the Qwen-Image template's graph (image_qwen_image.json), tiny sizes
QWEN_IMAGE_WORKFLOW = {
    **_LOADERS,
    "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": "a red fox in a snowy forest"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": ""}},
    "7": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "8": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "seed": 7, "steps": 4, "cfg": 2.5,
                                               "sampler_name": "euler", "scheduler": "simple", "positive": ["5", 0],
                                               "negative": ["6", 0], "latent_image": ["7", 0], "denoise": 1.0}},
    "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["3", 0]}},
    "10": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "qwen-image"}},
}

#: the Qwen-Image-Edit template's graph (image_qwen_image_edit.json): the input image scaled to
#: about a megapixel, encoded as the latent to denoise, and given to both prompts with the VAE
#: (2 steps at cfg 1, as with the Lightning LoRA the templates offer: the reference images make
#: thousands of tokens even for a tiny output)
QWEN_IMAGE_EDIT_WORKFLOW = {
    **_LOADERS,
    "11": {"class_type": "LoadImage", "inputs": {"image": "edit_input.png"}},
    "12": {"class_type": "ImageScaleToTotalPixels", "inputs": {"image": ["11", 0], "upscale_method": "lanczos",
                                                               "megapixels": 0.01, "resolution_steps": 32}},
    "13": {"class_type": "VAEEncode", "inputs": {"pixels": ["12", 0], "vae": ["3", 0]}},
    "5": {"class_type": "TextEncodeQwenImageEdit", "inputs": {"clip": ["2", 0], "prompt": "make the sky purple",
                                                              "vae": ["3", 0], "image": ["12", 0]}},
    "6": {"class_type": "TextEncodeQwenImageEdit", "inputs": {"clip": ["2", 0], "prompt": "", "vae": ["3", 0],
                                                              "image": ["12", 0]}},
    "14": {"class_type": "CFGNorm", "inputs": {"model": ["4", 0], "strength": 1.0}},
    "8": {"class_type": "KSampler", "inputs": {"model": ["14", 0], "seed": 3, "steps": 2, "cfg": 1.0,
                                               "sampler_name": "euler", "scheduler": "simple", "positive": ["5", 0],
                                               "negative": ["6", 0], "latent_image": ["13", 0], "denoise": 1.0}},
    "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["3", 0]}},
    "10": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "qwen-image-edit"}},
}

#: the Qwen-Image-Edit 2509/2511 templates' graph: TextEncodeQwenImageEditPlus with two images
QWEN_IMAGE_EDIT_PLUS_WORKFLOW = {
    **{k: v for k, v in QWEN_IMAGE_EDIT_WORKFLOW.items() if k not in ("5", "6")},
    "15": {"class_type": "LoadImage", "inputs": {"image": "edit_second.png"}},
    "5": {"class_type": "TextEncodeQwenImageEditPlus", "inputs": {"clip": ["2", 0], "prompt": "put the cat on the sofa",
                                                                  "vae": ["3", 0], "image1": ["12", 0], "image2": ["15", 0]}},
    "6": {"class_type": "TextEncodeQwenImageEditPlus", "inputs": {"clip": ["2", 0], "prompt": "", "vae": ["3", 0],
                                                                  "image1": ["12", 0], "image2": ["15", 0]}},
}


def qwen_vae_to_wan(sd: dict[str, Any]) -> dict[str, Any]:
    """A diffusers ``AutoencoderKLQwenImage`` state dict in the Wan 2.1 original layout (ComfyUI's file)."""
    res = {"norm1": "residual.0", "conv1": "residual.2", "norm2": "residual.3", "conv2": "residual.6",
           "conv_shortcut": "shortcut"}
    top = {"encoder.conv_in": "encoder.conv1", "decoder.conv_in": "decoder.conv1", "quant_conv": "conv1",
           "post_quant_conv": "conv2", "encoder.norm_out": "encoder.head.0", "encoder.conv_out": "encoder.head.2",
           "decoder.norm_out": "decoder.head.0", "decoder.conv_out": "decoder.head.2"}
    out = {}
    for key, value in sd.items():
        stem, leaf = key.rsplit(".", 1)
        if stem in top:
            new = top[stem]
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d)\.(\w+)", stem):
            new = f"{m[1]}.middle.{2 * int(m[2])}.{res[m[3]]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", stem):
            new = f"{m[1]}.middle.1.{m[2]}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.(\w+)", stem):
            new = f"encoder.downsamples.{m[1]}.{res.get(m[2], m[2])}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.(.+)", stem):
            new = f"encoder.downsamples.{m[1]}.{m[2]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d)\.resnets\.(\d)\.(\w+)", stem):
            new = f"decoder.upsamples.{4 * int(m[1]) + int(m[2])}.{res[m[3]]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d)\.upsamplers\.0\.(.+)", stem):
            new = f"decoder.upsamples.{4 * int(m[1]) + 3}.{m[2]}"
        else:
            raise ValueError(f"no Wan 2.1 name for `{key}`")
        out[f"{new}.{leaf}"] = value.contiguous()
    return out


def image_processor() -> Any:
    """Qwen2-VL's image processor capped at 256² pixels (the release allows 3584²), so tests stay quick."""
    import transformers

    cls = getattr(transformers, "Qwen2VLImageProcessorPil", None) or transformers.Qwen2VLImageProcessor
    return cls(min_pixels=3136, max_pixels=256 * 256)


def vl_processor(tokenizer: Any) -> Any:
    """transformers' ``Qwen2_5_VLProcessor`` over the tiny tokenizer and :func:`image_processor`, for
    diffusers' Edit pipelines. Its constructor insists on a video processor, which needs torchvision
    (not installed); images never reach that part, so the instance is assembled field by field."""
    import transformers

    proc = transformers.Qwen2_5_VLProcessor.__new__(transformers.Qwen2_5_VLProcessor)
    proc.image_processor, proc.tokenizer, proc.video_processor, proc.chat_template = image_processor(), tokenizer, None, None
    proc.image_token, proc.video_token = "<|image_pad|>", "<|video_pad|>"
    proc.image_token_id, proc.video_token_id = tokenizer.convert_tokens_to_ids("<|image_pad|>"), None
    return proc


def _random(module: Any) -> Any:
    import torch

    with torch.no_grad():  # the release zero-initialises some layers; random values make the tests see them
        for p in module.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.02)
    return module.eval()


def _tokenizer() -> Any:
    tok = build_qwen_tokenizer()
    tok.add_tokens(_VISION_MARKERS, special_tokens=True)
    return tok


def _encoder(tokenizer: Any, seed: int) -> Any:
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLModel

    torch.manual_seed(seed)
    text = dict(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=256, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, rms_norm_eps=1e-6, max_position_embeddings=128000,
                rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}, rope_theta=1000000.0,
                tie_word_embeddings=False, bos_token_id=None, eos_token_id=None)
    vision = dict(depth=2, hidden_size=160, intermediate_size=128, num_heads=2, out_hidden_size=256, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[],
                  in_channels=3)
    ids = {f"{n}_token_id": tokenizer.convert_tokens_to_ids(t) for n, t in
           zip(("vision_start", "image", "vision_end"), _VISION_MARKERS)}
    return Qwen2_5_VLModel(Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)).eval()


def _comfy_encoder_layout(sd: dict[str, Any]) -> dict[str, Any]:
    return {("model." + k[len("language_model."):] if k.startswith("language_model.") else k): v.contiguous()
            for k, v in sd.items()}


def build_tiny_qwen_image(root: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write tiny Qwen-Image files under ``root`` (a models folder) and return the modules.

    Returns:
        ``{"transformer", "text_encoder", "tokenizer", "vae"}`` modules and the written file names
        (``unet``, ``unet_original``, ``unet_fp8``, ``clip``, ``vae_file``).
    """
    import torch
    from diffusers import AutoencoderKLQwenImage, QwenImageTransformer2DModel
    from safetensors.torch import save_file

    root = Path(root)
    for sub in ("diffusion_models", "text_encoders", "vae", "tokenizers/qwen2.5_vl"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer()
    tokenizer.save_pretrained(root / "tokenizers" / "qwen2.5_vl")
    processor = image_processor()
    processor.save_pretrained(root / "tokenizers" / "qwen2.5_vl")
    encoder = _encoder(tokenizer, seed)
    save_file(_comfy_encoder_layout(encoder.state_dict()), str(root / "text_encoders" / "tiny_qwen_2.5_vl.safetensors"))
    torch.manual_seed(seed)
    transformer = _random(QwenImageTransformer2DModel(
        patch_size=2, in_channels=64, out_channels=16, num_layers=2, attention_head_dim=32, num_attention_heads=2,
        joint_attention_dim=256, axes_dims_rope=(4, 14, 14)))
    sd = {k: v.contiguous() for k, v in transformer.state_dict().items()}
    save_file({"model.diffusion_model." + k: v for k, v in sd.items()},
              str(root / "diffusion_models" / "tiny_qwen_image.safetensors"))
    save_file(sd, str(root / "diffusion_models" / "tiny_qwen_image_original.safetensors"))
    save_file(scaled_fp8(sd), str(root / "diffusion_models" / "tiny_qwen_image_fp8_scaled.safetensors"))
    torch.manual_seed(seed)
    vae = _random(AutoencoderKLQwenImage(base_dim=8, z_dim=16))
    save_file(qwen_vae_to_wan(vae.state_dict()), str(root / "vae" / "tiny_qwen_image_vae.safetensors"))
    return {"transformer": transformer, "text_encoder": encoder, "tokenizer": tokenizer, "vae": vae,
            "unet": "tiny_qwen_image.safetensors", "unet_original": "tiny_qwen_image_original.safetensors",
            "unet_fp8": "tiny_qwen_image_fp8_scaled.safetensors", "clip": "tiny_qwen_2.5_vl.safetensors",
            "vae_file": "tiny_qwen_image_vae.safetensors"}
