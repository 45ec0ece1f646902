"""Image scoring and Top-K selection nodes.

Scores travel between nodes as the ``SCORES`` socket type: a 1-D float64 tensor with one
score per image of the batch.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from nodeloom.errors import ValidationError
from nodeloom.node_api import IO, Combo, Custom, Float, Image, Int, Node, Output, Schema, String
from nodeloom.ops.score import HIGHER_IS_BETTER, METRICS, score_images, select_best, thumbnail_features

SCORES = "SCORES"
_CAT = "image/select"


def _metric() -> Combo:
    return Combo(
        "metric", list(METRICS), default="sharpness",
        tooltip="sharpness = variance of Laplacian; brightness/contrast of luma; colorfulness (Hasler–Süsstrunk); "
        "delta_e_to_reference = mean CIEDE2000 to `reference`.",
    )  # fmt: skip


class ImageScore(Node):
    """Score every image of a batch: sharpness, brightness, contrast, colourfulness or ΔE to a reference."""

    SCHEMA = Schema(
        "ImageScore", display_name="Image Score", category=_CAT,
        inputs=[Image("images", tooltip="The batch to score."), _metric(),
                Image("reference", optional=True, tooltip="Needed by delta_e_to_reference (1 image or one per image).")],
        outputs=[Output(SCORES, "scores", tooltip="One score per image."),
                 Output(IO.STRING, "scores_json"), Output(IO.FLOAT, "mean")],
    )  # fmt: skip

    @classmethod
    def execute(cls, images, metric, reference=None):
        s = score_images(images, metric, reference)
        return (torch.from_numpy(s), json.dumps([round(float(v), 6) for v in s]), float(np.mean(s)))


def _parse_labels(text: str, n: int) -> list[str] | None:
    if not text.strip():
        return None
    labels = [t.strip() for t in text.replace("\n", ",").split(",")]
    if len(labels) != n:
        raise ValidationError(f"`labels` has {len(labels)} entries but the batch has {n} images")
    return labels


class TopKSelect(Node):
    """Keep the best K images of a batch by a score, optionally diverse.

    Diversity: at most `max_per_label` images per label (comma-separated `labels`, one per
    image), and no image closer than `min_distance` (mean ΔE between 16×16 thumbnails) to
    one already chosen. Ties go to the earlier image; NaN scores rank last.
    """

    SCHEMA = Schema(
        "TopKSelect", display_name="Top-K Select", category=_CAT,
        inputs=[
            Image("images", tooltip="The candidates."),
            Int("k", 4, min=1, max=100000, tooltip="How many to keep."),
            _metric(),
            Combo("best", ["auto", "highest", "lowest"], default="auto",
                  tooltip="Which end is best; auto = lowest for delta_e_to_reference, else highest."),
            String("labels", "", tooltip="Optional labels, one per image, comma-separated."),
            Int("max_per_label", 0, min=0, max=100000, tooltip="Cap per label; 0 = no cap."),
            Float("min_distance", 0.0, min=0.0, max=1000.0, step=0.1,
                  tooltip="Reject picks closer than this to a chosen one (mean ΔE of thumbnails); 0 = off."),
            Custom(SCORES, "scores", optional=True, tooltip="Precomputed scores; when connected, `metric` is ignored."),
            Image("reference", optional=True, tooltip="Reference for delta_e_to_reference."),
        ],
        outputs=[Output(IO.IMAGE, "images"), Output(IO.STRING, "indices", tooltip="Chosen positions, best first."),
                 Output(SCORES, "scores", tooltip="Scores of the chosen images.")],
    )  # fmt: skip

    @classmethod
    def execute(cls, images, k, metric, best, labels, max_per_label, min_distance, scores=None, reference=None):
        n = images.shape[0]
        if scores is None:
            s = score_images(images, metric, reference)
            largest = HIGHER_IS_BETTER[metric] if best == "auto" else best == "highest"
        else:
            s = np.asarray(scores.detach().cpu().numpy() if isinstance(scores, torch.Tensor) else scores, dtype=np.float64)
            if s.shape != (n,):
                raise ValidationError(f"`scores` has shape {s.shape}; expected one score per image ({n})")
            largest = best != "lowest"
        feats = thumbnail_features(images) if min_distance > 0 else None
        picks = select_best(s, k, largest, _parse_labels(labels, n), max_per_label, feats, min_distance)
        index = torch.from_numpy(picks)
        return (images[index], ",".join(str(i) for i in picks.tolist()), torch.from_numpy(s[picks]))


NODES = (ImageScore, TopKSelect)
