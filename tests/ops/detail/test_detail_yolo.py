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


def _tiny_onnx_detector(path, size=64, region=(8, 24, 24, 40)):
    """A real ONNX model with ultralytics' YOLOv8 export layout, built offline with onnx.helper.

    Input ``images`` [1, 3, size, size]; output ``output0`` [1, 4 + 2, 2] — two anchors. Anchor 0
    is the network-input box ``region`` (x0, y0, x1, y1) scored ``face`` by the mean brightness
    of those input pixels and ``hand`` by its complement; anchor 1 is a fixed low-score box.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    x0, y0, x1, y1 = region
    boxes = np.array([[[(x0 + x1) / 2, 4.0], [(y0 + y1) / 2, 4.0], [x1 - x0, 4.0], [y1 - y0, 4.0]]], np.float32)
    w1 = np.array([[[1.0, 0.0], [-1.0, 0.0]]], np.float32)  # [1, classes, anchors]
    w0 = np.array([[[0.0, 0.05], [1.0, 0.0]]], np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in (
        (np.array([0, 0, y0, x0], np.int64), "starts"), (np.array([1, 3, y1, x1], np.int64), "ends"),
        (boxes, "boxes"), (w1, "w1"), (w0, "w0"))]
    nodes = [
        helper.make_node("Slice", ["images", "starts", "ends"], ["patch"]),
        helper.make_node("ReduceMean", ["patch"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "w1"], ["scaled"]),
        helper.make_node("Add", ["scaled", "w0"], ["scores"]),
        helper.make_node("Concat", ["boxes", "scores"], ["output0"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny_yolo", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"names": "{0: 'face', 1: 'hand'}", "imgsz": f"[{size}, {size}]"})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_real_onnxruntime_runs_a_tiny_yolo_export(tmp_path):
    """The .onnx path end to end on onnxruntime: letterbox in, YOLOv8 head out, boxes mapped back."""
    pytest.importorskip("onnxruntime")
    path = _tiny_onnx_detector(tmp_path / "tiny.onnx")
    # a 200x100 source letterboxes into 64x64 at scale 0.32 with 16 px of padding above and below:
    # the network box (8, 24)-(24, 40) is source (25, 25)-(75, 75)
    bright = np.zeros((100, 200, 3), np.uint8)
    bright[25:75, 25:75] = 255
    face = YoloDetector(path, classes="face").detect(bright, threshold=0.3, crop_factor=1.0)
    assert [s.label for s in face.segments] == ["face"]
    assert face.segments[0].confidence == pytest.approx(1.0, abs=0.02)
    assert box_iou(face.segments[0].bbox, (25, 25, 75, 75)) > 0.95
    # the same model on a dark image: the region scores as `hand`, and a class filter keeps it out
    dark = np.zeros((100, 200, 3), np.uint8)
    assert YoloDetector(path, classes="face").detect(dark, threshold=0.3, crop_factor=1.0).segments == []
    hands = YoloDetector(path).detect(dark, threshold=0.3, crop_factor=1.0).segments
    assert [s.label for s in hands] == ["hand"] and box_iou(hands[0].bbox, (25, 25, 75, 75)) > 0.95
