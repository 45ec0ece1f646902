"""A tiny InsightFace-format model folder for tests: an SCRFD-shaped detector and an
ArcFace-shaped recognizer written as ONNX (needs the ``onnx`` package, a test dependency).

The detector is a real convolutional graph with SCRFD's nine outputs (scores, box distances and
keypoint offsets for strides 8, 16 and 32, two anchors per cell) on any input size: only the
stride-32 map can score above 0.5, where the 32-pixel cell is bright, so a bright square on black
is "a face"; its box reaches ``box`` strides from the anchor and its five keypoints sit where a
face's eyes, nose and mouth corners would. The recognizer averages 14×14 blocks of the 112² crop
and multiplies by a random matrix into ``dim`` values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["FACE_KEYPOINTS", "build_tiny_insightface"]

#: keypoint offsets from the anchor, in stride units: left eye, right eye, nose, mouth corners
FACE_KEYPOINTS = np.array([[0.35, 0.4], [0.65, 0.4], [0.5, 0.55], [0.38, 0.75], [0.62, 0.75]], dtype=np.float32)


def _detector(path: Path, box: float) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, outputs = [], [], []
    names = {"score": [], "bbox": [], "kps": []}
    for stride in (8, 16, 32):
        pooled = f"pool{stride}"
        nodes.append(helper.make_node("AveragePool", ["input.1"], [pooled], kernel_shape=[stride, stride],
                                      strides=[stride, stride]))
        gray = np.full((1, 3, 1, 1), 1.0 / 3, dtype=np.float32)
        for part, width, weight, bias in (
                ("score", 1, 40.0 if stride == 32 else 0.0, -20.0 if stride == 32 else -30.0),
                ("bbox", 4, 0.0, box),
                ("kps", 10, 0.0, 0.0)):
            w = np.concatenate([gray * weight] * (2 * width), axis=0)
            b = np.tile((FACE_KEYPOINTS.reshape(-1) * 2 - 1) * box, 2) if part == "kps" else np.full(2 * width, bias)
            inits += [numpy_helper.from_array(w.astype(np.float32), f"{part}{stride}_w"),
                      numpy_helper.from_array(b.astype(np.float32), f"{part}{stride}_b"),
                      numpy_helper.from_array(np.array([-1, width], dtype=np.int64), f"{part}{stride}_shape")]
            conv, moved, out = f"{part}{stride}_conv", f"{part}{stride}_nhwc", f"{part}_{stride}"
            nodes += [helper.make_node("Conv", [pooled, f"{part}{stride}_w", f"{part}{stride}_b"], [conv]),
                      helper.make_node("Transpose", [conv], [moved], perm=[0, 2, 3, 1])]
            if part == "score":
                nodes += [helper.make_node("Reshape", [moved, f"{part}{stride}_shape"], [f"{out}_raw"]),
                          helper.make_node("Sigmoid", [f"{out}_raw"], [out])]
            else:
                nodes.append(helper.make_node("Reshape", [moved, f"{part}{stride}_shape"], [out]))
            names[part].append(out)
    for part in ("score", "bbox", "kps"):
        outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names[part]]
    graph = helper.make_graph(nodes, "tiny_scrfd", [helper.make_tensor_value_info(
        "input.1", TensorProto.FLOAT, [1, 3, "height", "width"])], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _recognizer(path: Path, dim: int, seed: int) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((3 * 8 * 8, dim)).astype(np.float32)
    nodes = [helper.make_node("AveragePool", ["data"], ["pooled"], kernel_shape=[14, 14], strides=[14, 14]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["fc1"])]
    graph = helper.make_graph(nodes, "tiny_arcface",
                              [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 112, 112])],
                              [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, dim])],
                              [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def build_tiny_insightface(models_root: str | Path, name: str = "buffalo_l", box: float = 1.0, dim: int = 512,
                           seed: int = 0) -> Path:
    """Write ``models_root/insightface/models/<name>/`` with ``det_10g.onnx`` and
    ``w600k_r50.onnx`` (the buffalo_l file names); returns the folder."""
    folder = Path(models_root) / "insightface" / "models" / name
    folder.mkdir(parents=True, exist_ok=True)
    _detector(folder / "det_10g.onnx", box)
    _recognizer(folder / "w600k_r50.onnx", dim, seed)
    return folder
