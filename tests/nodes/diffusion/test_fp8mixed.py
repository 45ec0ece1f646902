"""ComfyUI's mixed-precision files (``*_fp8mixed``, e.g. the Flux.2 dev templates' default
``flux2_dev_fp8mixed.safetensors``): tiny Flux.2 Klein files written in that format (per-layer
``comfy_quant`` tensors or the header's ``_quantization_metadata``; the other layers bf16) load,
keep their fp8 layers fp8 with their scales, and sample through the template's graph."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from nodeloom.diffusion.split_models import load_diffusion_model
from nodeloom.errors import ValidationError
from nodeloom.models.offload import dequantised_state_dict, fp8_bytes
from nodeloom.testing.tiny_families import comfy_quant_mixed
from nodeloom.testing.tiny_flux2 import FLUX2_KLEIN_WORKFLOW, build_tiny_flux2
from tests.nodes.diffusion.family_helpers import engine_for, run_ok


@pytest.fixture(scope="module")
def flux2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    parts = build_tiny_flux2(root)
    sd = load_file(str(root / "diffusion_models" / parts["klein_unet"]))
    # the blocks' projections quantised, embedders and the final layer left bf16 (as the release does)
    blocks = {k[: -len(".weight")]: "float8_e4m3fn" for k, v in sd.items()
              if k.endswith(".weight") and v.ndim == 2 and k.startswith(("double_blocks.", "single_blocks."))}
    tensors, meta = comfy_quant_mixed(sd, blocks)
    save_file(tensors, str(root / "diffusion_models" / "flux2_klein_fp8mixed.safetensors"))
    tensors, meta = comfy_quant_mixed(sd, blocks, in_header=True)
    save_file(tensors, str(root / "diffusion_models" / "flux2_klein_fp8mixed_header.safetensors"), metadata=meta)
    return root, parts, blocks


def _samples(base: Path, models: Path, unet: str) -> torch.Tensor:
    prompt = copy.deepcopy(FLUX2_KLEIN_WORKFLOW)
    prompt["1"]["inputs"]["unet_name"] = unet
    with engine_for(base, models) as engine:
        return run_ok(engine, prompt).value("11")["samples"]


def test_fp8mixed_file_keeps_its_fp8_layers_and_samples(tmp_path, flux2):
    models, parts, blocks = flux2
    module, family = load_diffusion_model(models / "diffusion_models" / "flux2_klein_fp8mixed.safetensors")
    assert family.name == "flux2"
    kept = [(n, m) for n, m in module.named_modules() if hasattr(m, "weight_scale")]
    assert len(kept) >= len(blocks)  # fused projections split into several layers, each with the scale
    assert all(m.weight.dtype == torch.float8_e4m3fn for _, m in kept)
    assert all(n.startswith(("transformer_blocks.", "single_transformer_blocks.")) for n, _ in kept)
    assert module.x_embedder.weight.dtype == torch.float32  # a bf16 layer of the file
    assert fp8_bytes(module)[0] == sum(m.weight.numel() for _, m in kept)
    ref, got = parts["klein"].state_dict(), dequantised_state_dict(module)
    assert set(ref) == set(got)
    for key, value in ref.items():  # e4m3 keeps 3 mantissa bits, bf16 8: within 1/16 of the largest weight
        assert (got[key] - value).abs().max() <= value.abs().max() / 16 + 1e-6, key
    float_run = _samples(tmp_path / "float", models, parts["klein_unet"])
    mixed_run = _samples(tmp_path / "mixed", models, "flux2_klein_fp8mixed.safetensors")
    assert torch.isfinite(mixed_run).all()
    # measured 0.0014 of the latent's largest value after 4 steps
    assert 0 < float((mixed_run - float_run).abs().max() / float_run.abs().max()) < 0.02


def test_header_metadata_describes_the_same_layers(flux2):
    models, _, _ = flux2
    a, _ = load_diffusion_model(models / "diffusion_models" / "flux2_klein_fp8mixed.safetensors")
    b, _ = load_diffusion_model(models / "diffusion_models" / "flux2_klein_fp8mixed_header.safetensors")
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    assert all(torch.equal(sa[k].view(torch.uint8) if sa[k].dtype == torch.float8_e4m3fn else sa[k],
                           sb[k].view(torch.uint8) if sb[k].dtype == torch.float8_e4m3fn else sb[k]) for k in sa)


@pytest.mark.parametrize("fmt", ["float8_e5m2", "int8_tensorwise"])
def test_per_row_scales_and_int8_layers_load_dequantised(tmp_path, flux2, fmt):
    """Layers the loader cannot keep in fp8 with one scale (per-row scales, int8) are dequantised
    into float32 as ``weight · weight_scale``, row by row."""
    models, parts, blocks = flux2
    sd = load_file(str(models / "diffusion_models" / parts["klein_unet"]))
    layer = next(iter(blocks))
    tensors, _ = comfy_quant_mixed(sd, {layer: fmt}, per_row=True)
    save_file(tensors, str(tmp_path / "one_layer.safetensors"))
    module, _ = load_diffusion_model(tmp_path / "one_layer.safetensors")
    assert fp8_bytes(module)[0] == 0 and not any(hasattr(m, "weight_scale") for m in module.modules())
    from nodeloom.diffusion.single_file import load_weights

    got = load_weights(tmp_path / "one_layer.safetensors", dtype=torch.float32)[layer + ".weight"]
    want = tensors[layer + ".weight"].float() * tensors[layer + ".weight_scale"].reshape(-1, 1)
    assert torch.equal(got, want)
    step = tensors[layer + ".weight_scale"].reshape(-1, 1)
    assert ((got - sd[layer + ".weight"].float()).abs() <= step * (0.5 if fmt == "int8_tensorwise" else 8192) + 1e-6).all()


def test_rotated_and_block_scaled_layers_are_refused_by_name(tmp_path, flux2):
    models, parts, blocks = flux2
    sd = load_file(str(models / "diffusion_models" / parts["klein_unet"]))
    layer = next(iter(blocks))
    tensors, _ = comfy_quant_mixed(sd, {layer: "int8_tensorwise"})
    tensors[layer + ".comfy_quant"] = torch.tensor(list(json.dumps(
        {"format": "int8_tensorwise", "convrot": True, "convrot_groupsize": 256}).encode()), dtype=torch.uint8)
    save_file(tensors, str(tmp_path / "model_int8_convrot.safetensors"))
    with pytest.raises(ValidationError, match=f"model_int8_convrot.safetensors.*`{layer}`.*convrot"):
        load_diffusion_model(tmp_path / "model_int8_convrot.safetensors")
    tensors[layer + ".comfy_quant"] = torch.tensor([0xFF, 0x00], dtype=torch.uint8)
    save_file(tensors, str(tmp_path / "broken.safetensors"))
    with pytest.raises(ValidationError, match=f"broken.safetensors.*`{layer}.comfy_quant`.*JSON"):
        load_diffusion_model(tmp_path / "broken.safetensors")
