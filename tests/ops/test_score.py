"""Image scores and the diversity-aware best-k selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.ops.score import METRICS, score_images, select_best, thumbnail_features
from nodeloom.ops.topk import topk


def _batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    flat = torch.full((1, 32, 32, 3), 0.5)
    noisy = (0.5 + 0.3 * torch.randn(1, 32, 32, 1, generator=g)).clamp(0, 1).expand(-1, -1, -1, 3)
    red = torch.zeros(1, 32, 32, 3)
    red[..., 0] = 0.9
    dark = torch.full((1, 32, 32, 3), 0.1)
    return torch.cat([flat, noisy, red, dark])


def test_scores_rank_images_as_expected():
    imgs = _batch()
    sharp = score_images(imgs, "sharpness")
    assert sharp[1] > 100 * max(sharp[0], 1e-9) and sharp[0] == pytest.approx(0.0)
    bright = score_images(imgs, "brightness")
    assert bright[0] == pytest.approx(0.5, abs=1e-6) and bright[3] == pytest.approx(0.1, abs=1e-6)
    contrast = score_images(imgs, "contrast")
    assert contrast[1] > 0.1 and contrast[0] == pytest.approx(0.0, abs=1e-6)
    colorful = score_images(imgs, "colorfulness")
    assert colorful.argmax() == 2 and colorful[0] == pytest.approx(0.0, abs=1e-4)
    de = score_images(imgs, "delta_e_to_reference", reference=imgs[:1])
    assert de[0] == pytest.approx(0.0, abs=1e-4) and de[2] > 30
    assert all(score_images(imgs, m, imgs[:1]).shape == (4,) for m in METRICS)


def test_sharpness_is_the_variance_of_the_3x3_laplacian():
    g = torch.Generator().manual_seed(3)
    imgs = torch.rand(3, 20, 17, 3, generator=g)
    y = (imgs @ torch.tensor([0.2126, 0.7152, 0.0722])) * 255.0
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    lap = torch.nn.functional.conv2d(y.unsqueeze(1).double(), kernel.double()[None, None])
    expected = lap.flatten(1).var(dim=1, unbiased=False).numpy()
    assert score_images(imgs, "sharpness") == pytest.approx(expected, rel=1e-5)
    assert np.isnan(score_images(torch.rand(1, 2, 2, 3), "sharpness")[0])  # no 3×3 interior


def test_score_errors():
    with pytest.raises(ValidationError, match="`reference` is required"):
        score_images(_batch(), "delta_e_to_reference")
    with pytest.raises(ValidationError, match="`metric`"):
        score_images(_batch(), "beauty")
    with pytest.raises(ValidationError, match="IMAGE"):
        score_images(torch.zeros(4, 4), "brightness")


def test_select_best_without_rules_is_topk_and_rules_hold():
    rng = np.random.default_rng(3)
    s = rng.random(40)
    np.testing.assert_array_equal(select_best(s, 5), topk(s, 5)[0])
    labels = ["cat" if i % 3 else "dog" for i in range(40)]
    picks = select_best(s, 10, labels=labels, max_per_label=2)
    assert len(picks) == 4
    assert sum(labels[i] == "cat" for i in picks) == 2 and sum(labels[i] == "dog" for i in picks) == 2
    # each pick is the best remaining item of its label
    cats = [i for i in topk(s, 40)[0] if labels[i] == "cat"][:2]
    assert set(cats) <= set(picks.tolist())


def test_select_best_distance_rule_rejects_near_duplicates():
    base = torch.rand(1, 16, 16, 3, generator=torch.Generator().manual_seed(1))
    imgs = torch.cat([base, base * 0.99, 1 - base, base.flip(1)])
    feats = thumbnail_features(imgs)
    scores = np.array([0.9, 0.8, 0.5, 0.4])
    picks = select_best(scores, 3, features=feats, min_distance=3.0)
    assert picks.tolist() == [0, 2, 3]  # 1 is a near copy of 0
    assert select_best(scores, 3, features=feats, min_distance=1000.0).tolist() == [0]
    with pytest.raises(ValidationError, match="`labels`"):
        select_best(scores, 2, labels=["a"], max_per_label=1)
