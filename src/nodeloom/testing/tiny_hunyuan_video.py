"""Tiny random HunyuanVideo 1.0 models saved as ComfyUI users download them, for tests and benchmarks.

:func:`build_tiny_hunyuan_video` writes a models folder laid out like the official
``hunyuan_video_text_to_video`` template expects: ``diffusion_models/`` (a text-to-video
transformer in the release's key layout under ComfyUI's prefix), ``text_encoders/`` (CLIP-L in
ComfyUI's ``clip_l`` layout and a Llama language model like ``llava_llama3``), ``vae/`` (the causal
16-channel video VAE in ComfyUI's layout) and a Llama-3-style tokenizer in ``tokenizers/llama3``.
The layouts are written by inverting nodeloom's own converters, and each file is checked to
convert back to the module's exact keys. Must not import the engine.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["HV_T2V_WORKFLOW", "build_tiny_hunyuan_video", "transformer_to_release", "vae_to_comfy"]

_LLAMA_SPECIALS = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]

#: the HunyuanVideo text-to-video template's graph (hunyuan_video_text_to_video.json), tiny sizes, 3 steps
HV_T2V_WORKFLOW = {
    "11": {"class_type": "DualCLIPLoader", "inputs": {
        "clip_name1": "tiny_clip_l.safetensors", "clip_name2": "tiny_llava_llama3.safetensors", "type": "hunyuan_video",
        "device": "default"}},
    "12": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_hunyuan_video_t2v_720p.safetensors",
                                                  "weight_dtype": "default"}},
    "10": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_hunyuan_video_vae.safetensors"}},
    "44": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["11", 0], "text": "anime girl walking in the snow"}},
    "26": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["44", 0], "guidance": 6.0}},
    "45": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 32, "height": 32, "length": 9, "batch_size": 1}},
    "67": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["12", 0], "shift": 7.0}},
    "17": {"class_type": "BasicScheduler", "inputs": {"model": ["67", 0], "scheduler": "simple", "steps": 3,
                                                      "denoise": 1.0}},
    "22": {"class_type": "BasicGuider", "inputs": {"model": ["67", 0], "conditioning": ["26", 0]}},
    "25": {"class_type": "RandomNoise", "inputs": {"noise_seed": 1}},
    "16": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
    "13": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["25", 0], "guider": ["22", 0],
                                                             "sampler": ["16", 0], "sigmas": ["17", 0],
                                                             "latent_image": ["45", 0]}},
    "73": {"class_type": "VAEDecodeTiled", "inputs": {"samples": ["13", 0], "vae": ["10", 0], "tile_size": 256,
                                                      "overlap": 64, "temporal_size": 64, "temporal_overlap": 8}},
    "79": {"class_type": "CreateVideo", "inputs": {"images": ["73", 0], "fps": 24.0}},
    "80": {"class_type": "SaveVideo", "inputs": {"video": ["79", 0], "filename_prefix": "video/ComfyUI",
                                                 "format": "auto", "codec": "auto"}},
}


def transformer_to_release(sd: dict[str, Any]) -> dict[str, Any]:
    """A diffusers ``HunyuanVideoTransformer3DModel`` state dict in the release's key layout."""
    import torch

    from nodeloom.diffusion.families.hunyuan_video import _SINGLE, _TOP
    from nodeloom.testing.tiny_hunyuan_video15 import transformer_to_release as v15_release

    top = {v: k for k, v in _TOP.items() if not k.startswith("vector_in.mlp")}
    single = {v: k for k, v in _SINGLE.items()}
    shared, out = {}, {}
    for key, value in sd.items():
        mod, _, param = key.rpartition(".")
        if key.startswith(("transformer_blocks.", "context_embedder.", "norm_out.")):
            shared[key] = value
        elif m := re.match(r"single_transformer_blocks\.(\d+)\.(.+)$", mod):
            base, name = f"single_blocks.{m.group(1)}", m.group(2)
            if name in ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"):
                continue  # joined below
            out[f"{base}.{single[name]}.{param}"] = value
        else:
            out[f"{top[mod]}.{param}"] = value
    for key in sd:
        if m := re.match(r"(single_transformer_blocks\.(\d+))\.attn\.to_q\.(weight|bias)$", key):
            block, i, param = m.groups()
            parts = [sd[f"{block}.{n}.{param}"] for n in ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")]
            out[f"single_blocks.{i}.linear1.{param}"] = torch.cat(parts, dim=0)
    release = v15_release(shared, fused=True)  # double blocks, token refiner and final layer as HunyuanVideo 1.5 names them
    return {**release, **out}


def _vae_back(key: str, ups: int) -> str:
    def res(rest: str) -> str:
        return rest.replace("conv_shortcut.conv.", "nin_shortcut.conv.")

    if m := re.match(r"(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key):
        side, kind, i, rest = m.groups()
        if kind == "attentions":
            head, tail = rest.rsplit(".", 1)
            name = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}[head]
            return f"{side}.mid.attn_1.{name}.{tail}"
        return f"{side}.mid.block_{int(i) + 1}.{res(rest)}"
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.(resnets\.(\d+)|downsamplers\.0)\.(.*)", key):
        i, _, j, rest = m.groups()
        return f"encoder.down.{i}.block.{j}.{res(rest)}" if j is not None else f"encoder.down.{i}.downsample.{rest}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.(resnets\.(\d+)|upsamplers\.0)\.(.*)", key):
        i, _, j, rest = m.groups()
        i = ups - 1 - int(i)
        return f"decoder.up.{i}.block.{j}.{res(rest)}" if j is not None else f"decoder.up.{i}.upsample.{rest}"
    return re.sub(r"^(encoder|decoder)\.conv_norm_out\.", r"\1.norm_out.", key)


def vae_to_comfy(sd: dict[str, Any]) -> dict[str, Any]:
    """A diffusers ``AutoencoderKLHunyuanVideo`` state dict in ComfyUI's layout (attention as 1×1×1 convolutions)."""
    ups = len({k.split(".")[2] for k in sd if k.startswith("decoder.up_blocks.")})
    out = {}
    for key, value in sd.items():
        new = _vae_back(key, ups)
        if ".mid.attn_1." in new and new.endswith(".weight") and value.ndim == 2:
            value = value.reshape(*value.shape, 1, 1, 1)
        out[new] = value
    return out


def _tokenizer() -> Any:
    from nodeloom.testing.tiny_families import build_qwen_tokenizer

    tok = build_qwen_tokenizer()
    tok.add_special_tokens({"bos_token": "<|begin_of_text|>", "additional_special_tokens": _LLAMA_SPECIALS})
    return tok


def _encoders(root: Path, seed: int) -> tuple[Any, Any, Any]:
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

    tokenizer = _tokenizer()
    tokenizer.save_pretrained(root / "tokenizers" / "llama3")
    torch.manual_seed(seed)
    llama = LlamaModel(LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, head_dim=128, num_attention_heads=1,
                                   num_key_value_heads=1, num_hidden_layers=3, intermediate_size=128, rms_norm_eps=1e-5,
                                   rope_theta=500000.0, max_position_embeddings=131072,
                                   tie_word_embeddings=False)).eval()
    save_file({"model." + k: v.contiguous() for k, v in llama.state_dict().items()},
              str(root / "text_encoders" / "tiny_llava_llama3.safetensors"))
    torch.manual_seed(seed + 1)
    clip = CLIPTextModel(CLIPTextConfig(hidden_size=24, intermediate_size=37, num_hidden_layers=2, num_attention_heads=1,
                                        vocab_size=49408, max_position_embeddings=77, hidden_act="quick_gelu",
                                        bos_token_id=49406, eos_token_id=49407, pad_token_id=1)).eval()
    save_file({"text_model." + k.removeprefix("text_model."): v.contiguous() for k, v in clip.state_dict().items()},
              str(root / "text_encoders" / "tiny_clip_l.safetensors"))
    return llama, tokenizer, clip


def build_tiny_hunyuan_video(root: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write tiny HunyuanVideo 1.0 files under ``root`` (a models folder) and return the modules.

    Returns:
        ``transformer``, ``llama``, ``tokenizer`` (Llama's), ``clip_l`` and ``vae`` modules.
    """
    import torch
    from diffusers import AutoencoderKLHunyuanVideo, HunyuanVideoTransformer3DModel
    from safetensors.torch import save_file

    from nodeloom.diffusion.families.hunyuan_video import diffusers_keys
    from nodeloom.diffusion.hunyuan_video_vae import diffusers_vae_keys
    from nodeloom.testing.tiny_hunyuan_video15 import _check_round_trip, _random

    root = Path(root)
    for sub in ("diffusion_models", "text_encoders", "vae", "tokenizers/llama3"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    llama, tokenizer, clip = _encoders(root, seed)
    torch.manual_seed(seed + 2)
    transformer = _random(HunyuanVideoTransformer3DModel(
        in_channels=16, out_channels=16, num_attention_heads=1, attention_head_dim=128, num_layers=1,
        num_single_layers=2, num_refiner_layers=1, mlp_ratio=2.0, patch_size=2, patch_size_t=1,
        text_embed_dim=128, pooled_projection_dim=24, guidance_embeds=True))
    sd = {k: v.contiguous() for k, v in transformer.state_dict().items()}
    release = transformer_to_release(sd)
    _check_round_trip(release, set(sd), diffusers_keys)
    save_file({"model.diffusion_model." + k: v for k, v in release.items()},
              str(root / "diffusion_models" / "tiny_hunyuan_video_t2v_720p.safetensors"))
    torch.manual_seed(seed)
    vae = _random(AutoencoderKLHunyuanVideo(block_out_channels=(8, 16, 16, 16), layers_per_block=1, norm_num_groups=8,
                                            latent_channels=16))
    sd = {k: v.contiguous() for k, v in vae.state_dict().items()}
    comfy = vae_to_comfy(sd)
    _check_round_trip(comfy, set(sd), diffusers_vae_keys)
    save_file(comfy, str(root / "vae" / "tiny_hunyuan_video_vae.safetensors"))
    return {"transformer": transformer, "llama": llama, "tokenizer": tokenizer, "clip_l": clip, "vae": vae}
