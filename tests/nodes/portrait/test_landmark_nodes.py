"""Face landmarks on scikit-image's astronaut: keypoints inside the face, OpenPose drawing that
steers a tiny ControlNet, face boxes and masks; no face gives empty keypoints without error."""

import numpy as np
import pytest
import torch
from skimage import data

from nodeloom.ops.pose_draw import draw_pose_frame
from tests.nodes.conftest import run_prompt

FACE = (178, 69, 270, 161)  # the OpenCV detector's box on the astronaut (x1, y1, x2, y2)


def _astronaut():
    return torch.from_numpy(data.astronaut().astype(np.float32) / 255.0)[None]


def _landmarks(key, model="tiny_face68.onnx"):
    return {"1": {"class_type": "TestTensor", "inputs": {"key": key}},
            "2": {"class_type": "FaceLandmarks", "inputs": {"image": ["1", 0], "model_name": model, "threshold": 0.3,
                                                             "margin": 0.2, "mask_grow": 4}}}


@pytest.mark.parametrize("model", ["tiny_face68.onnx", "tiny_face68_3d.onnx"])
def test_keypoints_fall_inside_the_face(vision_engine, model):
    result = run_prompt(vision_engine, _landmarks(f"astro-{model}", model), {f"astro-{model}": _astronaut()},
                        sinks=[["2", 0], ["2", 1], ["2", 2]])
    assert result.ok, result.errors
    (frame,), mask, faces = result.value("2", 0), result.value("2", 1), result.value("2", 2)
    assert faces == 1 and (frame["canvas_width"], frame["canvas_height"]) == (512, 512)
    person = frame["people"][0]
    face = np.asarray(person["face_keypoints_2d"]).reshape(-1, 3)
    assert face.shape == (70, 3)
    x1, y1, x2, y2 = FACE
    pad = 0.1 * (x2 - x1) + 1  # the landmark crop is the box grown by `margin`
    assert ((face[:, 0] >= x1 - pad) & (face[:, 0] <= x2 + pad) & (face[:, 1] >= y1 - pad) & (face[:, 1] <= y2 + pad)).all()
    inner = face[17:]  # brows, nose, eyes, mouth, pupils: inside the detector's box itself
    assert ((inner[:, 0] >= x1) & (inner[:, 0] <= x2) & (inner[:, 1] >= y1) & (inner[:, 1] <= y2)).all()
    body = np.asarray(person["pose_keypoints_2d"]).reshape(18, 3)
    assert body[0, 2] > 0 and body[1, 2] == 0  # a nose from the landmarks, no neck
    assert mask.shape == (1, 512, 512) and mask[0, 115, 224] == 1.0 and mask[0, 300, 100] == 0.0


def test_no_face_gives_empty_keypoints_and_a_blank_drawing(vision_engine):
    prompt = _landmarks("grey")
    prompt["3"] = {"class_type": "SDPoseDrawKeypoints", "inputs": {"keypoints": ["2", 0]}}
    result = run_prompt(vision_engine, prompt, {"grey": torch.full((1, 96, 128, 3), 0.5)}, sinks=[["2", 0], ["2", 2], ["3", 0]])
    assert result.ok, result.errors
    assert result.value("2", 0) == [{"canvas_width": 128, "canvas_height": 96, "people": []}]
    assert result.value("2", 2) == 0
    assert result.value("3", 0).shape == (1, 96, 128, 3) and result.value("3", 0).max() == 0


def test_face_boxes_and_mask_from_keypoints(vision_engine):
    prompt = _landmarks("astro-boxes")
    prompt["3"] = {"class_type": "SDPoseFaceBBoxes", "inputs": {"keypoints": ["2", 0], "scale": 1.5, "force_square": True}}
    prompt["4"] = {"class_type": "FaceLandmarksMask", "inputs": {"keypoints": ["2", 0], "grow": 0}}
    prompt["5"] = {"class_type": "MaskToSEGS", "inputs": {"mask": ["4", 0], "combined": False, "crop_factor": 3.0,
                                                           "bbox_fill": False, "drop_size": 10}}
    result = run_prompt(vision_engine, prompt, {"astro-boxes": _astronaut()}, sinks=[["3", 0], ["4", 0], ["5", 0]])
    assert result.ok, result.errors
    (boxes,) = result.value("3", 0)
    (box,) = boxes
    assert box["width"] == box["height"] and 100 < box["width"] < 200
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    assert FACE[0] < cx < FACE[2] and FACE[1] < cy < FACE[3]
    mask = result.value("4", 0)
    assert 0 < mask.mean() < 0.05
    _, (seg,) = result.value("5", 0)  # the detailer's SEGS: one segment, on the face
    x1, y1, x2, y2 = seg.bbox
    assert FACE[0] - 10 <= x1 < x2 <= FACE[2] + 10 and FACE[1] - 10 <= y1 < y2 <= FACE[3] + 10


def test_the_pose_drawing_steers_a_controlnet(vision_engine):
    prompt = _landmarks("astro-cn")
    prompt.update({
        "3": {"class_type": "SDPoseDrawKeypoints", "inputs": {"keypoints": ["2", 0], "stick_width": 4, "face_point_size": 3}},
        "4": {"class_type": "ImageScale", "inputs": {"image": ["3", 0], "upscale_method": "area", "width": 64, "height": 64,
                                                      "crop": "disabled"}},
        "5": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd1.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a portrait", "clip": ["5", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["5", 1]}},
        "8": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "tiny_controlnet"}},
        "9": {"class_type": "ControlNetApplyAdvanced", "inputs": {"positive": ["6", 0], "negative": ["7", 0], "control_net": ["8", 0],
                                                                   "image": ["4", 0], "strength": 1.0, "start_percent": 0.0,
                                                                   "end_percent": 1.0}},
        "10": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    })
    sampler = {"seed": 3, "steps": 2, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
               "model": ["5", 0], "latent_image": ["10", 0]}
    prompt["11"] = {"class_type": "KSampler", "inputs": sampler | {"positive": ["9", 0], "negative": ["9", 1]}}
    prompt["12"] = {"class_type": "KSampler", "inputs": sampler | {"positive": ["6", 0], "negative": ["7", 0]}}
    result = run_prompt(vision_engine, prompt, {"astro-cn": _astronaut()}, sinks=[["4", 0], ["11", 0], ["12", 0]])
    assert result.ok, result.errors
    assert result.value("4", 0).max() > 0.5  # the face points and head are drawn
    guided, plain = result.value("11", 0)["samples"], result.value("12", 0)["samples"]
    assert (guided - plain).abs().max() > 1e-3


def test_drawing_follows_the_openpose_conventions():
    body = np.zeros((18, 3), np.float32)
    body[1] = (50, 40, 1)   # neck
    body[2] = (30, 42, 1)   # right shoulder
    body[0] = (50, 20, 1)   # nose
    frame = {"canvas_width": 100, "canvas_height": 80,
             "people": [{"pose_keypoints_2d": body.ravel().tolist(), "face_keypoints_2d": [70, 70, 1.0, 80, 70, 0.1]}]}
    img = draw_pose_frame(frame)
    assert tuple(img[40, 50]) != (0, 0, 0) and tuple(img[70, 70]) == (255, 255, 255)
    assert tuple(img[70, 80]) == (0, 0, 0)  # below the score threshold
    assert draw_pose_frame(frame, draw_head=False)[20, 50].max() == 0  # the nose is a head point
    with pytest.raises(ValueError, match="pose_keypoints_2d"):
        draw_pose_frame({"canvas_width": 8, "canvas_height": 8, "people": [{"pose_keypoints_2d": [1, 2]}]})
