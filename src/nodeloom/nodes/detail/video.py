"""Video detailing: detect per frame, link boxes into IoU tracks, smooth them, one seed per track."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from nodeloom.node_api import Float, Image, Int, Node, Output, ProgressBar, Schema
from nodeloom.nodes.detail.backend import to_numpy_image, to_tensor_image
from nodeloom.nodes.detail.detailer_nodes import default_face_detector, run_detail
from nodeloom.nodes.detail.settings import detail_inputs, detection_inputs
from nodeloom.ops.detail.detect import Detection, detections_to_segs, to_rgb_uint8
from nodeloom.ops.detail.segs import Segs
from nodeloom.ops.detail.track import Track, link_tracks, track_seed

__all__ = ["DetailVideoFrames", "frame_segs"]


def frame_segs(
    tracks: list[Track], frame: int, shape: tuple[int, int], crop_factor: float, dilation: int, drop_size: int
) -> tuple[Segs, list[int]]:
    """SEGS of ``frame`` built from the smoothed track boxes, and each segment's track id."""
    present = [t for t in tracks if frame in t.smoothed]
    dets = [
        Detection(t.smoothed[frame], t.confidences.get(frame, max(t.confidences.values())), f"{t.label}#{t.track_id}")
        for t in present
    ]
    segs = detections_to_segs(dets, shape, crop_factor=crop_factor, dilation=dilation, drop_size=drop_size)
    ids = [int(s.label.rsplit("#", 1)[1]) for s in segs.segments]
    return segs, ids


def _frame_boxes(detector: Any, frame: torch.Tensor, threshold: float) -> list[tuple[Any, float, str]]:
    """``(box, confidence, label)`` of one frame, from ``detect_raw`` or an Impact-style ``detect``."""
    if hasattr(detector, "detect_raw"):
        raw = detector.detect_raw(to_rgb_uint8(frame))
        return [(d.bbox, d.confidence, d.label) for d in raw if d.confidence >= threshold]
    segs = detector.detect(frame, threshold, 0, 1.0, 1)
    return [(tuple(float(v) for v in s.bbox), float(s.confidence), str(s.label)) for s in segs[1]]


class DetailVideoFrames(Node):
    """Detail faces across video frames without flicker: detect per frame, link the boxes into
    tracks by IoU, smooth each track's box over time, and give every track one seed."""

    SCHEMA = Schema(
        "DetailVideoFrames",
        display_name="Detail Video Frames",
        category="detail/video",
        inputs=[
            Image("image", tooltip="Frames as an IMAGE batch."),
            *detail_inputs(),
            *detection_inputs(),
            Float("iou_threshold", 0.3, min=0.01, max=1.0, tooltip="Boxes in consecutive frames overlapping this much are one track."),
            Int("max_gap", 2, min=0, max=100, tooltip="Frames a track may miss and still continue."),
            Int("smooth_window", 5, min=1, max=101, tooltip="Frames averaged when smoothing a track's box."),
        ],
        outputs=[Output("IMAGE", "image"), Output("MASK", "mask"), Output("STRING", "tracks", tooltip="Tracks as JSON.")],
    )

    @classmethod
    def execute(cls, image, bbox_threshold, bbox_dilation, bbox_crop_factor, drop_size, iou_threshold, max_gap,
                smooth_window, bbox_detector=None, **kw):
        detector = bbox_detector if bbox_detector is not None else default_face_detector()
        per_frame = [_frame_boxes(detector, image[b : b + 1], bbox_threshold) for b in range(image.shape[0])]
        tracks = link_tracks(per_frame, iou_threshold, max_gap, smooth_window)
        pbar = ProgressBar(image.shape[0])
        frames, masks = [], []
        shape = (int(image.shape[1]), int(image.shape[2]))
        for b in range(image.shape[0]):
            segs, ids = frame_segs(tracks, b, shape, bbox_crop_factor, bbox_dilation, drop_size)
            r, _ = run_detail(to_numpy_image(image, b), segs, kw, seeds=[track_seed(int(kw["seed"]), i) for i in ids])
            frames.append(r.image)
            masks.append(r.combined_mask)
            pbar.update_absolute(b + 1)
        summary = [{"id": t.track_id, "label": t.label, "frames": sorted(t.boxes), "seed": track_seed(int(kw["seed"]), t.track_id)} for t in tracks]
        return (to_tensor_image(np.stack(frames)), torch.from_numpy(np.stack(masks)), json.dumps(summary))
