"""LoRA, LoHa and LoKr adapters change a layer by exactly the published weight delta, scaled by strength."""

import pytest
import torch
import torch.nn.functional as F

from nodeloom.diffusion.lora import LoraPatch, lora_active, read_lora
from nodeloom.errors import ValidationError
from nodeloom.testing.tiny_sd import build_tiny_loha, build_tiny_lokr, build_tiny_lora, tiny_components

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


def _load(path):
    return __import__("safetensors.torch", fromlist=["load_file"]).load_file(str(path))


def _lokr_delta(raw, key):
    """ΔW = scale · (w1 ⊗ w2), w2 possibly low-rank or Tucker; scale = alpha / rank of the decomposed factor."""
    w1 = raw[key + ".lokr_w1"]
    rank = None
    if key + ".lokr_w2" in raw:
        w2 = raw[key + ".lokr_w2"]
    elif key + ".lokr_t2" in raw:  # Tucker: core (r, r, kh, kw), w2_a (r, out), w2_b (r, in)
        t2, a, b = raw[key + ".lokr_t2"], raw[key + ".lokr_w2_a"], raw[key + ".lokr_w2_b"]
        w2 = torch.einsum("ijkl,ip,jq->pqkl", t2, a, b)
        rank = b.shape[0]
    else:
        w2 = raw[key + ".lokr_w2_a"] @ raw[key + ".lokr_w2_b"]
        rank = raw[key + ".lokr_w2_b"].shape[0]
    scale = float(raw[key + ".alpha"]) / rank if rank is not None and key + ".alpha" in raw else 1.0
    if w2.ndim == 4:
        w1 = w1[:, :, None, None]
    return scale * torch.kron(w1.contiguous(), w2.contiguous())


@pytest.mark.parametrize(("layer", "layout"), [
    (LAYER, "full w1, low-rank w2, alpha 1"),
    ("down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_k", "both factors full, no alpha"),
    ("down_blocks.0.resnets.0.conv1", "3x3 conv, Tucker w2"),
])
def test_lokr_delta_matches_the_file(tmp_path, layer, layout):
    unet = tiny_components("sd1")["unet"]
    name = build_tiny_lokr(tmp_path)
    raw = _load(tmp_path / "loras" / name)
    delta = _lokr_delta(raw, "lora_unet_" + layer.replace(".", "_"))
    lora = read_lora(tmp_path / "loras" / name, unet.config, sdxl=False)
    base = unet.get_submodule(layer)
    weight = base.weight.detach().clone()
    assert delta.shape == weight.shape
    x = torch.randn(2, weight.shape[1], 8, 8) if weight.ndim == 4 else torch.randn(3, weight.shape[1])

    def plain(w):
        return F.conv2d(x, w, base.bias, padding=1) if weight.ndim == 4 else F.linear(x, w, base.bias)

    with torch.no_grad(), lora_active(unet, (LoraPatch(lora, 0.7),), part="unet"):
        got = unet.get_submodule(layer)(x)
    assert torch.allclose(got, plain(weight + 0.7 * delta), atol=1e-4)
    with torch.no_grad():
        assert torch.allclose(unet.get_submodule(layer)(x), plain(weight), atol=1e-6)


def test_lycoris_file_with_a_missing_factor_is_named(tmp_path):
    from safetensors.torch import save_file

    (tmp_path / "loras").mkdir()
    save_file({"lora_unet_down_blocks_0_resnets_0_conv1.lokr_w1": torch.zeros(4, 4)}, str(tmp_path / "loras" / "half.safetensors"))
    with pytest.raises(ValidationError, match="down_blocks_0_resnets_0_conv1.*lokr_w2"):
        read_lora(tmp_path / "loras" / "half.safetensors", None, sdxl=False)


def test_lokr_factors_of_the_wrong_size_are_refused_and_the_layer_is_left_alone(tmp_path):
    from safetensors.torch import save_file

    unet = tiny_components("sd1")["unet"]
    (tmp_path / "loras").mkdir()
    key = "lora_unet_" + LAYER.replace(".", "_")
    save_file({key + ".lokr_w1": torch.ones(3, 3), key + ".lokr_w2": torch.ones(5, 5)}, str(tmp_path / "loras" / "bad.safetensors"))
    lora = read_lora(tmp_path / "loras" / "bad.safetensors", unet.config, sdxl=False)
    x = torch.randn(3, 64)
    before = unet.get_submodule(LAYER)(x).detach()
    with pytest.raises(ValidationError, match="do not make its weight shape"):
        with lora_active(unet, (LoraPatch(lora, 1.0),), part="unet"):
            pass
    assert torch.allclose(unet.get_submodule(LAYER)(x), before)
    assert not getattr(unet, "peft_config", None) or lora.name not in unet.peft_config


def test_tucker_loha_on_a_conv_matches_the_file(tmp_path):
    unet = tiny_components("sd1")["unet"]
    layer = "down_blocks.0.resnets.0.conv1"
    name = build_tiny_loha(tmp_path, tucker_conv=True)
    raw = _load(tmp_path / "loras" / name)
    key = "lora_unet_" + layer.replace(".", "_")
    m1, m2 = (torch.einsum("ijkl,ip,jq->pqkl", raw[f"{key}.hada_{t}"], raw[f"{key}.hada_{w}_a"], raw[f"{key}.hada_{w}_b"])
              for w, t in (("w1", "t1"), ("w2", "t2")))
    delta = m1 * m2 * (float(raw[key + ".alpha"]) / raw[key + ".hada_w1_b"].shape[0])
    lora = read_lora(tmp_path / "loras" / name, unet.config, sdxl=False)
    base = unet.get_submodule(layer)
    weight = base.weight.detach().clone()
    x = torch.randn(2, weight.shape[1], 8, 8)
    with torch.no_grad(), lora_active(unet, (LoraPatch(lora, 0.5),), part="unet"):
        got = unet.get_submodule(layer)(x)
    assert torch.allclose(got, F.conv2d(x, weight + 0.5 * delta, base.bias, padding=1), atol=1e-4)
