"""LoraLoader's ``strength_clip`` on Flux.1: a kohya LoRA's CLIP-L weights (``lora_te1_*``) change the
prompt's pooled vector exactly as a CLIP-L file with ``W + strength·(alpha/rank)·up·down`` merged in."""

from __future__ import annotations

import copy

import torch
from safetensors.torch import load_file, save_file

from nodeloom.testing.tiny_families import FLUX_DEV_WORKFLOW, build_tiny_flux
from tests.nodes.diffusion.family_helpers import engine_for, lora_pair, run_ok


def _encode(tmp_path, models, prompt: dict) -> tuple[torch.Tensor, torch.Tensor]:
    with engine_for(tmp_path, models) as engine:
        cond = run_ok(engine, prompt).value("5")
    return cond[0][0], cond[0][1]["pooled_output"]


def test_clip_strength_applies_the_loras_clip_l_weights(tmp_path):
    torch.set_num_threads(1)
    models = tmp_path / "models"
    parts = build_tiny_flux(models)
    clip_file = models / "text_encoders" / parts["clip_l_file"]
    clip_sd = load_file(str(clip_file))
    target = "text_model.encoder.layers.0.self_attn.q_proj.weight"
    down, up = lora_pair(clip_sd, target, seed=4)
    unet_down, unet_up = lora_pair(parts["transformer"].state_dict(), "transformer_blocks.0.attn.to_out.0.weight", seed=5)
    (models / "loras").mkdir()
    save_file({"lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": down,
               "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": up,
               "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.alpha": torch.tensor(2.0),
               "lora_unet_double_blocks_0_img_attn_proj.lora_down.weight": unet_down,
               "lora_unet_double_blocks_0_img_attn_proj.lora_up.weight": unet_up},
              str(models / "loras" / "flux_te.safetensors"))
    merged = {k: (v + 0.6 * (2.0 / 4) * up @ down if k == target else v).contiguous() for k, v in clip_sd.items()}
    save_file(merged, str(models / "text_encoders" / "clip_l_merged.safetensors"))
    keep = {"2", "5"}
    base = {k: v for k, v in copy.deepcopy(FLUX_DEV_WORKFLOW).items() if k in keep}
    base["5"]["inputs"]["clip"] = ["2", 0]
    base["99"] = {"class_type": "PreviewAny", "inputs": {"source": ["5", 0]}}

    with_lora = copy.deepcopy(base)
    with_lora["1"] = copy.deepcopy(FLUX_DEV_WORKFLOW["1"])
    with_lora["12"] = {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["2", 0], "lora_name":
                                                              "flux_te.safetensors", "strength_model": 0.0,
                                                              "strength_clip": 0.6}}
    with_lora["5"]["inputs"]["clip"] = ["12", 1]
    merged_prompt = copy.deepcopy(base)
    merged_prompt["2"]["inputs"]["clip_name1"] = "clip_l_merged.safetensors"
    plain_states, plain_pooled = _encode(tmp_path / "plain", models, base)
    states, pooled = _encode(tmp_path / "lora", models, with_lora)
    want_states, want_pooled = _encode(tmp_path / "merged", models, merged_prompt)
    assert (pooled - want_pooled).abs().max() < 1e-5 and (states - want_states).abs().max() < 1e-5
    assert (pooled - plain_pooled).abs().max() > 1e-3  # the CLIP-L part acted
    assert torch.equal(states, plain_states)  # T5's states are not touched
