"""Colour spaces and distances: Sharma 2005 data, skimage cross-checks, properties."""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nodeloom.errors import ValidationError
from nodeloom.ops import color as C

REPO = Path(__file__).resolve().parents[2]
SHARMA_LOCAL = REPO / "tests" / "data" / "ciede2000_sharma2005.tsv"
SHARMA_SHARED = REPO.parent / "shared" / "data" / "ciede2000_sharma2005.tsv"


def _load(path: Path) -> np.ndarray:
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    return np.array([[float(v) for v in r] for r in rows if r[0] and not r[0].startswith(("#", "L1"))])


SHARMA = _load(SHARMA_LOCAL)


def test_sharma_copy_has_34_rows_and_matches_shared_original():
    assert SHARMA.shape == (34, 7)
    if not SHARMA_SHARED.exists():
        pytest.skip("the shared data folder is not next to this checkout")
    np.testing.assert_array_equal(SHARMA, _load(SHARMA_SHARED))


@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_ciede2000_reproduces_sharma_both_orders(precision):
    lab1, lab2, expected = SHARMA[:, :3], SHARMA[:, 3:6], SHARMA[:, 6]
    forward = C.delta_e_2000(lab1, lab2, precision=precision)
    backward = C.delta_e_2000(lab2, lab1, precision=precision)
    np.testing.assert_allclose(forward, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(backward, expected, atol=1e-4, rtol=0)


def test_ciede2000_hue_180_traps_pairs_10_and_14():
    # Pairs 10 and 14 (1-based) have hues exactly 180° apart; a wrong mean-hue wrap misses them.
    for row in (9, 13):
        got = C.delta_e_2000(SHARMA[row, :3], SHARMA[row, 3:6], precision="fast")
        assert abs(float(got) - SHARMA[row, 6]) < 1e-4


def test_ciede2000_torch_keeps_kind_dtype_and_shape():
    lab1 = torch.tensor(SHARMA[:, :3].reshape(2, 17, 3), dtype=torch.float32)
    lab2 = torch.tensor(SHARMA[:, 3:6].reshape(2, 17, 3), dtype=torch.float32)
    out = C.delta_e_2000(lab1, lab2)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (2, 17)
    np.testing.assert_allclose(out.numpy().reshape(-1), SHARMA[:, 6], atol=1e-4)


def test_ciede2000_matches_skimage_on_random_pairs():
    skcolor = pytest.importorskip("skimage.color")
    rng = np.random.default_rng(1)
    lab1 = np.stack([rng.uniform(0, 100, 4000), rng.uniform(-90, 90, 4000), rng.uniform(-90, 90, 4000)], -1)
    lab2 = lab1 + rng.normal(0, 8, lab1.shape)
    ref = skcolor.deltaE_ciede2000(lab1, lab2)
    np.testing.assert_allclose(C.delta_e_2000(lab1, lab2), ref, atol=1e-9)
    np.testing.assert_allclose(C.delta_e_2000(lab1, lab2, precision="fast"), ref, atol=1e-4)


def test_cie94_and_cmc_match_skimage_and_are_asymmetric():
    skcolor = pytest.importorskip("skimage.color")
    rng = np.random.default_rng(2)
    lab1 = np.stack([rng.uniform(0, 100, 500), rng.uniform(-80, 80, 500), rng.uniform(-80, 80, 500)], -1)
    lab2 = lab1 + rng.normal(0, 10, lab1.shape)
    ga = C.delta_e_94(lab1, lab2)
    np.testing.assert_allclose(ga, skcolor.deltaE_ciede94(lab1, lab2), atol=1e-9)
    tex = C.delta_e_94(lab1, lab2, application="textiles")
    np.testing.assert_allclose(tex, skcolor.deltaE_ciede94(lab1, lab2, kL=2, k1=0.048, k2=0.014), atol=1e-9)
    cmc = C.delta_e_cmc(lab1, lab2, l=2, c=1)
    np.testing.assert_allclose(cmc, skcolor.deltaE_cmc(lab1, lab2, kL=2, kC=1), atol=1e-9)
    # lab1 is the reference: swapping changes the weights, so the values differ.
    assert np.abs(ga - C.delta_e_94(lab2, lab1)).max() > 0.1
    assert np.abs(cmc - C.delta_e_cmc(lab2, lab1)).max() > 0.1


def test_known_values_for_simple_distances():
    assert C.delta_e_76([50, 0, 0], [53, 4, 0]) == pytest.approx(5.0)
    assert C.rgb_euclidean([0, 0, 0], [1, 1, 1]) == pytest.approx(np.sqrt(3))
    assert C.rgb_manhattan([0.1, 0.2, 0.3], [0.3, 0.2, 0.0]) == pytest.approx(0.5)
    # 350° and 10° are 20° apart, not 340°.
    assert C.hsv_distance([350, 0.5, 0.5], [10, 0.5, 0.5]) == pytest.approx(20 / 180)
    assert C.hsv_distance([0, 0, 0], [180, 1, 1], weights=(1, 0, 0)) == pytest.approx(1.0)


def test_rgb_to_lab_reference_points():
    np.testing.assert_allclose(C.rgb_to_lab([1.0, 1.0, 1.0]), [100, 0, 0], atol=1e-3)
    np.testing.assert_allclose(C.rgb_to_lab([0.0, 0.0, 0.0]), [0, 0, 0], atol=1e-9)
    # sRGB red in CIELAB D65 is about (53.24, 80.09, 67.20).
    np.testing.assert_allclose(C.rgb_to_lab([1.0, 0.0, 0.0]), [53.24, 80.09, 67.20], atol=0.02)


def test_hsv_matches_colorsys():
    rng = np.random.default_rng(3)
    rgb = rng.uniform(0, 1, (300, 3))
    rgb[:20, 1] = rgb[:20, 0]  # ties between channels
    rgb[20:30] = 0.25  # greys
    ref = np.array([colorsys.rgb_to_hsv(*p) for p in rgb])
    ref[:, 0] *= 360.0
    np.testing.assert_allclose(C.rgb_to_hsv(rgb), ref, atol=1e-9)
    np.testing.assert_allclose(C.hsv_to_rgb(C.rgb_to_hsv(rgb)), rgb, atol=1e-9)


def test_color_distance_dispatch_and_errors():
    a = np.array([[0.2, 0.4, 0.6]])
    b = np.array([[0.25, 0.35, 0.6]])
    for method in C.METHODS:
        d = C.color_distance(a, b, method)
        assert d.shape == (1,) and d[0] > 0
        assert C.color_distance(a, a, method)[0] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValidationError, match="`method`"):
        C.color_distance(a, b, "cie2077")
    with pytest.raises(ValidationError, match="3 channels"):
        C.delta_e_2000(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValidationError, match="broadcast"):
        C.delta_e_76(np.zeros((4, 3)), np.zeros((5, 3)))
    with pytest.raises(ValidationError, match="`precision`"):
        C.rgb_to_lab(a, precision="half")
    with pytest.raises(ValidationError, match="`application`"):
        C.delta_e_94(a, b, application="print")


def test_inputs_are_never_mutated():
    lab1 = SHARMA[:, :3].copy()
    before = lab1.copy()
    C.delta_e_2000(lab1, SHARMA[:, 3:6], precision="fast")
    C.rgb_to_lab(np.clip(lab1 / 100, 0, 1))
    np.testing.assert_array_equal(lab1, before)


_lab = st.tuples(
    st.floats(0, 100, allow_nan=False), st.floats(-128, 128, allow_nan=False), st.floats(-128, 128, allow_nan=False)
)


@settings(max_examples=150, deadline=None)
@given(_lab, _lab)
def test_property_delta_e_nonnegative_zero_on_self_and_ciede2000_symmetric(x, y):
    # float32-representable inputs, so the fast path sees exactly the same colours
    x, y = np.array(x, dtype=np.float32).astype(np.float64), np.array(y, dtype=np.float32).astype(np.float64)
    for fn in (C.delta_e_76, C.delta_e_94, C.delta_e_cmc, C.delta_e_2000):
        assert float(fn(x, y)) >= 0.0
        assert float(fn(x, x)) == pytest.approx(0.0, abs=1e-9)
    assert float(C.delta_e_2000(x, y)) == pytest.approx(float(C.delta_e_2000(y, x)), abs=1e-9)
    assert float(C.delta_e_2000(x, y, precision="fast")) == pytest.approx(float(C.delta_e_2000(x, y)), abs=2e-3)


@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, (5, 3), elements=st.floats(0, 1, allow_nan=False)))
def test_property_lab_round_trip(rgb):
    # atol 1e-7: the two pieces of the sRGB curve meet with a ~3e-8 step at 0.04045.
    np.testing.assert_allclose(C.lab_to_rgb(C.rgb_to_lab(rgb)), rgb, atol=1e-7)
    np.testing.assert_allclose(C.hsv_to_rgb(C.rgb_to_hsv(rgb)), rgb, atol=1e-9)


@pytest.mark.gpu
def test_fast_path_on_cuda_matches_sharma_and_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    lab1 = torch.tensor(SHARMA[:, :3], dtype=torch.float32, device="cuda")
    lab2 = torch.tensor(SHARMA[:, 3:6], dtype=torch.float32, device="cuda")
    out = C.delta_e_2000(lab1, lab2)
    assert out.device.type == "cuda"
    np.testing.assert_allclose(out.cpu().numpy(), SHARMA[:, 6], atol=1e-4)
    auto = C.delta_e_2000(SHARMA[:, :3], SHARMA[:, 3:6], precision="fast", device="auto")
    np.testing.assert_allclose(auto, SHARMA[:, 6], atol=1e-4)
