"""The detail pack end to end through the engine (with a tiny test-only source/sink pack)."""

import pytest
import torch

from nodeloom import Engine
from nodeloom.errors import ValidationError
from tests.nodes.detail.detail_stubs import register_stubs


@pytest.fixture()
def engine(tmp_path):
    eng = Engine(base_dir=tmp_path)
    register_stubs(eng)
    yield eng
    eng.close()


def _prompt(photo):
    return {
        "1": {"class_type": "DetailTestPhoto", "inputs": {"name": photo}},
        "2": {"class_type": "OpenCVFaceDetectorProvider", "inputs": {
            "scale_factor": 1.1, "min_neighbors": 3, "min_size": 0.04, "use_profile": True, "verify_eyes": True}},
        "3": {"class_type": "BboxDetectorSEGS", "inputs": {
            "bbox_detector": ["2", 0], "image": ["1", 0], "threshold": 0.3, "dilation": 4, "crop_factor": 2.0, "drop_size": 10}},
        "4": {"class_type": "SEGSFilter", "inputs": {
            "segs": ["3", 0], "confidence": 0.3, "drop_size": 1, "min_ratio": 0.0, "max_ratio": 1.0, "top_k": 1,
            "top_k_by": "area", "labels": "all"}},
        "5": {"class_type": "SEGSDetail", "inputs": {
            "image": ["1", 0], "segs": ["4", 0], "guide_size": 64, "guide_size_for": True, "max_size": 256, "seed": 0,
            "steps": 2, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 0.4, "feather": 4,
            "noise_mask": True, "force_inpaint": True, "cycle": 1}},
        "6": {"class_type": "SEGSPaste", "inputs": {"image": ["1", 0], "segs": ["5", 0], "feather": 4, "alpha": 255}},
        "7": {"class_type": "DetailTestSink", "inputs": {"value": ["6", 0]}},
        "8": {"class_type": "DetailTestSink", "inputs": {"value": ["5", 5]}},
    }


def test_chain_detect_filter_detail_paste(engine):
    result = engine.run(_prompt("astronaut"))
    assert result.status == "success", result.errors
    source, pasted = result.value("1"), result.value("6")
    assert pasted.shape == source.shape and not torch.equal(pasted, source)
    assert torch.allclose(pasted, result.value("5", 1), atol=1e-5)
    assert "segment 0 (face) detailed" in result.value("5", 5)


@pytest.mark.parametrize("photo", ["coffee", "blank"])
def test_chain_passes_through_without_faces(engine, photo):
    result = engine.run(_prompt(photo))
    assert result.status == "success", result.errors
    assert torch.equal(result.value("6"), result.value("1"))
    assert "passed through unchanged" in result.value("5", 5)


def test_bad_input_is_a_validation_error(engine):
    prompt = _prompt("astronaut")
    prompt["4"]["inputs"]["top_k_by"] = "colour"
    with pytest.raises(ValidationError):
        engine.run(prompt)


def test_example_workflow_runs_without_models(tmp_path):
    import json
    from pathlib import Path

    example = Path(__file__).resolve().parents[3] / "examples" / "workflows" / "detail_face_anonymise.json"
    prompt = json.loads(example.read_text(encoding="utf-8"))
    with Engine(base_dir=tmp_path) as eng:
        result = eng.run(prompt)
    assert result.status == "success", result.errors
    assert len(result.outputs["4"]["images"]) == 1 and len(result.outputs["5"]["images"]) == 1
    assert "segment 0 (face) detailed" in result.value("3", 8)


def test_default_workflow_detail_nodes_validate(tmp_path):
    import json
    from pathlib import Path

    import nodeloom

    path = Path(nodeloom.__file__).parent / "workflows" / "default.json"
    if not path.exists():
        pytest.skip("no embedded default workflow")
    prompt = json.loads(path.read_text(encoding="utf-8"))
    with Engine(base_dir=tmp_path) as eng:
        assert eng.validate(prompt).ok
        ours = {k: v for k, v in prompt.items() if v["class_type"] in eng.registry.classes() and
                eng.registry.classes()[v["class_type"]].__module__.startswith("nodeloom.nodes.detail")}
        assert ours  # the quick start shows the detail pack


def test_onnx_weights_in_models_adetailer_run_through_the_engine(engine, tmp_path):
    """A real `.onnx` export in models/adetailer: listed in the combo, run by onnxruntime."""
    pytest.importorskip("onnxruntime")
    from tests.ops.detail.test_detail_yolo import _tiny_onnx_detector

    folder = tmp_path / "models" / "adetailer"
    folder.mkdir(parents=True)
    _tiny_onnx_detector(folder / "tiny_face.onnx")
    assert "tiny_face.onnx" in engine.input_types("UltralyticsDetectorProvider")["required"]["model_name"][0]
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 200, "height": 100, "batch_size": 1, "color": 0xFFFFFF}},
        "2": {"class_type": "UltralyticsDetectorProvider", "inputs": {"model_name": "tiny_face.onnx", "classes": "face"}},
        "3": {"class_type": "BboxDetectorSEGS", "inputs": {
            "bbox_detector": ["2", 0], "image": ["1", 0], "threshold": 0.5, "dilation": 0, "crop_factor": 1.0, "drop_size": 10}},
        "4": {"class_type": "DetailTestSink", "inputs": {"value": ["3", 0]}},
    }
    result = engine.run(prompt)
    assert result.status == "success", result.errors
    (seg,) = result.value("3").segments
    assert seg.label == "face" and seg.confidence > 0.9
    assert [round(v) for v in seg.bbox] == [25, 25, 75, 75]  # the network box mapped back through the letterbox
