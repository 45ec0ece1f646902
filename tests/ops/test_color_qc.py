"""Colour QC op: known failing shares, real photo checks, size handling, heatmap rendering."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.ops.color import hsv_to_rgb, rgb_to_hsv
from nodeloom.ops.color_qc import color_qc, render_heatmap


def _grey_with_shifted_band(width_shifted: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    ref = torch.full((1, 100, 100, 3), 0.5)
    cand = ref.clone()
    cand[:, :, :width_shifted] = torch.tensor([0.8, 0.3, 0.3])  # far above ΔE 5
    return ref, cand


def test_known_shifted_region_gives_known_failing_share():
    ref, cand = _grey_with_shifted_band(30)
    res = color_qc(ref, cand, grid_step=10, threshold=5.0)
    s = res.images[0]
    # samples at x = 5, 15, ..., 95: three of ten columns fall in the band
    assert s.samples == 100 and s.failing_share == pytest.approx(0.30)
    assert res.passed  # 30 % is allowed (≤ the limit)
    assert not color_qc(ref, cand, max_failing_share=0.29).passed
    assert s.median == pytest.approx(0.0, abs=1e-4) and s.max > 20
    report = res.report()
    assert report["status"] == "PASS" and report["images"][0]["failing_share"] == pytest.approx(0.3)


def test_every_method_and_batch_broadcast():
    ref, cand = _grey_with_shifted_band(50)
    both = torch.cat([ref, cand])
    for method in ("ciede2000", "cie76", "cie94_graphic_arts", "cmc_2_1"):
        res = color_qc(ref, both, threshold=5.0, method=method)
        assert [s.passed for s in res.images] == [True, False] and not res.passed
    res = color_qc(ref, cand, threshold=0.1, method="rgb_euclidean")
    assert res.images[0].failing_share == pytest.approx(0.5)


def test_coffee_fails_against_hue_shifted_copy_and_passes_against_itself():
    data = pytest.importorskip("skimage.data")
    img = torch.from_numpy(data.coffee()[::2, ::2].astype(np.float32) / 255.0)[None]
    hsv = rgb_to_hsv(img)
    hsv[..., 0] = (hsv[..., 0] + 30.0) % 360.0
    shifted = hsv_to_rgb(hsv)
    assert color_qc(img, img).passed
    assert color_qc(img, img).images[0].max == pytest.approx(0.0, abs=1e-3)
    bad = color_qc(img, shifted)
    assert not bad.passed and bad.images[0].failing_share > 0.3


def test_size_mismatch_is_an_error_unless_resize():
    ref = torch.rand(1, 40, 60, 3)
    small = torch.nn.functional.interpolate(ref.movedim(-1, 1), size=(20, 30), mode="area").movedim(1, -1)
    with pytest.raises(ValidationError, match="30×20 but `reference` is 60×40"):
        color_qc(ref, small)
    res = color_qc(ref, small, resize=True, threshold=50.0)
    assert res.resized and res.delta_e.shape == (1, 40, 60)
    with pytest.raises(ValidationError, match="`grid_step`"):
        color_qc(ref, ref, grid_step=0)
    with pytest.raises(ValidationError, match="1 or as many"):
        color_qc(torch.rand(2, 4, 4, 3), torch.rand(3, 4, 4, 3))


def test_heatmap_colours_and_legend():
    de = torch.zeros(1, 30, 200)
    de[:, :, 100:] = 100.0
    heat = render_heatmap(de, threshold=5.0)
    assert heat.shape[0] == 1 and heat.shape[1] > 30 and heat.shape[2] == 200 and heat.shape[3] == 3
    green, red = heat[0, 10, 10], heat[0, 10, 150]
    assert green[1] > green[0] and red[0] > red[1]
    legend = heat[0, 30:]
    assert legend[:, :, :].min() < 0.2  # dark text/tick on the white strip
    assert render_heatmap(de, 5.0, legend=False).shape == (1, 30, 200, 3)
