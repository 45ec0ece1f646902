"""SeedVR2's pixel-side steps: padding frames to the shape the model takes, and the colour
corrections that pull an upscaled frame back to the colours of its source.

Shapes follow the SeedVR2 pipeline: IMAGE values are ``[B,H,W,C]`` frame sequences or
``[B,T,H,W,C]`` videos; the colour transfers work on channel-first ``[N,3,H,W]`` tensors in
-1..1 (the VAE's range), as the original pipeline's do. No nodes and no graph here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nodeloom.errors import ValidationError
from nodeloom.ops.color import lab_to_rgb, rgb_to_lab

__all__ = [
    "COLOR_METHODS",
    "adain_transfer",
    "color_transfer",
    "histogram_match",
    "lab_transfer",
    "pad_to_4n1",
    "pad_video",
    "wavelet_transfer",
]

#: Colour correction methods of :func:`color_transfer`.
COLOR_METHODS = ("lab", "wavelet", "adain")

_WAVELET_LEVELS = 5
_LAB_LUMINANCE_WEIGHT = 0.8


def pad_to_4n1(video: torch.Tensor) -> torch.Tensor:
    """Repeat the last frame of ``[B,T,...]`` until T is 1, 5, 9, 13... (4n + 1)."""
    t = video.shape[1]
    missing = (-(t - 1)) % 4
    if missing == 0:
        return video
    return torch.cat([video, video[:, -1:].expand(-1, missing, *video.shape[2:])], dim=1)


def pad_video(images: torch.Tensor) -> torch.Tensor:
    """Frames as SeedVR2 takes them: RGB only, clamped to 0..1, height and width padded with black
    to multiples of 16, frame count padded to 4n + 1 by repeating the last frame.

    Args:
        images: ``[T,H,W,C]`` (one video) or ``[B,T,H,W,C]``.

    Returns:
        ``[B,T',H',W',3]``.

    Raises:
        ValidationError: not 4-D or 5-D, or the shorter edge is under 2 pixels.
    """
    if images.ndim not in (4, 5):
        raise ValidationError(f"`resized_images` must be a 4-D or 5-D IMAGE tensor, got shape {tuple(images.shape)}")
    video = images[None] if images.ndim == 4 else images
    short = min(video.shape[2], video.shape[3])
    if short < 2:
        raise ValidationError(f"`resized_images`: the shorter edge must be at least 2 pixels, got {short}")
    video = video[..., :3].float().clamp(0.0, 1.0)
    h, w = video.shape[2], video.shape[3]
    video = F.pad(video, (0, 0, 0, (-w) % 16, 0, (-h) % 16))
    return pad_to_4n1(video)


def _blur(image: torch.Tensor, radius: int) -> torch.Tensor:
    """A 3x3 binomial blur dilated by ``radius`` (edges replicated), one level of the wavelet pyramid."""
    radius = min(radius, max(1, min(image.shape[-2:]) // 8))
    c = image.shape[1]
    k1 = torch.tensor([0.25, 0.5, 0.25], dtype=image.dtype, device=image.device)
    kernel = (k1[:, None] * k1[None, :]).expand(c, 1, 3, 3)
    padded = F.pad(image, (radius,) * 4, mode="replicate")
    return F.conv2d(padded, kernel, groups=c, dilation=radius)


def _split_frequencies(image: torch.Tensor, levels: int = _WAVELET_LEVELS) -> tuple[torch.Tensor, torch.Tensor]:
    high = torch.zeros_like(image)
    low = image
    for i in range(levels):
        blurred = _blur(low, 2**i)
        high = high + (low - blurred)
        low = blurred
    return high, low


def _match_size(ref: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if ref.shape[-2:] == like.shape[-2:]:
        return ref
    return F.interpolate(ref, size=like.shape[-2:], mode="bilinear", align_corners=False)


def wavelet_transfer(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Keep ``content``'s fine detail, take ``style``'s low-frequency colour (``[N,C,H,W]``, -1..1)."""
    style = _match_size(style, content)
    high, _ = _split_frequencies(content.float())
    _, low = _split_frequencies(style.float())
    return (high + low).clamp(-1.0, 1.0).to(content.dtype)


def adain_transfer(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Match each channel's mean and standard deviation to ``style``'s (``[N,C,H,W]``, -1..1)."""
    style = _match_size(style, content).float()
    x = content.float()
    dims = (2, 3)
    c_mean, c_std = x.mean(dims, keepdim=True), (x.var(dims, keepdim=True, unbiased=False) + eps).sqrt()
    s_mean, s_std = style.mean(dims, keepdim=True), (style.var(dims, keepdim=True, unbiased=False) + eps).sqrt()
    return ((x - c_mean) / c_std * s_std + s_mean).clamp(-1.0, 1.0).to(content.dtype)


def histogram_match(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Give ``source`` the value distribution of ``reference`` (rank to quantile), same shape as ``source``."""
    flat = source.flatten()
    ref_sorted = reference.flatten().sort().values
    n, m = flat.numel(), ref_sorted.numel()
    if n == m:
        matched = ref_sorted
    else:
        idx = (torch.linspace(0, 1, n, device=source.device) * (m - 1)).long().clamp(0, m - 1)
        matched = ref_sorted[idx]
    out = torch.empty_like(flat)
    out[flat.argsort()] = matched.to(out.dtype)
    return out.reshape(source.shape)


def lab_transfer(content: torch.Tensor, style: torch.Tensor, luminance_weight: float = _LAB_LUMINANCE_WEIGHT) -> torch.Tensor:
    """Wavelet transfer, then CIELAB: a* and b* histogram-matched to ``style``, L* kept at
    ``luminance_weight`` of the content's and the rest matched (``[N,3,H,W]``, -1..1)."""
    content = wavelet_transfer(content, style).float()
    style = _match_size(style, content).float()
    out = []
    for c, s in zip(content, style):
        c_lab = rgb_to_lab(((c + 1) / 2).clamp(0, 1).movedim(0, -1))
        s_lab = rgb_to_lab(((s + 1) / 2).clamp(0, 1).movedim(0, -1))
        a = histogram_match(c_lab[..., 1], s_lab[..., 1])
        b = histogram_match(c_lab[..., 2], s_lab[..., 2])
        lum = c_lab[..., 0]
        if luminance_weight < 1.0:
            lum = lum * luminance_weight + histogram_match(lum, s_lab[..., 0]) * (1.0 - luminance_weight)
        rgb = lab_to_rgb(torch.stack([lum, a, b], dim=-1)).clamp(0, 1)
        out.append(rgb.movedim(-1, 0) * 2 - 1)
    return torch.stack(out).to(content.dtype)


def color_transfer(content: torch.Tensor, style: torch.Tensor, method: str) -> torch.Tensor:
    """Apply one of :data:`COLOR_METHODS` frame by frame.

    Raises:
        ValidationError: unknown ``method``.
    """
    funcs = {"lab": lab_transfer, "wavelet": wavelet_transfer, "adain": adain_transfer}
    if method not in funcs:
        raise ValidationError(f"`color_correction_method` must be one of {[*COLOR_METHODS, 'none']}, got {method!r}")
    return torch.cat([funcs[method](content[i:i + 1], style[i:i + 1]) for i in range(content.shape[0])])
