"""LoRA and LoHa adapters change a layer by exactly the published weight delta, scaled by strength."""

import pytest
import torch
import torch.nn.functional as F

from nodeloom.diffusion.lora import LoraPatch, lora_active, read_lora
from nodeloom.testing.tiny_sd import build_tiny_loha, build_tiny_lora, tiny_components

LAYER = "down_blocks.2.attentions.0.transformer_blocks.0.attn1.to_q"


@pytest.mark.parametrize("kind", ["lora", "loha"])
def test_adapter_delta_matches_the_file(tmp_path, kind):
    unet = tiny_components("sd1")["unet"]
    name = build_tiny_lora(tmp_path) if kind == "lora" else build_tiny_loha(tmp_path)
    raw = __import__("safetensors.torch", fromlist=["load_file"]).load_file(str(tmp_path / "loras" / name))
    key = "lora_unet_" + LAYER.replace(".", "_")
    if kind == "lora":
        up, down = raw[key + ".lora_up.weight"], raw[key + ".lora_down.weight"]
        delta = up @ down * (float(raw[key + ".alpha"]) / down.shape[0])
    else:
        w1 = raw[key + ".hada_w1_a"] @ raw[key + ".hada_w1_b"]
        w2 = raw[key + ".hada_w2_a"] @ raw[key + ".hada_w2_b"]
        delta = w1 * w2 * (float(raw[key + ".alpha"]) / raw[key + ".hada_w1_b"].shape[0])
    lora = read_lora(tmp_path / "loras" / name, unet.config, sdxl=False)
    x = torch.randn(3, delta.shape[1])
    base = unet.get_submodule(LAYER)
    weight = base.weight.detach().clone()
    with torch.no_grad(), lora_active(unet, (LoraPatch(lora, 0.7),), part="unet"):
        got = unet.get_submodule(LAYER)(x)
    assert torch.allclose(got, F.linear(x, weight + 0.7 * delta), atol=1e-4)
    with torch.no_grad():
        assert torch.allclose(unet.get_submodule(LAYER)(x), F.linear(x, weight), atol=1e-6)
