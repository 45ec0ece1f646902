"""TripoSplatPreprocessImage: the subject centred on a black square at 1.2x its box, erosion,
mask batching/resizing, the size rounding and the empty-mask error."""

from __future__ import annotations

import pytest
import torch

from nodeloom.errors import ValidationError
from nodeloom.nodes.utils import NODE_CLASS_MAPPINGS as NODES
from tests.nodes.conftest import run_prompt


def prep(**inputs):
    cls = NODES["TripoSplatPreprocessImage"]
    return getattr(cls(), cls.FUNCTION)(**inputs)[0]


def _scene(h=64, w=96, box=(40, 10, 20, 30)):
    x, y, bw, bh = box
    image = torch.zeros(1, h, w, 3)
    image[..., 0] = 1.0  # red background the crop must drop
    image[:, y:y + bh, x:x + bw] = torch.tensor([0.2, 0.8, 0.4])
    mask = torch.zeros(1, h, w)
    mask[:, y:y + bh, x:x + bw] = 1.0
    return image, mask


def test_subject_is_centred_on_black_at_1_2_times_its_box():
    image, mask = _scene()
    out = prep(image=image, mask=mask, erode_radius=0, size=256)
    assert out.shape == (1, 256, 256, 3)
    # short side 64 → 256 (x4): the 30 px tall box becomes ~120 px and the crop 1.2x the matte's box
    # (which the Lanczos resize widens by a few faint ringing pixels), so the subject fills ~3/4
    covered = (out[0].sum(-1) > 0.3).float()
    rows, cols = covered.any(1).nonzero(), covered.any(0).nonzero()
    height, width = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
    assert 0.7 * 256 < height < 256 / 1.2 + 4 and width / height == pytest.approx(20 / 30, abs=0.03)
    assert (rows.min() + rows.max()) / 2 == pytest.approx(128, abs=3) and (cols.min() + cols.max()) / 2 == pytest.approx(128, abs=3)
    centre = out[0, 128, 128]
    assert centre.tolist() == pytest.approx([0.2, 0.8, 0.4], abs=0.02)
    assert out[0, 2, 2].abs().max() < 1e-6 and out[0, 128, 2].abs().max() < 1e-6  # black, not the red background
    assert out[..., 0].max() < 0.5  # none of the red background survives


def test_erosion_drops_specks_from_the_crop_box_and_sizes_round_to_16():
    image, mask = _scene()
    mask[:, 60, 2] = 1.0  # a one-pixel speck far from the subject (4x4 after the x4 resize)
    plain = prep(image=image, mask=mask, erode_radius=0, size=256)
    eroded = prep(image=image, mask=mask, erode_radius=6, size=256)  # wider than the speck and its Lanczos halo

    def covered_rows(out):
        return int((out[0].sum(-1) > 0.3).any(1).sum())

    # the speck widens the box and shrinks the subject; erosion removes it and the subject fills the crop again
    assert covered_rows(plain) < 0.6 * covered_rows(eroded)
    assert prep(image=image, mask=mask, erode_radius=1, size=300).shape == (1, 288, 288, 3)


def test_mask_is_repeated_over_the_batch_and_resized_to_the_image():
    image, mask = _scene()
    batch = torch.cat([image, image.flip(2)])
    small = torch.nn.functional.interpolate(mask[:, None], size=(32, 48), mode="nearest")[:, 0]
    out = prep(image=batch, mask=small, erode_radius=0, size=256)
    assert out.shape == (2, 256, 256, 3)
    assert out[0, 128, 128].tolist() == pytest.approx([0.2, 0.8, 0.4], abs=0.05)


def test_empty_mask_is_refused():
    image, _ = _scene()
    with pytest.raises(ValidationError, match="mask"):
        prep(image=image, mask=torch.zeros(1, 64, 96), erode_radius=1, size=256)


def test_template_widget_values_through_the_engine(image_engine):
    # 3d_triposplat_image_to_gaussian_splat: [erode_radius 1, size 1024]; 256 keeps the test small
    image, mask = _scene()
    prompt = {"1": {"class_type": "TestTensor", "inputs": {"key": "img"}},
              "2": {"class_type": "TestTensor", "inputs": {"key": "mask"}},
              "3": {"class_type": "TripoSplatPreprocessImage",
                    "inputs": {"image": ["1", 0], "mask": ["2", 0], "erode_radius": 1, "size": 256}}}
    result = run_prompt(image_engine, prompt, {"img": image, "mask": mask}, sinks=[["3", 0]])
    assert result.status == "success", result.errors
    assert result.value("3").shape == (1, 256, 256, 3)
    info = image_engine.object_info("TripoSplatPreprocessImage")["TripoSplatPreprocessImage"]
    assert info["input_order"]["required"] == ["image", "mask", "erode_radius", "size"]
    size = info["input"]["required"]["size"][1]
    assert (size["default"], size["min"], size["max"], size["step"]) == (1024, 256, 4096, 16)
