"""Tiny random HiDream models saved as users download them, for tests and benchmarks.

:func:`build_tiny_hidream` writes ``diffusion_models/`` (ComfyUI's repackaged file with its
``model.diffusion_model.`` prefix, the release's bare key layout and a scaled-fp8 variant),
``text_encoders/`` (long CLIP-L and CLIP-G with their projections, T5, Llama 3.1 as ComfyUI's
``clip_l_hidream``/``clip_g_hidream``/``t5xxl``/``llama_3.1`` files, T5 and Llama also scaled fp8
as the templates name them), ``vae/`` (a Flux-style VAE)
and T5- and Llama-3-style tokenizers in ``tokenizers/t5`` and ``tokenizers/llama3``; it returns the
modules so tests can build diffusers' pipeline on the same weights. Must not import the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nodeloom.testing.tiny_families import build_t5_tokenizer, save_flux_vae, scaled_fp8
from nodeloom.testing.tiny_lm import DEFAULT_CORPUS

__all__ = ["HIDREAM_E1_WORKFLOW", "HIDREAM_WORKFLOW", "build_llama3_tokenizer", "build_tiny_hidream"]

_PROMPT = "a lone red tree in a desolate landscape, polaroid aesthetic"

#: the HiDream I1 full template's graph (hidream_i1_full.json: QuadrupleCLIPLoader, ModelSamplingSD3 3,
#: uni_pc, simple, cfg 5), tiny sizes and 4 steps
HIDREAM_WORKFLOW = {
    "94": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_hidream_i1.safetensors", "weight_dtype": "default"}},
    "82": {"class_type": "QuadrupleCLIPLoader", "inputs": {"clip_name1": "tiny_clip_l_hidream.safetensors",
                                                           "clip_name2": "tiny_clip_g_hidream.safetensors",
                                                           "clip_name3": "tiny_t5xxl.safetensors",
                                                           "clip_name4": "tiny_llama_3.1.safetensors"}},
    "81": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_ae.safetensors"}},
    "84": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["94", 0], "shift": 3.0}},
    "91": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["82", 0], "text": _PROMPT}},
    "85": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["82", 0], "text": "bad ugly jpeg artifacts"}},
    "86": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "93": {"class_type": "KSampler", "inputs": {"model": ["84", 0], "seed": 5, "steps": 4, "cfg": 5.0,
                                                "sampler_name": "uni_pc", "scheduler": "simple", "positive": ["91", 0],
                                                "negative": ["85", 0], "latent_image": ["86", 0], "denoise": 1.0}},
    "89": {"class_type": "VAEDecode", "inputs": {"samples": ["93", 0], "vae": ["81", 0]}},
    "90": {"class_type": "SaveImage", "inputs": {"images": ["89", 0], "filename_prefix": "hidream"}},
}

#: the HiDream E1 full template's graph (hidream_e1_full.json: clip_g first in QuadrupleCLIPLoader,
#: InstructPixToPixConditioning, DualCFGGuider 5 / 2 regular, euler, normal), tiny sizes and 4 steps;
#: node "13" (the image to edit) is filled in by the caller
HIDREAM_E1_WORKFLOW = {
    "41": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_hidream_i1.safetensors", "weight_dtype": "default"}},
    "42": {"class_type": "QuadrupleCLIPLoader", "inputs": {"clip_name1": "tiny_clip_g_hidream.safetensors",
                                                           "clip_name2": "tiny_clip_l_hidream.safetensors",
                                                           "clip_name3": "tiny_t5xxl.safetensors",
                                                           "clip_name4": "tiny_llama_3.1.safetensors"}},
    "43": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_ae.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["42", 0], "text": "put a red hat on the fox"}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["42", 0], "text": "low quality, blurry, distorted"}},
    "52": {"class_type": "InstructPixToPixConditioning", "inputs": {"positive": ["6", 0], "negative": ["7", 0],
                                                                    "vae": ["43", 0], "pixels": ["13", 0]}},
    "53": {"class_type": "DualCFGGuider", "inputs": {"model": ["41", 0], "cond1": ["52", 0], "cond2": ["52", 1],
                                                     "negative": ["7", 0], "cfg_conds": 5.0, "cfg_cond2_negative": 2.0,
                                                     "style": "regular"}},
    "46": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
    "49": {"class_type": "BasicScheduler", "inputs": {"model": ["41", 0], "scheduler": "normal", "steps": 4,
                                                      "denoise": 1.0}},
    "47": {"class_type": "RandomNoise", "inputs": {"noise_seed": 5}},
    "54": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["47", 0], "guider": ["53", 0],
                                                             "sampler": ["46", 0], "sigmas": ["49", 0],
                                                             "latent_image": ["52", 2]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["54", 0], "vae": ["43", 0]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "hidream-e1"}},
}


def build_llama3_tokenizer(vocab_size: int = 300) -> Any:
    """A byte-level BPE tokenizer with Llama 3's markers: ``<|begin_of_text|>`` put in front of every
    prompt, ``<|eot_id|>`` as its end (and pad) token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|begin_of_text|>", "<|eot_id|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(DEFAULT_CORPUS), trainer=trainer)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                                       special_tokens=[("<|begin_of_text|>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   padding_side="right")


def _encoders(t5_vocab: int, llama_vocab: int, seed: int) -> dict[str, Any]:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, LlamaConfig, LlamaModel, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    common = dict(num_hidden_layers=2, vocab_size=49408, max_position_embeddings=248, bos_token_id=49406,
                  eos_token_id=49407, pad_token_id=1)
    clip_l = CLIPTextModelWithProjection(CLIPTextConfig(hidden_size=32, intermediate_size=37, num_attention_heads=1,
                                                        hidden_act="quick_gelu", projection_dim=32, **common)).eval()
    clip_g = CLIPTextModelWithProjection(CLIPTextConfig(hidden_size=64, intermediate_size=80, num_attention_heads=1,
                                                        hidden_act="gelu", projection_dim=64, **common)).eval()
    t5 = T5EncoderModel(T5Config(vocab_size=t5_vocab, d_model=48, d_kv=16, num_heads=3, d_ff=64, num_layers=2,
                                 feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False)).eval()
    # the shape nodeloom reads from the file: one 32-wide head, Llama 3's rope base, no rope scaling (as ComfyUI)
    llama = LlamaModel(LlamaConfig(vocab_size=llama_vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                                   num_attention_heads=1, num_key_value_heads=1, head_dim=32, rope_theta=500000.0,
                                   rms_norm_eps=1e-5, max_position_embeddings=1024, tie_word_embeddings=False)).eval()
    return {"clip_l": clip_l, "clip_g": clip_g, "t5": t5, "llama": llama}


def _transformer(seed: int) -> Any:
    import torch
    from diffusers import HiDreamImageTransformer2DModel

    torch.manual_seed(seed)
    model = HiDreamImageTransformer2DModel(
        patch_size=2, in_channels=16, out_channels=16, num_layers=1, num_single_layers=2, attention_head_dim=32,
        num_attention_heads=1, caption_channels=[48, 32], text_emb_dim=96, num_routed_experts=4,
        num_activated_experts=2, axes_dims_rope=(16, 8, 8), max_resolution=(128, 128), llama_layers=[0, 1, 2]).eval()
    with torch.no_grad():  # diffusers zero-initialises the output layers; random ones make the test see them
        for p in model.final_layer.parameters():
            p.normal_(0, 0.05)
    return model


def build_tiny_hidream(root: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write tiny HiDream-I1-shaped files under ``root`` (a models folder) and return the modules.

    Returns:
        modules ``transformer``, ``clip_l``, ``clip_g``, ``t5``, ``llama``, ``t5_tokenizer``,
        ``llama_tokenizer``, ``vae`` and the diffusion-model file names ``unet`` (ComfyUI's),
        ``unet_release`` (bare keys), ``unet_fp8`` (scaled fp8).
    """
    from safetensors.torch import save_file

    root = Path(root)
    for sub in ("diffusion_models", "text_encoders", "vae", "tokenizers/t5", "tokenizers/llama3"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    t5_tok, llama_tok = build_t5_tokenizer(), build_llama3_tokenizer()
    t5_tok.save_pretrained(root / "tokenizers" / "t5")
    llama_tok.save_pretrained(root / "tokenizers" / "llama3")
    enc = _encoders(len(t5_tok), len(llama_tok), seed)
    files = {"clip_l_hidream": enc["clip_l"].state_dict(), "clip_g_hidream": enc["clip_g"].state_dict(),
             "t5xxl": {k: v for k, v in enc["t5"].state_dict().items() if k != "encoder.embed_tokens.weight"},
             "llama_3.1": {"model." + k: v for k, v in enc["llama"].state_dict().items()}}
    for name, sd in files.items():
        save_file({k: v.contiguous() for k, v in sd.items()}, str(root / "text_encoders" / f"tiny_{name}.safetensors"))
    for name, fp8_name in (("t5xxl", "t5xxl_fp8_e4m3fn_scaled"), ("llama_3.1", "llama_3.1_8b_instruct_fp8_scaled")):
        save_file(scaled_fp8(files[name], prefix=""), str(root / "text_encoders" / f"tiny_{fp8_name}.safetensors"))
    transformer = _transformer(seed)
    sd = {k: v.contiguous() for k, v in transformer.state_dict().items()}
    dm = root / "diffusion_models"
    save_file({"model.diffusion_model." + k: v for k, v in sd.items()}, str(dm / "tiny_hidream_i1.safetensors"))
    save_file(sd, str(dm / "tiny_hidream_i1_release.safetensors"))
    save_file(scaled_fp8(sd), str(dm / "tiny_hidream_i1_fp8_scaled.safetensors"))
    vae = save_flux_vae(root, seed)
    return {"transformer": transformer, **enc, "t5_tokenizer": t5_tok, "llama_tokenizer": llama_tok, "vae": vae,
            "unet": "tiny_hidream_i1.safetensors", "unet_release": "tiny_hidream_i1_release.safetensors",
            "unet_fp8": "tiny_hidream_i1_fp8_scaled.safetensors"}
