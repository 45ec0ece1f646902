"""YOLO detectors driven through stand-ins for their optional runtimes (no weights needed)."""

import sys
import types

import numpy as np
import pytest
import torch

from nodeloom.ops.detail.segs import box_iou
from nodeloom.ops.detail.yolo import YoloDetector


class _Meta:
    custom_metadata_map = {"names": "{0: 'face', 1: 'hand'}"}


class _Session:
    """onnxruntime.InferenceSession stand-in: one face at source (40, 20)-(80, 60) of a 200x100 image."""

    def __init__(self, path, providers):
        self.fed = None

    def get_inputs(self):
        return [types.SimpleNamespace(name="images", shape=[1, 3, 640, 640])]

    def get_modelmeta(self):
        return _Meta()

    def run(self, outputs, feed):
        self.fed = feed["images"]
        head = np.zeros((1, 6, 2), np.float32)
        # letterbox of 200x100 into 640: scale 3.2, pad y 160
        head[0, :4, 0] = [60 * 3.2, 40 * 3.2 + 160, 40 * 3.2, 40 * 3.2]
        head[0, 4, 0] = 0.8
        head[0, :4, 1] = [10, 10, 5, 5]
        head[0, 5, 1] = 0.9
        return [head]


def test_onnx_path_letterboxes_and_decodes(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", types.SimpleNamespace(InferenceSession=_Session))
    path = tmp_path / "face.onnx"
    path.write_bytes(b"onnx")
    det = YoloDetector(path, classes="face")
    segs = det.detect(np.zeros((100, 200, 3), np.uint8), threshold=0.3, crop_factor=1.0)
    assert det._model.fed.shape == (1, 3, 640, 640) and det._model.fed.max() <= 1.0
    assert [s.label for s in segs.segments] == ["face"]
    assert box_iou(segs.segments[0].bbox, (40, 20, 80, 60)) > 0.95


class _Boxes:
    def __init__(self):
        self.xyxy = torch.tensor([[10.0, 10.0, 30.0, 30.0], [50.0, 5.0, 60.0, 15.0]])
        self.conf = torch.tensor([0.9, 0.2])
        self.cls = torch.tensor([1.0, 0.0])


class _Yolo:
    def __init__(self, path):
        self.path = path

    def __call__(self, image, conf, device, verbose):
        assert image.shape == (40, 80, 3)
        masks = torch.zeros((2, 20, 40))
        masks[0, 5:15, 5:15] = 1
        return [types.SimpleNamespace(
            boxes=_Boxes(), masks=types.SimpleNamespace(data=masks), names={0: "face", 1: "hand"}
        )]


def test_ultralytics_path_resizes_masks(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ultralytics", types.SimpleNamespace(YOLO=_Yolo))
    det = YoloDetector(tmp_path / "hand_yolov8s-seg.pt")
    raw = det.detect_raw(np.zeros((40, 80, 3), np.uint8))
    assert [d.label for d in raw] == ["hand", "face"]
    assert raw[0].mask.shape == (40, 80) and raw[0].mask[20, 20] > 0.5 and raw[0].mask[2, 2] == 0
    segs = det.detect(np.zeros((40, 80, 3), np.uint8), threshold=0.3)
    assert [s.label for s in segs.segments] == ["hand"]
    assert det.label == "hand_yolov8s-seg"
