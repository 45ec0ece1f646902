"""fp8 weights kept fp8 while sampling: UNETLoader's ``weight_dtype`` fp8 choices and ComfyUI's scaled
fp8 files on Z-Image, Flux.1 and Qwen-Image (tiny random weights, the template graphs through the
Engine), and the SD UNet through the sampler. Weights are checked by their stored bytes; results
against the float run (relative tolerance, measured below) and, where the numbers must be the same,
exactly."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch

from nodeloom.diffusion import split_models
from nodeloom.diffusion.split_models import load_diffusion_model
from nodeloom.models import offload
from nodeloom.testing.tiny_families import FLUX_DEV_WORKFLOW, ZIMAGE_TURBO_WORKFLOW, build_tiny_flux, build_tiny_zimage
from nodeloom.testing.tiny_qwen import QWEN_IMAGE_WORKFLOW, build_tiny_qwen_image
from tests.nodes.diffusion.family_helpers import engine_for, run_ok

#: family → (builder, template graph, its sampler node)
FAMILIES = {"z_image": (build_tiny_zimage, ZIMAGE_TURBO_WORKFLOW, "8"), "flux": (build_tiny_flux, FLUX_DEV_WORKFLOW, "9"),
            "qwen_image": (build_tiny_qwen_image, QWEN_IMAGE_WORKFLOW, "8")}
#: fp8 against float32 after 4 steps of these random models, max |Δ| as a share of the latent's largest
#: magnitude; measured: e4m3 0.031 (Z-Image), 0.023 (Flux), 0.014 (Qwen-Image), 0.034 (SD 1.x UNet,
#: 3 steps); e5m2 0.069, 0.045, 0.028
REL_TOL = {"fp8_e4m3fn": 0.06, "fp8_e5m2": 0.12}


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, dict]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp(request.param)
    return request.param, root, FAMILIES[request.param][0](root)


def _latent(base: Path, models: Path, name: str, unet: str, weight_dtype: str = "default") -> torch.Tensor:
    prompt = copy.deepcopy(FAMILIES[name][1])
    prompt["1"]["inputs"].update(unet_name=unet, weight_dtype=weight_dtype)
    with engine_for(base, models) as engine:
        return run_ok(engine, prompt).value(FAMILIES[name][2])["samples"]


def _layers(module: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """The Linear/Conv layers outside the precision-sensitive ones diffusers names."""
    skip = offload.skip_patterns(module)
    return [(n, m) for n, m in module.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))
            and not any(re.search(p, n) for p in skip)]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("weight_dtype", ["fp8_e4m3fn", "fp8_e5m2"])
def test_weight_dtype_fp8_keeps_the_weights_fp8_while_sampling(tmp_path, family, weight_dtype):
    name, models, parts = family
    fp8 = getattr(torch, offload.FP8_NAMES[weight_dtype])
    module, _ = load_diffusion_model(models / "diffusion_models" / parts["unet"], weight_dtype)
    layers = _layers(module)
    assert layers and all(m.weight.dtype == fp8 for _, m in layers)
    stored = sum(m.weight.numel() * m.weight.element_size() for _, m in layers)
    assert stored == sum(m.weight.numel() for _, m in layers)  # one byte a weight
    fp8_bytes, total = offload.fp8_bytes(module)
    assert fp8_bytes == stored and fp8_bytes < total
    ref = _latent(tmp_path / "float", models, name, parts["unet"])
    got = _latent(tmp_path / "fp8", models, name, parts["unet"], weight_dtype)
    assert torch.isfinite(got).all()
    assert 0 < _rel(got, ref) < REL_TOL[weight_dtype]


def test_scaled_fp8_file_keeps_fp8_with_its_scales_or_dequantises(tmp_path, family, monkeypatch):
    """ComfyUI's scaled fp8 file: its layers stay fp8 with their per-tensor ``weight_scale``, and
    sampling gives exactly what the dequantised weights give (the same float32 products)."""
    name, models, parts = family
    path = models / "diffusion_models" / parts["unet_fp8"]
    kept, _ = load_diffusion_model(path)
    plain, _ = load_diffusion_model(path, keep_fp8=False)
    scaled = [(n, m) for n, m in _layers(kept) if hasattr(m, "weight_scale")]
    assert len(scaled) >= len(_layers(kept)) // 2
    for n, m in scaled:
        assert m.weight.dtype == torch.float8_e4m3fn and m.weight_scale.dtype == torch.float32
        want = dict(plain.named_modules())[n].weight
        assert torch.equal(m.weight.float() * m.weight_scale, want), n
    assert offload.fp8_bytes(plain)[0] == 0
    kept_latent = _latent(tmp_path / "kept", models, name, parts["unet_fp8"])
    monkeypatch.setattr(split_models, "keep_quantised", lambda module, quantised: 0)
    plain_latent = _latent(tmp_path / "plain", models, name, parts["unet_fp8"])
    assert (kept_latent - plain_latent).abs().max() <= 1e-5


def test_sd_unet_samples_with_fp8_storage():
    """The SD 1.x UNet (a diffusers UNet2DConditionModel) sampled with fp8-stored weights equals the
    float32 UNet holding the same fp8-rounded weights, and stays close to the float one."""
    from nodeloom.diffusion.models import DiffusionModel, ModelSampling
    from nodeloom.diffusion.sampling import sample
    from nodeloom.testing.tiny_sd import tiny_components

    torch.set_num_threads(1)
    unet = tiny_components("sd1")["unet"]
    rounded = copy.deepcopy(unet)
    with torch.no_grad():
        for _, m in _layers(rounded):
            m.weight.copy_(m.weight.to(torch.float8_e4m3fn).float())
    stored = copy.deepcopy(unet)
    assert offload.store_fp8(stored, "fp8_e4m3fn") == len(_layers(unet))
    assert stored.conv_in.weight.dtype == torch.float8_e4m3fn and stored.conv_in.bias.dtype == torch.float32

    def run(module: torch.nn.Module) -> torch.Tensor:
        model = DiffusionModel(module, "sd1", ModelSampling(prediction_type="epsilon"), 0.18215)
        gen = torch.Generator().manual_seed(0)
        pos, neg = [[torch.randn(1, 77, 32, generator=gen), {}]], [[torch.randn(1, 77, 32, generator=gen), {}]]
        return sample(model, {"samples": torch.zeros(1, 4, 8, 8)}, seed=3, steps=3, cfg=4.0, sampler_name="euler",
                      scheduler="normal", positive=pos, negative=neg)["samples"]

    ref, want, got = run(unet), run(rounded), run(stored)
    assert (got - want).abs().max() <= 1e-5
    assert 0 < _rel(got, ref) < 0.06


def test_a_lora_applies_on_fp8_stored_weights(tmp_path):
    """A LoRA on an fp8-stored model (PEFT wraps the fp8 layers): its adapters stay in the compute
    dtype and the result moves as the float model's does."""
    from safetensors.torch import save_file

    from tests.nodes.diffusion.family_helpers import lora_pair

    torch.set_num_threads(1)
    models = tmp_path / "models"
    parts = build_tiny_zimage(models)
    base = parts["transformer"].state_dict()
    down, up = lora_pair(base, "layers.0.feed_forward.w1.weight", seed=3)
    (models / "loras").mkdir()
    save_file({"diffusion_model.layers.0.feed_forward.w1.lora_A.weight": down,
               "diffusion_model.layers.0.feed_forward.w1.lora_B.weight": up}, str(models / "loras" / "z.safetensors"))

    def run(weight_dtype: str, lora: bool) -> torch.Tensor:
        prompt = copy.deepcopy(ZIMAGE_TURBO_WORKFLOW)
        prompt["1"]["inputs"].update(unet_name=parts["unet"], weight_dtype=weight_dtype)
        if lora:
            prompt["12"] = {"class_type": "LoraLoaderModelOnly",
                            "inputs": {"model": ["1", 0], "lora_name": "z.safetensors", "strength_model": 1.0}}
            prompt["4"]["inputs"]["model"] = ["12", 0]
        with engine_for(tmp_path / f"{weight_dtype}{lora}", models) as engine:
            return run_ok(engine, prompt).value("8")["samples"]

    fp8_plain, fp8_lora, float_lora = run("fp8_e4m3fn", False), run("fp8_e4m3fn", True), run("default", True)
    assert (fp8_lora - fp8_plain).abs().max() > 1e-3  # the LoRA acts
    assert _rel(fp8_lora, float_lora) < REL_TOL["fp8_e4m3fn"]


def test_plain_fp8_file_stays_fp8(tmp_path, family):
    """A file whose 2-D weights are stored ``float8_e4m3fn`` without scales (as the Qwen-Image e4m3fn
    release is) keeps them fp8 under ``default``: the same numbers as upcasting them on load."""
    from safetensors.torch import load_file, save_file

    _, models, parts = family
    sd = load_file(str(models / "diffusion_models" / parts["unet"]))
    fp8 = {k: (v.to(torch.float8_e4m3fn) if k.endswith(".weight") and v.ndim == 2 else v) for k, v in sd.items()}
    save_file(fp8, str(tmp_path / "model_fp8_e4m3fn.safetensors"))
    kept, _ = load_diffusion_model(tmp_path / "model_fp8_e4m3fn.safetensors")
    upcast, _ = load_diffusion_model(tmp_path / "model_fp8_e4m3fn.safetensors", keep_fp8=False)
    stored = [m for _, m in _layers(kept) if m.weight.dtype == torch.float8_e4m3fn]
    assert len(stored) >= len(_layers(kept)) // 2
    assert offload.fp8_bytes(upcast)[0] == 0
    got, want = offload.dequantised_state_dict(kept), upcast.state_dict()
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
