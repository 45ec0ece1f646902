"""Latent operations: the tone-map, sharpen and blend maths, applying one to a latent, and the
pre-CFG MODEL patch — checked on the guidance formula and through a real sampling run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from nodeloom.core.graph_builder import GraphBuilder
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.sampling import apply_cfg_patches
from nodeloom.errors import ValidationError
from nodeloom.nodes.utils import NODE_CLASS_MAPPINGS as NODES
from nodeloom.testing.diffusion_fixtures import no_network, single_thread, tiny_models_dir  # noqa: F401
from tests.compat.pack_fixtures import pack_engine, sample_tiny


def call(class_type: str, **inputs: Any) -> tuple[Any, ...]:
    cls = NODES[class_type]
    return getattr(cls(), cls.FUNCTION)(**inputs)


def _latent(seed: int = 0, shape: tuple[int, ...] = (2, 4, 12, 10)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_tonemap_compresses_lengths_and_keeps_directions() -> None:
    x = _latent()
    (op,) = call("LatentOperationTonemapReinhard", multiplier=1.0)
    y = op(latent=x, ignored="extra keyword arguments are accepted, as ComfyUI passes them")
    n_in, n_out = x.norm(dim=1), y.norm(dim=1)
    assert torch.all(n_out < n_in)
    assert torch.allclose(x / n_in[:, None], y / n_out[:, None], atol=1e-5)
    # the curve, written out: m·top/(m + top) with top = (mean + 5·std) of the lengths per item
    top = (n_in.flatten(1).std(dim=1) * 5 + n_in.flatten(1).mean(dim=1))[:, None, None]
    assert torch.allclose(n_out, n_in * top / (n_in + top), atol=1e-4)
    (gentle,) = call("LatentOperationTonemapReinhard", multiplier=100.0)
    assert (gentle(latent=x) - x).abs().max() < (y - x).abs().max()


def _high_frequency(x: torch.Tensor) -> float:
    return float((x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean())


def test_sharpen_keeps_lengths_at_alpha_zero_and_adds_detail_above() -> None:
    x = _latent(1)
    (none,) = call("LatentOperationSharpen", sharpen_radius=3, sigma=1.0, alpha=0.0)
    assert torch.allclose(none(latent=x), x, atol=1e-5)
    (op,) = call("LatentOperationSharpen", sharpen_radius=3, sigma=1.0, alpha=0.5)
    y = op(latent=x)
    assert y.shape == x.shape and _high_frequency(y) > _high_frequency(x) * 1.2
    (wide,) = call("LatentOperationSharpen", sharpen_radius=9, sigma=1.0, alpha=0.1)
    assert wide(latent=_latent(2, (1, 4, 8, 8))).shape == (1, 4, 8, 8)  # radius past the latent's size


def test_blend_resizes_and_repeats_the_reference() -> None:
    x = _latent(3)
    ref = {"samples": torch.ones(1, 4, 6, 5)}
    (half,) = call("LatentOperationBlend", reference=ref, strength=0.5)
    assert torch.allclose(half(latent=x), x * 0.5 + 0.5)
    (zero,) = call("LatentOperationBlend", reference=ref, strength=0.0)
    assert torch.equal(zero(latent=x), x)
    (bad,) = call("LatentOperationBlend", reference={"samples": torch.ones(1, 16, 6, 5)}, strength=1.0)
    with pytest.raises(ValueError, match="`reference`"):
        bad(latent=x)


def test_apply_operation_changes_only_the_samples() -> None:
    latent = {"samples": _latent(4), "batch_index": [3, 4]}
    (op,) = call("LatentOperationTonemapReinhard", multiplier=1.0)
    (out,) = call("LatentApplyOperation", samples=latent, operation=op)
    assert out["batch_index"] == [3, 4] and torch.equal(out["samples"], op(latent=latent["samples"]))
    assert latent["samples"] is not out["samples"]
    with pytest.raises(ValidationError, match="`operation`"):
        call("LatentApplyOperation", samples=latent, operation="tonemap")


def _bare_model() -> DiffusionModel:
    return DiffusionModel(unet=None, family="sd1", sampling=None, latent_scale=1.0)


def test_cfg_patch_reshapes_the_guidance_direction() -> None:
    model = _bare_model()
    (double,) = call("LatentApplyOperationCFG", model=model, operation=lambda latent, **_: latent * 2)
    x, cond, uncond = _latent(5), _latent(6), _latent(7)
    sigma = torch.tensor([1.0])
    guided = apply_cfg_patches(double, x, sigma, cond, uncond, 3.0)
    assert torch.allclose(guided, uncond + 2 * (cond - uncond) * 3.0, atol=1e-5)
    assert torch.allclose(apply_cfg_patches(double, x, sigma, cond, None, 1.0), cond * 2)  # CFG 1: cond alone
    assert torch.allclose(apply_cfg_patches(model, x, sigma, cond, uncond, 3.0), uncond + (cond - uncond) * 3.0)


@pytest.fixture
def engine(tmp_path: Path, tiny_models_dir: Path, no_network: None, single_thread: None) -> Any:  # noqa: F811
    yield from pack_engine(tmp_path, "keep_pack", "NODE_CLASS_MAPPINGS = {}\n", tiny_models_dir)


def test_cfg_patch_acts_in_a_sampling_run(engine: Any) -> None:
    g = GraphBuilder(prefix="")
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name="tiny_sd1.safetensors")
    identity = g.node("LatentOperationBlend", reference=g.node("EmptyLatentImage", width=32, height=32,
                                                                     batch_size=1).out(0), strength=0.0)
    tonemap = g.node("LatentOperationTonemapReinhard", multiplier=0.2)
    plain = sample_tiny(g, ckpt.out(0), ckpt.out(1))
    same = sample_tiny(g, g.node("LatentApplyOperationCFG", model=ckpt.out(0), operation=identity.out(0)).out(0), ckpt.out(1))
    mapped = sample_tiny(g, g.node("LatentApplyOperationCFG", model=ckpt.out(0), operation=tonemap.out(0)).out(0), ckpt.out(1))
    result = engine.run(g.finalize())
    assert result.status == "success", result.errors
    reference = result.value(plain.id)["samples"]
    assert torch.allclose(result.value(same.id)["samples"], reference, atol=1e-5)
    assert not torch.allclose(result.value(mapped.id)["samples"], reference, atol=1e-3)
