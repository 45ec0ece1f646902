"""Detail pack nodes called directly inside engine services."""

import json

import numpy as np
import pytest
import skimage.data
import torch

from nodeloom.core.context import activate_services
from nodeloom.errors import PolicyDeniedError, ValidationError
from nodeloom.nodes import detail
from nodeloom.nodes.detail import (
    BboxDetectorSEGS,
    DetailVideoFrames,
    FaceDetailer,
    MaskDetectorProvider,
    MaskToSEGS,
    OpenCVFaceDetectorProvider,
    SEGSDetail,
    SEGSFilter,
    SEGSMaskTransform,
    SEGSOrder,
    SEGSPaste,
    SEGSPreviewBoxes,
    SEGSProcess,
    SEGSSetLabel,
    SEGSToMaskBatch,
    SegsToCombinedMask,
    UltralyticsDetectorProvider,
)
from nodeloom.ops.detail.segs import box_iou
from nodeloom.paths import FolderPaths
from nodeloom.services import Services

DETAIL_DEFAULTS = dict(
    guide_size=64, guide_size_for=True, max_size=256, seed=1, steps=2, cfg=7.0, sampler_name="euler",
    scheduler="normal", denoise=0.4, feather=4, noise_mask=True, force_inpaint=True, cycle=1,
)


@pytest.fixture()
def svc(tmp_path):
    services = Services(FolderPaths(tmp_path))
    with activate_services(services):
        yield services


def _img(arr):
    return torch.from_numpy(np.asarray(arr, np.float32) / 255.0).unsqueeze(0)


def test_pack_registers_with_tooltips():
    for name, cls in detail.NODE_CLASS_MAPPINGS.items():
        spec = cls.INPUT_TYPES()
        for group in ("required", "optional"):
            for inp, opts in spec.get(group, {}).items():
                assert len(opts) == 2 and opts[1].get("tooltip"), f"{name}.{inp} lacks a tooltip"


def test_face_detector_chain_on_astronaut(svc):
    (det,) = OpenCVFaceDetectorProvider.execute(1.1, 3, 0.04, True, True)
    image = _img(skimage.data.astronaut())
    (segs,) = BboxDetectorSEGS.execute(det, image, 0.3, 0, 3.0, 10)
    assert len(segs.segments) == 1 and box_iou(segs.segments[0].bbox, (177, 82, 272, 177)) >= 0.5
    (mask,) = SegsToCombinedMask.execute(segs)
    assert mask.shape == (1, 512, 512) and mask.sum() > 0
    (preview,) = SEGSPreviewBoxes.execute(image, segs)
    assert preview.shape == image.shape and not torch.equal(preview, image)
    (none,) = BboxDetectorSEGS.execute(det, image, 0.3, 0, 3.0, 10, labels="hand")
    assert none.segments == []
    with pytest.raises(ValidationError, match="batch"):
        BboxDetectorSEGS.execute(det, image.repeat(2, 1, 1, 1), 0.3, 0, 3.0, 10)


def _mask_segs():
    mask = torch.zeros((1, 64, 64))
    mask[0, 4:14, 4:14] = 1
    mask[0, 30:50, 30:50] = 1
    (segs,) = MaskToSEGS.execute(mask, False, 1.5, False, 2)
    return segs


def test_segs_nodes_filter_sort_label_transform():
    segs = _mask_segs()
    (big,) = SEGSFilter.execute(segs, 0.3, 1, 0.05, 1.0, 0, "area", "all")
    assert [s.bbox for s in big.segments] == [(30, 30, 50, 50)]
    (ordered,) = SEGSOrder.execute(segs, "area")
    assert ordered.segments[0].bbox == (30, 30, 50, 50)
    (labelled,) = SEGSSetLabel.execute(segs, "hand")
    assert {s.label for s in labelled.segments} == {"hand"}
    (moved,) = SEGSMaskTransform.execute(segs, 2, 2, 0, "merge", 1.0)
    assert len(moved.segments) == 1
    (processed,) = SEGSProcess.execute(
        segs, confidence=0.3, drop_size=1, min_ratio=0.0, max_ratio=1.0, top_k=1, top_k_by="area", sort_by="none",
        x_offset=0, y_offset=0, dilation=0, merge="none", crop_factor=1.0,
    )
    assert [s.bbox for s in processed.segments] == [(30, 30, 50, 50)]
    (batch,) = SEGSToMaskBatch.execute(segs)
    assert batch.shape == (2, 64, 64)
    (filled,) = MaskToSEGS.execute(torch.zeros((1, 8, 8)), False, 3.0, True, 1)
    assert SEGSToMaskBatch.execute(filled)[0].shape == (1, 8, 8)


def test_detail_then_paste_matches_and_keeps_outside(svc):
    image = torch.full((1, 64, 64, 3), 0.5)
    image[0, 6:12, 6:12] = torch.tensor([1.0, 0.0, 0.0])
    segs = _mask_segs()
    kw = dict(DETAIL_DEFAULTS, feather=1)
    out_segs, pasted, before, after, mask, notes = SEGSDetail.execute(image, segs, **kw)
    assert "classical (telea)" in notes and len(before) == len(after) == 2
    (again,) = SEGSPaste.execute(image, out_segs, 1, 255)
    assert torch.allclose(again, pasted, atol=1e-5)
    outside = mask[0] == 0
    assert torch.equal(pasted[0][outside], image[0][outside])
    assert abs(float(pasted[0, 9, 9, 0]) - 0.5) < 0.15  # the red blemish was filled
    with pytest.raises(ValidationError, match="64x64"):
        SEGSPaste.execute(torch.zeros((1, 32, 32, 3)), out_segs, 1, 255)


def test_face_detailer_on_astronaut_classical(svc):
    image = _img(skimage.data.astronaut()[::2, ::2])
    out = FaceDetailer.execute(image, 0.3, 4, 2.0, 10, **DETAIL_DEFAULTS)
    result, refined, alpha, mask, pipe, cnet, before, preview, notes = out
    assert result.shape == image.shape and mask.shape == (1, 256, 256)
    assert mask.sum() > 0 and len(refined) == 1 and alpha[0].shape[-1] == 4
    outside = mask[0] == 0
    assert torch.equal(result[0][outside], image[0][outside])
    assert not torch.equal(result, image)
    assert "segment 0 (face) detailed" in notes


@pytest.mark.parametrize("picture", [skimage.data.coffee(), np.zeros((96, 128, 3), np.uint8)])
def test_face_detailer_passes_through_without_faces(svc, picture):
    image = _img(picture)
    result, *_, notes = FaceDetailer.execute(image, 0.3, 4, 3.0, 10, **DETAIL_DEFAULTS)
    assert torch.equal(result, image)
    assert "passed through unchanged" in notes


def test_face_detailer_with_mask_detector_and_skip(svc):
    image = torch.full((1, 64, 64, 3), 0.5)
    image[0, 6:12, 6:12] = torch.tensor([1.0, 0.0, 0.0])
    image[0, 36:44, 36:44] = torch.tensor([0.0, 0.0, 1.0])
    mask = torch.zeros((1, 64, 64))
    mask[0, 4:14, 4:14] = 1
    mask[0, 34:46, 34:46] = 1
    (det,) = MaskDetectorProvider.execute(mask, "spot")
    kw = dict(DETAIL_DEFAULTS, wildcard="[SKIP][SEP]", sort_by="left_to_right")
    result, *_, notes = FaceDetailer.execute(image, 0.3, 0, 1.5, 2, bbox_detector=det, **kw)
    assert float(result[0, 9, 9, 0]) == 1.0  # first (leftmost) skipped
    assert float(result[0, 40, 40, 2]) < 0.8  # second filled
    assert "[SKIP]" in notes


def test_model_backend_requires_model(svc):
    with pytest.raises(ValidationError, match="inpaint_backend"):
        SEGSDetail.execute(torch.zeros((1, 64, 64, 3)), _mask_segs(), inpaint_backend="model", **DETAIL_DEFAULTS)


def test_yolo_provider_refuses_pickles_by_default(svc):
    folder = svc.paths.model_folders("adetailer")[0]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "face_yolov8n.pt").write_bytes(b"pickle")
    with pytest.raises(PolicyDeniedError, match="allow_unsafe_pickle"):
        UltralyticsDetectorProvider.execute("face_yolov8n.pt")


def test_video_frames_one_seed_per_track(svc):
    frames = torch.full((4, 64, 96, 3), 0.5)
    masks = torch.zeros((4, 64, 96))
    for f in range(4):
        masks[f, 10:26, 10 + 2 * f : 26 + 2 * f] = 1
        frames[f, 10:26, 10 + 2 * f : 26 + 2 * f] = torch.tensor([1.0, 0.0, 0.0])

    class Moving:
        def detect_raw(self, rgb):
            f = int(np.argmax(rgb[18, :, 1] < 100)) - 10
            from nodeloom.ops.detail.detect import Detection
            return [Detection((10.0 + f, 10.0, 26.0 + f, 26.0), 0.9, "face")]

    image, mask, tracks = DetailVideoFrames.execute(frames, 0.3, 2, 2.0, 4, 0.3, 2, 3, bbox_detector=Moving(), **DETAIL_DEFAULTS)
    info = json.loads(tracks)
    assert len(info) == 1 and info[0]["frames"] == [0, 1, 2, 3]
    assert image.shape == frames.shape and mask.shape == (4, 64, 96)
    assert (mask.sum(dim=(1, 2)) > 0).all()
