"""Tiny random-weight Lotus-D files for tests, saved as users have them.

``diffusion_models/``: an SD 2-style ``UNet2DConditionModel`` with Lotus's 4-input projection class
embedding, written in the original LDM key layout (prefix-free as ComfyUI repackages it, or under
``model.diffusion_model.``); ``vae/``: an SD VAE in the LDM layout; ``checkpoints/``: a tiny SD 2.x
checkpoint whose OpenCLIP-layout text tower (64 wide, 2 layers) gives LotusConditioning its null
prompt. The modules are returned too, for references. Signatures are kept stable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["LOTUS_DEPTH_WORKFLOW", "LOTUS_FILES", "build_tiny_lotus", "tiny_lotus_unet", "tiny_sd2_text_encoder"]

#: the template's file names → the tiny files :func:`build_tiny_lotus` writes
LOTUS_FILES = {"lotus-depth-d-v1-1.safetensors": "tiny_lotus_depth_d.safetensors",
               "vae-ft-mse-840000-ema-pruned.safetensors": "tiny_sd_vae.safetensors"}
_CONTEXT = 64

#: the ``image_lotus_depth_v1_1`` template's graph in API format (its subgraph's node ids and values),
#: on the tiny files and an input image ``lotus_input.png``
LOTUS_DEPTH_WORKFLOW: dict[str, Any] = {
    "12": {"class_type": "LoadImage", "inputs": {"image": "lotus_input.png"}},
    "10": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_lotus_depth_d.safetensors", "weight_dtype": "default"}},
    "14": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_sd_vae.safetensors"}},
    "23": {"class_type": "VAEEncode", "inputs": {"pixels": ["12", 0], "vae": ["14", 0]}},
    "68": {"class_type": "LotusConditioning", "inputs": {}},
    "19": {"class_type": "BasicGuider", "inputs": {"model": ["10", 0], "conditioning": ["68", 0]}},
    "20": {"class_type": "BasicScheduler", "inputs": {"model": ["10", 0], "scheduler": "normal", "steps": 1, "denoise": 1.0}},
    "28": {"class_type": "SetFirstSigma", "inputs": {"sigmas": ["20", 0], "sigma": 999.0000000000002}},
    "18": {"class_type": "DisableNoise", "inputs": {}},
    "21": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
    "16": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["18", 0], "guider": ["19", 0], "sampler": ["21", 0],
                                                              "sigmas": ["28", 0], "latent_image": ["23", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["16", 0], "vae": ["14", 0]}},
    "22": {"class_type": "ImageInvert", "inputs": {"image": ["8", 0]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["22", 0], "filename_prefix": "Lotus_depth"}},
}


def tiny_lotus_unet(seed: int = 0, context: int = _CONTEXT) -> Any:
    """A tiny SD 2-style UNet (linear projections, heads of 64 channels) with a projection class embedding."""
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 32, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"), attention_head_dim=(1, 1, 1),
        cross_attention_dim=context, norm_num_groups=32, use_linear_projection=True,
        class_embed_type="projection", projection_class_embeddings_input_dim=4).eval()


def tiny_sd2_text_encoder(seed: int = 0, width: int = _CONTEXT, layers: int = 2) -> Any:
    """A tiny SD 2-style CLIP text tower (GELU, CLIP's 49408-token vocabulary, one head per 64 channels)."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    return CLIPTextModel(CLIPTextConfig(
        hidden_size=width, intermediate_size=2 * width, num_attention_heads=max(1, width // 64),
        num_hidden_layers=layers, vocab_size=49408, max_position_embeddings=77, hidden_act="gelu",
        layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=49407, pad_token_id=1)).eval()


def build_tiny_lotus(models_dir: str | Path, seed: int = 0, unet_prefix: str = "") -> dict[str, Any]:
    """Write the tiny Lotus-D UNet, SD VAE and SD 2.x checkpoint under ``models_dir``.

    Returns:
        ``{"unet", "vae", "text_encoder"}`` (the modules saved) and the file names
        (``"unet_name"``, ``"vae_name"``, ``"ckpt_name"``).
    """
    from nodeloom.diffusion.ldm_export import unet_to_ldm, vae_to_ldm
    from nodeloom.testing.tiny_sd import save_single_file, tiny_components

    root = Path(models_dir)
    unet = tiny_lotus_unet(seed)
    sd2 = tiny_components("sd2", seed + 1)
    sd2["text_encoder"] = tiny_sd2_text_encoder(seed + 2)
    for folder in ("diffusion_models", "vae"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    unet_name = LOTUS_FILES["lotus-depth-d-v1-1.safetensors"]
    vae_name = LOTUS_FILES["vae-ft-mse-840000-ema-pruned.safetensors"]
    _save(unet_to_ldm(unet.state_dict(), unet.config, unet_prefix), root / "diffusion_models" / unet_name)
    _save(vae_to_ldm(sd2["vae"].state_dict(), sd2["vae"].config, ""), root / "vae" / vae_name)
    save_single_file(sd2, root / "checkpoints" / "tiny_sd2.safetensors")
    return {"unet": unet, "vae": sd2["vae"], "text_encoder": sd2["text_encoder"], "unet_name": unet_name,
            "vae_name": vae_name, "ckpt_name": "tiny_sd2.safetensors"}


def _save(sd: dict[str, Any], path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().clone() for k, v in sd.items()}, str(path))
