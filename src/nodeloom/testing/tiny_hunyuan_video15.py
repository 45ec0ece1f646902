"""Tiny random HunyuanVideo 1.5 models saved as ComfyUI users download them, for tests and benchmarks.

:func:`build_tiny_hunyuan_video15` writes a models folder laid out like the official HunyuanVideo
1.5 templates expect: ``diffusion_models/`` (a text-to-video and an image-to-video transformer in
the release's key layout under ComfyUI's prefix), ``text_encoders/`` (a Qwen2.5-VL language model
in ComfyUI's layout and a byT5-style T5 encoder), ``vae/`` (the causal 32-channel video VAE in the
release layout), ``clip_vision/`` (a small SigLIP tower) and a Qwen-style tokenizer in
``tokenizers/qwen2.5_vl``. The layouts are written by inverting nodeloom's own converters, and each
file is checked to convert back to the module's exact keys. Must not import the engine.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nodeloom.testing.tiny_families import build_qwen_tokenizer

__all__ = ["HV15_I2V_WORKFLOW", "HV15_T2V_WORKFLOW", "build_tiny_hunyuan_video15", "transformer_to_release",
           "vae_to_release"]

_PROMPT = 'a paper airplane glides over a city, a sign reads "HELLO"'
_LOADERS = {
    "11": {"class_type": "DualCLIPLoader", "inputs": {
        "clip_name1": "tiny_qwen_2.5_vl_7b.safetensors", "clip_name2": "tiny_byt5_small_glyphxl.safetensors",
        "type": "hunyuan_video_15", "device": "default"}},
    "10": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_hunyuanvideo15_vae.safetensors"}},
    "44": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["11", 0], "text": _PROMPT}},
    "93": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["11", 0], "text": ""}},
}
_SAMPLING = {
    "132": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["12", 0], "shift": 7.0}},
    "128": {"class_type": "BasicScheduler", "inputs": {"model": ["132", 0], "scheduler": "simple", "steps": 3,
                                                       "denoise": 1.0}},
    "129": {"class_type": "RandomNoise", "inputs": {"noise_seed": 7}},
    "130": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["127", 0], "vae": ["10", 0]}},
    "101": {"class_type": "CreateVideo", "inputs": {"images": ["8", 0], "fps": 24.0}},
    "102": {"class_type": "SaveVideo", "inputs": {"video": ["101", 0], "filename_prefix": "video/hunyuan_video_1.5",
                                                  "format": "auto", "codec": "h264"}},
}

#: the HunyuanVideo 1.5 720p text-to-video template's graph (video_hunyuan_video_1.5_720p_t2v.json, its
#: super-resolution and EasyCache nodes bypassed as shipped), tiny sizes and 3 steps
HV15_T2V_WORKFLOW = {
    **_LOADERS, **_SAMPLING,
    "12": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_hunyuanvideo1.5_720p_t2v.safetensors",
                                                  "weight_dtype": "default"}},
    "124": {"class_type": "EmptyHunyuanVideo15Latent", "inputs": {"width": 32, "height": 32, "length": 9,
                                                                  "batch_size": 1}},
    "131": {"class_type": "CFGGuider", "inputs": {"model": ["132", 0], "positive": ["44", 0], "negative": ["93", 0],
                                                  "cfg": 6.0}},
    "127": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["129", 0], "guider": ["131", 0],
                                                              "sampler": ["130", 0], "sigmas": ["128", 0],
                                                              "latent_image": ["124", 0]}},
}

#: the 720p image-to-video template's graph (video_hunyuan_video_1.5_720p_i2v.json): the start image
#: through CLIPVisionEncode (SigLIP) and HunyuanVideo15ImageToVideo
HV15_I2V_WORKFLOW = {
    **_LOADERS, **_SAMPLING,
    "12": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_hunyuanvideo1.5_720p_i2v.safetensors",
                                                  "weight_dtype": "default"}},
    "81": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "tiny_sigclip_vision_patch14_384.safetensors"}},
    "80": {"class_type": "LoadImage", "inputs": {"image": "hv15_start.png"}},
    "79": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["81", 0], "image": ["80", 0], "crop": "center"}},
    "78": {"class_type": "HunyuanVideo15ImageToVideo", "inputs": {
        "positive": ["44", 0], "negative": ["93", 0], "vae": ["10", 0], "width": 32, "height": 32, "length": 9,
        "batch_size": 1, "start_image": ["80", 0], "clip_vision_output": ["79", 0]}},
    "131": {"class_type": "CFGGuider", "inputs": {"model": ["132", 0], "positive": ["78", 0], "negative": ["78", 1],
                                                  "cfg": 6.0}},
    "127": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["129", 0], "guider": ["131", 0],
                                                              "sampler": ["130", 0], "sigmas": ["128", 0],
                                                              "latent_image": ["78", 2]}},
}

_BLOCK_BACK = {
    "attn.to_q": "img_attn_q", "attn.to_k": "img_attn_k", "attn.to_v": "img_attn_v", "attn.norm_q": "img_attn_q_norm",
    "attn.norm_k": "img_attn_k_norm", "attn.to_out.0": "img_attn_proj", "attn.add_q_proj": "txt_attn_q",
    "attn.add_k_proj": "txt_attn_k", "attn.add_v_proj": "txt_attn_v", "attn.norm_added_q": "txt_attn_q_norm",
    "attn.norm_added_k": "txt_attn_k_norm", "attn.to_add_out": "txt_attn_proj", "ff.net.0.proj": "img_mlp.fc1",
    "ff.net.2": "img_mlp.fc2", "ff_context.net.0.proj": "txt_mlp.fc1", "ff_context.net.2": "txt_mlp.fc2",
    "norm1.linear": "img_mod.linear", "norm1_context.linear": "txt_mod.linear",
}
_REFINER_BACK = {"attn.to_out.0": "self_attn_proj", "ff.net.0.proj": "mlp.fc1", "ff.net.2": "mlp.fc2",
                 "norm1": "norm1", "norm2": "norm2", "norm_out.linear": "adaLN_modulation.1"}


def transformer_to_release(sd: dict[str, Any], fused: bool = False) -> dict[str, Any]:
    """A diffusers ``HunyuanVideo15Transformer3DModel`` state dict in the release's key layout
    (``fused``: q/k/v as one ``*_attn_qkv`` / ``self_attn_qkv`` tensor, the HunyuanVideo 1.0 form)."""
    import torch

    from nodeloom.diffusion.families.hunyuan_video15 import _TOP

    top = {v: k for k, v in _TOP.items()}
    out: dict[str, Any] = {}
    for key, value in sd.items():
        mod, _, param = key.rpartition(".")
        if m := re.match(r"transformer_blocks\.(\d+)\.(.+)$", mod):
            out[f"double_blocks.{m.group(1)}.{_BLOCK_BACK[m.group(2)]}.{param}"] = value
        elif m := re.match(r"context_embedder\.token_refiner\.refiner_blocks\.(\d+)\.(.+)$", mod):
            base = f"txt_in.individual_token_refiner.blocks.{m.group(1)}"
            name = m.group(2)
            short = f"self_attn_{name[-1]}" if name in ("attn.to_q", "attn.to_k", "attn.to_v") else _REFINER_BACK[name]
            out[f"{base}.{short}.{param}"] = value
        elif mod == "norm_out.linear":
            scale, shift = value.chunk(2, dim=0)
            out[f"final_layer.adaLN_modulation.1.{param}"] = torch.cat([shift, scale], dim=0)
        else:
            out[f"{top[mod]}.{param}"] = value
    return _fuse(out, ("self_attn", "img_attn", "txt_attn") if fused else ("self_attn",))


def _fuse(sd: dict[str, Any], streams: tuple[str, ...]) -> dict[str, Any]:
    """q, k and v of the named attentions joined into one ``*_qkv`` tensor (the token refiner's always is)."""
    import torch

    out = dict(sd)
    for key in list(sd):
        if (m := re.match(r"(.*\.(img_attn|txt_attn|self_attn))_q\.(weight|bias)$", key)) and m.group(2) in streams:
            base, _, param = m.groups()
            parts = [out.pop(f"{base}_{c}.{param}") for c in "qkv"]
            out[f"{base}_qkv.{param}"] = torch.cat(parts, dim=0)
    return out


def _vae_back(key: str) -> str:
    def res(rest: str) -> str:
        return rest.replace("conv_shortcut.", "nin_shortcut.")

    if m := re.match(r"(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key):
        side, kind, i, rest = m.groups()
        if kind == "attentions":
            return f"{side}.mid.attn_1." + re.sub(r"^to_(q|k|v)\.", r"\1.", rest)
        return f"{side}.mid.block_{int(i) + 1}.{res(rest)}"
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.(resnets\.(\d+)|downsamplers\.0)\.(.*)", key):
        i, _, j, rest = m.groups()
        return f"encoder.down.{i}.block.{j}.{res(rest)}" if j is not None else f"encoder.down.{i}.downsample.{rest}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.(resnets\.(\d+)|upsamplers\.0)\.(.*)", key):
        i, _, j, rest = m.groups()
        return f"decoder.up.{i}.block.{j}.{res(rest)}" if j is not None else f"decoder.up.{i}.upsample.{rest}"
    return key


def vae_to_release(sd: dict[str, Any]) -> dict[str, Any]:
    """A diffusers ``AutoencoderKLHunyuanVideo15`` state dict in the release's key layout."""
    return {_vae_back(k): v for k, v in sd.items()}


def _check_round_trip(original: dict[str, Any], module_keys: set[str], convert: Any) -> None:
    back = set(convert(original))
    if back != module_keys:
        raise AssertionError(f"key layout does not convert back: {sorted(back ^ module_keys)[:5]}")


def _random(module: Any) -> Any:
    import torch

    with torch.no_grad():  # the release zero-initialises some layers; random values make the tests see them
        for p in module.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.05)
    return module.eval()


def tiny_transformer(seed: int, text_dim: int = 128, glyph_dim: int = 16, image_dim: int = 32) -> Any:
    """A tiny ``HunyuanVideo15Transformer3DModel``: one 128-wide head, 2 double blocks, 1 refiner block."""
    import torch
    from diffusers import HunyuanVideo15Transformer3DModel

    torch.manual_seed(seed)
    return _random(HunyuanVideo15Transformer3DModel(
        in_channels=65, out_channels=32, num_attention_heads=1, attention_head_dim=128, num_layers=2,
        num_refiner_layers=1, mlp_ratio=2.0, text_embed_dim=text_dim, text_embed_2_dim=glyph_dim,
        image_embed_dim=image_dim, target_size=32))


def tiny_vae(seed: int = 0) -> Any:
    """A tiny ``AutoencoderKLHunyuanVideo15`` (5 stages, 16× in space, 4× in time, 32-channel latent)."""
    import torch
    from diffusers import AutoencoderKLHunyuanVideo15

    torch.manual_seed(seed)
    return _random(AutoencoderKLHunyuanVideo15(block_out_channels=(8, 8, 16, 32, 64), layers_per_block=1))


def _text_encoders(root: Path, seed: int) -> tuple[Any, Any, Any]:
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel, T5Config, T5EncoderModel

    tokenizer = build_qwen_tokenizer()
    tokenizer.save_pretrained(root / "tokenizers" / "qwen2.5_vl")
    torch.manual_seed(seed)
    qwen = Qwen2_5_VLTextModel(Qwen2_5_VLTextConfig(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=128, num_hidden_layers=3, num_attention_heads=1,
        num_key_value_heads=1, rms_norm_eps=1e-6, max_position_embeddings=128000, rope_theta=1000000.0,
        rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}, tie_word_embeddings=False,
        bos_token_id=None, eos_token_id=None)).eval()
    save_file({"model." + k: v.contiguous() for k, v in qwen.state_dict().items()},
              str(root / "text_encoders" / "tiny_qwen_2.5_vl_7b.safetensors"))
    torch.manual_seed(seed + 1)
    byt5 = T5EncoderModel(T5Config(
        vocab_size=384, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2, relative_attention_num_buckets=32,
        feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, is_encoder_decoder=False, use_cache=False,
        tie_word_embeddings=False, pad_token_id=0, eos_token_id=1)).eval()
    save_file({k: v.contiguous() for k, v in byt5.state_dict().items() if k != "encoder.embed_tokens.weight"},
              str(root / "text_encoders" / "tiny_byt5_small_glyphxl.safetensors"))
    return qwen, tokenizer, byt5


def build_tiny_hunyuan_video15(root: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write tiny HunyuanVideo 1.5 files under ``root`` (a models folder) and return the modules.

    Returns:
        modules ``t2v``, ``i2v`` (transformers), ``text_encoder``, ``tokenizer``, ``byt5``, ``vae`` and
        ``vision`` (the SigLIP tower), and ``files`` (the written transformer file names).
    """
    from safetensors.torch import save_file

    from nodeloom.diffusion.families.hunyuan_video15 import diffusers_keys
    from nodeloom.diffusion.hunyuan_video15_vae import diffusers_vae_keys
    from nodeloom.testing.tiny_clip_vision import save_vision_file, tiny_vision_model

    root = Path(root)
    for sub in ("diffusion_models", "text_encoders", "vae", "clip_vision", "tokenizers/qwen2.5_vl"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    qwen, tokenizer, byt5 = _text_encoders(root, seed)
    vision = tiny_vision_model("siglip", seed)
    save_vision_file(vision, root / "clip_vision" / "tiny_sigclip_vision_patch14_384.safetensors")
    files = {"t2v": "tiny_hunyuanvideo1.5_720p_t2v.safetensors", "i2v": "tiny_hunyuanvideo1.5_720p_i2v.safetensors"}
    modules = {"t2v": tiny_transformer(seed + 2, image_dim=vision.config.hidden_size),
               "i2v": tiny_transformer(seed + 3, image_dim=vision.config.hidden_size)}
    for name, model in modules.items():
        sd = {k: v.contiguous() for k, v in model.state_dict().items()}
        release = transformer_to_release(sd)
        _check_round_trip(release, set(sd), diffusers_keys)
        save_file({"model.diffusion_model." + k: v for k, v in release.items()},
                  str(root / "diffusion_models" / files[name]))
    vae = tiny_vae(seed)
    sd = {k: v.contiguous() for k, v in vae.state_dict().items()}
    release = vae_to_release(sd)
    _check_round_trip(release, set(sd), diffusers_vae_keys)
    save_file(release, str(root / "vae" / "tiny_hunyuanvideo15_vae.safetensors"))
    return {**modules, "text_encoder": qwen, "tokenizer": tokenizer, "byt5": byt5, "vae": vae, "vision": vision,
            "files": files}
