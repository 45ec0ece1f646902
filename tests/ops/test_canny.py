import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.ops.canny import canny_edges


def test_square_edges_are_found_on_its_border():
    img = torch.zeros(1, 32, 32, 3)
    img[:, 8:24, 8:24] = 1.0
    edges = canny_edges(img, 0.2, 0.6)
    assert edges.shape == (1, 32, 32, 3)
    assert edges[0, 8:24, 7:9, 0].sum() + edges[0, 8:24, 23:25, 0].sum() > 20
    assert edges[0, 12:20, 12:20].sum() == 0 and edges[0, :4, :4].sum() == 0


def test_thresholds_out_of_order_are_refused():
    with pytest.raises(ValidationError, match="low_threshold"):
        canny_edges(torch.zeros(1, 8, 8, 3), 0.9, 0.1)
