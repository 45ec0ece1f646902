"""Palettes: parsing, CSS names, nearest-colour matching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.ops.palette import css_palette, nearest_in_palette, parse_palette, to_hex


def test_parse_palette_formats():
    pal = parse_palette("#ff0000, navy; brand: #1a2b3c\n#0f0")
    assert pal.names == ["#ff0000", "navy", "brand", "#00ff00"]
    np.testing.assert_allclose(pal.rgb[1], [0, 0, 128 / 255])
    assert to_hex(pal.rgb[2]) == "#1a2b3c"
    assert len(parse_palette("css")) == len(css_palette()) == 148
    with pytest.raises(ValidationError, match="'blurple'"):
        parse_palette("red, blurple")
    with pytest.raises(ValidationError, match="empty"):
        parse_palette(" , ")


def test_nearest_in_palette_per_pixel_and_names():
    pal = parse_palette("red, lime, blue, white, black")
    img = torch.tensor([[[0.9, 0.1, 0.1], [0.05, 0.05, 0.05]], [[0.2, 0.3, 0.95], [0.97, 0.98, 0.99]]])
    for method in ("ciede2000", "rgb_euclidean", "cie76"):
        idx, dist = nearest_in_palette(img, pal, method)
        assert idx.tolist() == [[0, 4], [2, 3]], method
        assert (dist >= 0).all()
    css = css_palette()
    idx, dist = nearest_in_palette(np.array([[1.0, 165 / 255, 0.0]]), css)
    assert css.names[idx[0]] == "orange" and dist[0] == pytest.approx(0.0, abs=1e-3)
