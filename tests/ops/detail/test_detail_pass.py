"""The sequential detail pass with a stand-in inpainter, the classical backend, and sizes."""

import numpy as np
import pytest

from nodeloom.errors import ValidationError
from nodeloom.ops.detail.crop import plan_upscale
from nodeloom.ops.detail.detailer import DetailSettings, classical_inpainter, detail_pass
from nodeloom.ops.detail.segs import Segs, mask_to_segs


def _two_blobs(size=96):
    mask = np.zeros((size, size), np.float32)
    mask[10:26, 10:26] = 1
    mask[60:80, 60:80] = 1
    return mask_to_segs(mask, crop_factor=2.0)


def _paint(value):
    calls = []

    def run(crop, mask, job):
        calls.append((crop.shape, job))
        return np.full_like(crop, value)

    return run, calls


def test_plan_upscale_guide_max_and_skip():
    p = plan_upscale((64, 64), (32, 32), guide_size=128, max_size=1024)
    assert (p.width, p.height, p.skip) == (256, 256, False)
    p = plan_upscale((300, 150), (100, 50), guide_size=512, max_size=600)
    assert (p.width, p.height) == (600, 304)  # 300 rounds to the latent grid
    p = plan_upscale((300, 300), (200, 200), guide_size=128, force_inpaint=False)
    assert p.skip and "guide_size" in p.reason
    p = plan_upscale((64, 48), (32, 32), inpaint_size=(512, 384))
    assert (p.width, p.height) == (512, 384)
    with pytest.raises(ValidationError, match="guide_size"):
        plan_upscale((8, 8), (4, 4), guide_size=0)


def test_no_segments_passes_image_through_with_note():
    image = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    run, calls = _paint(1.0)
    r = detail_pass(image, Segs((32, 32), []), run)
    assert np.array_equal(r.image, image) and not calls
    assert "passed through unchanged" in r.notes[0]


def test_pass_changes_only_inside_feathered_masks():
    image = np.full((96, 96, 3), 0.2, np.float32)
    segs = _two_blobs()
    run, calls = _paint(0.9)
    r = detail_pass(image, segs, run, DetailSettings(guide_size=64, feather=2, seam_match=0))
    changed = np.any(r.image != image, axis=-1)
    assert np.array_equal(changed, r.combined_mask > 0)
    assert r.image[18, 18, 0] == pytest.approx(0.9, abs=1e-3) and r.image[70, 70, 0] == pytest.approx(0.9, abs=1e-3)
    assert r.image[45, 45, 0] == np.float32(0.2)
    assert len(calls) == 2 and calls[0][0][0] >= 64 and len(r.crops_before) == len(r.crops_after) == 2


def test_pass_is_sequential():
    image = np.zeros((40, 40, 3), np.float32)
    mask = np.zeros((40, 40), np.float32)
    mask[10:20, 10:20] = 1
    seg = mask_to_segs(mask, crop_factor=2.0).segments[0]
    seen = []

    def run(crop, m, job):
        seen.append(float(crop.max()))
        return np.clip(crop + 0.5, 0, 1)

    detail_pass(image, Segs((40, 40), [seg, seg]), run, DetailSettings(feather=0, seam_match=0, guide_size=20))
    assert seen[0] == 0.0 and seen[1] > 0.4  # the second pass sees the first one's paste


def test_skip_routing_and_seeds_from_box():
    image = np.full((96, 96, 3), 0.2, np.float32)
    segs = _two_blobs()
    run, calls = _paint(0.9)
    r = detail_pass(image, segs, run, DetailSettings(guide_size=32, prompt="[SKIP] [SEP] red eyes", seed=3))
    assert len(calls) == 1 and calls[0][1].prompt == "red eyes" and calls[0][1].index == 1
    assert r.image[18, 18, 0] == np.float32(0.2)
    assert any("[SKIP]" in n for n in r.notes)
    # the same box gets the same seed whatever its position in the list
    run2, calls2 = _paint(0.9)
    detail_pass(image, Segs(segs.shape, segs.segments[::-1]), run2, DetailSettings(guide_size=32, seed=3))
    seeds = {c[1].segment.bbox: c[1].seed for c in calls2}
    assert seeds[calls[0][1].segment.bbox] == calls[0][1].seed


def test_explicit_seeds_and_size_checks():
    image = np.zeros((96, 96, 3), np.float32)
    run, calls = _paint(0.5)
    detail_pass(image, _two_blobs(), run, DetailSettings(guide_size=32), seeds=[11, 22])
    assert [c[1].seed for c in calls] == [11, 22]
    with pytest.raises(ValidationError, match="seeds"):
        detail_pass(image, _two_blobs(), run, seeds=[1])
    with pytest.raises(ValidationError, match="96x96"):
        detail_pass(np.zeros((50, 50, 3), np.float32), _two_blobs(), run)


def test_padding_and_inpaint_size_reshape_the_crop():
    image = np.zeros((96, 96, 3), np.float32)
    run, calls = _paint(0.5)
    detail_pass(image, _two_blobs(), run, DetailSettings(padding=4, inpaint_width=128, inpaint_height=64))
    assert all(c[0][:2] == (64, 128) for c in calls)


def test_classical_inpainter_fills_from_surroundings():
    image = np.full((64, 64, 3), 0.5, np.float32)
    image[24:40, 24:40] = (1.0, 0.0, 0.0)  # a red blemish
    mask = np.zeros((64, 64), np.float32)
    mask[22:42, 22:42] = 1
    r = detail_pass(image, mask_to_segs(mask, crop_factor=2.0), classical_inpainter("telea"), DetailSettings(guide_size=32))
    assert abs(float(r.image[32, 32, 0]) - 0.5) < 0.1
    with pytest.raises(ValidationError, match="`method`"):
        classical_inpainter("magic")


def test_inverted_mask_reaches_the_image_border():
    from nodeloom.ops.detail.process import merge_invert

    image = np.full((80, 80, 3), 0.2, np.float32)
    mask = np.zeros((80, 80), np.float32)
    mask[30:50, 30:50] = 1  # the hole's centre is 10 px (> 3 sigma) from its edge
    background = merge_invert(mask_to_segs(mask), "merge_invert")
    run, _ = _paint(0.9)
    r = detail_pass(image, background, run, DetailSettings(guide_size=80, feather=2, seam_match=0))
    assert r.image[0, 0, 0] == pytest.approx(0.9) and r.image[79, 40, 0] == pytest.approx(0.9)  # no fade at borders
    assert r.image[40, 40, 0] == np.float32(0.2)
