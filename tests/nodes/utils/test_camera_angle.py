"""CameraAngle through the engine: ComfyUI's declaration, both outputs, a template's widget values."""

from tests.nodes.conftest import run_prompt


def test_camera_angle_outputs_camera_info_and_prompt(image_engine):
    info = image_engine.object_info("CameraAngle")["CameraAngle"]
    assert info["display_name"] == "Compose Camera Angle Prompt" and info["category"] == "3d"
    assert info["search_aliases"][:2] == ["multi angle", "camera view"]
    assert info["input_order"] == {"required": ["horizontal_angle", "vertical_angle", "zoom"],
                                   "optional": ["image", "view"]}
    assert info["input"]["required"]["vertical_angle"][1] | {"tooltip": None} == {
        "default": 0, "min": -30, "max": 60, "step": 1, "tooltip": None}
    assert info["input"]["optional"]["view"][1]["widgetType"] == "CAMERA_ANGLE_VIEW"
    assert info["output"] == ["LOAD3D_CAMERA", "STRING"] and info["output_name"] == ["camera_info", "prompt"]
    # the widget values of the official multi-angle template (its `view` widget holds "camera")
    prompt = {"1": {"class_type": "CameraAngle",
                    "inputs": {"horizontal_angle": 333, "vertical_angle": 17, "zoom": 5, "view": "camera"}}}
    result = run_prompt(image_engine, prompt, sinks=[["1", 0], ["1", 1]])
    assert result.status == "success", result.errors
    assert result.value("1", 1) == "front-left quarter view elevated shot medium shot"
    camera = result.value("1", 0)
    assert camera["cameraType"] == "perspective" and camera["zoom"] == 1.4375
    assert camera["position"]["x"] < 0 < camera["position"]["z"] and camera["position"]["y"] > 0


def test_out_of_range_angles_are_refused_at_validation(image_engine):
    prompt = {"1": {"class_type": "CameraAngle", "inputs": {"horizontal_angle": 0, "vertical_angle": 75, "zoom": 5.0}},
              "sink": {"class_type": "TestSink", "inputs": {"value": ["1", 1]}}}
    checked = image_engine.validate(prompt)
    assert not checked.ok and checked.node_errors["1"]["errors"][0]["type"] == "value_bigger_than_max"
