"""Image size, batch, scale, stitch, alpha and resolution nodes, and the mask/compare previews."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nodeloom.core.context import activate_services
from nodeloom.errors import ValidationError
from nodeloom.nodes.utils import NODE_CLASS_MAPPINGS as NODES
from nodeloom.paths import FolderPaths
from nodeloom.services import Services
from tests.nodes.conftest import run_prompt


def call(class_type: str, **inputs):
    cls = NODES[class_type]
    return getattr(cls(), cls.FUNCTION)(**inputs)


def _ramp(b: int, h: int, w: int, c: int = 3) -> torch.Tensor:
    return torch.linspace(0, 1, b * h * w * c).reshape(b, h, w, c)


def test_get_image_size_and_batch_slicing() -> None:
    img = _ramp(5, 6, 10)
    assert call("GetImageSize", image=img) == (10, 6, 5)
    (part,) = call("ImageFromBatch", image=img, batch_index=3, length=4)
    assert torch.equal(part, img[3:5])
    (last,) = call("ImageFromBatch", image=img, batch_index=99, length=1)
    assert torch.equal(last, img[4:5])
    (rep,) = call("RepeatImageBatch", image=img[:2], amount=3)
    assert rep.shape[0] == 6 and torch.equal(rep[4:6], img[:2])


def test_batch_images_joins_autogrow_sockets_in_order() -> None:
    a, b = torch.zeros(1, 8, 8, 3), torch.ones(2, 4, 4, 3)
    (out,) = call("BatchImagesNode", **{"images.image0": a, "images.image1": b})
    assert out.shape == (3, 8, 8, 3) and out[0].max() == 0 and out[1:].min() == 1
    with pytest.raises(ValidationError, match="connect at least one image"):
        call("BatchImagesNode")


def test_scale_to_total_pixels_keeps_aspect_and_rounds_to_steps() -> None:
    img = _ramp(1, 100, 200)
    (out,) = call("ImageScaleToTotalPixels", image=img, upscale_method="area", megapixels=0.02)
    assert out.shape[1:3] == (102, 205)  # 0.02 MP = 20971 px at 2:1
    (out,) = call("ImageScaleToTotalPixels", image=img, upscale_method="bilinear", megapixels=0.02, resolution_steps=16)
    assert out.shape[1:3] == (96, 208)


@pytest.mark.parametrize(("h", "w", "expect"), [(40, 80, (16, 32)), (80, 40, (32, 16)), (50, 50, (32, 32))])
def test_scale_to_max_dimension(h: int, w: int, expect: tuple[int, int]) -> None:
    (out,) = call("ImageScaleToMaxDimension", image=_ramp(1, h, w), upscale_method="lanczos", largest_size=32)
    assert tuple(out.shape[1:3]) == expect


def test_stitch_directions_spacing_and_padding() -> None:
    red, blue = torch.zeros(1, 8, 8, 3), torch.zeros(2, 4, 6, 3)
    red[..., 0], blue[..., 2] = 1.0, 1.0
    (right,) = call("ImageStitch", image1=red, image2=blue, direction="right", match_image_size=True,
                    spacing_width=2, spacing_color="green")
    assert right.shape == (2, 8, 8 + 2 + 12, 3)  # image2 scaled to height 8 keeps 3:2, batch follows the larger
    assert torch.equal(right[1, 0, 9], torch.tensor([0.0, 1.0, 0.0])) and right[1, 0, 0, 0] == 1.0
    (up,) = call("ImageStitch", image1=red, image2=blue, direction="up", match_image_size=False,
                 spacing_width=0, spacing_color="black")
    assert up.shape == (2, 12, 8, 3) and up[0, 0, 0].sum() == 0 and up[0, 0, 1, 2] == 1.0 and up[0, 4, 0, 0] == 1.0
    assert call("ImageStitch", image1=red, direction="left", match_image_size=True, spacing_width=0,
                spacing_color="white")[0] is red


def test_join_image_with_alpha_inverts_and_resizes_the_mask() -> None:
    img = torch.full((2, 4, 4, 3), 0.5)
    mask = torch.zeros(1, 2, 2)
    mask[0, 0, 0] = 1.0
    (out,) = call("JoinImageWithAlpha", image=img, alpha=mask)
    assert out.shape == (1, 4, 4, 4) and out[0, 3, 3, 3] == 1.0 and out[0, 0, 0, 3] < 1.0


def test_resolution_selector_hits_the_budget_and_multiple() -> None:
    assert call("ResolutionSelector", aspect_ratio="1:1 (Square)", megapixels=1.0, multiple=16) == (1024, 1024)
    w, h = call("ResolutionSelector", aspect_ratio="16:9 (Widescreen)", megapixels=1.0, multiple=8)
    assert (w % 8, h % 8) == (0, 0) and abs(w / h - 16 / 9) < 0.02 and abs(w * h - 2**20) < 0.02 * 2**20
    with pytest.raises(ValidationError, match="aspect_ratio"):
        call("ResolutionSelector", aspect_ratio="5:4", megapixels=1.0)


def test_previews_write_temp_pngs(tmp_path: Path) -> None:
    paths = FolderPaths(tmp_path)
    paths.ensure()
    with activate_services(Services(paths)):
        mask = torch.zeros(2, 4, 4)
        out = call("MaskPreview", mask=mask)
        assert out["result"][0] is mask and len(out["ui"]["images"]) == 2
        assert out["ui"]["images"][0]["type"] == "temp"
        cmp = call("ImageCompare", image_a=_ramp(1, 4, 4), image_b=None)
    assert len(cmp["ui"]["a_images"]) == 1 and cmp["ui"]["b_images"] == []
    assert (tmp_path / "temp" / cmp["ui"]["a_images"][0]["filename"]).is_file()


def test_image_nodes_run_through_the_engine(image_engine) -> None:
    prompt = {
        "i": {"class_type": "EmptyImage", "inputs": {"width": 24, "height": 16, "batch_size": 3, "color": 0}},
        "s": {"class_type": "GetImageSize", "inputs": {"image": ["i", 0]}},
        "b": {"class_type": "BatchImagesNode", "inputs": {"images.image0": ["i", 0], "images.image1": ["i", 0]}},
        "c": {"class_type": "ImageCompare", "inputs": {"image_a": ["i", 0], "image_b": ["b", 0]}},
    }
    result = run_prompt(image_engine, prompt, sinks=[["s", 0], ["s", 1], ["b", 0]])
    assert result.ok, result.errors
    assert (result.value("s", 0), result.value("s", 1), result.value("s", 2)) == (24, 16, 3)
    assert result.value("b").shape == (6, 16, 24, 3)
    assert len(result.outputs["c"]["b_images"]) == 6
