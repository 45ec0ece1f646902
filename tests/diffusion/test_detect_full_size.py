"""Full-size SD 1.5, SD 2.x and SDXL layouts (built on the meta device, no memory) are recognised and
their configs inferred exactly from tensor shapes."""

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from nodeloom.diffusion.detect import detect_checkpoint, family_defaults
from nodeloom.diffusion.ldm_export import clip_to_ldm, open_clip_to_ldm, unet_to_ldm, vae_to_ldm

UNET_KEYS = ("block_out_channels", "layers_per_block", "down_block_types", "up_block_types", "cross_attention_dim",
             "attention_head_dim", "use_linear_projection", "transformer_layers_per_block", "addition_time_embed_dim",
             "projection_class_embeddings_input_dim")


def _text_config(cfg):
    return CLIPTextConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "model_type")})


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_full_size_layouts_round_trip_their_configs(family):
    base = family_defaults(family)
    unet_cfg = {k: v for k, v in base["unet"].items() if not k.startswith("_")}
    vae_cfg = {k: v for k, v in base["vae"].items() if not k.startswith("_")}
    with torch.device("meta"):
        unet = UNet2DConditionModel(**unet_cfg)
        vae = AutoencoderKL(**vae_cfg)
        sd = {**unet_to_ldm(unet.state_dict(), unet.config), **vae_to_ldm(vae.state_dict(), vae.config)}
        if family == "sd1":
            sd.update(clip_to_ldm(CLIPTextModel(_text_config(base["text_encoder"])).state_dict(), "cond_stage_model.transformer."))
        elif family == "sd2":
            full = dict(base["text_encoder"], num_hidden_layers=24)  # the file holds all 24 OpenCLIP-H layers
            sd.update(open_clip_to_ldm(CLIPTextModelWithProjection(_text_config(full)).state_dict(), "cond_stage_model.model."))
        else:
            sd.update(clip_to_ldm(CLIPTextModel(_text_config(base["text_encoder"])).state_dict(), "conditioner.embedders.0.transformer."))
            te2 = CLIPTextModelWithProjection(_text_config(base["text_encoder_2"]))
            sd.update(open_clip_to_ldm(te2.state_dict(), "conditioner.embedders.1.model."))
    probe = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias"
    if probe in sd:  # the v-prediction heuristic reads this tensor's values; meta tensors have none
        sd[probe] = torch.zeros(sd[probe].shape)
    info = detect_checkpoint(sd, f"{family}.safetensors")
    assert info.family == family and not info.inpaint
    for key in UNET_KEYS:
        if key in base["unet"]:
            got, want = info.configs["unet"][key], base["unet"][key]
            if family != "sdxl" and key == "transformer_layers_per_block":
                continue
            assert (list(got) if isinstance(got, (list, tuple)) else got) == want, (family, key)
    assert info.configs["vae"]["block_out_channels"] == base["vae"]["block_out_channels"]
    for part in ("text_encoder", "text_encoder_2"):
        if part in base:
            for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act"):
                assert info.configs[part][key] == base[part][key], (family, part, key)
