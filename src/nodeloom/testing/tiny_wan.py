"""Tiny random Wan models saved as ComfyUI users download them, for tests and benchmarks.

:func:`build_tiny_wan` writes a models folder laid out like ComfyUI's Wan templates expect:
``diffusion_models/`` (text-to-video, a Wan 2.2-style image-to-video high/low-noise pair, Wan
2.1-style image-to-video and first–last-frame models with CLIP-vision image embedders, and a VACE
model, all in the original release's key layout), ``text_encoders/`` (a UMT5 encoder like ``umt5_xxl``), ``vae/`` (a Wan
2.1-style causal video VAE in the original layout) and a small T5-style tokenizer in
``tokenizers/umt5``. The layouts are written by inverting diffusers' own single-file key
converters, and each file is checked to convert back to the module's exact keys.
Must not import the engine.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["WAN21_T2V_WORKFLOW", "WAN22_5B_TI2V_WORKFLOW", "WAN22_I2V_WORKFLOW", "build_tiny_wan", "build_tiny_wan22",
           "transformer_to_original", "vae22_to_original", "vae_to_original"]

_NEGATIVE = "static, blurry, low quality, worst quality"

#: the Wan 2.1 text-to-video template's graph (text_to_video_wan.json), tiny sizes
WAN21_T2V_WORKFLOW = {
    "37": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_wan2.1_t2v.safetensors", "weight_dtype": "default"}},
    "38": {"class_type": "CLIPLoader", "inputs": {"clip_name": "tiny_umt5_xxl.safetensors", "type": "wan",
                                                  "device": "default"}},
    "39": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_wan_2.1_vae.safetensors"}},
    "48": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["37", 0], "shift": 8.0}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["38", 0], "text": "a fox running through the snow"}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["38", 0], "text": _NEGATIVE}},
    "40": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 32, "height": 32, "length": 9, "batch_size": 1}},
    "3": {"class_type": "KSampler", "inputs": {"model": ["48", 0], "seed": 5, "steps": 4, "cfg": 6.0,
                                               "sampler_name": "uni_pc", "scheduler": "simple", "positive": ["6", 0],
                                               "negative": ["7", 0], "latent_image": ["40", 0], "denoise": 1.0}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["39", 0]}},
    "49": {"class_type": "CreateVideo", "inputs": {"images": ["8", 0], "fps": 16.0}},
    "50": {"class_type": "SaveVideo", "inputs": {"video": ["49", 0], "filename_prefix": "video/wan_t2v",
                                                 "format": "auto", "codec": "auto"}},
}

#: the Wan 2.2 14B image-to-video template's graph (video_wan2_2_14B_i2v.json without its speed-up
#: LoRAs): the high-noise expert runs steps 0–2 and hands its leftover noise to the low-noise one
WAN22_I2V_WORKFLOW = {
    "95": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_wan2.2_i2v_high_noise.safetensors",
                                                  "weight_dtype": "default"}},
    "96": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_wan2.2_i2v_low_noise.safetensors",
                                                  "weight_dtype": "default"}},
    "84": {"class_type": "CLIPLoader", "inputs": {"clip_name": "tiny_umt5_xxl.safetensors", "type": "wan",
                                                  "device": "default"}},
    "90": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_wan_2.1_vae.safetensors"}},
    "104": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["95", 0], "shift": 5.0}},
    "103": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["96", 0], "shift": 5.0}},
    "93": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["84", 0], "text": "a warrior stands still, camera circles"}},
    "89": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["84", 0], "text": _NEGATIVE}},
    "97": {"class_type": "LoadImage", "inputs": {"image": "wan_start.png"}},
    "98": {"class_type": "WanImageToVideo", "inputs": {"positive": ["93", 0], "negative": ["89", 0], "vae": ["90", 0],
                                                       "width": 32, "height": 32, "length": 9, "batch_size": 1,
                                                       "start_image": ["97", 0]}},
    "86": {"class_type": "KSamplerAdvanced", "inputs": {
        "model": ["104", 0], "add_noise": "enable", "noise_seed": 21, "steps": 4, "cfg": 3.5, "sampler_name": "euler",
        "scheduler": "simple", "positive": ["98", 0], "negative": ["98", 1], "latent_image": ["98", 2],
        "start_at_step": 0, "end_at_step": 2, "return_with_leftover_noise": "enable"}},
    "85": {"class_type": "KSamplerAdvanced", "inputs": {
        "model": ["103", 0], "add_noise": "disable", "noise_seed": 0, "steps": 4, "cfg": 3.5, "sampler_name": "euler",
        "scheduler": "simple", "positive": ["98", 0], "negative": ["98", 1], "latent_image": ["86", 0],
        "start_at_step": 2, "end_at_step": 10000, "return_with_leftover_noise": "disable"}},
    "87": {"class_type": "VAEDecode", "inputs": {"samples": ["85", 0], "vae": ["90", 0]}},
    "94": {"class_type": "CreateVideo", "inputs": {"images": ["87", 0], "fps": 16.0}},
    "108": {"class_type": "SaveVideo", "inputs": {"video": ["94", 0], "filename_prefix": "video/wan22_i2v",
                                                  "format": "auto", "codec": "auto"}},
}

#: the Wan 2.2 5B text/image-to-video template's graph (video_wan2_2_5B_ti2v.json), tiny sizes
WAN22_5B_TI2V_WORKFLOW = {
    "37": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_wan2.2_ti2v_5B.safetensors", "weight_dtype": "default"}},
    "38": {"class_type": "CLIPLoader", "inputs": {"clip_name": "tiny_umt5_xxl.safetensors", "type": "wan",
                                                  "device": "default"}},
    "39": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_wan2.2_vae.safetensors"}},
    "48": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["37", 0], "shift": 8.0}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["38", 0], "text": "a street musician plays guitar"}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["38", 0], "text": _NEGATIVE}},
    "56": {"class_type": "LoadImage", "inputs": {"image": "wan_start.png"}},
    "55": {"class_type": "Wan22ImageToVideoLatent", "inputs": {"vae": ["39", 0], "width": 64, "height": 64, "length": 9,
                                                               "batch_size": 1, "start_image": ["56", 0]}},
    "3": {"class_type": "KSampler", "inputs": {"model": ["48", 0], "seed": 7, "steps": 4, "cfg": 5.0,
                                               "sampler_name": "uni_pc", "scheduler": "simple", "positive": ["6", 0],
                                               "negative": ["7", 0], "latent_image": ["55", 0], "denoise": 1.0}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["39", 0]}},
    "57": {"class_type": "CreateVideo", "inputs": {"images": ["8", 0], "fps": 24.0}},
    "58": {"class_type": "SaveVideo", "inputs": {"video": ["57", 0], "filename_prefix": "video/wan22_5b",
                                                 "format": "auto", "codec": "auto"}},
}

_TRANSFORMER_BACK = (  # diffusers name → original release name, applied in order
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("condition_embedder.image_embedder.norm1", "img_emb.proj.0"),
    ("condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"),
    ("condition_embedder.image_embedder.ff.net.2", "img_emb.proj.3"),
    ("condition_embedder.image_embedder.norm2", "img_emb.proj.4"),
    ("condition_embedder.image_embedder.pos_embed", "img_emb.emb_pos"),
    ("attn1", "self_attn"), ("attn2", "cross_attn"), (".to_out.0.", ".o."), (".to_q.", ".q."), (".to_k.", ".k."),
    (".to_v.", ".v."), (".add_k_proj.", ".k_img."), (".add_v_proj.", ".v_img."), (".norm_added_k.", ".norm_k_img."),
    ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"),
)


def transformer_to_original(sd: dict[str, Any]) -> dict[str, Any]:
    """A diffusers ``WanTransformer3DModel`` state dict in the release's (ComfyUI's) key layout."""
    out = {}
    for key, value in sd.items():
        new = key
        for old, orig in _TRANSFORMER_BACK:
            new = new.replace(old, orig)
        if new == "scale_shift_table":
            new = "head.modulation"
        elif new.startswith("proj_out."):
            new = "head.head." + new[len("proj_out."):]
        new = re.sub(r"^((vace_)?blocks\.\d+\.)scale_shift_table$", r"\1modulation", new)
        new = re.sub(r"^((vace_)?blocks\.\d+\.)norm(2|3)\.", lambda m: f"{m.group(1)}norm{5 - int(m.group(3))}.", new)
        new = re.sub(r"^(vace_blocks\.\d+\.)proj_(in|out)\.",
                     lambda m: m.group(1) + ("before_proj." if m.group(2) == "in" else "after_proj."), new)
        out[new] = value
    return out


_RESNET_BACK = {"norm1.gamma": "residual.0.gamma", "conv1": "residual.2", "norm2.gamma": "residual.3.gamma",
                "conv2": "residual.6", "conv_shortcut": "shortcut"}


def _resnet(rest: str) -> str:
    for old, orig in _RESNET_BACK.items():
        if rest.startswith(old):
            return orig + rest[len(old):]
    return rest


def _vae_key(key: str) -> str:
    plain = {"quant_conv": "conv1", "post_quant_conv": "conv2", "encoder.conv_in": "encoder.conv1",
             "decoder.conv_in": "decoder.conv1", "encoder.norm_out.gamma": "encoder.head.0.gamma",
             "decoder.norm_out.gamma": "decoder.head.0.gamma", "encoder.conv_out": "encoder.head.2",
             "decoder.conv_out": "decoder.head.2"}
    for old, orig in plain.items():
        if key == old or key.startswith(old + "."):
            return orig + key[len(old):]
    if m := re.match(r"(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key):
        side, kind, i, rest = m.groups()
        if kind == "attentions":
            return f"{side}.middle.1.{rest}"
        return f"{side}.middle.{2 * int(i)}.{_resnet(rest)}"
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.(.*)", key):
        return f"encoder.downsamples.{m.group(1)}.{_resnet(m.group(2))}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        return f"decoder.upsamples.{4 * int(m.group(1)) + int(m.group(2))}.{_resnet(m.group(3))}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key):
        return f"decoder.upsamples.{4 * int(m.group(1)) + 3}.{m.group(2)}"
    return key


def vae_to_original(sd: dict[str, Any]) -> dict[str, Any]:
    """A diffusers ``AutoencoderKLWan`` (Wan 2.1 shape) state dict in the release's key layout."""
    return {_vae_key(k): v for k, v in sd.items()}


def _vae22_key(key: str) -> str:
    m = re.match(r"(encoder|decoder)\.(down|up)_blocks\.(\d+)\.(resnets\.(\d+)|downsampler|upsampler)\.(.*)", key)
    if m is None:
        return _vae_key(key)
    side, way, block, part, index, rest = m.groups()
    inner = f"{side}.{way}samples.{block}.{way}samples"
    if index is not None:
        return f"{inner}.{index}.{_resnet(rest)}"
    return f"{inner}.{2 if way == 'down' else 3}.{rest}"  # after the block's resnets (2 down, 3 up in the tiny VAE)


def vae22_to_original(sd: dict[str, Any]) -> dict[str, Any]:
    """A diffusers ``AutoencoderKLWan`` (Wan 2.2 shape, two resnets a block) state dict in the release's key layout."""
    return {_vae22_key(k): v for k, v in sd.items()}


def _check_round_trip(original: dict[str, Any], module_keys: set[str], convert: Any) -> None:
    back = set(convert({k: None for k in original}))
    if back != module_keys:
        raise AssertionError(f"key layout does not convert back: {sorted(back ^ module_keys)[:5]}")


def _transformer(in_channels: int, seed: int, image_dim: int | None = None, pos_embed_seq_len: int | None = None,
                 vace: bool = False, out_channels: int = 16) -> Any:
    import torch
    from diffusers import WanTransformer3DModel, WanVACETransformer3DModel

    torch.manual_seed(seed)
    extra = {"vace_layers": [0], "vace_in_channels": 96} if vace else {}
    model = (WanVACETransformer3DModel if vace else WanTransformer3DModel)(**extra,
        patch_size=(1, 2, 2), num_attention_heads=1, attention_head_dim=128, in_channels=in_channels, out_channels=out_channels,
        text_dim=32, freq_dim=256, ffn_dim=256, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        eps=1e-6, image_dim=image_dim, added_kv_proj_dim=128 if image_dim else None, pos_embed_seq_len=pos_embed_seq_len)
    with torch.no_grad():  # the release zero-initialises some layers; random values make the tests see them
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.02)
    return model.eval()


def _save_transformer(model: Any, path: Path) -> None:
    from safetensors.torch import save_file

    from nodeloom.diffusion.families.wan import diffusers_keys

    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    original = transformer_to_original(sd)
    _check_round_trip(original, set(sd), diffusers_keys)
    save_file({"model.diffusion_model." + k: v for k, v in original.items()}, str(path))


def tiny_wan_vae(seed: int = 0) -> Any:
    """A tiny ``AutoencoderKLWan`` with the Wan 2.1 VAE's structure (4 stages, 2 temporal downsamplings)."""
    import torch
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    return AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                            temperal_downsample=[False, True, True]).eval()


def tiny_wan22_vae(seed: int = 0) -> Any:
    """A tiny ``AutoencoderKLWan`` with the Wan 2.2 VAE's structure (48 channels, residual blocks,
    2×2 pixel patches, 16× in space) and the release's latent statistics."""
    import torch
    from diffusers import AutoencoderKLWan

    from nodeloom.diffusion.wan_vae import wan22_vae_settings

    torch.manual_seed(seed)
    return AutoencoderKLWan(base_dim=8, decoder_base_dim=12, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                            attn_scales=[], temperal_downsample=[False, True, True], **wan22_vae_settings()).eval()


def _text_encoder(root: Path, seed: int) -> tuple[Any, Any]:
    import torch
    from safetensors.torch import save_file
    from transformers import UMT5Config, UMT5EncoderModel

    from nodeloom.testing.tiny_families import build_t5_tokenizer

    tokenizer = build_t5_tokenizer()
    tokenizer.save_pretrained(root / "tokenizers" / "umt5")
    torch.manual_seed(seed)
    encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=32, feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6,
        is_encoder_decoder=False, use_cache=False, tie_word_embeddings=False, pad_token_id=0, eos_token_id=1)).eval()
    sd = {k: v.contiguous() for k, v in encoder.state_dict().items() if k != "encoder.embed_tokens.weight"}
    save_file(sd, str(root / "text_encoders" / "tiny_umt5_xxl.safetensors"))
    return encoder, tokenizer


def build_tiny_wan(root: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write tiny Wan files under ``root`` (a models folder) and return the modules.

    Returns:
        modules ``t2v``, ``i2v_high``, ``i2v_low``, ``i2v21`` and ``flf2v`` (with image embedders for
        the tiny CLIP-vision model of :mod:`nodeloom.testing.tiny_clip_vision`), ``vace``,
        ``text_encoder``, ``tokenizer``, ``vae``, and the written file names.
    """
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
    from safetensors.torch import save_file

    root = Path(root)
    for sub in ("diffusion_models", "text_encoders", "vae", "tokenizers/umt5"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    encoder, tokenizer = _text_encoder(root, seed)
    files = {"t2v": "tiny_wan2.1_t2v.safetensors", "i2v_high": "tiny_wan2.2_i2v_high_noise.safetensors",
             "i2v_low": "tiny_wan2.2_i2v_low_noise.safetensors", "i2v21": "tiny_wan2.1_i2v.safetensors",
             "flf2v": "tiny_wan2.1_flf2v.safetensors", "vace": "tiny_wan2.1_vace.safetensors"}
    # the 2.1 image embedders take the tiny CLIP-vision model's states (32 wide, 17 tokens an image)
    modules = {"t2v": _transformer(16, seed), "i2v_high": _transformer(36, seed + 1),
               "i2v_low": _transformer(36, seed + 2), "i2v21": _transformer(36, seed + 3, image_dim=32),
               "flf2v": _transformer(36, seed + 4, image_dim=32, pos_embed_seq_len=34),
               "vace": _transformer(16, seed + 5, vace=True)}
    for name, model in modules.items():
        _save_transformer(model, root / "diffusion_models" / files[name])
    vae = tiny_wan_vae(seed)
    sd = {k: v.contiguous() for k, v in vae.state_dict().items()}
    original = vae_to_original(sd)
    _check_round_trip(original, set(sd), convert_wan_vae_to_diffusers)
    save_file(original, str(root / "vae" / "tiny_wan_2.1_vae.safetensors"))
    return {**modules, "text_encoder": encoder, "tokenizer": tokenizer, "vae": vae, "files": files,
            "clip": "tiny_umt5_xxl.safetensors", "vae_file": "tiny_wan_2.1_vae.safetensors"}


def _fun_control_5b(seed: int) -> Any:
    """A tiny Wan 2.2 Fun control 5B: 48 noise + 48 control + 4 mask + 48 start channels, and the
    reference image's patch embedding ``ref_conv`` the release adds."""
    import torch

    model = _transformer(148, seed, out_channels=48)
    torch.manual_seed(seed + 100)
    model.ref_conv = torch.nn.Conv2d(48, 128, kernel_size=(2, 2), stride=(2, 2))
    return model.eval()


def _fun_camera(seed: int) -> Any:
    """A tiny Wan 2.1 Fun camera model: image-to-video (16 + 4 mask + 16 channels) and the camera
    adapter (24 channels of Plücker rays, four frames a latent frame)."""
    import torch

    from nodeloom.diffusion.families.wan_camera import WanCameraAdapter

    model = _transformer(36, seed)
    torch.manual_seed(seed + 100)
    model.control_adapter = WanCameraAdapter(24, 128, (2, 2))
    return model.eval()


def build_tiny_wan22(root: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write tiny Wan 2.2 5B files under ``root`` (a models folder): the text/image-to-video model
    (48 channels in and out), the Fun inpaint model (48 + 4 mask + 48 image channels), the Fun
    control model (with ``ref_conv``), a Wan 2.1 Fun control model (16 + 32 channels) and a Wan
    2.1 Fun camera model (with ``control_adapter``) with the Wan 2.1 VAE they take, the Wan 2.2
    VAE, and the UMT5 encoder and tokenizer :func:`build_tiny_wan` writes.

    Returns:
        modules ``ti2v``, ``fun_inpaint``, ``fun_control``, ``fun_control21``, ``camera``, ``text_encoder``,
        ``tokenizer``, ``vae``, ``vae21`` and the file names.
    """
    from safetensors.torch import save_file

    from nodeloom.diffusion.wan_vae import load_wan_vae

    root = Path(root)
    for sub in ("diffusion_models", "text_encoders", "vae", "tokenizers/umt5"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    encoder, tokenizer = _text_encoder(root, seed)
    files = {"ti2v": "tiny_wan2.2_ti2v_5B.safetensors", "fun_inpaint": "tiny_wan2.2_fun_inpaint_5B.safetensors",
             "fun_control": "tiny_wan2.2_fun_control_5B.safetensors",
             "fun_control21": "tiny_wan2.1_fun_control.safetensors",
             "camera": "tiny_wan2.1_fun_camera.safetensors"}
    modules = {"ti2v": _transformer(48, seed + 10, out_channels=48),
               "fun_inpaint": _transformer(100, seed + 11, out_channels=48),
               "fun_control": _fun_control_5b(seed + 12), "fun_control21": _transformer(48, seed + 13),
               "camera": _fun_camera(seed + 14)}
    for name, model in modules.items():
        _save_transformer(model, root / "diffusion_models" / files[name])
    vae = tiny_wan22_vae(seed)
    original = vae22_to_original({k: v.contiguous() for k, v in vae.state_dict().items()})
    back = load_wan_vae(original, "tiny_wan2.2_vae.safetensors")  # the loader reads the layout back exactly
    if set(back.state_dict()) != set(vae.state_dict()):
        raise AssertionError("the Wan 2.2 VAE layout does not convert back")
    save_file(original, str(root / "vae" / "tiny_wan2.2_vae.safetensors"))
    vae21 = tiny_wan_vae(seed)
    save_file(vae_to_original({k: v.contiguous() for k, v in vae21.state_dict().items()}),
              str(root / "vae" / "tiny_wan_2.1_vae.safetensors"))
    return {**modules, "text_encoder": encoder, "tokenizer": tokenizer, "vae": vae, "vae21": vae21, "files": files,
            "clip": "tiny_umt5_xxl.safetensors", "vae_file": "tiny_wan2.2_vae.safetensors",
            "vae21_file": "tiny_wan_2.1_vae.safetensors"}
