"""Detail nodes: the FaceDetailer-compatible all-in-one, and the Detail → Paste chain."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nodeloom.errors import ValidationError
from nodeloom.node_api import Combo, Custom, Float, Image, Int, Node, Output, ProgressBar, Schema, services
from nodeloom.nodes.detail.backend import mask_to_tensor, to_numpy_image, to_tensor_image
from nodeloom.nodes.detail.segs_nodes import draw_boxes
from nodeloom.nodes.detail.settings import detail_inputs, detection_inputs, make_inpainter, make_settings, placeholder_list
from nodeloom.ops.detail import process as P
from nodeloom.ops.detail.blend import feather_mask, paste_crop
from nodeloom.ops.detail.detailer import DetailResult, detail_pass
from nodeloom.ops.detail.detect import HaarFaceDetector
from nodeloom.ops.detail.segs import Segs

__all__ = ["FaceDetailer", "SEGSDetail", "SEGSPaste", "default_face_detector", "run_detail"]

CATEGORY = "detail"


def default_face_detector() -> HaarFaceDetector:
    """The offline OpenCV face detector, cached by the engine's model manager."""
    return services().models.load(("opencv-haar-face", "default"), HaarFaceDetector)


def run_detail(
    frame: np.ndarray, segs: Segs, kw: dict[str, Any], seeds: list[int] | None = None
) -> tuple[DetailResult, list[torch.Tensor]]:
    """One detail pass over ``frame`` with the inputs in ``kw``, reporting progress per segment.

    Returns:
        The result and the ControlNet hint images used (empty without a ControlNet).
    """
    inpainter, backend = make_inpainter(kw)
    pbar = ProgressBar(max(1, len(segs.segments)))

    def step(i: int, n: int, img: np.ndarray) -> None:
        pbar.update_absolute(i, n, preview=to_tensor_image(img))

    result = detail_pass(frame, segs, inpainter, make_settings(kw), seeds=seeds, on_step=step)
    result.notes.insert(0, f"backend: {backend}; {len(segs.segments)} segment(s)")
    return result, list(getattr(inpainter, "hints", []))


class SEGSDetail(Node):
    """Re-draw each segment in turn (each sees the previous result): crop, upscale to guide_size,
    inpaint with the connected model (or a classical fill), scale back, paste with a feathered mask
    and seam colour matching. Outputs the detailed SEGS for `SEGSPaste`, the image already pasted,
    and debug views."""

    SCHEMA = Schema(
        "SEGSDetail",
        display_name="Detail SEGS",
        category=CATEGORY,
        inputs=[Image("image", tooltip="One image."), Custom("SEGS", "segs", tooltip="Segments to re-draw."), *detail_inputs()],
        outputs=[
            Output("SEGS", "segs", tooltip="Segments whose cropped_image is the re-drawn crop."),
            Output("IMAGE", "image", tooltip="The image with every segment pasted."),
            Output("IMAGE", "cropped", is_list=True, tooltip="Crops before."),
            Output("IMAGE", "cropped_refined", is_list=True, tooltip="Crops after."),
            Output("MASK", "mask", tooltip="Combined paste mask."),
            Output("STRING", "notes", tooltip="What happened to each segment."),
        ],
    )

    @classmethod
    def execute(cls, image, segs, **kw):
        frame = to_numpy_image(image)
        r, _ = run_detail(frame, segs, kw)
        return (
            r.segs, to_tensor_image(r.image), placeholder_list(r.crops_before), placeholder_list(r.crops_after),
            mask_to_tensor(r.combined_mask), "\n".join(r.notes),
        )


class SEGSPaste(Node):
    """Paste each segment's re-drawn crop (from `SEGSDetail`) onto an image with a feathered mask."""

    SCHEMA = Schema(
        "SEGSPaste",
        display_name="Paste SEGS",
        category=CATEGORY,
        inputs=[
            Image("image", tooltip="The image to paste onto (batch: every frame gets the same SEGS)."),
            Custom("SEGS", "segs", tooltip="Segments with re-drawn crops."),
            Int("feather", 4, min=0, max=100, tooltip="Gaussian blur (sigma, px) of the paste mask."),
            Int("alpha", 255, min=0, max=255, tooltip="Opacity of the pasted crops."),
        ],
        outputs=[Output("IMAGE", "IMAGE")],
    )

    @classmethod
    def execute(cls, image, segs, feather, alpha):
        if tuple(segs.shape) != (image.shape[1], image.shape[2]):
            raise ValidationError(
                f"`segs` were made for {segs.shape[1]}x{segs.shape[0]} but `image` is {image.shape[2]}x{image.shape[1]}"
            )
        frames = []
        for b in range(image.shape[0]):
            out = to_numpy_image(image, b)
            for seg in segs.segments:
                if seg.cropped_image is None:
                    continue
                x1, y1, x2, y2 = seg.crop_region
                edges = (y1 == 0, y2 == image.shape[1], x1 == 0, x2 == image.shape[2])
                a = feather_mask(seg.cropped_mask, feather, edges) * (alpha / 255.0)
                out = paste_crop(out, np.asarray(seg.cropped_image, np.float32)[..., :3], a, seg.crop_region)
            frames.append(out)
        return (to_tensor_image(np.stack(frames)),)


class FaceDetailer(Node):
    """All-in-one face detailer (Impact Pack FaceDetailer inputs): detect faces (offline OpenCV by
    default, or any BBOX_DETECTOR), process the segments in ADetailer's order, then re-draw each
    with the connected model — or a classical fill when none is connected. With no face found the
    image passes through unchanged and `notes` says so."""

    SCHEMA = Schema(
        "FaceDetailer",
        display_name="FaceDetailer",
        category=CATEGORY,
        inputs=[
            Image("image", tooltip="Image or batch (each frame is detailed on its own)."),
            *detail_inputs(),
            *detection_inputs(),
            Float("min_ratio", 0.0, min=0.0, max=1.0, optional=True, tooltip="Drop boxes under this share of the image."),
            Float("max_ratio", 1.0, min=0.0, max=1.0, optional=True, tooltip="Drop boxes over this share of the image."),
            Int("top_k", 0, min=0, max=1000, optional=True, tooltip="Keep only the k best (0: all)."),
            Combo("top_k_by", list(P.TOP_K_BY), default="area", optional=True, tooltip="What top_k ranks by."),
            Combo("sort_by", list(P.SORT_ORDERS), default="none", optional=True, tooltip="Processing order."),
            Int("x_offset", 0, min=-4096, max=4096, optional=True, tooltip="Move masks right (+), px."),
            Int("y_offset", 0, min=-4096, max=4096, optional=True, tooltip="Move masks up (+), px."),
            Combo("merge", list(P.MERGE_MODES), default="none", optional=True, tooltip="Merge masks / merge and invert."),
        ],
        outputs=[
            Output("IMAGE", "image"),
            Output("IMAGE", "cropped_refined", is_list=True, tooltip="Crops after."),
            Output("IMAGE", "cropped_enhanced_alpha", is_list=True, tooltip="Crops after, with the paste mask as alpha."),
            Output("MASK", "mask", tooltip="Combined paste mask."),
            Output("DETAILER_PIPE", "detailer_pipe"),
            Output("IMAGE", "cnet_images", is_list=True),
            Output("IMAGE", "cropped", is_list=True, tooltip="Crops before."),
            Output("IMAGE", "preview", tooltip="Detections drawn on the input."),
            Output("STRING", "notes", tooltip="What happened to each segment."),
        ],
    )

    @classmethod
    def execute(cls, image, bbox_threshold, bbox_dilation, bbox_crop_factor, drop_size, bbox_detector=None, **kw):
        detector = bbox_detector if bbox_detector is not None else default_face_detector()
        proc = P.SegmentProcessing(
            confidence=bbox_threshold, drop_size=drop_size, min_ratio=kw.pop("min_ratio", 0.0),
            max_ratio=kw.pop("max_ratio", 1.0), top_k=kw.pop("top_k", 0), top_k_by=kw.pop("top_k_by", "area"),
            sort_by=kw.pop("sort_by", "none"), x_offset=kw.pop("x_offset", 0), y_offset=kw.pop("y_offset", 0),
            dilation=0, merge=kw.pop("merge", "none"), crop_factor=bbox_crop_factor,
        )
        pbar = ProgressBar(image.shape[0])
        images, masks, previews, before, after, alpha_crops, hints, notes = [], [], [], [], [], [], [], []
        for b in range(image.shape[0]):
            frame = to_numpy_image(image, b)
            segs = detector.detect(image[b : b + 1], bbox_threshold, bbox_dilation, bbox_crop_factor, drop_size)
            segs = P.process_segs(segs, proc)
            r, frame_hints = run_detail(frame, segs, kw)
            hints += [h[0].numpy() for h in frame_hints]
            images.append(r.image)
            masks.append(r.combined_mask)
            previews.append(draw_boxes(frame, segs))
            before += r.crops_before
            after += r.crops_after
            alpha_crops += [np.concatenate([c, a[..., None]], axis=-1) for c, a in zip(r.crops_after, r.alphas)]
            notes += [f"frame {b}: {n}" for n in r.notes]
            pbar.update_absolute(b + 1)
        pipe = (kw.get("model"), kw.get("clip"), kw.get("vae"), kw.get("positive"), kw.get("negative"),
                kw.get("wildcard", ""), detector, None, None, None, None, None, None, None)
        return (
            to_tensor_image(np.stack(images)), placeholder_list(after), placeholder_list(alpha_crops),
            torch.from_numpy(np.stack(masks)), pipe, placeholder_list(hints), placeholder_list(before),
            to_tensor_image(np.stack(previews)), "\n".join(notes),
        )
