"""Tiled scaling: tile layout and count, seamless blending, callbacks, input checks."""

import pytest
import torch

from nodeloom.ops.tiled_scale import tile_count, tile_positions, tiled_scale


def _nearest(scale):
    return lambda x: torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest")


def test_positions_cover_the_axis_with_the_stated_overlap():
    pos = tile_positions(100, 32, 8)
    assert pos[0] == (0, 32)
    assert all(b[0] - a[0] == 24 for a, b in zip(pos, pos[1:]))
    assert pos[-1][0] + pos[-1][1] == 100
    assert tile_positions(20, 32, 8) == [(0, 20)]


@pytest.mark.parametrize("h,w,tile,overlap", [(20, 20, 32, 8), (100, 40, 32, 8), (513, 1030, 512, 32)])
def test_tile_count_matches_the_tiles_run(h, w, tile, overlap):
    assert tile_count(h, w, tile, overlap) == len(tile_positions(h, tile, overlap)) * len(tile_positions(w, tile, overlap))


def test_a_pointwise_function_gives_the_same_result_tiled_and_whole():
    img = torch.rand(2, 3, 45, 37, generator=torch.Generator().manual_seed(1))
    calls = []
    out = tiled_scale(img, _nearest(3), scale=3, tile=16, overlap=4, on_tile=lambda: calls.append(1))
    assert out.shape == (2, 3, 135, 111)
    torch.testing.assert_close(out, _nearest(3)(img), atol=1e-6, rtol=0)
    assert len(calls) == 2 * tile_count(45, 37, 16, 4)


def test_an_image_that_fits_one_tile_runs_once():
    img = torch.rand(1, 3, 10, 12)
    calls = []
    out = tiled_scale(img, _nearest(2), scale=2, tile=16, overlap=4, on_tile=lambda: calls.append(1))
    assert torch.equal(out, _nearest(2)(img)) and len(calls) == 1


def test_other_output_channel_counts_are_assembled():
    img = torch.rand(1, 3, 30, 30)
    out = tiled_scale(img, lambda x: _nearest(2)(x)[:, :1], scale=2, tile=16, overlap=4, out_channels=1)
    torch.testing.assert_close(out, _nearest(2)(img)[:, :1], atol=1e-6, rtol=0)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="overlap"):
        tiled_scale(torch.rand(1, 3, 8, 8), _nearest(2), scale=2, tile=8, overlap=8)
    with pytest.raises(ValueError, match=r"\[B,C,H,W\]"):
        tiled_scale(torch.rand(3, 8, 8), _nearest(2), scale=2)
