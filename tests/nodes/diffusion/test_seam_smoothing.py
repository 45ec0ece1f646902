"""HiDreamO1PatchSeamSmoothing: its declaration, the unchanged model at strength 0, the blends on a
toy flow model whose velocity depends on position (gated steps equal a hand-computed blend,
un-gated ones the plain model), its place beneath EasyCache, and a tiny SD 1.x run that departs
from the plain run only at the gated steps."""

from __future__ import annotations

import math

import pytest
import torch

from nodeloom.diffusion.easycache import EasyCache as EasyCacheAdapter
from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.diffusion.sampling import prepare_noise, sample_sigmas
from nodeloom.diffusion.seam_smoothing import SeamAdapter
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from nodeloom.nodes.diffusion.latent import EmptyLatentImage
from nodeloom.nodes.diffusion.model_tweaks import EasyCache, HiDreamO1PatchSeamSmoothing

POS = [[torch.ones(1, 2, 4), {}]]
SEED = 5
H = W = 80  # wider than two patches plus the feather, so the blend reaches the middle
FIELD = torch.rand(H, W, generator=torch.Generator().manual_seed(11)) + 0.5


class _Anchor(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # the sampler reads the device off a parameter


def toy_flow(calls: list[tuple[float, tuple[int, ...]]] | None = None) -> DiffusionModel:
    """A flow MODEL whose velocity is ``x · FIELD`` (FIELD fixed per position, so shifts matter)."""

    def adapter(module, x, sigma, group):
        if calls is not None:
            calls.append((float(sigma), tuple(x.shape)))
        return x * FIELD.to(x)

    return DiffusionModel(_Anchor(), "test_flow", FlowSampling(shift=1.0, multiplier=1.0), 1.0, adapter=adapter)


def _x(sigma: float) -> torch.Tensor:
    return sigma * prepare_noise(torch.zeros(1, 2, H, W), SEED)


def _one_step(model, sigma: float) -> torch.Tensor:
    out, _ = sample_sigmas(model, {"samples": torch.zeros(1, 2, H, W)}, torch.tensor([sigma, 0.0]), seed=SEED,
                           cfg=1.0, sampler_name="euler", positive=POS, negative=[])
    return out["samples"]


def _ramp(n: int) -> torch.Tensor:
    return torch.tensor([min(max((min(i, n - 1 - i) - 32) / 4, 0.0), 1.0) for i in range(n)])


def _tile_weight(dy: int, dx: int) -> torch.Tensor:
    """The Hann weight of a pass rolled by ``(dy, dx)``, written out per position from the definition."""
    cy, cx = (16 - dy) % 32, (16 - dx) % 32

    def axis(n: int, c: int) -> torch.Tensor:
        d = torch.tensor([((i % 32 - c + 16) % 32) - 16 for i in range(n)], dtype=torch.float64)
        return 0.5 * (1 + torch.cos(math.pi * d / 16))

    return (axis(H, cy)[:, None] * axis(W, cx)[None, :]).float()


def _velocity(x: torch.Tensor) -> torch.Tensor:
    return x * FIELD


def _smoothed(run, x: torch.Tensor, shifts: list[tuple[int, int]], blend: str, strength: float = 1.0) -> torch.Tensor:
    """The blend written out from its definition, for a velocity function ``run``."""
    plain = run(x)
    preds = [torch.roll(run(torch.roll(x, shifts=(dy, dx), dims=(-2, -1))), shifts=(-dy, -dx), dims=(-2, -1))
             for dy, dx in shifts]
    stacked = torch.stack(preds)
    if blend == "average":
        mixed = stacked.mean(0)
    elif blend == "median":
        mixed = stacked.median(0).values
    else:
        weights = torch.stack([_tile_weight(dy, dx) for dy, dx in shifts])
        total = weights.sum(0)
        weights = torch.where(total < 1e-3, 1.0 / len(shifts), weights / total)
        mixed = (stacked * weights[:, None, None]).sum(0)
    mask = _ramp(H)[:, None] * _ramp(W)[None, :] * strength
    return plain * (1 - mask) + mixed * mask


def _expected(sigma: float, shifts: list[tuple[int, int]], blend: str, strength: float = 1.0, run=None) -> torch.Tensor:
    """One euler step to σ 0: the denoised estimate ``x − σ·v`` with the velocity blended by hand."""
    x = _x(sigma)
    return x - sigma * _smoothed(run or _velocity, x, shifts, blend, strength)


def test_declaration():
    assert NODE_CLASS_MAPPINGS["HiDreamO1PatchSeamSmoothing"] is HiDreamO1PatchSeamSmoothing
    assert NODE_DISPLAY_NAME_MAPPINGS["HiDreamO1PatchSeamSmoothing"] == "HiDream-O1 Patch Seam Smoothing"
    assert HiDreamO1PatchSeamSmoothing.CATEGORY == "advanced/model"
    assert HiDreamO1PatchSeamSmoothing.EXPERIMENTAL is True
    spec = HiDreamO1PatchSeamSmoothing.INPUT_TYPES()["required"]
    assert list(spec) == ["model", "start_percent", "end_percent", "pattern", "passes", "blend", "strength"]
    for name, default in (("start_percent", 0.8), ("end_percent", 1.0), ("strength", 1.0)):
        assert spec[name][0] == "FLOAT"
        assert (spec[name][1]["default"], spec[name][1]["min"], spec[name][1]["max"], spec[name][1]["step"]) == \
            (default, 0.0, 1.0, 0.01)
    assert spec["pattern"][0] == ["single_shift", "symmetric"] and spec["pattern"][1]["default"] == "single_shift"
    assert spec["passes"][0] == ["2", "4", "ramp_2_4", "ramp_2_4_8"] and spec["passes"][1]["default"] == "2"
    assert spec["blend"][0] == ["average", "window", "median"] and spec["blend"][1]["default"] == "average"
    assert all(opts.get("tooltip") for _, opts in spec.values())
    assert HiDreamO1PatchSeamSmoothing.RETURN_TYPES == ("MODEL",)


def test_strength_zero_or_empty_range_returns_the_model_itself():
    model = toy_flow()
    assert HiDreamO1PatchSeamSmoothing.execute(model, 0.8, 1.0, "single_shift", "2", "average", 0.0)[0] is model
    assert HiDreamO1PatchSeamSmoothing.execute(model, 0.9, 0.9, "single_shift", "2", "average", 1.0)[0] is model
    assert HiDreamO1PatchSeamSmoothing.execute(model, 0.9, 0.5, "symmetric", "4", "median", 1.0)[0] is model


@pytest.mark.parametrize("blend", ["average", "median", "window"])
@pytest.mark.parametrize("pattern, passes, shifts", [
    ("single_shift", "2", [(0, 0), (16, 16)]),
    ("symmetric", "4", [(-8, -8), (8, -8), (-8, 8), (8, 8)]),
])
def test_gated_steps_blend_the_shifted_passes(blend, pattern, passes, shifts):
    model = toy_flow()
    (patched,) = HiDreamO1PatchSeamSmoothing.execute(model, 0.5, 1.0, pattern, passes, blend, 1.0)
    assert patched is not model and model.adapter is not patched.adapter
    # σ 0.4 lies inside [σ(1.0), σ(0.5)] = [0, 0.5]: blended
    assert torch.allclose(_one_step(patched, 0.4), _expected(0.4, shifts, blend), atol=1e-5)
    # σ 0.7 lies before the start: the plain model
    plain = _one_step(model, 0.7)
    assert torch.allclose(_one_step(patched, 0.7), plain, atol=0)
    assert torch.allclose(plain, _expected(0.7, [(0, 0)], "average"), atol=1e-5)


def test_strength_mixes_and_the_border_strip_keeps_the_plain_prediction():
    model = toy_flow()
    (patched,) = HiDreamO1PatchSeamSmoothing.execute(model, 0.5, 1.0, "single_shift", "2", "average", 0.3)
    out = _one_step(patched, 0.4)
    assert torch.allclose(out, _expected(0.4, [(0, 0), (16, 16)], "average", 0.3), atol=1e-5)
    plain = _one_step(model, 0.4)
    assert torch.equal(out[..., :32, :], plain[..., :32, :]) and torch.equal(out[..., :, -33:], plain[..., :, -33:])
    assert not torch.allclose(out[..., 40, 40], plain[..., 40, 40])


def test_ramp_levels_follow_the_phase_of_the_gated_range():
    calls: list[tuple[float, tuple[int, ...]]] = []
    (patched,) = HiDreamO1PatchSeamSmoothing.execute(toy_flow(calls), 0.2, 1.0, "single_shift", "ramp_2_4_8",
                                                     "average", 1.0)
    counts = {}
    for sigma in (0.9, 0.75, 0.5, 0.2):  # phase (0.8 − σ)/0.8: un-gated, 0.06 → 2, 0.375 → 4, 0.75 → 8 passes
        calls.clear()
        _one_step(patched, sigma)
        counts[sigma] = len(calls)
    assert counts == {0.9: 1, 0.75: 2, 0.5: 4, 0.2: 8}  # the natural pass is one of each list
    assert torch.allclose(_one_step(patched, 0.2), _expected(0.2, [(0, 0), (16, 0), (0, 16), (16, 16), (8, 8),
                                                                   (24, 8), (8, 24), (24, 24)], "average"), atol=1e-5)


def test_symmetric_runs_the_natural_pass_besides_the_shifted_ones():
    calls: list[tuple[float, tuple[int, ...]]] = []
    (patched,) = HiDreamO1PatchSeamSmoothing.execute(toy_flow(calls), 0.5, 1.0, "symmetric", "2", "average", 1.0)
    _one_step(patched, 0.4)
    assert len(calls) == 3


def test_stays_beneath_a_step_cache_in_either_order():
    model = toy_flow()
    (cached,) = EasyCache.execute(model, 0.2, 0.0, 1.0)
    (outer,) = HiDreamO1PatchSeamSmoothing.execute(cached, 0.5, 1.0, "single_shift", "2", "average", 1.0)
    (smoothed,) = HiDreamO1PatchSeamSmoothing.execute(model, 0.5, 1.0, "single_shift", "2", "average", 1.0)
    (inner,) = EasyCache.execute(smoothed, 0.2, 0.0, 1.0)
    for patched in (outer, inner):
        assert isinstance(patched.adapter, EasyCacheAdapter) and isinstance(patched.adapter.adapter, SeamAdapter)
    assert cached.adapter.adapter is model.adapter  # the input MODEL is left as it was
    assert torch.allclose(_one_step(outer, 0.4), _expected(0.4, [(0, 0), (16, 16)], "average"), atol=1e-5)


def test_two_smoothing_nodes_nest():
    calls: list[tuple[float, tuple[int, ...]]] = []
    model = toy_flow(calls)
    (once,) = HiDreamO1PatchSeamSmoothing.execute(model, 0.5, 1.0, "single_shift", "2", "average", 1.0)
    (twice,) = HiDreamO1PatchSeamSmoothing.execute(once, 0.5, 1.0, "symmetric", "2", "median", 1.0)
    out = _one_step(twice, 0.4)
    assert len(calls) == 6  # the outer node's 3 calls (natural, 2 shifted), each 2 passes of the inner one

    def inner(x):
        return _smoothed(_velocity, x, [(0, 0), (16, 16)], "average")

    assert torch.allclose(out, _expected(0.4, [(-8, -8), (8, 8)], "median", run=inner), atol=1e-5)


def test_video_latents_are_refused_at_a_gated_step():
    def adapter(module, x, sigma, group):
        return x

    model = DiffusionModel(_Anchor(), "test_flow", FlowSampling(shift=1.0, multiplier=1.0), 1.0, adapter=adapter)
    (patched,) = HiDreamO1PatchSeamSmoothing.execute(model, 0.5, 1.0, "single_shift", "2", "average", 1.0)
    latent = {"samples": torch.zeros(1, 2, 3, 8, 8)}
    sample_sigmas(patched, latent, torch.tensor([0.7, 0.6]), seed=SEED, cfg=1.0, sampler_name="euler",
                  positive=POS, negative=[])  # un-gated: runs
    with pytest.raises(ValidationError, match="image inputs"):
        sample_sigmas(patched, latent, torch.tensor([0.4, 0.0]), seed=SEED, cfg=1.0, sampler_name="euler",
                      positive=POS, negative=[])


def test_tiny_sd_run_departs_from_the_plain_run_only_at_gated_steps(chain):
    from nodeloom.nodes.diffusion.sampling import KSampler

    model, pos, neg, _ = chain
    latent = EmptyLatentImage.execute(640, 640, 1)[0]  # an 80² latent: the blend reaches its middle
    records: dict[str, list[tuple[float, torch.Tensor, torch.Tensor]]] = {"plain": [], "smoothed": []}

    def spy(name):
        def wrap(run, x, sigma):
            out = run(x)
            records[name].append((float(sigma), x.clone(), out.clone()))
            return out
        return wrap

    def spied(name):
        m = model.clone()
        m.extra["unet_wrappers"] = (spy(name),)
        return m

    plain = KSampler.execute(spied("plain"), 1, 4, 1.0, "euler", "normal", pos, neg, latent)[0]["samples"]
    (smoothing,) = HiDreamO1PatchSeamSmoothing.execute(spied("smoothed"), 0.5, 1.0, "single_shift", "2",
                                                       "average", 1.0)
    assert "unet_wrappers" not in model.extra and len(smoothing.extra["unet_wrappers"]) == 2
    smoothed = KSampler.execute(smoothing, 1, 4, 1.0, "euler", "normal", pos, neg, latent)[0]["samples"]
    assert torch.isfinite(smoothed).all() and not torch.equal(plain, smoothed)
    gate = model.sampling.percent_to_sigma(0.5)
    rows = list(zip(records["plain"], records["smoothed"]))
    assert len(rows) == 4 and any(s <= gate for s, _, _ in records["plain"])
    departed = False
    for (s, x_plain, out_plain), (s2, x_smooth, out_smooth) in rows:
        assert s == s2
        if not departed:
            assert torch.equal(x_plain, x_smooth)  # the same input until a gated step changed the path
        if s <= gate:
            assert not torch.allclose(out_plain, out_smooth)
            departed = True
        elif not departed:
            assert torch.equal(out_plain, out_smooth)


def test_inputs_without_an_inner_part_run_once():
    calls = []

    def adapter(module, x, sigma, group):
        calls.append(tuple(x.shape))
        return x * torch.linspace(0.5, 1.5, x.shape[-1])

    model = DiffusionModel(_Anchor(), "test_flow", FlowSampling(shift=1.0, multiplier=1.0), 1.0, adapter=adapter)
    (patched,) = HiDreamO1PatchSeamSmoothing.execute(model, 0.5, 1.0, "single_shift", "4", "average", 1.0)
    latent = {"samples": torch.zeros(1, 2, 66, 80)}  # 66 rows: no row lies beyond 32 + 1 of both borders
    outs = [sample_sigmas(m, latent, torch.tensor([0.4, 0.0]), seed=SEED, cfg=1.0, sampler_name="euler",
                          positive=POS, negative=[])[0]["samples"] for m in (patched, model)]
    assert len(calls) == 2 and torch.equal(outs[0], outs[1])
