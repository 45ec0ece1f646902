"""SEGS nodes: filter, order, mask transforms (ADetailer order), labels, SEGS → MASK, preview."""

from __future__ import annotations

import numpy as np
import torch

from nodeloom.node_api import Combo, Custom, Float, Image, Int, Node, Output, Schema, String
from nodeloom.ops.detail import process as P
from nodeloom.ops.detail.segs import Segs, segs_to_mask, segs_to_masks

__all__ = [
    "SEGSFilter",
    "SEGSMaskTransform",
    "SEGSOrder",
    "SEGSPreviewBoxes",
    "SEGSProcess",
    "SEGSSetLabel",
    "SEGSToMaskBatch",
    "SegsToCombinedMask",
]

CATEGORY = "detail/segs"


def _segs_in() -> Custom:
    return Custom("SEGS", "segs", tooltip="Detected segments.")


def _filter_inputs() -> list:
    return [
        Float("confidence", 0.3, min=0.0, max=1.0, tooltip="Drop segments less confident than this."),
        Int("drop_size", 1, min=1, max=16384, tooltip="Drop segments whose box is smaller than this on a side, px."),
        Float("min_ratio", 0.0, min=0.0, max=1.0, tooltip="Drop boxes smaller than this share of the image area."),
        Float("max_ratio", 1.0, min=0.0, max=1.0, tooltip="Drop boxes larger than this share of the image area."),
        Int("top_k", 0, min=0, max=1000, tooltip="Keep only the k best segments (0 keeps all)."),
        Combo("top_k_by", list(P.TOP_K_BY), default="area", tooltip="What `top_k` ranks by."),
    ]


def _transform_inputs() -> list:
    return [
        Int("x_offset", 0, min=-4096, max=4096, tooltip="Move masks right (+) or left (-), px."),
        Int("y_offset", 0, min=-4096, max=4096, tooltip="Move masks up (+) or down (-), px."),
        Int("dilation", 4, min=-512, max=512, tooltip="Grow (+) or shrink (-) masks with a square kernel, px."),
        Combo("merge", list(P.MERGE_MODES), default="none", tooltip="Merge all masks into one, or merge and invert."),
        Float("crop_factor", 3.0, min=1.0, max=10.0, step=0.1, tooltip="Crop region of moved masks = box x this."),
    ]


class SEGSFilter(Node):
    """Keep the segments that pass confidence, size, area-ratio and top-k rules (in that order)."""

    SCHEMA = Schema(
        "SEGSFilter",
        display_name="Filter SEGS",
        category=CATEGORY,
        inputs=[_segs_in(), *_filter_inputs(), String("labels", "all", tooltip="Comma-separated labels to keep, or `all`.")],
        outputs=[Output("SEGS", "SEGS")],
    )

    @classmethod
    def execute(cls, segs, confidence, drop_size, min_ratio, max_ratio, top_k, top_k_by, labels):
        segs = P.filter_confidence(segs, confidence)
        segs = P.drop_small(segs, drop_size)
        segs = P.filter_area_ratio(segs, min_ratio, max_ratio)
        wanted = {s.strip() for s in labels.split(",") if s.strip()}
        if wanted and "all" not in wanted:
            segs = Segs(segs.shape, [s for s in segs.segments if s.label in wanted])
        return (P.top_k(segs, top_k, top_k_by),)


class SEGSOrder(Node):
    """Order segments: none, left to right, centre to edge, or largest first."""

    SCHEMA = Schema(
        "SEGSOrder",
        display_name="Sort SEGS",
        category=CATEGORY,
        inputs=[_segs_in(), Combo("sort_by", list(P.SORT_ORDERS), default="none", tooltip="The processing order.")],
        outputs=[Output("SEGS", "SEGS")],
    )

    @classmethod
    def execute(cls, segs, sort_by):
        return (P.sort_segs(segs, sort_by),)


class SEGSMaskTransform(Node):
    """Offset (y points up), dilate/erode (square kernel; emptied segments drop) and merge masks."""

    SCHEMA = Schema(
        "SEGSMaskTransform",
        display_name="Transform SEGS Masks",
        category=CATEGORY,
        inputs=[_segs_in(), *_transform_inputs()],
        outputs=[Output("SEGS", "SEGS")],
    )

    @classmethod
    def execute(cls, segs, x_offset, y_offset, dilation, merge, crop_factor):
        segs = P.transform_masks(segs, x_offset, y_offset, dilation, crop_factor)
        return (P.merge_invert(segs, merge),)


class SEGSProcess(Node):
    """All of ADetailer's segment processing in its order: confidence → drop_size → area ratio →
    top-k → sort → offset → dilate/erode → merge."""

    SCHEMA = Schema(
        "SEGSProcess",
        display_name="Process SEGS (ADetailer order)",
        category=CATEGORY,
        inputs=[
            _segs_in(),
            *_filter_inputs(),
            Combo("sort_by", list(P.SORT_ORDERS), default="none", tooltip="The processing order."),
            *_transform_inputs(),
        ],
        outputs=[Output("SEGS", "SEGS")],
    )

    @classmethod
    def execute(cls, segs, **kw):
        return (P.process_segs(segs, P.SegmentProcessing(**kw)),)


class SEGSSetLabel(Node):
    """Give every segment the same label (e.g. before mixing detectors)."""

    SCHEMA = Schema(
        "SEGSSetLabel",
        display_name="Label SEGS",
        category=CATEGORY,
        inputs=[_segs_in(), String("label", "face", tooltip="The new label.")],
        outputs=[Output("SEGS", "SEGS")],
    )

    @classmethod
    def execute(cls, segs, label):
        return (Segs(segs.shape, [s._replace(label=label) for s in segs.segments]),)


class SegsToCombinedMask(Node):
    """All segments merged into one full-size mask."""

    SCHEMA = Schema(
        "SegsToCombinedMask",
        display_name="SEGS → MASK (combined)",
        category=CATEGORY,
        inputs=[_segs_in()],
        outputs=[Output("MASK", "MASK")],
    )

    @classmethod
    def execute(cls, segs):
        return (torch.from_numpy(segs_to_mask(segs)).unsqueeze(0),)


class SEGSToMaskBatch(Node):
    """One full-size mask per segment, as a MASK batch (an empty mask when there is none)."""

    SCHEMA = Schema(
        "SEGSToMaskBatch",
        display_name="SEGS → MASK batch",
        category=CATEGORY,
        inputs=[_segs_in()],
        outputs=[Output("MASK", "MASK")],
    )

    @classmethod
    def execute(cls, segs):
        masks = segs_to_masks(segs)
        if len(masks) == 0:
            masks = np.zeros((1, *segs.shape), np.float32)
        return (torch.from_numpy(masks),)


def draw_boxes(image: np.ndarray, segs: Segs) -> np.ndarray:
    """``image`` with each segment's mask tinted, its box drawn and ``index:label conf`` written."""
    import cv2

    canvas = np.ascontiguousarray((np.clip(image, 0, 1) * 255).astype(np.uint8))
    mask = segs_to_mask(segs)[..., None]
    canvas = (canvas * (1 - 0.35 * mask) + np.array([255, 0, 0]) * 0.35 * mask).astype(np.uint8)
    canvas = np.ascontiguousarray(canvas)
    for i, seg in enumerate(segs.segments):
        x1, y1, x2, y2 = seg.bbox
        cv2.rectangle(canvas, (x1, y1), (x2 - 1, y2 - 1), (0, 255, 0), 2)
        cx1, cy1, cx2, cy2 = seg.crop_region
        cv2.rectangle(canvas, (cx1, cy1), (cx2 - 1, cy2 - 1), (255, 255, 0), 1)
        cv2.putText(canvas, f"{i}:{seg.label} {seg.confidence:.2f}", (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 0), 1)
    return canvas.astype(np.float32) / 255.0


class SEGSPreviewBoxes(Node):
    """Preview: the image with segment masks tinted, boxes (green), crop regions (cyan) and labels."""

    SCHEMA = Schema(
        "SEGSPreviewBoxes",
        display_name="Preview SEGS Boxes",
        category=CATEGORY,
        inputs=[Image("image", tooltip="The image the SEGS were found on."), _segs_in()],
        outputs=[Output("IMAGE", "IMAGE")],
    )

    @classmethod
    def execute(cls, image, segs):
        frame = image[0, ..., :3].detach().cpu().float().numpy()
        return (torch.from_numpy(draw_boxes(frame, segs)).unsqueeze(0),)
