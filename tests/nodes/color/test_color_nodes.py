"""Colour pack nodes: Colour QC verdicts and outputs, ΔE map, named colours, palettes, engine run."""

from __future__ import annotations

import json

import pytest
import torch

import nodeloom.nodes.color as pack
from nodeloom.errors import ValidationError
from tests.nodes.conftest import run_prompt

N = pack.NODE_CLASS_MAPPINGS
QC_DEFAULTS = dict(grid_step=10, threshold=5.0, method="ciede2000", max_failing_percent=30.0, on_size_mismatch="error")


def _pair(band: int) -> tuple[torch.Tensor, torch.Tensor]:
    ref = torch.full((1, 40, 60, 3), 0.5)
    cand = ref.clone()
    cand[:, :, :band] = torch.tensor([0.2, 0.6, 0.2])
    return ref, cand


def test_color_qc_node_outputs_and_verdicts():
    ref, cand = _pair(30)  # half of the columns fail
    out = N["ColorQC"].execute(reference=ref, candidate=cand, **QC_DEFAULTS).to_v1()
    passed, status, heat, report, mean, p95, failing = out["result"]
    assert passed is False and status == "FAIL" and failing == pytest.approx(50.0)
    assert heat.shape[0] == 1 and heat.shape[2] == 60 and heat.shape[1] > 40
    data = json.loads(report)
    assert data["status"] == "FAIL" and data["method"] == "ciede2000" and data["images"][0]["samples"] == 24
    assert p95 >= mean > 0 and out["ui"]["text"][0].startswith("FAIL")
    ok = N["ColorQC"].execute(reference=ref, candidate=ref, **QC_DEFAULTS).to_v1()["result"]
    assert ok[0] is True and ok[1] == "PASS"


def test_color_qc_node_size_mismatch_option():
    ref, cand = _pair(0)
    small = cand[:, ::2, ::2]
    with pytest.raises(ValidationError, match="on_size_mismatch"):
        N["ColorQC"].execute(reference=ref, candidate=small, **QC_DEFAULTS)
    args = {**QC_DEFAULTS, "on_size_mismatch": "resize candidate"}
    res = N["ColorQC"].execute(reference=ref, candidate=small, **args).to_v1()["result"]
    assert res[1] == "PASS" and json.loads(res[3])["candidate_resized"] is True


def test_delta_e_map_node():
    ref, cand = _pair(30)
    heat, mask, mean = N["DeltaEMap"].execute(reference=ref, image=cand, method="cie76", max_value=10.0, legend=False, resize=False)
    assert heat.shape == (1, 40, 60, 3) and mask.shape == (1, 40, 60)
    assert mask[0, 0, 0] == 1.0 and mask[0, 0, 59] == 0.0 and mean > 0


def test_nearest_named_colour_and_palette_match():
    img = torch.zeros(1, 4, 4, 3)
    img[..., 0] = 1.0
    img[..., 1] = 165 / 255  # CSS orange
    name, hex_, avg, dist = N["NearestNamedColor"].execute(image=img, method="ciede2000", palette="css")
    assert (name, hex_, avg) == ("orange", "#ffa500", "#ffa500") and dist == pytest.approx(0.0, abs=1e-3)
    mask = torch.zeros(1, 4, 4)
    mask[0, 0, 0] = 1
    img2 = img.clone()
    img2[0, 0, 0] = torch.tensor([0.0, 0.0, 0.5])
    assert N["NearestNamedColor"].execute(image=img2, method="cie76", palette="navy, orange", mask=mask)[0] == "navy"
    with pytest.raises(ValidationError, match="no pixel"):
        N["NearestNamedColor"].execute(image=img, method="cie76", palette="css", mask=torch.zeros(1, 4, 4))
    quant, report, mean = N["PaletteMatch"].execute(image=img2, palette="black, white, orange, navy", method="ciede2000")
    shares = {c["name"]: c["share"] for c in json.loads(report)["colors"]}
    assert shares["orange"] == pytest.approx(15 / 16) and shares["navy"] == pytest.approx(1 / 16)
    assert quant[0, 0, 0].tolist() == pytest.approx([0.0, 0.0, 128 / 255])


def test_color_qc_through_the_engine(image_engine):
    ref, cand = _pair(30)
    prompt = {
        "r": {"class_type": "TestTensor", "inputs": {"key": "ref"}},
        "c": {"class_type": "TestTensor", "inputs": {"key": "cand"}},
        "qc": {"class_type": "ColorQC", "inputs": {"reference": ["r", 0], "candidate": ["c", 0], **QC_DEFAULTS}},
    }
    result = run_prompt(image_engine, prompt, {"ref": ref, "cand": cand})
    assert result.status == "success", result.errors
    assert result.value("qc", 1) == "FAIL"
    assert result.outputs["qc"]["text"][0].startswith("FAIL")


def test_example_workflow_runs_and_passes(tmp_path):
    import json
    from pathlib import Path

    from nodeloom import Engine

    example = Path(__file__).resolve().parents[3] / "examples" / "workflows" / "color_qc.json"
    with Engine(base_dir=tmp_path) as engine:
        result = engine.run(json.loads(example.read_text()))
    assert result.status == "success", result.errors
    report = json.loads(result.value("4", 3))
    # the shifted ellipse covers about 15 % of the frame (12.5 % of the 8 px grid): under the 30 % limit
    assert report["status"] == "PASS" and report["images"][0]["failing_share"] == pytest.approx(0.125)
    assert result.outputs["5"]["images"] and result.outputs["4"]["text"][0].startswith("PASS")
