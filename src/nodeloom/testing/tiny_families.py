"""Tiny random models of today's families, saved as users download them, for tests and benchmarks.

:func:`build_tiny_flux` does the same for Flux.1 dev/schnell (original-layout transformer, CLIP-L
and T5 encoders as ComfyUI's ``clip_l``/``t5xxl`` files, a T5-style tokenizer in ``tokenizers/t5``).

:func:`build_tiny_zimage` writes a models folder the way ComfyUI's Z-Image Turbo template lays
it out — ``diffusion_models/`` (ComfyUI's repackaged layout, the original diffusers layout and a
scaled-fp8 variant), ``text_encoders/`` (a Qwen3 encoder), ``vae/`` (a Flux-style VAE in the
original single-file layout) — plus a small Qwen-style tokenizer in ``tokenizers/qwen3``, and
returns the in-memory modules so tests can build the diffusers pipeline on the same weights.
Must not import the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nodeloom.testing.tiny_lm import DEFAULT_CORPUS

__all__ = ["FLUX_DEV_WORKFLOW", "ZIMAGE_TURBO_WORKFLOW", "build_qwen_tokenizer", "build_t5_tokenizer", "build_tiny_flux",
           "build_tiny_zimage", "comfy_quant_mixed", "flux_vae", "save_flux_vae", "scaled_fp8", "zimage_to_comfy"]

_QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
#: what the tokenizer's chat template renders for one user turn with a generation prompt
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


#: the Z-Image Turbo template's graph (image_z_image_turbo.json), tiny sizes
ZIMAGE_TURBO_WORKFLOW = {
    "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_z_image.safetensors", "weight_dtype": "default"}},
    "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "tiny_qwen3.safetensors", "type": "lumina2",
                                                 "device": "default"}},
    "3": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_ae.safetensors"}},
    "4": {"class_type": "ModelSamplingAuraFlow", "inputs": {"model": ["1", 0], "shift": 3.0}},
    "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": "a red fox in a snowy forest"}},
    "6": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["5", 0]}},
    "7": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "8": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "seed": 7, "steps": 4, "cfg": 1.0,
                                               "sampler_name": "res_multistep", "scheduler": "simple",
                                               "positive": ["5", 0], "negative": ["6", 0], "latent_image": ["7", 0],
                                               "denoise": 1.0}},
    "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["3", 0]}},
    "10": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "z-image-turbo"}},
}


#: the Flux.1 dev template's graph (flux_dev_full_text_to_image.json) with FluxGuidance and ModelSamplingFlux
FLUX_DEV_WORKFLOW = {
    "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_flux_dev.safetensors", "weight_dtype": "default"}},
    "2": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "tiny_clip_l.safetensors",
                                                     "clip_name2": "tiny_t5xxl.safetensors", "type": "flux"}},
    "3": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_ae.safetensors"}},
    "4": {"class_type": "ModelSamplingFlux", "inputs": {"model": ["1", 0], "max_shift": 1.15, "base_shift": 0.5,
                                                        "width": 64, "height": 64}},
    "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": "a castle on a hill under a stormy sky"}},
    "6": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["5", 0], "guidance": 3.5}},
    "7": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["5", 0]}},
    "8": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "9": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "seed": 11, "steps": 4, "cfg": 1.0,
                                               "sampler_name": "euler", "scheduler": "simple", "positive": ["6", 0],
                                               "negative": ["7", 0], "latent_image": ["8", 0], "denoise": 1.0}},
    "10": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["3", 0]}},
    "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "flux-dev"}},
}


def build_qwen_tokenizer(vocab_size: int = 320) -> Any:
    """A byte-level BPE tokenizer with Qwen's chat markers (``<|im_start|>``, ``<|im_end|>``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(_QWEN_SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(DEFAULT_CORPUS), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                      additional_special_tokens=["<|im_start|>"], padding_side="right")
    wrapped.chat_template = QWEN_CHAT_TEMPLATE
    return wrapped


def flux_vae(seed: int = 0) -> Any:
    """A tiny 16-channel ``AutoencoderKL`` shaped like Flux's (no quant convs, Flux's latent factors)."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                         up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[32, 32, 32, 32], layers_per_block=1,
                         latent_channels=16, norm_num_groups=32, sample_size=32, scaling_factor=0.3611,
                         shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False).eval()


def save_flux_vae(root: Path, seed: int = 0) -> Any:
    """A tiny Flux-style VAE saved as ``<root>/vae/tiny_ae.safetensors`` in the original layout; returns it."""
    from safetensors.torch import save_file

    from nodeloom.diffusion.ldm_export import vae_to_ldm

    vae = flux_vae(seed)
    save_file({k: v.contiguous() for k, v in vae_to_ldm(vae.state_dict(), vae.config, prefix="").items()},
              str(Path(root) / "vae" / "tiny_ae.safetensors"))
    return vae


def zimage_to_comfy(sd: dict[str, Any]) -> dict[str, Any]:
    """A diffusers ``ZImageTransformer2DModel`` state dict in ComfyUI's repackaged layout."""
    import torch

    renames = (("all_x_embedder.2-1.", "x_embedder."), ("all_final_layer.2-1.", "final_layer."),
               (".attention.to_out.0.", ".attention.out."), (".attention.norm_q.", ".attention.q_norm."),
               (".attention.norm_k.", ".attention.k_norm."))
    out: dict[str, Any] = {}
    for key, value in sd.items():
        if ".attention.to_k." in key or ".attention.to_v." in key:
            continue
        if ".attention.to_q." in key:
            parts = [sd[key.replace("to_q", n)] for n in ("to_q", "to_k", "to_v")]
            out[key.replace("to_q", "qkv")] = torch.cat(parts)
            continue
        for old, new in renames:
            key = key.replace(old, new)
        out[key] = value
    dim = sd["all_x_embedder.2-1.weight"].shape[0]
    out["norm_final.weight"] = torch.ones(dim)  # ComfyUI's file carries it; the release has no use for it
    return out


def scaled_fp8(sd: dict[str, Any], prefix: str = "model.diffusion_model.") -> dict[str, Any]:
    """ComfyUI's scaled-fp8 layout: 2-D weights as ``float8_e4m3fn`` with a ``scale_weight`` each."""
    import torch

    out: dict[str, Any] = {prefix + "scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn)}
    for key, value in sd.items():
        if key.endswith(".weight") and value.ndim == 2:
            scale = value.abs().max().float().clamp(min=1e-12) / 448.0
            out[prefix + key] = (value.float() / scale).to(torch.float8_e4m3fn)
            out[prefix + key[: -len("weight")] + "scale_weight"] = scale.reshape(())
        else:
            out[prefix + key] = value.contiguous()
    return out


def comfy_quant_mixed(sd: dict[str, Any], layers: dict[str, str], *, in_header: bool = False,
                      per_row: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
    """ComfyUI's mixed-precision layout (``*_fp8mixed``): the named layers quantised in their format
    (``float8_e4m3fn``, ``float8_e5m2``, ``int8_tensorwise`` or any other name, written as int8),
    the rest left as they are (bf16 here, as the releases hold them).

    Args:
        sd: the model's weights (keys as the file should hold them).
        layers: layer name → ``format``.
        in_header: describe the layers in ``__metadata__["_quantization_metadata"]`` instead of
            ``<layer>.comfy_quant`` tensors.
        per_row: one ``weight_scale`` per output row instead of one per tensor.

    Returns:
        ``(tensors, metadata)`` for ``safetensors.torch.save_file``.
    """
    import json

    import torch

    out = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v).contiguous() for k, v in sd.items()}
    described: dict[str, dict[str, str]] = {}
    for layer, fmt in layers.items():
        weight = sd[layer + ".weight"].float()
        storage = {"float8_e4m3fn": torch.float8_e4m3fn, "float8_e5m2": torch.float8_e5m2}.get(fmt, torch.int8)
        top = 448.0 if storage == torch.float8_e4m3fn else 57344.0 if storage == torch.float8_e5m2 else 127.0
        amax = weight.abs().amax(dim=1, keepdim=True) if per_row else weight.abs().max()
        scale = amax.clamp(min=1e-12) / top
        q = weight / scale
        out[layer + ".weight"] = q.round().clamp(-127, 127).to(torch.int8) if storage == torch.int8 else q.to(storage)
        out[layer + ".weight_scale"] = scale.reshape(-1) if per_row else scale.reshape(())
        out[layer + ".input_scale"] = torch.tensor(1.0)  # only fp8 matmul kernels read it
        described[layer] = {"format": fmt}
        if not in_header:
            out[layer + ".comfy_quant"] = torch.tensor(list(json.dumps(described[layer]).encode()), dtype=torch.uint8)
    meta = {"_quantization_metadata": json.dumps({"format_version": "1.0", "layers": described})} if in_header else {}
    return out, meta


def _tiny_transformer(cap_dim: int, seed: int) -> Any:
    import torch
    from diffusers import ZImageTransformer2DModel

    torch.manual_seed(seed)
    model = ZImageTransformer2DModel(all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32, n_layers=2,
                                     n_refiner_layers=1, n_heads=2, n_kv_heads=2, cap_feat_dim=cap_dim,
                                     axes_dims=[4, 6, 6], axes_lens=[1536, 512, 512])
    with torch.no_grad():  # the release zero-initialises some layers; random values make the test see them
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.02)
    return model.eval()


def build_tiny_zimage(root: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write tiny Z-Image files under ``root`` (a models folder) and return the modules.

    Returns:
        ``{"transformer", "text_encoder", "tokenizer", "vae"}`` modules and the written file names
        (``unet``, ``unet_diffusers``, ``unet_fp8``, ``clip``, ``vae_file``).
    """
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen3Config, Qwen3Model

    root = Path(root)
    for sub in ("diffusion_models", "text_encoders", "vae", "tokenizers/qwen3"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    tokenizer = build_qwen_tokenizer()
    tokenizer.save_pretrained(root / "tokenizers" / "qwen3")
    torch.manual_seed(seed)
    encoder = Qwen3Model(Qwen3Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                     num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                                     rope_theta=1000000.0, rms_norm_eps=1e-6, max_position_embeddings=512,
                                     tie_word_embeddings=False)).eval()
    save_file({"model." + k: v.contiguous() for k, v in encoder.state_dict().items()},
              str(root / "text_encoders" / "tiny_qwen3.safetensors"))
    transformer = _tiny_transformer(32, seed)
    sd = {k: v.contiguous() for k, v in transformer.state_dict().items()}
    save_file(zimage_to_comfy(sd), str(root / "diffusion_models" / "tiny_z_image.safetensors"),
              metadata={"format": "pt", "modelspec.architecture": "z-image"})
    save_file(sd, str(root / "diffusion_models" / "tiny_z_image_diffusers.safetensors"))
    save_file(scaled_fp8(zimage_to_comfy(sd)), str(root / "diffusion_models" / "tiny_z_image_fp8_scaled.safetensors"))
    vae = save_flux_vae(root, seed)
    return {"transformer": transformer, "text_encoder": encoder, "tokenizer": tokenizer, "vae": vae,
            "unet": "tiny_z_image.safetensors", "unet_diffusers": "tiny_z_image_diffusers.safetensors",
            "unet_fp8": "tiny_z_image_fp8_scaled.safetensors", "clip": "tiny_qwen3.safetensors",
            "vae_file": "tiny_ae.safetensors"}


def build_t5_tokenizer(vocab_size: int = 200) -> Any:
    """A unigram tokenizer with T5's conventions (``</s>`` appended, ``<pad>`` id 0)."""
    from tokenizers import Tokenizer, processors
    from tokenizers.implementations import SentencePieceUnigramTokenizer
    from transformers import PreTrainedTokenizerFast

    trained = SentencePieceUnigramTokenizer()
    trained.train_from_iterator(list(DEFAULT_CORPUS), vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"],
                                unk_token="<unk>", show_progress=False)
    tok = Tokenizer.from_str(trained.to_str())
    eos = tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", eos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   padding_side="right")


def _tiny_flux_encoders(t5_vocab: int, seed: int) -> tuple[Any, Any]:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    clip = CLIPTextModel(CLIPTextConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=1,
                                        vocab_size=49408, max_position_embeddings=77, hidden_act="quick_gelu",
                                        bos_token_id=49406, eos_token_id=49407, pad_token_id=1)).eval()
    t5 = T5EncoderModel(T5Config(vocab_size=t5_vocab, d_model=32, d_kv=8, num_heads=4, d_ff=37, num_layers=2,
                                 feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False)).eval()
    return clip, t5


def build_tiny_flux(root: str | Path, seed: int = 0, guidance: bool = True, fill: bool = False) -> dict[str, Any]:
    """Write tiny Flux.1 files (dev with ``guidance``, else schnell; Fill's 384 input channels with
    ``fill``) under ``root`` and return the modules.

    Returns:
        ``{"transformer", "clip_l", "t5", "tokenizer", "vae"}`` modules and the file names
        (``unet``, ``unet_diffusers``, ``unet_fp8``, ``clip_l_file``, ``t5_file``, ``vae_file``).
    """
    import torch
    from diffusers import FluxTransformer2DModel
    from safetensors.torch import save_file

    from nodeloom.diffusion.families.flux import diffusers_to_bfl

    root = Path(root)
    for sub in ("diffusion_models", "text_encoders", "vae", "tokenizers/t5"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    tokenizer = build_t5_tokenizer()
    tokenizer.save_pretrained(root / "tokenizers" / "t5")
    clip, t5 = _tiny_flux_encoders(len(tokenizer), seed)
    save_file({"text_model." + k.removeprefix("text_model."): v.contiguous() for k, v in clip.state_dict().items()},
              str(root / "text_encoders" / "tiny_clip_l.safetensors"))  # ComfyUI's clip_l layout
    save_file({k: v.contiguous() for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"},
              str(root / "text_encoders" / "tiny_t5xxl.safetensors"))
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=384 if fill else 64, out_channels=64, num_layers=1, num_single_layers=2,
                                         attention_head_dim=32, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, guidance_embeds=guidance,
                                         axes_dims_rope=[4, 14, 14]).eval()
    sd = {k: v.contiguous() for k, v in transformer.state_dict().items()}
    name = "tiny_flux_fill" if fill else "tiny_flux_dev" if guidance else "tiny_flux_schnell"
    save_file(diffusers_to_bfl(sd), str(root / "diffusion_models" / f"{name}.safetensors"))
    save_file(sd, str(root / "diffusion_models" / f"{name}_diffusers.safetensors"))
    save_file(scaled_fp8(diffusers_to_bfl(sd)), str(root / "diffusion_models" / f"{name}_fp8_scaled.safetensors"))
    vae = save_flux_vae(root, seed)
    return {"transformer": transformer, "clip_l": clip, "t5": t5, "tokenizer": tokenizer, "vae": vae,
            "unet": f"{name}.safetensors", "unet_diffusers": f"{name}_diffusers.safetensors",
            "unet_fp8": f"{name}_fp8_scaled.safetensors", "clip_l_file": "tiny_clip_l.safetensors",
            "t5_file": "tiny_t5xxl.safetensors", "vae_file": "tiny_ae.safetensors"}
