"""Detectors: the offline face detector on real photos, YOLO decoding and its missing extra."""

import sys

import numpy as np
import pytest
import skimage.data

from nodeloom.errors import MissingDependencyError, ValidationError
from nodeloom.ops.detail.detect import (
    Detection,
    HaarFaceDetector,
    MaskDetector,
    detections_to_segs,
    non_max_suppression,
    to_rgb_uint8,
)
from nodeloom.ops.detail.segs import box_iou
from nodeloom.ops.detail.yolo import YoloDetector, decode_yolo_output

ASTRONAUT_FACE = (177, 82, 177 + 95, 82 + 95)


@pytest.fixture(scope="module")
def face_detector():
    return HaarFaceDetector()


def test_astronaut_face_found(face_detector):
    segs = face_detector.detect(skimage.data.astronaut() / 255.0, threshold=0.3)
    assert len(segs.segments) == 1
    assert box_iou(segs.segments[0].bbox, ASTRONAUT_FACE) >= 0.5
    assert segs.segments[0].label == "face" and segs.segments[0].confidence >= 0.3
    assert segs.shape == (512, 512)


@pytest.mark.parametrize("image", [skimage.data.coffee(), np.zeros((256, 256, 3), np.uint8), np.full((64, 96, 3), 200, np.uint8)])
def test_no_faces_on_coffee_or_blank(face_detector, image):
    assert face_detector.detect(image, threshold=0.3).segments == []


def test_detector_rejects_batches_and_bad_params():
    with pytest.raises(ValidationError, match="batch"):
        to_rgb_uint8(np.zeros((2, 8, 8, 3)))
    with pytest.raises(ValidationError, match="scale_factor"):
        HaarFaceDetector(scale_factor=1.0)


def test_nms_merges_contained_boxes():
    dets = [Detection((0, 0, 100, 100), 0.9, "face"), Detection((10, 10, 60, 60), 0.5, "face"), Detection((200, 0, 250, 50), 0.4, "face")]
    kept = non_max_suppression(dets)
    assert [d.confidence for d in kept] == [0.9, 0.4]


def test_detections_to_segs_dilation_and_drop():
    dets = [Detection((10, 10, 20, 20), 0.8, "face"), Detection((40, 40, 42, 42), 0.8, "face")]
    segs = detections_to_segs(dets, (64, 64), crop_factor=2.0, dilation=2, drop_size=3)
    assert len(segs.segments) == 1
    seg = segs.segments[0]
    assert seg.crop_region == (5, 5, 25, 25)
    assert seg.cropped_mask.sum() == 11 * 11  # a 2x2 kernel grows one side by 1 px


def test_decode_yolo_output_letterbox_and_nms():
    # two anchors on one face (class 0), one hand (class 1); input 640, source 320x160 -> scale 2, pad y 160
    head = np.zeros((1, 6, 4), np.float32)
    head[0, :4, 0] = [200, 320, 40, 40]
    head[0, 4, 0] = 0.9
    head[0, :4, 1] = [202, 320, 40, 40]
    head[0, 4, 1] = 0.6
    head[0, :4, 2] = [400, 300, 20, 20]
    head[0, 5, 2] = 0.7
    head[0, :4, 3] = [100, 100, 10, 10]
    head[0, 4, 3] = 0.1  # under conf
    dets = decode_yolo_output(head, ["face", "hand"], scale=2.0, pad=(0.0, 160.0), shape=(160, 320), conf=0.25)
    assert sorted(d.label for d in dets) == ["face", "hand"]
    face = next(d for d in dets if d.label == "face")
    assert face.confidence == pytest.approx(0.9)
    assert face.bbox == pytest.approx((90.0, 70.0, 110.0, 90.0))
    with pytest.raises(ValidationError, match="YOLO output"):
        decode_yolo_output(np.zeros((3,)), [], scale=1, pad=(0, 0), shape=(1, 1))


@pytest.mark.parametrize("name, module, extra", [("face.pt", "ultralytics", "detail-yolo"),
                                                 ("face.onnx", "onnxruntime", "detail-onnx")])
def test_yolo_without_extra_names_it(tmp_path, name, module, extra, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed (import fails)
    path = tmp_path / name
    path.write_bytes(b"not a model")
    with pytest.raises(MissingDependencyError) as err:
        YoloDetector(path)
    assert f"nodeloom[{extra}]" in str(err.value) and err.value.extra_info["extra"] == extra


def test_yolo_rejects_other_formats(tmp_path):
    with pytest.raises(ValidationError, match=".pt` or `.onnx"):
        YoloDetector(tmp_path / "weights.safetensors")


def test_mask_detector_components():
    mask = np.zeros((32, 32), np.float32)
    mask[2:10, 2:10] = 1
    mask[20:30, 20:30] = 1
    segs = MaskDetector(mask, "hand").detect(np.zeros((32, 32, 3)), crop_factor=1.0)
    assert sorted(s.bbox for s in segs.segments) == [(2, 2, 10, 10), (20, 20, 30, 30)]
    assert all(s.label == "hand" for s in segs.segments)
    with pytest.raises(ValidationError, match="`mask`"):
        MaskDetector(mask).detect(np.zeros((16, 16, 3)))


def test_large_images_are_searched_downscaled():
    import cv2

    big = cv2.resize(skimage.data.astronaut(), (1024, 1024), interpolation=cv2.INTER_LINEAR)
    dets = [d for d in HaarFaceDetector(max_side=512).detect_raw(big) if d.confidence >= 0.3]
    assert len(dets) == 1
    assert box_iou(dets[0].bbox, tuple(2 * v for v in ASTRONAUT_FACE)) >= 0.5
