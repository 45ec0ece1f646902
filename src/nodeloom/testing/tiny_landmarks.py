"""A tiny synthetic 68-point face landmark model in ONNX for tests: a mean face in the iBUG
layout (jaw, brows, nose, eyes, mouth) moved slightly by the crop's mean brightness, so the
real onnxruntime path runs with no download. Built with the ``onnx`` package."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def mean_face() -> np.ndarray:
    """68 (x, y) points in 0..1 of a face crop, in the iBUG 300-W order."""
    t = np.linspace(np.pi * 0.05, np.pi * 0.95, 17)
    jaw = np.column_stack([0.5 - 0.42 * np.cos(t), 0.45 + 0.45 * np.sin(t)])
    brow_r = np.column_stack([np.linspace(0.18, 0.42, 5), [0.33, 0.3, 0.29, 0.3, 0.32]])
    brow_l = np.column_stack([np.linspace(0.58, 0.82, 5), [0.32, 0.3, 0.29, 0.3, 0.33]])
    nose = np.vstack([np.column_stack([np.full(4, 0.5), np.linspace(0.4, 0.6, 4)]),
                      np.column_stack([np.linspace(0.42, 0.58, 5), [0.64, 0.66, 0.67, 0.66, 0.64]])])
    a = np.linspace(0, 2 * np.pi, 7)[:-1]
    eye_r = np.column_stack([0.32 - 0.07 * np.cos(a), 0.42 - 0.025 * np.sin(a)])
    eye_l = np.column_stack([0.68 - 0.07 * np.cos(a), 0.42 - 0.025 * np.sin(a)])
    b = np.linspace(0, 2 * np.pi, 13)[:-1]
    mouth_out = np.column_stack([0.5 - 0.16 * np.cos(b), 0.78 - 0.06 * np.sin(b)])
    c = np.linspace(0, 2 * np.pi, 9)[:-1]
    mouth_in = np.column_stack([0.5 - 0.1 * np.cos(c), 0.78 - 0.02 * np.sin(c)])
    pts = np.vstack([jaw, brow_r, brow_l, nose, eye_r, eye_l, mouth_out, mouth_in]).astype(np.float32)
    assert pts.shape == (68, 2)
    return pts


def build_tiny_landmark_model(path: str | Path, size: int = 32, flat: bool = True) -> Path:
    """Save the model (input ``image`` [1,3,size,size], output [1,136] or [1,68,2]) to ``path``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shift = (np.random.default_rng(0).standard_normal(136) * 0.01).astype(np.float32)
    shape = [1, 136] if flat else [1, 68, 2]
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "shift"], ["moved"]),
        helper.make_node("Add", ["moved", "template"], ["flat"]),
        helper.make_node("Reshape", ["flat", "shape"], ["landmarks"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_face_landmarks",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, shape)],
        [numpy_helper.from_array(shift, "shift"), numpy_helper.from_array(mean_face().ravel(), "template"),
         numpy_helper.from_array(np.array(shape, np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
