"""Context windows: a clip longer than the model's window denoised in overlapping windows, blended.

:func:`window_schedule` lists the windows (index lists along one latent axis) of ComfyUI's four
schedules — ``standard_static`` (fixed windows stepping by length − overlap, the last flush with
the end), ``batched`` (no overlap), ``standard_uniform`` and ``looped_uniform`` (AnimateDiff's
uniform schedule: the windows' phase moves every step by an ordered-halving offset, and with
strides > 1 also dilated windows; the standard variant shifts wrapped windows back inside the
clip). :func:`fuse_weights` gives the per-index weight of a window (``pyramid``: rising by one per frame to the middle; ``relative``: the
index's closeness to the middle of the window's index span, 1 there and at least 1e-2 — ComfyUI's
running bias-weighted average is the same weighted mean; ``flat``; ``overlap-linear``: ramps over
the overlap only).
:func:`windowed_adapter` wraps a flow transformer's adapter so every model call runs per window —
conditioning latents and a video family's noise mask sliced to the same frames, a family's guide
frames (LTX-Video's) joining every window — and the velocities are averaged by those weights.
Pure torch, no nodes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["FUSE_METHODS", "SCHEDULES", "ContextWindows", "fuse_weights", "window_schedule", "windowed_adapter"]

SCHEDULES = ("standard_static", "standard_uniform", "looped_uniform", "batched")
FUSE_METHODS = ("pyramid", "relative", "flat", "overlap-linear")
#: conditioning values laid out along the latent's frames, sliced with each window
_PER_FRAME = ("concat_latent_image", "concat_mask")


@dataclass(frozen=True)
class ContextWindows:
    """The window settings ContextWindowsManual takes (lengths in latent frames)."""

    length: int
    overlap: int
    schedule: str = "standard_static"
    stride: int = 1
    closed_loop: bool = False
    fuse: str = "pyramid"
    dim: int = 2


def _halving(step: int) -> float:
    """The bit-reversed fraction of ``step`` (0, 1/2, 1/4, 3/4, ...): uniform windows' phase."""
    bits = format(step & ((1 << 64) - 1), "064b")[::-1]
    return int(bits, 2) / (1 << 64)


def _uniform(n: int, cw: ContextWindows, step: int, looped: bool) -> list[list[int]]:
    strides = min(cw.stride, int(math.ceil(math.log2(n / cw.length))) + 1)
    phase = _halving(step)
    windows = []
    for level in range(strides):
        spacing = 1 << level
        pad = int(round(n * phase))
        end = n + pad + (0 if looped and cw.closed_loop else -cw.overlap)
        for j in range(int(phase * spacing) + pad, end, cw.length * spacing - cw.overlap):
            windows.append([e % n for e in range(j, j + cw.length * spacing, spacing)])
    return windows if looped else _unrolled(windows, n, cw.length)


def _unrolled(windows: list[list[int]], n: int, length: int) -> list[list[int]]:
    """Uniform windows without wrap-around: a window that wraps keeps its spacing but slides to end
    at the clip's last frame (and the frames it wrapped to start a window of their own when the next
    window lacks them); repeated windows are dropped."""
    i = 0
    while i < len(windows):
        w = windows[i]
        roll = next((k for k in range(1, len(w)) if w[k] < w[k - 1]), None)
        if roll is not None:
            wrapped_to = w[roll]
            rel = [(v - w[0]) % n for v in w]
            windows[i] = [v + n - 1 - rel[-1] for v in rel]
            if wrapped_to not in windows[(i + 1) % len(windows)]:
                windows.insert(i + 1, list(range(wrapped_to, wrapped_to + length)))
        i += 1
    out: list[list[int]] = []
    for w in windows:
        if w not in out:
            out.append(w)
    return out


def window_schedule(n: int, cw: ContextWindows, step: int = 0) -> list[list[int]]:
    """The windows over ``n`` positions at sampling step ``step``: lists of indices.

    Raises:
        ValueError: an unknown schedule.
    """
    if cw.schedule not in SCHEDULES:
        raise ValueError(f"`context_schedule` must be one of {list(SCHEDULES)}, got {cw.schedule!r}")
    if n <= cw.length or (cw.schedule == "looped_uniform" and n < cw.length):
        return [list(range(n))]
    if cw.schedule == "batched":
        return [list(range(s, min(s + cw.length, n))) for s in range(0, n, cw.length)]
    if cw.schedule == "standard_static":
        windows, delta = [], max(1, cw.length - cw.overlap)
        for start in range(0, n, delta):
            if start + cw.length >= n:
                windows.append(list(range(n - cw.length, n)))
                break
            windows.append(list(range(start, start + cw.length)))
        return windows
    return _uniform(n, cw, step, looped=cw.schedule == "looped_uniform")


def fuse_weights(idxs: list[int], n: int, cw: ContextWindows) -> torch.Tensor:
    """The blending weight of each index of a window."""
    length = len(idxs)
    if cw.fuse == "flat":
        return torch.ones(length)
    if cw.fuse == "overlap-linear":
        w = torch.ones(length)
        k = min(cw.overlap, length)
        if k and min(idxs) > 0:
            w[:k] = torch.linspace(1e-37, 1, k)
        if k and max(idxs) < n - 1:
            w[-k:] = torch.linspace(1, 1e-37, k)
        return w
    if cw.fuse == "relative":  # each index's closeness to the middle of the window's index span, at least 1e-2
        first, last = idxs[0], idxs[-1]
        mid, half_span = (first + last) / 2, (last - first + 1e-2) / 2
        return torch.tensor([max(1e-2, 1 - abs(i - mid) / half_span) for i in idxs], dtype=torch.float32)
    half = torch.arange(1, (length + 1) // 2 + 1, dtype=torch.float32)
    return torch.cat([half, half.flip(0)[length % 2:]])[:length]


def _sliced(group: Any, dim: int, idxs: list[int], n: int) -> Any:
    """A model call's conditioning with its per-frame latents cut to the window's frames."""
    index = torch.tensor(idxs)
    entries = []
    for entry in group.entries:
        extra = dict(entry.extra)
        for key in _PER_FRAME:
            value = extra.get(key)
            if value is not None and value.ndim > dim and value.shape[dim] == n:
                extra[key] = value.index_select(dim, index)
        entries.append(dataclasses.replace(entry, extra=extra))
    return dataclasses.replace(group, entries=entries)


def windowed_adapter(inner: Callable[..., torch.Tensor], cw: ContextWindows,
                     guides: Callable[..., Any] | None = None) -> Callable[..., torch.Tensor]:
    """An adapter that runs ``inner`` window by window along ``cw.dim`` and blends the results.

    The schedule's step counter advances whenever σ changes (uniform schedules move with it). A
    ``mask=`` the adapter is given (a video family's noise mask) is cut to each window's frames.
    ``guides(group, x, start) -> (tail, group)`` (a family's ``window_guides``) names trailing
    frames along the frame axis that are not part of the clip but join every window (LTX-Video's
    guide frames, averaged evenly over the windows) and places the conditioning for a window
    starting at frame ``start``.
    """
    state = {"sigma": None, "step": -1}

    def adapter(module: Any, x: torch.Tensor, sigma: torch.Tensor, group: Any, **kw: Any) -> torch.Tensor:
        if state["sigma"] is None or float(sigma) != state["sigma"]:
            state["sigma"], state["step"] = float(sigma), state["step"] + 1
        total = x.shape[cw.dim]
        tail = guides(group, x, 0)[0] if guides is not None and cw.dim == 2 else 0
        n = total - tail
        if n < 1:
            raise ValueError(f"the latent has {total} frames, all of them guide frames: no clip to window")
        out = torch.zeros_like(x, dtype=torch.float32)
        weight = torch.zeros(total, dtype=torch.float32, device=x.device)
        for idxs in window_schedule(n, cw, state["step"]):
            full = idxs + list(range(n, total))
            index = torch.tensor(full, device=x.device)
            sub = _sliced(group, cw.dim, full, total)
            if tail:
                sub = guides(sub, x, min(idxs))[1]
            extra = {k: (v.index_select(cw.dim, index.to(v.device))
                         if isinstance(v, torch.Tensor) and v.ndim > cw.dim and v.shape[cw.dim] == total else v)
                     for k, v in kw.items()}
            part = inner(module, x.index_select(cw.dim, index), sigma, sub, **extra).float()
            w = torch.cat([fuse_weights(idxs, n, cw), torch.ones(tail)]).to(x.device)
            shape = [1] * x.ndim
            shape[cw.dim] = len(full)
            out.index_add_(cw.dim, index, part * w.view(shape))
            weight.index_add_(0, index, w)
        shape = [1] * x.ndim
        shape[cw.dim] = total
        return out / weight.clamp(min=1e-37).view(shape)

    return adapter
