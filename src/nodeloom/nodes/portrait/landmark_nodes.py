"""Face landmark and pose-drawing nodes: landmarks per face as OpenPose keypoint frames
(``POSE_KEYPOINT``), ComfyUI's ``SDPoseDrawKeypoints`` / ``SDPoseFaceBBoxes`` on such frames,
and face masks for the detailer. The work is in ``ops.face_landmarks`` and ``ops.pose_draw``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nodeloom.node_api import (IO, Boolean, Combo, Custom, Float, Image, Int, Node, Output, Schema, ValidationError,
                               model_key, services)
from nodeloom.ops.detail.detect import HaarFaceDetector, to_rgb_uint8
from nodeloom.ops.face_landmarks import LandmarkModel, face_boxes, face_hull_mask, pose_frame
from nodeloom.ops.pose_draw import draw_pose_frame

__all__ = ["FaceLandmarks", "FaceLandmarksMask", "SDPoseDrawKeypoints", "SDPoseFaceBBoxes"]

POSE_KEYPOINT = "POSE_KEYPOINT"
BOUNDINGBOX = "BOUNDINGBOX"
POSE_CATEGORY = "image/preprocessors"


def _landmark_files() -> list[str]:
    svc = services(required=False)
    return [n for n in svc.paths.get_filename_list("landmarks") if n.endswith(".onnx")] if svc is not None else []


def check_keypoints(value: Any, name: str = "keypoints") -> list[dict[str, Any]]:
    """POSE_KEYPOINT frames (one dict or a list of them), or a clear error naming the input."""
    frames = [value] if isinstance(value, dict) else value
    if not isinstance(frames, list) or not all(isinstance(f, dict) and "people" in f for f in frames):
        raise ValidationError(f"`{name}` must be OpenPose keypoint frames (dicts with `canvas_width`, "
                              f"`canvas_height` and `people`), got {type(value).__name__}")
    return frames


class FaceLandmarks(Node):
    """Find faces (the offline OpenCV detector, or a connected detector) and their 68 landmarks
    with an ONNX landmark model from models/landmarks; returns OpenPose keypoint frames (face
    points, pupils and the head of the body) for pose ControlNets, and face masks."""

    SCHEMA = Schema(
        "FaceLandmarks", display_name="Face Landmarks (ONNX)", category="image/portrait",
        inputs=[
            Image("image", tooltip="The images (each frame gets its own keypoint frame)."),
            Combo("model_name", _landmark_files,
                  tooltip="A 68-point landmark model (.onnx) in models/landmarks: input [1,3,H,W] RGB 0..1, "
                          "output 68 (x, y) in 0..1 of the face crop."),
            Float("threshold", 0.3, min=0.0, max=1.0, step=0.01, tooltip="Least detector confidence of a face."),
            Float("margin", 0.2, min=0.0, max=2.0, step=0.05, tooltip="Crop around each face box, as a fraction of its side."),
            Int("mask_grow", 8, min=0, max=512, tooltip="Pixels the face masks are grown by."),
            Custom("BBOX_DETECTOR", "bbox_detector", optional=True,
                   tooltip="A face detector (e.g. a YOLO face model); empty: OpenCV's bundled face detector."),
        ],
        outputs=[Output(POSE_KEYPOINT, "keypoints", tooltip="One OpenPose frame per image (no faces: no people)."),
                 Output(IO.MASK, "mask", tooltip="The faces' landmark hulls, grown by `mask_grow`."),
                 Output(IO.INT, "faces", tooltip="Faces found over all images.")],
    )

    @classmethod
    def execute(cls, image: Any, model_name: str, threshold: float = 0.3, margin: float = 0.2, mask_grow: int = 8,
                bbox_detector: Any = None) -> tuple[Any, ...]:
        svc = services()
        path = svc.paths.get_full_path("landmarks", model_name)
        model = svc.models.load(model_key(path, "face-landmarks"), lambda: LandmarkModel(path))
        detector = bbox_detector if bbox_detector is not None else svc.models.load(
            ("opencv-haar-face",), HaarFaceDetector)
        if not hasattr(detector, "detect_raw"):
            raise ValidationError(f"`bbox_detector` must be a BBOX_DETECTOR, got {type(detector).__name__}")
        frames, masks = [], []
        for i in range(image.shape[0]):
            rgb8 = to_rgb_uint8(image[i:i + 1])
            boxes = [d.bbox for d in detector.detect_raw(rgb8) if d.confidence >= threshold]
            frame = pose_frame(rgb8.astype(np.float32) / 255.0, boxes, model, margin=margin)
            frames.append(frame)
            masks.append(face_hull_mask(frame, mask_grow))
        faces = sum(len(f["people"]) for f in frames)
        return frames, torch.from_numpy(np.stack(masks)), faces


class FaceLandmarksMask(Node):
    """A mask covering each face's landmarks (their convex hull), e.g. for the detailer's
    Mask → SEGS, or to keep an inpaint on the face."""

    SCHEMA = Schema(
        "FaceLandmarksMask", display_name="Face Landmarks → Mask", category="image/portrait",
        inputs=[Custom(POSE_KEYPOINT, "keypoints", tooltip="OpenPose keypoint frames with face points."),
                Int("grow", 8, min=0, max=512, tooltip="Pixels the mask is grown by.")],
        outputs=[Output(IO.MASK, "MASK", tooltip="One mask per frame.")],
    )

    @classmethod
    def execute(cls, keypoints: Any, grow: int = 8) -> tuple[Any, ...]:
        masks = [face_hull_mask(f, grow) for f in check_keypoints(keypoints)]
        if len({m.shape for m in masks}) > 1:
            raise ValidationError("`keypoints` frames must share one canvas size to form a mask batch")
        return (torch.from_numpy(np.stack(masks)),)


class SDPoseDrawKeypoints(Node):
    """Draw OpenPose keypoint frames as pose images on black: body limbs and joints in
    OpenPose's colours, head, hands, white face points, feet — what pose ControlNets expect."""

    SCHEMA = Schema(
        "SDPoseDrawKeypoints", display_name="SDPoseDrawKeypoints", category=POSE_CATEGORY,
        inputs=[
            Custom(POSE_KEYPOINT, "keypoints", tooltip="OpenPose keypoint frames."),
            Boolean("draw_body", True, optional=True, tooltip="Draw the body skeleton."),
            Boolean("draw_hands", True, optional=True, tooltip="Draw the hands."),
            Boolean("draw_face", True, optional=True, tooltip="Draw the face points."),
            Boolean("draw_feet", False, optional=True, tooltip="Draw the foot points."),
            Int("stick_width", 4, min=1, max=10, optional=True, tooltip="Width of the body and head lines."),
            Int("face_point_size", 3, min=1, max=10, optional=True, tooltip="Radius of the face points."),
            Float("score_threshold", 0.3, min=0.0, max=1.0, step=0.01, optional=True, tooltip="Least score of a point that is drawn."),
            Boolean("draw_head", True, optional=True, tooltip="Draw the head points (nose, eyes, ears)."),
        ],
        outputs=[Output(IO.IMAGE, "IMAGE", tooltip="One pose image per frame, at the frame's canvas size.")],
    )

    @classmethod
    def execute(cls, keypoints: Any, draw_body: bool = True, draw_hands: bool = True, draw_face: bool = True,
                draw_feet: bool = False, stick_width: int = 4, face_point_size: int = 3, score_threshold: float = 0.3,
                draw_head: bool = True) -> tuple[Any, ...]:
        if not keypoints:
            return (torch.zeros(1, 64, 64, 3),)
        images = [draw_pose_frame(f, draw_body=draw_body, draw_hands=draw_hands, draw_face=draw_face,
                                  draw_feet=draw_feet, stick_width=stick_width, face_point_size=face_point_size,
                                  score_threshold=score_threshold, draw_head=draw_head)
                  for f in check_keypoints(keypoints)]
        if len({i.shape for i in images}) > 1:
            raise ValidationError("`keypoints` frames must share one canvas size to form an image batch")
        return (torch.from_numpy(np.stack(images)).float() / 255.0,)


class SDPoseFaceBBoxes(Node):
    """Face boxes from the face points of OpenPose keypoint frames, grown by `scale`."""

    SCHEMA = Schema(
        "SDPoseFaceBBoxes", display_name="SDPoseFaceBBoxes", category=POSE_CATEGORY,
        inputs=[Custom(POSE_KEYPOINT, "keypoints", tooltip="OpenPose keypoint frames with face points."),
                Float("scale", 1.5, min=1.0, max=10.0, step=0.1, optional=True, tooltip="How much to enlarge each face box about its centre."),
                Boolean("force_square", True, optional=True, tooltip="Lengthen the shorter side of each box so the box is square.")],
        outputs=[Output(BOUNDINGBOX, "bboxes", tooltip="Face bounding boxes per frame: x, y, width, height.")],
    )

    @classmethod
    def execute(cls, keypoints: Any, scale: float = 1.5, force_square: bool = True) -> tuple[Any, ...]:
        return ([face_boxes(f, scale, force_square) for f in check_keypoints(keypoints)],)
