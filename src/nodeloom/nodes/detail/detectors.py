"""Detector nodes: detector providers (BBOX_DETECTOR / SEGM_DETECTOR) and SEGS from detectors/masks."""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.errors import PolicyDeniedError, ValidationError
from nodeloom.node_api import Boolean, Combo, Custom, Float, Image, Int, Mask, Node, Output, Schema, String, services
from nodeloom.ops.detail.detect import HaarFaceDetector, MaskDetector
from nodeloom.ops.detail.yolo import YoloDetector
from nodeloom.ops.detail.segs import Segs, mask_to_segs

__all__ = ["BboxDetectorSEGS", "MaskToSEGS", "OpenCVFaceDetectorProvider", "UltralyticsDetectorProvider", "detect_batch"]

CATEGORY = "detail/detect"


def _adetailer_models() -> list[str]:
    try:
        return list(services().paths.get_filename_list("adetailer"))
    except Exception:  # noqa: BLE001 - no engine active while listing: an empty combo
        return []


def detect_batch(detector: Any, image: torch.Tensor, threshold: float, dilation: int, crop_factor: float, drop_size: int) -> Segs:
    """Detect on a one-frame IMAGE.

    Raises:
        ValidationError: ``image`` holds more than one frame.
    """
    if image.shape[0] != 1:
        raise ValidationError(
            f"`image` must be a single frame here, got a batch of {image.shape[0]}; use the video detailer for batches"
        )
    return detector.detect(image, threshold, dilation, crop_factor, drop_size)


class OpenCVFaceDetectorProvider(Node):
    """Offline face detector from the Haar cascades bundled with OpenCV (frontal + profile,
    eye-verified). Needs no model file and no network."""

    SCHEMA = Schema(
        "OpenCVFaceDetectorProvider",
        display_name="Face Detector (OpenCV, offline)",
        category=CATEGORY,
        inputs=[
            Float("scale_factor", 1.1, min=1.01, max=2.0, tooltip="Image pyramid step; smaller finds more sizes, slower."),
            Int("min_neighbors", 3, min=1, max=50, tooltip="Raw hits a face needs before it is reported."),
            Float("min_size", 0.04, min=0.0, max=1.0, tooltip="Smallest face side as a fraction of the short image side."),
            Boolean("use_profile", True, tooltip="Also look for faces seen from the side."),
            Boolean("verify_eyes", True, tooltip="Halve the confidence of boxes with no visible eye."),
        ],
        outputs=[Output("BBOX_DETECTOR", "BBOX_DETECTOR")],
    )

    @classmethod
    def execute(cls, scale_factor, min_neighbors, min_size, use_profile, verify_eyes):
        key = ("opencv-haar-face", scale_factor, min_neighbors, min_size, use_profile, verify_eyes)
        loader = lambda: HaarFaceDetector(scale_factor, min_neighbors, min_size, use_profile, verify_eyes)  # noqa: E731
        return (services().models.load(key, loader),)


class UltralyticsDetectorProvider(Node):
    """YOLO detection/segmentation weights from `models/adetailer` (`.onnx` via onnxruntime:
    `nodeloom[detail-onnx]`; `.pt` via ultralytics: `nodeloom[detail-yolo]`). `.pt` files are pickles: they load only when
    the engine setting `allow_unsafe_pickle` is on."""

    SCHEMA = Schema(
        "UltralyticsDetectorProvider",
        display_name="YOLO Detector Provider",
        category=CATEGORY,
        inputs=[
            Combo("model_name", _adetailer_models, tooltip="Weights file under models/adetailer."),
            String("classes", "", optional=True, tooltip="Comma-separated class names to keep; empty keeps all."),
        ],
        outputs=[Output("BBOX_DETECTOR", "BBOX_DETECTOR"), Output("SEGM_DETECTOR", "SEGM_DETECTOR")],
    )

    @classmethod
    def execute(cls, model_name, classes=""):
        svc = services()
        path = svc.paths.get_full_path("adetailer", model_name)
        if str(path).lower().endswith((".pt", ".pth")) and not svc.settings.get("allow_unsafe_pickle", False):
            raise PolicyDeniedError(
                f"`{model_name}` is a pickle file; enable the `allow_unsafe_pickle` setting or use an `.onnx` export",
                extra_info={"rule": "allow_unsafe_pickle"},
            )
        detector = svc.models.load(("yolo", str(path), classes), lambda: YoloDetector(path, classes, str(svc.models.device)))
        return (detector, detector)


class BboxDetectorSEGS(Node):
    """Run a detector on an image and return the found regions as SEGS."""

    SCHEMA = Schema(
        "BboxDetectorSEGS",
        display_name="Detect → SEGS",
        category=CATEGORY,
        inputs=[
            Custom("BBOX_DETECTOR", "bbox_detector", tooltip="A detector (face detector provider, YOLO...)."),
            Image("image", tooltip="One image to search."),
            Float("threshold", 0.3, min=0.0, max=1.0, tooltip="Minimum confidence of a detection."),
            Int("dilation", 0, min=-512, max=512, tooltip="Grow (+) or shrink (-) each mask with a square kernel, px."),
            Float("crop_factor", 3.0, min=1.0, max=10.0, step=0.1, tooltip="Crop region = box size x this."),
            Int("drop_size", 10, min=1, max=16384, tooltip="Drop detections smaller than this many px on a side."),
            String("labels", "all", optional=True, tooltip="Comma-separated labels to keep, or `all`."),
        ],
        outputs=[Output("SEGS", "SEGS")],
    )

    @classmethod
    def execute(cls, bbox_detector, image, threshold, dilation, crop_factor, drop_size, labels="all"):
        segs = detect_batch(bbox_detector, image, threshold, dilation, crop_factor, drop_size)
        wanted = {s.strip() for s in labels.split(",") if s.strip()}
        if wanted and "all" not in wanted:
            segs = Segs(segs.shape, [s for s in segs.segments if s.label in wanted])
        return (segs,)


class MaskToSEGS(Node):
    """Turn a mask into SEGS: one segment per connected region (or one for all of it)."""

    SCHEMA = Schema(
        "MaskToSEGS",
        display_name="MASK → SEGS",
        category=CATEGORY,
        inputs=[
            Mask("mask", tooltip="The mask (first of a batch is used)."),
            Boolean("combined", False, tooltip="One segment for every masked pixel instead of one per region."),
            Float("crop_factor", 3.0, min=1.0, max=100.0, step=0.1, tooltip="Crop region = box size x this."),
            Boolean("bbox_fill", False, tooltip="Fill each segment's box completely instead of its exact shape."),
            Int("drop_size", 10, min=1, max=16384, tooltip="Drop regions smaller than this many px on a side."),
            String("label", "mask", optional=True, tooltip="Label given to the segments."),
        ],
        outputs=[Output("SEGS", "SEGS")],
    )

    @classmethod
    def execute(cls, mask, combined, crop_factor, bbox_fill, drop_size, label="mask"):
        arr = mask.detach().cpu().float().numpy()
        arr = arr[0] if arr.ndim == 3 else arr
        segs = mask_to_segs(arr, combined=combined, crop_factor=crop_factor, drop_size=drop_size, label=label)
        if bbox_fill:
            filled = []
            for seg in segs.segments:
                m = seg.cropped_mask.copy()
                bx1, by1 = seg.bbox[0] - seg.crop_region[0], seg.bbox[1] - seg.crop_region[1]
                m[by1 : by1 + seg.bbox[3] - seg.bbox[1], bx1 : bx1 + seg.bbox[2] - seg.bbox[0]] = 1.0
                filled.append(seg._replace(cropped_mask=m))
            segs = Segs(segs.shape, filled)
        return (segs,)


class MaskDetectorProvider(Node):
    """A detector that always "finds" the regions of a given mask (to reuse the detailer chain)."""

    SCHEMA = Schema(
        "MaskDetectorProvider",
        display_name="Mask as Detector",
        category=CATEGORY,
        inputs=[
            Mask("mask", tooltip="Regions to treat as detections."),
            String("label", "mask", tooltip="Label of the segments."),
        ],
        outputs=[Output("BBOX_DETECTOR", "BBOX_DETECTOR")],
    )

    @classmethod
    def execute(cls, mask, label):
        return (MaskDetector(mask[:1] if mask.ndim == 3 else mask, label),)
