"""Colour quality control: compare a candidate image to a reference on a sampling grid.

:func:`color_qc` samples the colour difference every ``grid_step`` pixels, fails samples
above a threshold and fails the image when the failing share passes a limit; it returns the
statistics, the full-resolution difference map and a report dict. :func:`render_heatmap`
draws a difference map as a green → yellow → red image with a legend strip. Pillow is used
for the legend text only. No nodes here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nodeloom.errors import ValidationError
from nodeloom.ops.color import METHODS, color_distance

__all__ = ["QCImageStats", "QCResult", "color_qc", "render_heatmap", "match_sizes"]


@dataclass
class QCImageStats:
    """Statistics of one candidate image over its grid samples."""

    index: int
    passed: bool
    mean: float
    median: float
    p95: float
    max: float
    failing_share: float
    samples: int


@dataclass
class QCResult:
    """The outcome of :func:`color_qc`; ``delta_e`` is the full ``[B, H, W]`` difference map."""

    passed: bool
    method: str
    threshold: float
    grid_step: int
    max_failing_share: float
    resized: bool
    images: list[QCImageStats]
    delta_e: torch.Tensor = field(repr=False)

    def report(self) -> dict[str, Any]:
        """A JSON-ready summary (no tensors)."""
        return {
            "status": "PASS" if self.passed else "FAIL",
            "method": self.method,
            "threshold": self.threshold,
            "grid_step": self.grid_step,
            "max_failing_share": self.max_failing_share,
            "candidate_resized": self.resized,
            "images": [asdict(s) for s in self.images],
        }


def match_sizes(reference: torch.Tensor, candidate: torch.Tensor, resize: bool) -> tuple[torch.Tensor, bool]:
    """Check (or bilinearly resize) ``candidate`` to ``reference``'s height and width.

    Returns:
        ``(candidate, resized)``.

    Raises:
        ValidationError: the sizes differ and ``resize`` is off, or batch sizes are incompatible.
    """
    if reference.ndim != 4 or candidate.ndim != 4 or reference.shape[-1] < 3 or candidate.shape[-1] < 3:
        raise ValidationError(
            f"`reference` and `candidate` must be IMAGE [B,H,W,C≥3], got {tuple(reference.shape)} and {tuple(candidate.shape)}"
        )
    if reference.shape[0] not in (1, candidate.shape[0]):
        raise ValidationError(
            f"`reference` has {reference.shape[0]} images; it must have 1 or as many as `candidate` ({candidate.shape[0]})"
        )
    if reference.shape[1:3] == candidate.shape[1:3]:
        return candidate, False
    if not resize:
        raise ValidationError(
            f"`candidate` is {candidate.shape[2]}×{candidate.shape[1]} but `reference` is "
            f"{reference.shape[2]}×{reference.shape[1]} (W×H); resize it first or set `on_size_mismatch` to resize"
        )
    moved = candidate[..., :3].movedim(-1, 1).float()
    out = F.interpolate(moved, size=tuple(reference.shape[1:3]), mode="bilinear", align_corners=False, antialias=True)
    return out.movedim(1, -1).clamp(0.0, 1.0), True


def _grid(size: int, step: int) -> torch.Tensor:
    return torch.arange(min(step // 2, size - 1), size, step)


def color_qc(
    reference: torch.Tensor,
    candidate: torch.Tensor,
    grid_step: int = 10,
    threshold: float = 5.0,
    method: str = "ciede2000",
    max_failing_share: float = 0.30,
    resize: bool = False,
) -> QCResult:
    """Compare colours of ``candidate`` to ``reference`` on a grid.

    Samples sit at the centres of ``grid_step``-pixel cells. A sample fails when its
    difference exceeds ``threshold`` (in the method's units: ΔE for the CIE methods, 0..1
    distances for RGB/HSV). An image passes when its failing share is at most
    ``max_failing_share``; the run passes when every image does.

    Args:
        reference: ``[1 or B, H, W, C]`` sRGB 0..1.
        candidate: ``[B, H, W, C]`` sRGB 0..1.
        grid_step: pixels between samples (≥ 1).
        threshold: the largest passing difference (≥ 0).
        method: a :data:`nodeloom.ops.color.METHODS` name (the reference is the reference).
        max_failing_share: allowed share of failing samples, 0..1.
        resize: resize a differently-sized candidate instead of failing.

    Returns:
        A :class:`QCResult`.

    Raises:
        ValidationError: bad parameters or sizes.
    """
    if grid_step < 1:
        raise ValidationError(f"`grid_step` must be ≥ 1, got {grid_step}")
    if threshold < 0:
        raise ValidationError(f"`threshold` must be ≥ 0, got {threshold}")
    if not 0.0 <= max_failing_share <= 1.0:
        raise ValidationError(f"`max_failing_share` must be in 0..1, got {max_failing_share}")
    if method not in METHODS:
        raise ValidationError(f"`method` must be one of {list(METHODS)}, got {method!r}")
    cand, resized = match_sizes(reference, candidate, resize)
    ref = reference[..., :3].float().expand(cand.shape[0], -1, -1, -1)
    # float32 on CUDA when present; the map comes back to the CPU for statistics and drawing.
    de = color_distance(ref, cand[..., :3].float(), method, precision="fast", device="auto").cpu()
    ys, xs = _grid(de.shape[1], grid_step), _grid(de.shape[2], grid_step)
    samples = de[:, ys][:, :, xs].reshape(de.shape[0], -1).double().numpy()
    stats = []
    for i, s in enumerate(samples):
        share = float(np.mean(s > threshold))
        stats.append(
            QCImageStats(
                index=i,
                passed=share <= max_failing_share,
                mean=float(s.mean()),
                median=float(np.median(s)),
                p95=float(np.percentile(s, 95)),
                max=float(s.max()),
                failing_share=share,
                samples=int(s.size),
            )
        )
    return QCResult(
        passed=all(s.passed for s in stats),
        method=method,
        threshold=float(threshold),
        grid_step=int(grid_step),
        max_failing_share=float(max_failing_share),
        resized=resized,
        images=stats,
        delta_e=de,
    )


_STOPS = torch.tensor([[0.10, 0.60, 0.25], [0.95, 0.85, 0.15], [0.85, 0.10, 0.10]])


def _colormap(t: torch.Tensor) -> torch.Tensor:
    """0 → green, 0.5 → yellow, 1 → red (t clipped to 0..1); returns ``[..., 3]``."""
    x = t.clamp(0.0, 1.0) * 2.0
    lo = x.floor().clamp(max=1.0).long()
    frac = (x - lo).unsqueeze(-1)
    return _STOPS[lo] * (1.0 - frac) + _STOPS[lo + 1] * frac


def _legend(width: int, height: int, threshold: float, vmax: float, label: str) -> torch.Tensor:
    from PIL import Image, ImageDraw, ImageFont

    bar = _colormap(torch.linspace(0.0, 1.0, width)).expand(height // 2, -1, -1)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    canvas.paste(Image.fromarray((bar.numpy() * 255).astype(np.uint8)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    mid = int(round(threshold / vmax * (width - 1)))
    draw.line([(mid, 0), (mid, height // 2)], fill=(0, 0, 0), width=1)
    y = height // 2 + 1
    draw.text((1, y), "0", fill=(0, 0, 0), font=font)
    draw.text((max(mid - 8, 12), y), f"{threshold:g}", fill=(0, 0, 0), font=font)
    right = f"{vmax:g}+"
    draw.text((max(width - 6 * len(right) - 1, mid + 14), y), right, fill=(0, 0, 0), font=font)
    if width >= 6 * len(label) + 90:
        draw.text((width // 2 + 20, y), label, fill=(60, 60, 60), font=font)
    return torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0)


def render_heatmap(
    delta_e: torch.Tensor,
    threshold: float,
    vmax: float | None = None,
    background: torch.Tensor | None = None,
    legend: bool = True,
    label: str = "dE",
) -> torch.Tensor:
    """A difference map as an IMAGE: green (0) → yellow (``threshold``) → red (``vmax``+).

    Args:
        delta_e: ``[B, H, W]`` differences.
        threshold: drawn at the middle of the scale (a tick on the legend).
        vmax: the top of the scale (default ``2 × threshold``, or 1 when that is 0).
        background: optional ``[B, H, W, C]`` image whose luma shows faintly underneath.
        legend: append a strip with the colour bar and its values below the map.
        label: the unit written on the legend.

    Returns:
        ``[B, H (+ legend), W, 3]`` float32 image.
    """
    top = vmax if vmax is not None else (2.0 * threshold if threshold > 0 else 1.0)
    img = _colormap(delta_e.float().cpu() / top)
    if background is not None:
        luma = background[..., :3].float().cpu() @ torch.tensor([0.2126, 0.7152, 0.0722])
        img = 0.8 * img + 0.2 * luma.unsqueeze(-1).expand_as(img)
    if not legend:
        return img
    w = img.shape[2]
    strip = _legend(w, max(24, min(48, w // 10)), threshold if threshold <= top else top, top, label)
    return torch.cat([img, strip.unsqueeze(0).expand(img.shape[0], -1, -1, -1)], dim=1)
