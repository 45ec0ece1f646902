"""Latent batch/transform/composite nodes and conditioning average/concat/zero-out, by ComfyUI's rules."""

import pytest
import torch

from nodeloom.diffusion.sampling import prepare_noise
from nodeloom.nodes.diffusion.conditioning import ConditioningAverage, ConditioningConcat, ConditioningZeroOut
from nodeloom.nodes.diffusion.latent_ops import (
    LatentBlend,
    LatentComposite,
    LatentCrop,
    LatentFlip,
    LatentFromBatch,
    LatentRotate,
    RepeatLatentBatch,
)


def latent(b=3, h=8, w=6, seed=0):
    return {"samples": torch.randn(b, 4, h, w, generator=torch.Generator().manual_seed(seed))}


def test_latent_from_batch_keeps_each_items_noise():
    full = latent(5)
    part = LatentFromBatch.execute(full, 1, 3)[0]
    assert torch.equal(part["samples"], full["samples"][1:4]) and part["batch_index"] == [1, 2, 3]
    # the seeded noise of the picked items is the noise they had in the full batch
    assert torch.equal(prepare_noise(part["samples"], 9, part["batch_index"]), prepare_noise(full["samples"], 9)[1:4])
    clamped = LatentFromBatch.execute(full, 7, 4)[0]  # past the end: the last item
    assert clamped["batch_index"] == [4] and torch.equal(clamped["samples"], full["samples"][4:])
    again = LatentFromBatch.execute(part, 1, 2)[0]  # a slice of a slice keeps the original positions
    assert again["batch_index"] == [2, 3]


def test_repeat_latent_batch_extends_batch_index_and_masks():
    src = dict(latent(2), batch_index=[3, 4], noise_mask=torch.rand(2, 1, 64, 48))
    out = RepeatLatentBatch.execute(src, 3)[0]
    assert out["samples"].shape[0] == 6 and torch.equal(out["samples"][4:], src["samples"])
    assert out["batch_index"] == [3, 4, 5, 6, 7, 8] and out["noise_mask"].shape[0] == 6
    single_mask = dict(latent(1), noise_mask=torch.rand(1, 1, 64, 48))
    assert RepeatLatentBatch.execute(single_mask, 2)[0]["noise_mask"].shape[0] == 1  # one mask serves all


def test_latent_composite_pastes_and_feathers_only_inner_edges():
    to, piece = latent(1, 16, 16, 1), latent(1, 6, 6, 2)
    plain = LatentComposite.execute(to, piece, 32, 16, 0)[0]["samples"]
    assert torch.equal(plain[:, :, 2:8, 4:10], piece["samples"][0:1])
    outside = torch.ones_like(plain, dtype=torch.bool)
    outside[:, :, 2:8, 4:10] = False
    assert torch.equal(plain[outside], to["samples"][outside]) and to["samples"].data_ptr() != plain.data_ptr()
    feathered = LatentComposite.execute(to, piece, 32, 0, 16)[0]["samples"]  # y = 0: no ramp at the top edge
    weight = (feathered - to["samples"])[:, :, :6, 4:10] / (piece["samples"] - to["samples"][:, :, :6, 4:10])
    assert torch.allclose(weight[0, 0, 0, 2], torch.tensor(1.0))  # top row, middle: full weight
    assert torch.allclose(weight[0, 0, 2, 0], torch.tensor(0.5))  # left edge (x > 0) starts at 1/2 with feather 2
    assert torch.allclose(weight[0, 0, 5, 5], torch.tensor(0.25))  # bottom-right corner: 1/2 · 1/2
    clipped = LatentComposite.execute(to, latent(1, 10, 10, 3), 96, 96, 0)[0]["samples"]  # runs past the edge
    assert torch.equal(clipped[:, :, 12:, 12:], latent(1, 10, 10, 3)["samples"][:, :, :4, :4])


def test_latent_blend_weights_and_resizes():
    a, b = latent(1, 8, 8, 1), latent(1, 8, 8, 2)
    out = LatentBlend.execute(a, b, 0.25)[0]["samples"]
    assert torch.allclose(out, 0.25 * a["samples"] + 0.75 * b["samples"])
    assert LatentBlend.execute(a, latent(1, 12, 6, 3), 0.5)[0]["samples"].shape == a["samples"].shape


def test_rotate_flip_and_crop():
    x = {"samples": torch.arange(6.0).reshape(1, 1, 2, 3)}  # [[0, 1, 2], [3, 4, 5]]
    quarter = LatentRotate.execute(x, "90 degrees")[0]["samples"][0, 0]
    assert quarter.tolist() == [[3.0, 0.0], [4.0, 1.0], [5.0, 2.0]]  # clockwise
    back = LatentRotate.execute(LatentRotate.execute(x, "90 degrees")[0], "270 degrees")[0]
    assert torch.equal(back["samples"], x["samples"])
    assert LatentFlip.execute(x, "x-axis: vertically")[0]["samples"][0, 0].tolist() == [[3.0, 4.0, 5.0], [0.0, 1.0, 2.0]]
    assert LatentFlip.execute(x, "y-axis: horizontally")[0]["samples"][0, 0].tolist() == [[2.0, 1.0, 0.0], [5.0, 4.0, 3.0]]
    big = latent(1, 32, 32)
    crop = LatentCrop.execute(big, 128, 64, 40, 999)[0]["samples"]  # y clamped so 8 cells stay
    assert crop.shape == (1, 4, 8, 16) and torch.equal(crop, big["samples"][:, :, 24:32, 5:21])


def cond(tokens, seed, pooled=True):
    g = torch.Generator().manual_seed(seed)
    extra = {"pooled_output": torch.randn(1, 8, generator=g)} if pooled else {}
    return [[torch.randn(1, tokens, 8, generator=g), extra]]


def test_conditioning_average_concat_and_zero_out():
    to, frm = cond(154, 1), cond(77, 2)
    avg = ConditioningAverage.execute(to, frm, 0.3)[0][0]
    padded = torch.cat([frm[0][0], torch.zeros(1, 77, 8)], dim=1)  # the shorter prompt is padded with zeros
    assert torch.allclose(avg[0], 0.3 * to[0][0] + 0.7 * padded)
    assert torch.allclose(avg[1]["pooled_output"], 0.3 * to[0][1]["pooled_output"] + 0.7 * frm[0][1]["pooled_output"])
    no_pooled = ConditioningAverage.execute(cond(77, 3, pooled=False), frm, 0.5)[0][0]
    assert torch.equal(no_pooled[1]["pooled_output"], frm[0][1]["pooled_output"])
    cat = ConditioningConcat.execute(cond(77, 4) + cond(77, 5), frm)[0]
    assert len(cat) == 2 and cat[1][0].shape == (1, 154, 8) and torch.equal(cat[1][0][:, 77:], frm[0][0])
    zero = ConditioningZeroOut.execute(to)[0][0]
    assert not zero[0].any() and not zero[1]["pooled_output"].any() and to[0][0].any()
    with pytest.raises(Exception, match="conditioning_from"):
        ConditioningConcat.execute(to, [])
