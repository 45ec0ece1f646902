"""Resize, crop and pad image tensors (ComfyUI's ``common_upscale`` and friends).

Functions work on channel-first ``[B,C,H,W]`` samples (``upscale``) or on IMAGE
``[B,H,W,C]`` tensors (the rest), return new tensors and never mutate their inputs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = ["CROP_METHODS", "UPSCALE_METHODS", "bislerp", "center_crop_box", "crop_image", "pad_for_outpaint", "upscale", "upscale_image"]

UPSCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
CROP_METHODS = ("disabled", "center")


def center_crop_box(width: int, height: int, new_width: int, new_height: int) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` of the largest centred box of the target aspect ratio."""
    old_aspect = width / height
    new_aspect = new_width / new_height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((width - width * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((height - height * (old_aspect / new_aspect)) / 2)
    return x, y, width - 2 * x, height - 2 * y


def _slerp_rows(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between channel vectors (dim 1), magnitudes interpolated linearly;
    near-parallel pairs keep ``a``, near-opposite ones interpolate linearly (ComfyUI's edge cases)."""
    na, nb = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
    ua = torch.where(na == 0, torch.zeros_like(a), a / na)
    ub = torch.where(nb == 0, torch.zeros_like(b), b / nb)
    dot = (ua * ub).sum(1, keepdim=True)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    out = ((torch.sin((1 - t) * omega) / so) * ua + (torch.sin(t * omega) / so) * ub) * (na * (1 - t) + nb * t)
    out = torch.where(dot > 1 - 1e-5, a, out)
    return torch.where(dot < 1e-5 - 1, a * (1 - t) + b * t, out)


def _bislerp(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Slerp upscaling along the width, then the height; the source pair and weight of each output
    position are those of a bilinear (half-pixel) resize of the index ramp, as ComfyUI takes them."""
    def axis(v: torch.Tensor, size: int, dim: int) -> torch.Tensor:
        n = v.shape[dim]
        ramp = torch.arange(n, dtype=torch.float32, device=v.device)
        pos = F.interpolate(ramp.view(1, 1, 1, n), size=(1, size), mode="bilinear").flatten()
        nxt = F.interpolate((ramp + 1).clamp(max=n - 1).view(1, 1, 1, n), size=(1, size), mode="bilinear").flatten()
        shape = [1, 1, 1, 1]
        shape[dim] = size
        return _slerp_rows(v.index_select(dim, pos.long()), v.index_select(dim, nxt.long()),
                           (pos - pos.floor()).view(shape))

    return axis(axis(x, w, 3), h, 2)


def bislerp(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Resize ``[B,C,H,W]`` samples by spherical interpolation of their channel vectors (ComfyUI's
    "bislerp" for latents), computed in float32 and returned in the input's dtype."""
    return _bislerp(samples.float(), height, width).to(samples.dtype)


def _lanczos(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    out = []
    for item in samples:
        arr = (item.movedim(0, -1).detach().float().cpu().clamp(0, 1).numpy() * 255.0).round().astype(np.uint8)
        channels = arr.shape[-1]
        pil = Image.fromarray(arr[..., 0] if channels == 1 else arr)
        resized = np.asarray(pil.resize((width, height), resample=Image.Resampling.LANCZOS), dtype=np.float32) / 255.0
        if resized.ndim == 2:
            resized = resized[..., None]
        out.append(torch.from_numpy(resized.copy()).movedim(-1, 0))
    return torch.stack(out).to(samples.device, samples.dtype)


def upscale(samples: torch.Tensor, width: int, height: int, method: str = "bilinear", crop: str = "disabled") -> torch.Tensor:
    """Resize channel-first samples ``[B,C,H,W]`` (or ``[B,C,T,H,W]``) to ``height x width``.

    Args:
        samples: the tensor to resize.
        width / height: target size in pixels (≥ 1).
        method: one of :data:`UPSCALE_METHODS` (``"lanczos"`` goes through PIL, 8-bit), or
            ``"nearest"`` / ``"bislerp"`` (see :func:`bislerp`).
        crop: ``"center"`` first crops to the target aspect ratio, ``"disabled"`` stretches.

    Raises:
        ValueError: unknown method or crop, or a size below 1.
    """
    if method not in UPSCALE_METHODS and method not in ("nearest", "bislerp"):
        raise ValueError(f"`upscale_method` must be one of {list(UPSCALE_METHODS)}, got {method!r}")
    if crop not in CROP_METHODS:
        raise ValueError(f"`crop` must be one of {list(CROP_METHODS)}, got {crop!r}")
    if width < 1 or height < 1:
        raise ValueError(f"target size must be at least 1x1, got {width}x{height}")
    shape = tuple(samples.shape)
    flat = samples
    if len(shape) > 4:  # video latents: fold the extra axes into the batch
        flat = samples.reshape(shape[0], shape[1], -1, shape[-2], shape[-1]).movedim(2, 1).reshape(-1, shape[1], shape[-2], shape[-1])
    if crop == "center":
        x, y, w, h = center_crop_box(flat.shape[-1], flat.shape[-2], width, height)
        flat = flat[..., y : y + h, x : x + w]
    if method == "lanczos":
        out = _lanczos(flat, width, height)
    else:
        out = bislerp(flat, width, height) if method == "bislerp" else F.interpolate(flat, size=(height, width), mode=method)
    if len(shape) == 4:
        return out
    out = out.reshape((shape[0], -1, shape[1], height, width)).movedim(2, 1)
    return out.reshape(shape[:-2] + (height, width))


def upscale_image(image: torch.Tensor, width: int, height: int, method: str = "bilinear", crop: str = "disabled") -> torch.Tensor:
    """:func:`upscale` for an IMAGE ``[B,H,W,C]``; a 0 width or height keeps the aspect ratio.

    Both 0 returns the image unchanged.
    """
    if width == 0 and height == 0:
        return image
    h, w = image.shape[1], image.shape[2]
    if width == 0:
        width = max(1, round(w * height / h))
    elif height == 0:
        height = max(1, round(h * width / w))
    return upscale(image.movedim(-1, 1), width, height, method, crop).movedim(1, -1)


def crop_image(image: torch.Tensor, width: int, height: int, x: int, y: int) -> torch.Tensor:
    """Crop an IMAGE to ``width x height`` at ``(x, y)``; the origin is clamped inside the image."""
    x = min(x, image.shape[2] - 1)
    y = min(y, image.shape[1] - 1)
    return image[:, y : y + height, x : x + width, :]


def pad_for_outpaint(image: torch.Tensor, left: int, top: int, right: int, bottom: int, feathering: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad an IMAGE with grey (0.5) and make the outpainting MASK (1 = to paint).

    Inside the original area the mask ramps quadratically from 1 at padded edges to 0 at
    ``feathering`` pixels in, when the image is larger than twice the feathering.

    Returns:
        ``(padded IMAGE, MASK [1,H',W'])``.
    """
    b, h, w, c = image.shape
    out = torch.full((b, h + top + bottom, w + left + right, c), 0.5, dtype=torch.float32)
    out[:, top : top + h, left : left + w, :] = image.float()
    mask = torch.ones((h + top + bottom, w + left + right), dtype=torch.float32)
    inner = torch.zeros((h, w), dtype=torch.float32)
    if feathering > 0 and feathering * 2 < h and feathering * 2 < w:
        rows = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
        cols = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
        big = float(max(h, w))
        dist = torch.stack([
            rows if top else torch.full_like(rows, big),
            (h - rows) if bottom else torch.full_like(rows, big),
            cols if left else torch.full_like(cols, big),
            (w - cols) if right else torch.full_like(cols, big),
        ]).amin(dim=0)
        ramp = ((feathering - dist) / feathering).clamp(min=0)
        inner = torch.where(dist < feathering, ramp * ramp, inner)
    mask[top : top + h, left : left + w] = inner
    return out, mask[None]
