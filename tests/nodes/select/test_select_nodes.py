"""Select pack: ImageExpression, ImageScore and TopKSelect, directly and through the engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nodeloom.nodes.select as pack
from nodeloom.errors import ValidationError
from tests.nodes.conftest import run_prompt

N = pack.NODE_CLASS_MAPPINGS
G = torch.Generator().manual_seed(0)
A = torch.rand(2, 8, 8, 3, generator=G)
B = torch.rand(2, 8, 8, 3, generator=G)
M = torch.rand(2, 8, 8, generator=G)


def _expr(expression, **kw):
    return N["ImageExpression"].execute(expression=expression, **kw)


def test_expression_node_matches_numpy_and_handles_masks():
    img, mask = _expr("where(mask > 0.5, a * 1.2, b) ** 0.9", a=A, b=B, mask=M, clamp=False)
    ref = np.where(M.numpy()[..., None] > 0.5, A.numpy() * 1.2, B.numpy()) ** 0.9
    np.testing.assert_allclose(img.numpy(), ref, rtol=1e-5)
    np.testing.assert_allclose(mask.numpy(), ref.mean(-1), rtol=1e-5)
    clamped, _ = _expr("a * 3 - x", a=A, x=1.0)
    assert float(clamped.max()) <= 1.0 and float(clamped.min()) >= 0.0
    one, m = _expr("1 - mask", mask=M)
    assert one.shape == (2, 8, 8, 3) and torch.allclose(m, 1 - M)
    grad, _ = _expr("u", a=A)
    assert grad.shape == (2, 8, 8, 3) and grad[0, 0, 0, 0] < grad[0, 0, 7, 0]
    const, _ = _expr("x", a=A, x=0.25)
    assert const.shape == A.shape and float(const.mean()) == pytest.approx(0.25)


def test_expression_node_errors_and_validation():
    with pytest.raises(ValidationError, match="connect at least one"):
        _expr("x + 1")
    assert N["ImageExpression"].validate_inputs("a +").startswith("`expression`: syntax error")
    assert "not a known function" in N["ImageExpression"].validate_inputs("__import__('os')")
    assert N["ImageExpression"].validate_inputs("a * b") is True


def test_image_score_node():
    scores, text, mean = N["ImageScore"].execute(images=A, metric="brightness")
    assert scores.shape == (2,) and text.startswith("[") and mean == pytest.approx(float(scores.mean()))


def _batch_for_selection():
    imgs = torch.stack([torch.full((8, 8, 3), v) for v in (0.1, 0.9, 0.5, 0.89, 0.7)])
    return imgs


def test_topk_select_by_metric_labels_and_distance():
    imgs = _batch_for_selection()
    kw = dict(metric="brightness", best="auto", labels="", max_per_label=0, min_distance=0.0)
    out, idx, sc = N["TopKSelect"].execute(images=imgs, k=3, **kw)
    assert idx == "1,3,4" and out.shape == (3, 8, 8, 3) and torch.equal(out[0], imgs[1])
    assert sc.tolist() == pytest.approx([0.9, 0.89, 0.7], abs=1e-5)
    _, idx, _ = N["TopKSelect"].execute(images=imgs, k=3, **{**kw, "min_distance": 2.0})
    assert idx == "1,4,2"  # 0.89 is a near copy of 0.9
    _, idx, _ = N["TopKSelect"].execute(images=imgs, k=3, **{**kw, "labels": "a,a,b,a,b", "max_per_label": 1})
    assert idx == "1,4"
    _, idx, _ = N["TopKSelect"].execute(images=imgs, k=2, **{**kw, "best": "lowest"})
    assert idx == "0,2"
    _, idx, _ = N["TopKSelect"].execute(images=imgs, k=2, scores=torch.tensor([5.0, 1, 5, 2, 0]), **kw)
    assert idx == "0,2"
    with pytest.raises(ValidationError, match="`labels` has 2 entries"):
        N["TopKSelect"].execute(images=imgs, k=2, **{**kw, "labels": "a,b", "max_per_label": 1})


def test_score_then_select_through_the_engine(image_engine):
    imgs = _batch_for_selection()
    prompt = {
        "src": {"class_type": "TestTensor", "inputs": {"key": "imgs"}},
        "inv": {"class_type": "ImageExpression", "inputs": {"expression": "1 - a", "a": ["src", 0], "x": 0, "y": 0,
                                                            "z": 0, "clamp": True}},
        "score": {"class_type": "ImageScore", "inputs": {"images": ["inv", 0], "metric": "brightness"}},
        "top": {"class_type": "TopKSelect", "inputs": {"images": ["inv", 0], "k": 2, "metric": "sharpness",
                                                        "best": "auto", "labels": "", "max_per_label": 0,
                                                        "min_distance": 0.0, "scores": ["score", 0]}},
    }
    result = run_prompt(image_engine, prompt, {"imgs": imgs}, sinks=[["top", 0], ["top", 1]])
    assert result.status == "success", result.errors
    assert result.value("top", 1) == "0,2"  # darkest originals are brightest after 1 - a
    bad = dict(prompt)
    bad["inv"] = {**prompt["inv"], "inputs": {**prompt["inv"]["inputs"], "expression": "a.__class__"}}
    with pytest.raises(ValidationError) as info:
        run_prompt(image_engine, bad, {"imgs": imgs}, sinks=[["top", 0]])
    assert "attribute access" in str(info.value.node_errors)
