"""Patch-seam smoothing: late in sampling, each model call is repeated on copies of its input
rolled by a few offsets against a 32-position patch grid, each result rolled back, and the
passes blended, so the seams a patchifying model leaves on its grid (HiDream-O1's 32-pixel
patches) average out.

:class:`PatchSeamSmoothing` is a wrapper ``smoothing(run, x, sigma)`` around one raw model call
``run(x)`` (the UNet's output for UNet families, the family adapter's velocity for flow
transformers) on an image input ``[B, C, H, W]``; the rolls act on the last two axes.

* Gate: only calls with ``σ_end <= σ <= σ_start`` are smoothed (the σ of the MODEL's schedule at
  ``start_percent`` and ``end_percent``); other calls run once, unchanged.
* Passes: the shift list of ``(pattern, N)``; with several levels (``ramp_*``) the level grows
  with the phase ``(σ_start − σ) / (σ_start − σ_end)`` of the gated range. The natural grid's
  prediction is always computed; an offset ``(0, 0)`` reuses it.
* Blend: ``average`` (mean), ``median`` (per element, ``torch.median``: the lower of the two
  middle values for an even count), ``window`` (each pass weighted by a Hann bump periodic over
  the patch, centred half a patch from that pass's own seams, weights normalised over the passes).
* Edges: the rolls wrap around, so a strip one patch wide along each border keeps the natural
  prediction; a 4-position ramp fades the blend in behind it. ``strength`` mixes the two. An input
  under 67 positions along either axis has no such inner part: its calls run once, unchanged.

Model code: imports no node class, engine or adapter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from nodeloom.errors import ValidationError

__all__ = ["BLENDS", "EDGE_FEATHER", "PASS_LEVELS", "PATCH", "PATTERNS", "PatchSeamSmoothing", "SeamAdapter", "edge_ramp",
           "hann_tile", "shift_levels"]

#: the patch grid's period, in positions of the model's input
PATCH = 32
#: positions over which the blend fades in behind the one-patch border strip
EDGE_FEATHER = 4

#: ``(dy, dx)`` offsets per pattern and pass count
PATTERNS: dict[str, dict[int, list[tuple[int, int]]]] = {
    "single_shift": {
        2: [(0, 0), (16, 16)],
        4: [(0, 0), (16, 0), (0, 16), (16, 16)],
        8: [(0, 0), (16, 0), (0, 16), (16, 16), (8, 8), (24, 8), (8, 24), (24, 24)],
    },
    "symmetric": {
        2: [(-8, -8), (8, 8)],
        4: [(-8, -8), (8, -8), (-8, 8), (8, 8)],
        8: [(-12, -12), (4, -12), (-12, 4), (4, 4), (-4, -4), (12, -4), (-4, 12), (12, 12)],
    },
}
#: the pass counts each ``passes`` choice steps through over the gated range
PASS_LEVELS: dict[str, list[int]] = {"2": [2], "4": [4], "ramp_2_4": [2, 4], "ramp_2_4_8": [2, 4, 8]}
BLENDS = ("average", "window", "median")


def shift_levels(pattern: str, passes: str) -> list[list[tuple[int, int]]]:
    """The offset lists, one per level, for a ``pattern`` and ``passes`` choice."""
    if pattern not in PATTERNS:
        raise ValidationError(f"patch seam smoothing: unknown pattern {pattern!r}; expected one of {list(PATTERNS)}")
    if passes not in PASS_LEVELS:
        raise ValidationError(f"patch seam smoothing: unknown passes {passes!r}; expected one of {list(PASS_LEVELS)}")
    return [PATTERNS[pattern][n] for n in PASS_LEVELS[passes]]


def hann_tile(cy: int, cx: int, size: int = PATCH) -> torch.Tensor:
    """A ``size × size`` separable raised-cosine bump, periodic over the tile, 1 at ``(cy, cx)`` and 0
    half a tile away along either axis."""
    half = size / 2
    idx = torch.arange(size, dtype=torch.float64)

    def axis(c: int) -> torch.Tensor:
        d = torch.remainder(idx - c + half, size) - half  # signed distance to c, wrapped onto the tile
        return 0.5 * (1 + torch.cos(math.pi * d / half))

    return (axis(cy)[:, None] * axis(cx)[None, :]).float()


def edge_ramp(h: int, w: int, patch: int = PATCH, feather: int = EDGE_FEATHER) -> torch.Tensor:
    """``[h, w]`` weights: 0 within ``patch`` positions of a border, rising to 1 over ``feather`` more."""
    def axis(n: int) -> torch.Tensor:
        i = torch.arange(n, dtype=torch.float32)
        return ((torch.minimum(i, n - 1 - i) - patch) / feather).clamp(0, 1)

    return axis(h)[:, None] * axis(w)[None, :]


class PatchSeamSmoothing:
    """``smoothing(run, x, sigma)`` → ``run(x)`` blended with its shifted passes (see the module docstring).

    Args:
        sigma_start / sigma_end: the gated σ range (``σ_end <= σ <= σ_start``).
        pattern / passes / blend: the choices of the node (``PATTERNS``, ``PASS_LEVELS``, ``BLENDS``).
        strength: 0 keeps the natural prediction, 1 the blend.
    """

    def __init__(self, sigma_start: float, sigma_end: float, pattern: str = "single_shift", passes: str = "2",
                 blend: str = "average", strength: float = 1.0) -> None:
        if blend not in BLENDS:
            raise ValidationError(f"patch seam smoothing: unknown blend {blend!r}; expected one of {list(BLENDS)}")
        self.sigma_start, self.sigma_end = float(sigma_start), float(sigma_end)
        self.levels = shift_levels(pattern, passes)
        self.blend, self.strength = blend, float(strength)
        half = PATCH // 2
        self.tiles = [torch.stack([hann_tile((half - dy) % PATCH, (half - dx) % PATCH) for dy, dx in shifts])
                      for shifts in self.levels] if blend == "window" else None
        self._ramps: dict[tuple[int, int], torch.Tensor] = {}
        self.smoothed_calls = 0  # calls that ran the extra passes (for tests and logs)

    def gated(self, sigma: float) -> bool:
        return self.sigma_end <= sigma <= self.sigma_start

    def level(self, sigma: float) -> int:
        """The index of the offset list used at ``sigma`` (a gated one)."""
        n = len(self.levels)
        if n == 1:
            return 0
        phase = (self.sigma_start - sigma) / max(self.sigma_start - self.sigma_end, 1e-8)
        return max(0, min(int(phase * n), n - 1))

    def _ramp(self, h: int, w: int) -> torch.Tensor:
        if (h, w) not in self._ramps:
            self._ramps[(h, w)] = edge_ramp(h, w)
        return self._ramps[(h, w)]

    def combine(self, preds: list[torch.Tensor], level: int) -> torch.Tensor:
        """The blend of the rolled-back passes ``preds`` (each ``[..., H, W]``), in float32."""
        stacked = torch.stack([p.float() for p in preds])
        if self.blend == "median":
            return stacked.median(dim=0).values
        if self.blend == "window":
            n, (h, w) = stacked.shape[0], stacked.shape[-2:]
            tiles = self.tiles[level].to(stacked.device)
            weights = tiles.repeat(1, -(-h // PATCH), -(-w // PATCH))[:, :h, :w]
            total = weights.sum(dim=0, keepdim=True)
            weights = torch.where(total < 1e-3, torch.full_like(weights, 1.0 / n), weights / total.clamp(min=1e-8))
            return (stacked * weights.reshape(n, *[1] * (stacked.ndim - 3), h, w)).sum(dim=0)
        return stacked.mean(dim=0)

    def __call__(self, run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, sigma: Any) -> torch.Tensor:
        s = float(torch.as_tensor(sigma).reshape(-1)[0])
        if not self.gated(s):
            return run(x)
        if x.ndim != 4:
            raise ValidationError(
                f"HiDream-O1 Patch Seam Smoothing works on image inputs [B, C, H, W]; this model's input has shape "
                f"{tuple(x.shape)} (video and joint audio-video latents are not supported)")
        pred = run(x)
        ramp = self._ramp(*pred.shape[-2:])
        if not bool(ramp.any()):  # no position a patch away from every border: the blend would not show
            return pred
        level = self.level(s)
        preds = []
        for dy, dx in self.levels[level]:
            if dy == 0 and dx == 0:
                preds.append(pred)
                continue
            rolled = run(torch.roll(x, shifts=(dy, dx), dims=(-2, -1)))
            preds.append(torch.roll(rolled, shifts=(-dy, -dx), dims=(-2, -1)))
        self.smoothed_calls += 1
        blended = self.combine(preds, level)
        mask = ramp.to(pred.device) * self.strength
        return (pred.float() * (1 - mask) + blended * mask).to(pred.dtype)


class SeamAdapter:
    """A flow transformer's family adapter with :class:`PatchSeamSmoothing` around each call
    (``adapter(module, x, sigma, group, **kw)`` → velocity, smoothed on gated calls)."""

    def __init__(self, adapter: Any, smoothing: PatchSeamSmoothing) -> None:
        self.adapter, self.smoothing = adapter, smoothing

    def __call__(self, module: Any, x: torch.Tensor, sigma: Any, group: Any, **kw: Any) -> torch.Tensor:
        return self.smoothing(lambda xi: self.adapter(module, xi, sigma, group, **kw), x, sigma)

    def prepare_run(self, sampling: Any) -> None:
        """Pass a run's start on to an adapter below that keeps per-run state (a step cache)."""
        inner = getattr(self.adapter, "prepare_run", None)
        if inner is not None:
            inner(sampling)
