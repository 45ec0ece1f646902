"""Painter, Crop Image (V2), Image Histogram and Curve Editor: behaviour, the curve maths, and the
templates' widget values converting onto these inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from nodeloom.core.context import activate_services
from nodeloom.core.workflow_ui import ui_to_api
from nodeloom.errors import ValidationError
from nodeloom.nodes.utils import NODE_CLASS_MAPPINGS as NODES
from nodeloom.ops.curves import apply_curve, curve_lut
from nodeloom.paths import FolderPaths
from nodeloom.services import Services


def call(class_type: str, **inputs):
    cls = NODES[class_type]
    return getattr(cls(), cls.FUNCTION)(**inputs)


@pytest.fixture
def paths(tmp_path: Path):
    folders = FolderPaths(tmp_path)
    folders.ensure()
    with activate_services(Services(folders)):
        yield folders


def _strokes_png(folder: Path, name: str, size: tuple[int, int]) -> None:
    """A red square, fully opaque, on a transparent canvas; one half-opaque white pixel."""
    rgba = np.zeros((size[1], size[0], 4), dtype=np.uint8)
    rgba[2:6, 2:6] = (255, 0, 0, 255)
    rgba[0, 0] = (255, 255, 255, 128)
    PILImage.fromarray(rgba, "RGBA").save(folder / name)


def test_painter_composites_strokes_over_a_canvas_or_an_image(paths: FolderPaths) -> None:
    _strokes_png(paths.input_dir, "painter-1.png", (8, 8))
    out = call("Painter", mask="painter-1.png [input]", width=8, height=8, bg_color="#0000ff")
    image, mask = out["result"]
    assert image.shape == (1, 8, 8, 3) and mask.shape == (1, 8, 8)
    assert torch.allclose(image[0, 3, 3], torch.tensor([1.0, 0.0, 0.0])) and mask[0, 3, 3] == 1.0
    assert torch.allclose(image[0, 7, 7], torch.tensor([0.0, 0.0, 1.0])) and mask[0, 7, 7] == 0.0
    a = 128 / 255
    assert torch.allclose(image[0, 0, 0], torch.tensor([a, a, 1.0]), atol=1e-5)
    assert (paths.temp_dir / out["ui"]["images"][0]["filename"]).is_file()  # the preview
    base = torch.full((2, 16, 16, 3), 0.5)
    image, mask = call("Painter", image=base, mask="painter-1.png", width=512, height=512, bg_color="#000000")["result"]
    assert image.shape == (1, 16, 16, 3) and mask.shape == (1, 16, 16)  # first frame; strokes scaled to it
    assert torch.allclose(image[0, 8, 8], torch.tensor([1.0, 0.0, 0.0]), atol=0.06) and image[0, 15, 15, 0] == 0.5  # Lanczos rings a little
    empty, nothing = call("Painter", image=base, mask="", width=64, height=64, bg_color="#000000")["result"]
    assert torch.equal(empty, base[:1]) and nothing.abs().sum() == 0
    with pytest.raises(ValidationError, match="`mask`"):
        call("Painter", mask="missing.png [input]", width=64, height=64, bg_color="#000000")
    with pytest.raises(ValidationError, match="`bg_color`"):
        call("Painter", mask="", width=64, height=64, bg_color="blue-ish")


def test_crop_v2_clips_the_region_to_the_image(paths: FolderPaths) -> None:
    image = torch.arange(2 * 10 * 12 * 3, dtype=torch.float32).reshape(2, 10, 12, 3) / 720
    out = call("ImageCropV2", image=image, crop_region={"x": 2, "y": 3, "width": 4, "height": 5})
    assert torch.equal(out["result"][0], image[:, 3:8, 2:6]) and len(out["ui"]["images"]) == 2
    edge = call("ImageCropV2", image=image, crop_region={"x": 50, "y": 8, "width": 512, "height": 512})["result"][0]
    assert torch.equal(edge, image[:, 8:, 11:])
    for bad in ({"x": 0, "y": 0, "width": 0, "height": 4}, {"x": 0, "y": 0}, [0, 0, 4, 4]):
        with pytest.raises(ValidationError, match="`crop_region`"):
            call("ImageCropV2", image=image, crop_region=bad)


def test_histograms_count_every_pixel_of_the_first_image() -> None:
    image = torch.zeros(2, 4, 5, 3)
    image[0, :2, :, 0] = 1.0  # top half red
    image[1] = 0.5  # the second image is not measured
    image[0, 2:, :2] = 0.5  # two grey columns in the bottom half: level ⌊127.5⌋ = 127
    rgb, luma, red, green, blue = call("ImageHistogram", image=image)
    assert all(len(h) == 256 for h in (rgb, luma, red, green, blue)) and sum(red) == sum(luma) == 20
    assert (red[255], red[127], red[0]) == (10, 4, 6) and (green[127], green[0]) == (4, 16) and blue == green
    assert luma[int(0.2126 * 255)] == 10 and luma[127] == 4
    assert rgb[0] == (6 + 16 + 16) // 3 and rgb[255] == 10 // 3 and rgb[127] == 4


def test_curves_interpolate_monotonically_through_their_points() -> None:
    identity = curve_lut({"points": [[0, 0], [1, 1]], "interpolation": "monotone_cubic"})
    assert np.allclose(identity, np.linspace(0, 1, 256), atol=1e-6)
    s_curve = {"points": [[0, 0], [0.25, 0.1], [0.75, 0.9], [1, 1]], "interpolation": "monotone_cubic"}
    lut = curve_lut(s_curve)
    assert np.all(np.diff(lut) >= -1e-7) and abs(lut[0]) < 1e-6 and abs(lut[255] - 1) < 1e-6
    xs = np.linspace(0, 1, 256)
    assert abs(np.interp(0.25, xs, lut) - 0.1) < 5e-3 and abs(np.interp(0.75, xs, lut) - 0.9) < 5e-3
    linear = curve_lut({"points": [[0.2, 0.0], [0.8, 1.0]], "interpolation": "linear"})
    assert linear[0] == 0 and linear[255] == 1 and abs(linear[128] - (128 / 255 - 0.2) / 0.6) < 1e-5
    inverted = apply_curve(torch.tensor([0.0, 0.5, 1.0]), {"points": [[0, 1], [1, 0]], "interpolation": "linear"})
    assert torch.allclose(inverted, torch.tensor([1.0, 0.5, 0.0]))


def test_curve_editor_checks_the_curve_and_shows_the_histogram() -> None:
    curve = {"points": [[1, 1], [0, 0], [0.4, 0.6]], "interpolation": "monotone_cubic"}
    out = call("CurveEditor", curve=curve, histogram=[1] * 256)
    assert out["result"][0]["points"] == [[0.0, 0.0], [0.4, 0.6], [1.0, 1.0]] and out["ui"]["histogram"] == [1] * 256
    assert call("CurveEditor", curve=curve)[0]["interpolation"] == "monotone_cubic"
    for bad in ({"points": [], "interpolation": "linear"}, {"points": [[0, 0]], "interpolation": "spline"}, "0,0;1,1"):
        with pytest.raises(ValidationError, match="`curve`"):
            call("CurveEditor", curve=bad)


def test_template_widget_values_reach_the_inputs() -> None:
    """Widget values as the official templates store them (basic_image_color_adjustment, 3d_pixal3d_multi_views)."""
    box = {"x": 1652, "y": 0, "width": 1492, "height": 2688}
    curve = {"points": [[0, 0], [0.39, 0.53], [1, 1]], "interpolation": "monotone_cubic"}
    nodes = [
        {"id": 1, "type": "ImageCropV2", "inputs": [{"name": "image", "type": "IMAGE", "link": None}],
         "widgets_values": [box, 0, 0, 512, 512]},
        {"id": 2, "type": "CurveEditor", "inputs": [{"name": "histogram", "type": "HISTOGRAM", "link": None},
                                                    {"name": "curve", "type": "CURVE", "widget": {"name": "curve"},
                                                     "link": None}], "widgets_values": [curve]},
        {"id": 3, "type": "Painter", "inputs": [{"name": "image", "type": "IMAGE", "link": None}],
         "widgets_values": ["painter-3-1.png [input]", 1024, 1024, "#000000"]},
    ]
    prompt = ui_to_api({"nodes": nodes, "links": []}, lambda t: NODES[t].INPUT_TYPES())
    assert prompt["1"]["inputs"] == {"crop_region": box}
    assert prompt["2"]["inputs"] == {"curve": curve}
    assert prompt["3"]["inputs"] == {"mask": "painter-3-1.png [input]", "width": 1024, "height": 1024,
                                     "bg_color": "#000000"}
