"""Tiny random LTX-2 models saved as users download them, for tests and benchmarks.

:func:`build_tiny_ltx2_av` writes the whole audio-video release (the all-in-one checkpoint, the
transformer alone, Gemma 3 and its tokenizer) and :func:`ltx2_t2v_workflow` is the text-to-video
template's first stage over them. :func:`build_tiny_ltx2_audio` writes ``checkpoints/tiny_ltx2.safetensors``: the audio VAE under
``audio_vae.`` and the vocoder under ``vocoder.`` in the release's key names, as the LTX-2
all-in-one checkpoints hold them (the 2.0 release's layout and strides, narrower layers). It returns
the in-memory diffusers modules so tests can compare with LTX2Pipeline's decoding. Must not import
the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nodeloom.diffusion.ltx2_audio import AUDIO_VAE_PREFIX, VOCODER_PREFIX, vocoder_to_release

__all__ = ["LTX2_NEGATIVE", "LTX2_POSITIVE", "build_tiny_ltx2_audio", "build_tiny_ltx2_av", "ltx2_t2v_workflow"]

LTX2_POSITIVE = "a puppet sings in the rain"
LTX2_NEGATIVE = "blurry, low quality"

_STATS = {"latents_mean": "per_channel_statistics.mean-of-means", "latents_std": "per_channel_statistics.std-of-means"}


def tiny_audio_modules(seed: int = 0) -> tuple[Any, Any]:
    """A small ``AutoencoderKLLTX2Audio`` (one res block, no widening) and ``LTX2Vocoder``
    (hidden width 32) with random weights and latent statistics."""
    import torch
    from diffusers import AutoencoderKLLTX2Audio
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    torch.manual_seed(seed)
    vae = AutoencoderKLLTX2Audio(base_channels=128, ch_mult=(1, 1, 1), num_res_blocks=1).eval()
    vae.latents_mean.copy_(torch.randn(128) * 0.1)
    vae.latents_std.copy_(torch.rand(128) + 0.5)
    vocoder = LTX2Vocoder(in_channels=128, hidden_channels=32).eval()
    return vae, vocoder


def build_tiny_ltx2_audio(root: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write the tiny LTX-2 checkpoint's audio part under ``root/checkpoints``.

    Returns:
        ``{"audio_vae", "vocoder"}`` modules and ``ckpt`` (the file name).
    """
    from safetensors.torch import save_file

    vae, vocoder = tiny_audio_modules(seed)
    (Path(root) / "checkpoints").mkdir(parents=True, exist_ok=True)
    sd = {AUDIO_VAE_PREFIX + _STATS.get(k, k): v.contiguous() for k, v in vae.state_dict().items()}
    sd.update({VOCODER_PREFIX + k: v.contiguous() for k, v in vocoder_to_release(vocoder.state_dict()).items()})
    save_file(sd, str(Path(root) / "checkpoints" / "tiny_ltx2.safetensors"))
    return {"audio_vae": vae, "vocoder": vocoder, "ckpt": "tiny_ltx2.safetensors"}


def build_tiny_upsamplers(root: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write two tiny latent upsamplers under ``root/latent_upscale_models``: the LTX-Video 0.9.x
    layout (pixel-shuffle upsampler) and the LTX-2 layout (rational resampler, its config in the
    file's metadata as the release carries it). Returns the modules and the file names."""
    import json

    import torch
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel
    from safetensors.torch import save_file

    folder = Path(root) / "latent_upscale_models"
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    for name, rational in (("tiny_ltxv_spatial_upscaler.safetensors", False),
                           ("tiny_ltx2_spatial_upscaler_x2.safetensors", True)):
        torch.manual_seed(seed)
        module = LTX2LatentUpsamplerModel(in_channels=128, mid_channels=32, num_blocks_per_stage=1,
                                          use_rational_resampler=rational).eval()
        metadata = {"config": json.dumps(dict(module.config))} if rational else None
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(folder / name), metadata=metadata)
        out["ltx2" if rational else "ltxv"] = (module, name)
    return out


def tiny_av_modules(seed: int = 0) -> dict[str, Any]:
    """A small ``LTX2VideoTransformer3DModel`` (2 layers, both streams 64 wide in the release's 32
    heads), its ``LTX2TextConnectors`` (30 heads, 128 registers as released, 60 wide) and a
    3-layer ``Gemma3TextModel`` 60 wide, with random weights (layers that start at zero too)."""
    import torch
    from diffusers import LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from transformers import Gemma3TextConfig, Gemma3TextModel

    from nodeloom.testing.tiny_lm import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer(chat_template=False)
    torch.manual_seed(seed)
    gemma = Gemma3TextModel(Gemma3TextConfig(vocab_size=len(tokenizer), hidden_size=60, intermediate_size=64,
                                             num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=1,
                                             head_dim=16, query_pre_attn_scalar=16, sliding_window=1024,
                                             max_position_embeddings=2048,
                                             rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                                              "full_attention": {"rope_type": "linear", "rope_theta": 1000000.0,
                                                                                 "factor": 8.0}})).eval()
    connectors = LTX2TextConnectors(caption_channels=60, text_proj_in_factor=4, video_connector_num_attention_heads=30,
                                    video_connector_attention_head_dim=2, audio_connector_num_attention_heads=30,
                                    audio_connector_attention_head_dim=2).eval()
    transformer = LTX2VideoTransformer3DModel(
        in_channels=128, out_channels=128, num_attention_heads=32, attention_head_dim=2, cross_attention_dim=64,
        audio_in_channels=128, audio_out_channels=128, audio_num_attention_heads=32, audio_attention_head_dim=2,
        audio_cross_attention_dim=64, num_layers=2, caption_channels=60).eval()
    with torch.no_grad():
        for module in (transformer, connectors):
            for p in module.parameters():
                if p.abs().sum() == 0:
                    p.normal_(0, 0.02)
    return {"transformer": transformer, "connectors": connectors, "gemma": gemma, "tokenizer": tokenizer}


def tiny_video_vae(seed: int = 0) -> Any:
    """A small ``AutoencoderKLLTX2Video`` with the 2.0 release's block kinds (narrow blocks, one
    resnet each but two in the second) and random latent statistics."""
    import torch
    from diffusers import AutoencoderKLLTX2Video

    torch.manual_seed(seed)
    vae = AutoencoderKLLTX2Video(block_out_channels=(16, 32, 64, 64), decoder_block_out_channels=(16, 32, 64),
                                 layers_per_block=(1, 2, 1, 1, 1), decoder_layers_per_block=(1, 2, 1, 1),
                                 spatial_compression_ratio=32, temporal_compression_ratio=8, decoder_causal=False).eval()
    vae.latents_mean.copy_(torch.randn(128) * 0.1)
    vae.latents_std.copy_(torch.rand(128) + 0.5)
    return vae


def build_tiny_ltx2_av(root: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write tiny LTX-2 audio-video files under ``root`` as users download them:
    ``checkpoints/tiny_ltx2_av.safetensors`` (the transformer and its text connectors under
    ``model.diffusion_model.`` in the release's names, the video VAE under ``vae.``, the text
    feature projection, the audio VAE and vocoder), the same transformer alone in ``diffusion_models/`` and a Gemma 3 encoder in
    ``text_encoders/`` with its tokenizer in ``tokenizers/gemma3``.

    Returns:
        the modules (``transformer``, ``connectors``, ``gemma``, ``tokenizer``, ``video_vae``,
        ``audio_vae``, ``vocoder``) and the file names ``ckpt``, ``unet``, ``gemma_file``.
    """
    from safetensors.torch import save_file

    from nodeloom.diffusion.families.ltx2 import connectors_to_release, transformer_to_release
    from nodeloom.diffusion.ltx2_checkpoint import video_vae_to_release

    root = Path(root)
    for sub in ("checkpoints", "diffusion_models", "text_encoders", "tokenizers/gemma3"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    parts = tiny_av_modules(seed)
    parts["tokenizer"].save_pretrained(root / "tokenizers" / "gemma3")
    save_file({"model." + k: v.contiguous() for k, v in parts["gemma"].state_dict().items()},
              str(root / "text_encoders" / "tiny_gemma3.safetensors"))
    csd = parts["connectors"].state_dict()
    model = {"model.diffusion_model." + k: v.contiguous()
             for k, v in transformer_to_release(parts["transformer"].state_dict()).items()}
    model.update({"model.diffusion_model." + k: v.contiguous() for k, v in connectors_to_release(
        {k: v for k, v in csd.items() if not k.startswith("text_proj_in.")}).items()})
    save_file(model, str(root / "diffusion_models" / "tiny_ltx2_av.safetensors"))
    vae, vocoder = tiny_audio_modules(seed)
    ckpt = dict(model)
    ckpt["text_embedding_projection.aggregate_embed.weight"] = csd["text_proj_in.weight"].contiguous()
    ckpt.update({AUDIO_VAE_PREFIX + _STATS.get(k, k): v.contiguous() for k, v in vae.state_dict().items()})
    ckpt.update({VOCODER_PREFIX + k: v.contiguous() for k, v in vocoder_to_release(vocoder.state_dict()).items()})
    video_vae = tiny_video_vae(seed)
    ckpt.update({"vae." + k: v.contiguous() for k, v in video_vae_to_release(video_vae.state_dict()).items()})
    save_file(ckpt, str(root / "checkpoints" / "tiny_ltx2_av.safetensors"))
    return {**parts, "audio_vae": vae, "vocoder": vocoder, "video_vae": video_vae, "ckpt": "tiny_ltx2_av.safetensors",
            "unet": "tiny_ltx2_av.safetensors", "gemma_file": "tiny_gemma3.safetensors"}


def ltx2_t2v_workflow(parts: dict[str, Any], frames: int = 9, rate: float = 25.0, seed: int = 10) -> dict[str, Any]:
    """The official LTX-2 text-to-video template's first stage (API format) over the files
    :func:`build_tiny_ltx2_av` wrote (``parts``), at 64² and 4 steps."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": parts["ckpt"]}},
        "60": {"class_type": "LTXAVTextEncoderLoader",
               "inputs": {"text_encoder": parts["gemma_file"], "ckpt_name": parts["ckpt"], "device": "default"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": LTX2_POSITIVE, "clip": ["60", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": LTX2_NEGATIVE, "clip": ["60", 0]}},
        "22": {"class_type": "LTXVConditioning", "inputs": {"positive": ["3", 0], "negative": ["4", 0],
                                                            "frame_rate": rate}},
        "43": {"class_type": "EmptyLTXVLatentVideo", "inputs": {"width": 64, "height": 64, "length": frames,
                                                                "batch_size": 1}},
        "48": {"class_type": "LTXVAudioVAELoader", "inputs": {"ckpt_name": parts["ckpt"]}},
        "51": {"class_type": "LTXVEmptyLatentAudio", "inputs": {"frames_number": frames, "frame_rate": rate,
                                                                "batch_size": 1, "audio_vae": ["48", 0]}},
        "56": {"class_type": "LTXVConcatAVLatent", "inputs": {"video_latent": ["43", 0], "audio_latent": ["51", 0]}},
        "9": {"class_type": "LTXVScheduler", "inputs": {"steps": 4, "max_shift": 2.05, "base_shift": 0.95,
                                                        "stretch": True, "terminal": 0.1, "latent": ["56", 0]}},
        "8": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "11": {"class_type": "RandomNoise", "inputs": {"noise_seed": seed}},
        "47": {"class_type": "CFGGuider", "inputs": {"model": ["1", 0], "positive": ["22", 0], "negative": ["22", 1],
                                                     "cfg": 3.0}},
        "41": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["11", 0], "guider": ["47", 0],
                                                                 "sampler": ["8", 0], "sigmas": ["9", 0],
                                                                 "latent_image": ["56", 0]}},
        "80": {"class_type": "LTXVSeparateAVLatent", "inputs": {"av_latent": ["41", 0]}},
        "100": {"class_type": "VAEDecodeTiled", "inputs": {"samples": ["80", 0], "vae": ["1", 2], "tile_size": 512,
                                                           "overlap": 64, "temporal_size": 4096, "temporal_overlap": 8}},
        "101": {"class_type": "LTXVAudioVAEDecode", "inputs": {"samples": ["80", 1], "audio_vae": ["48", 0]}},
        "97": {"class_type": "CreateVideo", "inputs": {"images": ["100", 0], "audio": ["101", 0], "fps": rate}},
        "75": {"class_type": "SaveVideo", "inputs": {"video": ["97", 0], "filename_prefix": "video/LTX-2",
                                                     "format": "mp4", "codec": "auto"}},
    }
