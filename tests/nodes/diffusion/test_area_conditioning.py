"""Regional conditioning: ConditioningSetArea(Percentage/Strength), ConditioningSetMask and the
sampler weighting each entry's prediction over its area and mask (tiny SD1, and masks on Z-Image)."""

from __future__ import annotations

import copy

import pytest
import torch

import nodeloom.diffusion.sampling as sampling
from nodeloom import Engine
from nodeloom.diffusion.regions import resolve, resolve_area
from nodeloom.errors import ValidationError
from nodeloom.nodes.diffusion.area_conditioning import (
    ConditioningSetArea,
    ConditioningSetAreaPercentage,
    ConditioningSetAreaPercentageVideo,
    ConditioningSetAreaStrength,
    ConditioningSetMask,
)
from nodeloom.nodes.diffusion.conditioning import CLIPTextEncode
from nodeloom.nodes.diffusion.latent import EmptyLatentImage
from nodeloom.nodes.diffusion.loaders import CheckpointLoaderSimple
from nodeloom.nodes.diffusion.sampling import KSampler


@pytest.fixture
def sd1(diffusion_services):
    model, clip, _ = CheckpointLoaderSimple.execute("tiny_sd1.safetensors")
    encode = lambda text: CLIPTextEncode.execute(text, clip)[0]  # noqa: E731
    return model, encode("a red house"), encode("a blue boat"), encode("blurry")


def _estimate(model, positive, x, sigma, negative=None, cfg=1.0):
    """One guided estimate of ``x`` at ``sigma`` over the CONDITIONING lists."""
    batch, hw = x.shape[0], (x.shape[-2] * 8, x.shape[-1] * 8)
    neg = sampling._entries(negative, batch, hw, uncond=True) if negative else []
    fn = sampling._guided(model, model.unet, sampling._entries(positive, batch, hw), neg, cfg, None, batch)
    with torch.no_grad():
        return fn(x, torch.tensor(sigma))


def test_nodes_store_comfyui_keys(sd1):
    _, house, _, _ = sd1
    area = ConditioningSetArea.execute(house, 100, 64, 20, 8, 0.5)[0][0][1]
    assert area["area"] == (8, 12, 1, 2) and area["strength"] == 0.5 and area["set_area_to_bounds"] is False
    pct = ConditioningSetAreaPercentage.execute(house, 0.5, 0.25, 0.1, 0.2, 1.0)[0][0][1]
    assert pct["area"] == ("percentage", 0.25, 0.5, 0.2, 0.1)
    video = ConditioningSetAreaPercentageVideo.execute(house, 0.5, 0.25, 0.75, 0.1, 0.2, 0.3, 2.0)[0][0][1]
    assert video["area"] == ("percentage", 0.75, 0.25, 0.5, 0.3, 0.2, 0.1) and video["strength"] == 2.0
    assert ConditioningSetAreaStrength.execute(house, 3.0)[0][0][1]["strength"] == 3.0
    masked = ConditioningSetMask.execute(house, torch.ones(16, 16), 0.7, "mask bounds")[0][0][1]
    assert masked["mask"].shape == (1, 16, 16) and masked["mask_strength"] == 0.7 and masked["set_area_to_bounds"]
    assert "area" not in house[0][1] and "mask" not in house[0][1]  # the input is left as it was
    with pytest.raises(ValidationError, match="`mask`"):
        ConditioningSetMask.execute(house, torch.ones(1, 1, 4, 4), 1.0, "default")


def test_percentage_rounds_as_comfyui():
    """Python's round (halves to even), sizes at least 1, offsets in latent units."""
    dims = (8, 8)
    assert resolve_area({"area": ("percentage", 0.3, 0.01, 0.0625, 0.1875)}, dims) == (2, 1, 0, 2)
    assert resolve_area({"area": ("percentage", 1.0, 1.0, 0.0, 0.0)}, dims) == (8, 8, 0, 0)
    assert resolve_area({"area": ("percentage", 0.9, 0.9, 0.5, 0.5)}, dims) == (4, 4, 4, 4)  # clipped to the latent
    with pytest.raises(ValidationError, match="ConditioningSetArea"):
        resolve_area({"area": (4, 4, 8, 0)}, dims)  # starts below the latent


def test_mask_bounds_area_and_feathered_edges():
    mask = torch.zeros(1, 64, 64)
    mask[:, 16:24, 40:48] = 1
    region = resolve({"mask": mask, "set_area_to_bounds": True, "mask_strength": 0.5}, (1, 4, 8, 8), "cpu")
    assert region.area == (6, 3, 2, 5)  # at least 8 a side from latent (2, 5), clipped to the latent and region.mult.shape == (1, 1, 6, 3)
    assert region.mult.max() == 0.5
    empty = resolve({"mask": torch.zeros(1, 64, 64), "set_area_to_bounds": True}, (1, 4, 8, 8), "cpu")
    assert empty.area == (8, 8, 0, 0) and empty.mult.abs().sum() == 0
    area = resolve({"area": (8, 8, 4, 4), "strength": 2.0}, (1, 4, 16, 16), "cpu")
    ramp = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    ramp[0] = 0.5  # rr = min(8, 8 // 4) = 2: the two rows at each inner edge fade in 1/2, 2/2
    ramp[-1] = 0.5
    assert torch.equal(area.mult[0, 0], 2.0 * ramp[:, None] * ramp[None, :])
    edge = resolve({"area": (8, 8, 0, 0)}, (1, 4, 16, 16), "cpu")  # edges on the latent's border stay sharp
    assert edge.mult[0, 0, 0, 0] == 1.0 and edge.mult[0, 0, -1, -1] == 0.25


def test_an_area_changes_only_its_area(sd1):
    model, house, boat, _ = sd1
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0)) * 3
    sigma = 3.0
    alone = _estimate(model, house, x, sigma)
    boxed = ConditioningSetArea.execute(boat, 64, 64, 32, 32, 1.0)[0]  # latent rows/cols 4..11
    both = _estimate(model, house + boxed, x, sigma)
    outside = torch.ones(16, 16, dtype=torch.bool)
    outside[4:12, 4:12] = False
    assert torch.equal(both[..., outside], alone[..., outside])
    crop = _estimate(model, boat, x[..., 4:12, 4:12].contiguous(), sigma)  # the boat prompt seeing only its area
    w = torch.ones(8)
    w[0] = w[-1] = 0.5
    w = w[:, None] * w[None, :]
    expected = (alone[..., 4:12, 4:12] + crop * w) / (1 + w)
    assert (both[..., 4:12, 4:12] - expected).abs().max() < 1e-5
    assert (both[..., 4:12, 4:12] - alone[..., 4:12, 4:12]).abs().max() > 1e-3


def test_full_mask_at_strength_one_equals_no_mask(sd1):
    model, house, _, neg = sd1
    latent = EmptyLatentImage.execute(64, 64, 1)[0]
    plain = KSampler.execute(model, 3, 3, 5.0, "euler", "normal", house, neg, latent, 1.0)[0]["samples"]
    full = ConditioningSetMask.execute(house, torch.ones(1, 64, 64), 1.0, "default")[0]
    masked = KSampler.execute(model, 3, 3, 5.0, "euler", "normal", full, neg, latent, 1.0)[0]["samples"]
    assert torch.equal(masked, plain)


def test_two_masks_blend_as_the_weighted_average(sd1):
    model, house, boat, _ = sd1
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1)) * 3
    left, right = torch.zeros(1, 64, 64), torch.zeros(1, 64, 64)
    left[..., :40], right[..., 24:] = 1, 1  # latent columns 0-4 and 3-7: they overlap on 3 and 4
    mixed = _estimate(model, ConditioningSetMask.execute(house, left, 1.0, "default")[0]
                      + ConditioningSetMask.execute(boat, right, 3.0, "default")[0], x, 2.0)
    d_house, d_boat = _estimate(model, house, x, 2.0), _estimate(model, boat, x, 2.0)
    assert (mixed[..., :3] - d_house[..., :3]).abs().max() < 1e-5
    assert (mixed[..., 5:] - d_boat[..., 5:]).abs().max() < 1e-5
    assert (mixed[..., 3:5] - (d_house[..., 3:5] + 3 * d_boat[..., 3:5]) / 4).abs().max() < 1e-5
    halves = _estimate(model, ConditioningSetMask.execute(house, left * 0 + 1, 0.25, "default")[0]
                       + ConditioningSetMask.execute(boat, left * 0 + 1, 0.75, "default")[0], x, 2.0)
    assert (halves - (0.25 * d_house + 0.75 * d_boat)).abs().max() < 1e-5


def test_the_negative_side_gets_a_partner_over_the_same_area(sd1, monkeypatch):
    model, house, boat, neg = sd1
    calls = []
    real = sampling._predict

    def spy(model_, unet, group, x, sigma, t, concat):
        calls.append((tuple(x.shape[-2:]), [e.uncond for e in group.entries]))
        return real(model_, unet, group, x, sigma, t, concat)

    monkeypatch.setattr(sampling, "_predict", spy)
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    _estimate(model, house + ConditioningSetArea.execute(boat, 64, 64, 0, 0, 1.0)[0], x, 2.0, neg, cfg=4.0)
    assert sorted(calls) == sorted([((16, 16), [True, False]), ((8, 8), [True, False])])


def test_area_and_mask_through_the_engine(tmp_path, tiny_models_dir):
    def prompt(with_area: bool) -> dict:
        p = {
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd1.safetensors"}},
            "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red house", "clip": ["1", 1]}},
            "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a blue boat", "clip": ["1", 1]}},
            "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
            "5": {"class_type": "ConditioningSetAreaPercentage",
                  "inputs": {"conditioning": ["3", 0], "width": 0.5, "height": 0.5, "x": 0.5, "y": 0.0, "strength": 1.0}},
            "6": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 128, "height": 128}},
            "7": {"class_type": "ConditioningSetMask",
                  "inputs": {"conditioning": ["2", 0], "mask": ["6", 0], "strength": 1.0, "set_cond_area": "default"}},
            "8": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["7", 0], "conditioning_2": ["5", 0]}},
            "9": {"class_type": "EmptyLatentImage", "inputs": {"width": 128, "height": 128, "batch_size": 1}},
            "10": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 5, "steps": 1, "cfg": 4.0,
                                                        "sampler_name": "euler", "scheduler": "normal",
                                                        "positive": ["8" if with_area else "2", 0],
                                                        "negative": ["4", 0], "latent_image": ["9", 0], "denoise": 1.0}},
            "11": {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["1", 2]}},
            "12": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "area"}},
        }
        return p

    outs = []
    for i, with_area in enumerate((True, False)):
        with Engine(base_dir=tmp_path / str(i), models_dir=tiny_models_dir, load_custom_nodes=False) as engine:
            result = engine.run(prompt(with_area))
            assert result.status == "success", result.errors
            outs.append(result.value("10")["samples"])
    diff = (outs[0] - outs[1]).abs()[0].amax(dim=0)
    assert diff[:8, 8:].max() > 1e-3  # one step: only the boat's area (the top right quarter) moved
    diff[:8, 8:] = 0
    assert diff.max() == 0


def test_areas_are_refused_on_a_family_that_cannot_crop():
    class FlowModel:
        adapter = object()
        family = "wan"
        extra: dict = {}

    entry = sampling.CondEntry(torch.zeros(1, 2, 4), {"area": (4, 4, 0, 0)}, (64, 64), 1.0)
    with pytest.raises(ValidationError, match="ConditioningSetArea.*wan.*ConditioningSetMask"):
        sampling._check_regional(FlowModel(), [entry])
    masked = sampling.CondEntry(torch.zeros(1, 2, 4), {"mask": torch.ones(1, 8, 8)}, (64, 64), 1.0)
    sampling._check_regional(FlowModel(), [masked])  # a mask alone needs no crop


@pytest.fixture(scope="module")
def zimage(tmp_path_factory):
    from nodeloom.testing.tiny_families import build_tiny_zimage

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    build_tiny_zimage(root)
    return root


def _zimage_run(tmp_path, models, positive_nodes: dict, steps: int = 1, sampler: str = "euler"):
    from nodeloom.testing.tiny_families import ZIMAGE_TURBO_WORKFLOW

    prompt = copy.deepcopy(ZIMAGE_TURBO_WORKFLOW)
    prompt.update(copy.deepcopy(positive_nodes))
    prompt["8"]["inputs"].update(steps=steps, sampler_name=sampler, positive=["p", 0] if "p" in positive_nodes else ["5", 0])
    with Engine(base_dir=tmp_path, models_dir=models, load_custom_nodes=False) as engine:
        result = engine.run(prompt)
    return result


def _masked(name: str, text_node: str, value: float, cols: slice | None = None) -> dict:
    nodes = {f"{name}m": {"class_type": "SolidMask", "inputs": {"value": value, "width": 64, "height": 64}},
             name: {"class_type": "ConditioningSetMask",
                    "inputs": {"conditioning": [text_node, 0], "mask": [f"{name}m", 0], "strength": 1.0,
                               "set_cond_area": "default"}}}
    if cols is not None:  # the mask only over some pixel columns: SolidMask then a cropped composite
        nodes[f"{name}z"] = {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 64, "height": 64}}
        nodes[f"{name}c"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": cols.stop - cols.start, "height": 64}}
        nodes[f"{name}m"] = {"class_type": "MaskComposite",
                             "inputs": {"destination": [f"{name}z", 0], "source": [f"{name}c", 0], "x": cols.start, "y": 0,
                                        "operation": "add"}}
    return nodes


def test_masks_on_a_flow_family(tmp_path, zimage):
    plain = _zimage_run(tmp_path / "a", zimage, {}, steps=2, sampler="res_multistep")
    assert plain.status == "success", plain.errors
    full = _zimage_run(tmp_path / "b", zimage, {**_masked("p", "5", 1.0)}, steps=2, sampler="res_multistep")
    assert full.status == "success", full.errors
    assert torch.equal(full.value("8")["samples"], plain.value("8")["samples"])

    other = {"t": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": "a green lake at dawn"}}}
    alone_fox = _zimage_run(tmp_path / "c", zimage, {}).value("8")["samples"]
    alone_lake = _zimage_run(tmp_path / "d", zimage, {**other, "p": {"class_type": "ConditioningCombine",
                                                                     "inputs": {"conditioning_1": ["t", 0],
                                                                                "conditioning_2": ["t", 0]}}})
    alone_lake = alone_lake.value("8")["samples"]
    halves = {**other, **_masked("l", "5", 1.0, slice(0, 32)), **_masked("r", "t", 1.0, slice(32, 64)),
              "p": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["l", 0], "conditioning_2": ["r", 0]}}}
    result = _zimage_run(tmp_path / "e", zimage, halves)
    assert result.status == "success", result.errors
    split = result.value("8")["samples"]  # one Euler step to σ 0: the blended estimate itself
    assert (split[..., :4] - alone_fox[..., :4]).abs().max() < 1e-4
    assert (split[..., 4:] - alone_lake[..., 4:]).abs().max() < 1e-4
    assert (alone_fox - alone_lake).abs().max() > 1e-3


def test_an_area_on_z_image_changes_only_its_area_and_odd_sizes_are_refused(tmp_path, zimage):
    other = {"t": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": "a green lake at dawn"}}}

    def area(width: float) -> dict:
        return {"a": {"class_type": "ConditioningSetAreaPercentage",
                      "inputs": {"conditioning": ["t", 0], "width": width, "height": 1.0, "x": 0.5, "y": 0.0, "strength": 1.0}},
                "p": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["5", 0], "conditioning_2": ["a", 0]}}}

    alone = _zimage_run(tmp_path / "a", zimage, {})
    boxed = _zimage_run(tmp_path / "b", zimage, {**other, **area(0.5)})  # latent columns 4..7, rows all
    assert boxed.status == "success", boxed.errors
    alone, boxed = alone.value("8")["samples"], boxed.value("8")["samples"]  # one step: the estimate itself
    assert (boxed[..., :4] - alone[..., :4]).abs().max() < 1e-4
    assert (boxed[..., 4:] - alone[..., 4:]).abs().max() > 1e-3
    odd = _zimage_run(tmp_path / "c", zimage, {**other, **area(0.375)})  # 3 latent columns: not whole 2×2 patches
    assert odd.status == "error"
    message = str(odd.errors)
    assert "ConditioningSetArea" in message and "multiples of 2" in message
