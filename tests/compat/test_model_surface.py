"""The comfy.* model-side modules packs import: ``comfy.k_diffusion.sampling``, ``comfy.model_patcher``,
``comfy.patcher_extension``, ``comfy.ops``, ``comfy.taesd``, ``comfy.clip_vision``,
``comfy.ldm.modules.attention``, ``comfy.ldm.flux.math`` and ``comfy_extras.chainner_models`` —
each checked against the quantity it stands for."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from nodeloom.compat import hook
from nodeloom.diffusion.models import DiffusionModel, check_model_options
from nodeloom.diffusion.samplers import SAMPLERS
from nodeloom.diffusion.schedules import ModelSampling


def _comfy(name: str) -> ModuleType:
    hook.install()
    return importlib.import_module(name)


def _toy_model() -> DiffusionModel:
    return DiffusionModel(torch.nn.Linear(1, 1), "sd1", ModelSampling(), 0.18215)


def test_k_diffusion_functions_run_nodeloom_samplers() -> None:
    k = _comfy("comfy.k_diffusion.sampling")
    from comfy.k_diffusion import sampling as same

    assert same is k
    target = torch.full((1, 4, 2, 2), 0.25)
    seen: list[int] = []

    def model(x: torch.Tensor, sigma: torch.Tensor, **extra: object) -> torch.Tensor:
        assert sigma.shape == (1,) and extra == {"tag": 1}
        return x * 0.5 + target * 0.5

    sigmas = torch.tensor([3.0, 1.5, 0.5, 0.0])
    x = torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(0)) * 3.0
    out = k.sample_euler(model, x, sigmas, extra_args={"tag": 1}, callback=lambda d: seen.append(d["i"]))
    mine = SAMPLERS["euler"](lambda xx, s: xx * 0.5 + target * 0.5, x, sigmas, None, lambda *a: None)
    assert torch.equal(out, mine) and seen == [0, 1, 2]
    assert torch.allclose(k.to_d(x, sigmas[0], target), (x - target) / 3.0)
    assert k.get_ancestral_step(2.0, 1.0, eta=0.0) == (1.0, 0.0)
    down, up = k.get_ancestral_step(2.0, 1.0)
    assert abs(down ** 2 + up ** 2 - 1.0) < 1e-9
    a = k.BrownianTreeNoiseSampler(x, 0.5, 3.0, seed=7, cpu=True)
    b = k.BrownianTreeNoiseSampler(x, 0.5, 3.0, seed=7, cpu=True)
    assert torch.equal(a(torch.tensor(3.0), torch.tensor(1.5)), b(torch.tensor(3.0), torch.tensor(1.5)))
    assert torch.equal(k.default_noise_sampler(x, seed=3)(1, 0), k.default_noise_sampler(x, seed=3)(1, 0))


def test_model_patcher_stands_for_the_model_and_refuses_what_it_cannot_apply() -> None:
    mp = _comfy("comfy.model_patcher")
    ext = _comfy("comfy.patcher_extension")
    model = _toy_model()
    assert isinstance(model, mp.ModelPatcher) and not isinstance(object(), mp.ModelPatcher)
    with pytest.raises(NotImplementedError, match="come from its loaders"):
        mp.ModelPatcher(torch.nn.Linear(1, 1), "cpu", "cpu")
    patched = model.clone()
    mp.set_model_options_post_cfg_function(patched.model_options, lambda args: args["denoised"])
    check_model_options(patched)  # honoured: no refusal
    copy = mp.create_model_options_clone(patched.model_options)
    mp.set_model_options_patch_replace(copy, lambda q, k, v, extra: q, "attn1", "input", 1)
    assert "patches_replace" not in patched.model_options["transformer_options"]
    assert mp.string_to_seed("hook") == __import__("zlib").crc32(b"hook")
    replaced = model.clone(extra={"model_options": copy})
    with pytest.raises(NotImplementedError, match="patches_replace"):
        check_model_options(replaced)
    wrapped = model.clone()
    ext.add_wrapper_with_key(ext.WrappersMP.APPLY_MODEL, "pack", lambda executor, *a: executor(*a),
                             wrapped.model_options, is_model_options=True)
    assert len(ext.get_all_wrappers(ext.WrappersMP.APPLY_MODEL, wrapped.model_options, is_model_options=True)) == 1
    with pytest.raises(NotImplementedError, match="wrappers"):
        check_model_options(wrapped)


def test_wrapper_executor_chains_in_order() -> None:
    ext = _comfy("comfy.patcher_extension")
    calls: list[str] = []

    def outer(executor: object, x: int) -> int:
        calls.append("outer")
        return executor(x + 1) * 10

    def inner(executor: object, x: int) -> int:
        calls.append("inner")
        return executor(x * 2)

    run = ext.WrapperExecutor.new_executor(lambda x: x - 1, [outer, inner])
    assert run.execute(3) == ((3 + 1) * 2 - 1) * 10 and calls == ["outer", "inner"]
    merged = ext.merge_nested_dicts({"a": {"x": [1]}, "b": 1}, {"a": {"x": [2], "y": 3}, "b": 2})
    assert merged == {"a": {"x": [1, 2], "y": 3}, "b": 2}


def test_ops_layers_skip_init_and_cast() -> None:
    ops = _comfy("comfy.ops")
    layer = ops.manual_cast.Linear(4, 3).to(torch.bfloat16)
    torch.nn.init.normal_(layer.weight)
    torch.nn.init.normal_(layer.bias)
    x = torch.randn(2, 4)
    out = layer(x)
    assert out.dtype == torch.float32
    assert torch.allclose(out, F.linear(x, layer.weight.float(), layer.bias.float()))
    conv = ops.disable_weight_init.Conv2d(3, 2, 3, padding=1)
    assert isinstance(conv, torch.nn.Conv2d) and conv.weight.dtype == torch.float32
    image = torch.randn(1, 3, 5, 5)
    assert torch.equal(conv(image), F.conv2d(image, conv.weight, conv.bias, padding=1))
    assert ops.pick_operations(torch.float16, torch.float32) is ops.manual_cast
    assert ops.pick_operations(torch.float32, torch.float32) is ops.disable_weight_init


def test_taesd_round_trips_weights_files(tmp_path: Path) -> None:
    taesd = _comfy("comfy.taesd.taesd")
    from comfy.taesd.taesd import Block, Clamp, conv  # KJNodes' import

    torch.manual_seed(0)
    source = taesd.TAESD()
    save_file({k: v.contiguous() for k, v in source.taesd_encoder.state_dict().items()}, str(tmp_path / "enc.safetensors"))
    save_file({k: v.contiguous() for k, v in source.taesd_decoder.state_dict().items()}, str(tmp_path / "dec.safetensors"))
    loaded = taesd.TAESD(tmp_path / "enc.safetensors", tmp_path / "dec.safetensors")
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        latent = loaded.encode(image)
        assert latent.shape == (1, 4, 4, 4) and torch.equal(latent, source.encode(image))
        assert loaded.decode(latent).shape == (1, 3, 32, 32)
    assert isinstance(Block(4, 8).skip, torch.nn.Conv2d) and conv(3, 5).kernel_size == (3, 3)
    assert torch.allclose(Clamp()(torch.tensor([300.0])), torch.tensor([3.0]))
    assert torch.allclose(taesd.TAESD.unscale_latents(taesd.TAESD.scale_latents(latent.clamp(-2, 2))), latent.clamp(-2, 2),
                          atol=1e-6)


def test_attention_and_rope_match_their_definitions() -> None:
    attention = _comfy("comfy.ldm.modules.attention")
    flux_math = _comfy("comfy.ldm.flux.math")
    q, k, v = (torch.randn(2, 5, 8) for _ in range(3))
    out = attention.optimized_attention(q, k, v, heads=2)
    qh, kh, vh = (t.view(2, 5, 2, 4).transpose(1, 2) for t in (q, k, v))
    manual = (torch.softmax(qh @ kh.transpose(-1, -2) / 2.0, dim=-1) @ vh).transpose(1, 2).reshape(2, 5, 8)
    assert torch.allclose(out, manual, atol=1e-5)
    seen: list[str] = []

    def override(func: object, *args: object, **kwargs: object) -> torch.Tensor:
        seen.append("override")
        return func(*args, **kwargs)  # type: ignore[operator]

    again = attention.attention_pytorch(q, k, v, 2, transformer_options={"optimized_attention_override": override})
    assert seen == ["override"] and torch.allclose(again, out)
    pos = torch.arange(6.0)[None]
    freqs = flux_math.rope(pos, 8, 10000)[:, None]  # [B, 1 head, n, dim/2, 2, 2]
    x = torch.randn(1, 1, 6, 8)
    rotated, _ = flux_math.apply_rope(x, x, freqs)
    as_complex = torch.view_as_complex(x.reshape(1, 1, 6, 4, 2))
    angle = pos[0][:, None] * (1.0 / 10000 ** (torch.arange(0, 8, 2) / 8))
    expected = torch.view_as_real(as_complex * torch.polar(torch.ones_like(angle), angle)).reshape(1, 1, 6, 8)
    assert torch.allclose(rotated, expected, atol=1e-5)
    ff = _comfy("comfy.ldm.lumina.model").FeedForward(8, 10, multiple_of=4, ffn_dim_multiplier=None)
    assert ff.w1.out_features == 12 and ff(torch.randn(2, 8)).shape == (2, 8)


def test_clip_vision_and_upscale_loading(tmp_path: Path) -> None:
    from nodeloom.testing.tiny_clip_vision import save_vision_file, tiny_vision_model
    from nodeloom.testing.tiny_upscale import rrdbnet_basicsr

    clip_vision = _comfy("comfy.clip_vision")
    path = save_vision_file(tiny_vision_model("clip_h"), tmp_path / "vision.safetensors")
    model = clip_vision.load(str(path))
    output = model.encode_image(torch.rand(1, 40, 40, 3))
    assert isinstance(output, clip_vision.Output) and output["image_embeds"].shape[0] == 1
    pixels = clip_vision.clip_preprocess(torch.rand(2, 40, 30, 3), size=28)
    assert pixels.shape == (2, 3, 28, 28)
    with pytest.raises(NotImplementedError, match="from files"):
        clip_vision.load_clipvision_from_sd({})
    _comfy("comfy_extras")
    from comfy_extras.chainner_models import model_loading  # WAS Node Suite's import

    upscaler = model_loading.load_state_dict(rrdbnet_basicsr(scale=2))
    assert upscaler.scale == 2
