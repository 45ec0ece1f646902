"""Preparing reference images for a CLIP-vision encoder, as ComfyUI_IPAdapter_plus's utility
nodes do: a square crop (or pad) resized with a chosen PIL filter, contrast-adaptive
sharpening (AMD's CAS), the noisy "negative" images of ``IPAdapterNoise`` and the tiles (with
their masks) of ``IPAdapterTiled``.

Plain functions on ``[B, H, W, C]`` float images in 0..1; no nodes, no model code.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["CROP_POSITIONS", "INTERPOLATIONS", "NOISE_TYPES", "contrast_adaptive_sharpen", "gaussian_blur_k",
           "prep_for_clip_vision", "reference_noise", "reference_tiles"]

INTERPOLATIONS = ["LANCZOS", "BICUBIC", "HAMMING", "BILINEAR", "BOX", "NEAREST"]
CROP_POSITIONS = ["top", "bottom", "left", "right", "center", "pad"]
NOISE_TYPES = ["fade", "dissolve", "gaussian", "shuffle"]


def _square(image: torch.Tensor, position: str) -> torch.Tensor:
    """``[B, C, H, W]`` cropped to its shorter side at ``position``, or padded with black to its longer one."""
    _, _, h, w = image.shape
    if position == "pad":
        if h == w:
            return image
        half = abs(h - w) // 2
        pad = (half, half, 0, 0) if h > w else (0, 0, half, half)
        return torch.nn.functional.pad(image, pad, value=0.0)
    side = min(h, w)
    x, y = (w - side) // 2, (h - side) // 2
    if position == "top":
        y = 0
    elif position == "bottom":
        y = h - side
    elif position == "left":
        x = 0
    elif position == "right":
        x = w - side
    return image[:, :, y:y + side, x:x + side]


def prep_for_clip_vision(image: torch.Tensor, interpolation: str = "LANCZOS", crop_position: str = "center",
                         sharpening: float = 0.0, size: int = 224) -> torch.Tensor:
    """A ``size``² square of each image: cropped at ``crop_position`` (or padded, ``pad``), resized
    by PIL with ``interpolation`` through 8-bit pixels, then sharpened by ``sharpening`` (0..1).

    Raises:
        ValueError: an unknown ``interpolation`` or ``crop_position``; the message lists the choices.
    """
    from PIL import Image as PILImage

    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"`interpolation` must be one of {', '.join(INTERPOLATIONS)}; got {interpolation!r}")
    if crop_position not in CROP_POSITIONS:
        raise ValueError(f"`crop_position` must be one of {', '.join(CROP_POSITIONS)}; got {crop_position!r}")
    square = _square(image.permute(0, 3, 1, 2), crop_position)
    resample = getattr(PILImage.Resampling, interpolation)
    frames = []
    for frame in square:
        pixels = (frame.clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()  # PIL's 8-bit pixels
        resized = PILImage.fromarray(np.ascontiguousarray(pixels)).resize((size, size), resample=resample)
        frames.append(torch.from_numpy(np.asarray(resized).copy()).float().div(255).permute(2, 0, 1))
    out = torch.stack(frames)
    if sharpening > 0:
        out = contrast_adaptive_sharpen(out, sharpening)
    return out.permute(0, 2, 3, 1)


def contrast_adaptive_sharpen(image: torch.Tensor, amount: float) -> torch.Tensor:
    """AMD's contrast-adaptive sharpening of ``[B, C, H, W]`` images: each pixel moves away from its
    four neighbours by a weight that shrinks where the 3×3 neighbourhood already has contrast."""
    p = torch.nn.functional.pad(image, (1, 1, 1, 1))
    at = lambda dy, dx: p[..., 1 + dy:p.shape[-2] - 1 + dy, 1 + dx:p.shape[-1] - 1 + dx]  # noqa: E731
    cross = torch.stack([at(-1, 0), at(0, -1), at(0, 0), at(0, 1), at(1, 0)])
    diag = torch.stack([at(-1, -1), at(-1, 1), at(1, -1), at(1, 1)])
    lo = cross.amin(0).clamp(min=0) + diag.amin(0).clamp(min=0)
    hi = cross.amax(0).clamp(max=1) + diag.amax(0).clamp(max=1)
    amp = torch.sqrt(torch.minimum(lo, 2 - hi) / hi)
    w = -amp * (amount * (1 / 5 - 1 / 8) + 1 / 8)
    out = ((at(-1, 0) + at(0, -1) + at(0, 1) + at(1, 0)) * w + at(0, 0)) / (1 + 4 * w)
    return torch.nan_to_num(out).clamp(0, 1)


def gaussian_blur_k(image: torch.Tensor, kernel: int, sigma: float | None = None) -> torch.Tensor:
    """Blur ``[B, C, H, W]`` with an odd ``kernel``-wide Gaussian (``sigma`` by default
    ``0.3·((k−1)/2 − 1) + 0.8``), edges mirrored."""
    if sigma is None:
        sigma = 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8
    axis = torch.arange(kernel, dtype=image.dtype, device=image.device) - (kernel - 1) / 2
    g = torch.exp(-(axis / sigma) ** 2 / 2)
    g = g / g.sum()
    c = image.shape[1]
    half = kernel // 2
    mode = "reflect" if half < min(image.shape[-2:]) else "replicate"
    x = torch.nn.functional.pad(image, (half, half, half, half), mode=mode)
    x = torch.nn.functional.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, kernel), groups=c)
    return torch.nn.functional.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, kernel, 1), groups=c)


def _elastic(image: torch.Tensor, alpha: float, sigma: float, gen: torch.Generator) -> torch.Tensor:
    """Warp ``[B, C, H, W]`` by a random displacement field (uniform −1..1, smoothed by ``sigma``,
    ``alpha`` pixels at most), black outside."""
    b, _, h, w = image.shape
    disp = torch.rand(1, 2, h, w, generator=gen) * 2 - 1
    if sigma > 0:
        k = int(8 * sigma + 1)
        disp = gaussian_blur_k(disp, k + (k % 2 == 0), sigma)
    disp = disp * torch.tensor([alpha / w, alpha / h]).view(1, 2, 1, 1)
    ys, xs = torch.meshgrid(torch.linspace(-1 + 1 / h, 1 - 1 / h, h), torch.linspace(-1 + 1 / w, 1 - 1 / w, w),
                            indexing="ij")
    grid = torch.stack([xs, ys], dim=-1)[None] + disp.permute(0, 2, 3, 1)
    return torch.nn.functional.grid_sample(image, grid.expand(b, -1, -1, -1), mode="bilinear", padding_mode="zeros",
                                           align_corners=False)


def reference_noise(kind: str, strength: float, blur: int, image: torch.Tensor | None = None,
                    size: int = 224) -> torch.Tensor:
    """A noisy ``size``² image (for an IP-Adapter's negative): the image (centre-cropped and
    resized, black when None) faded toward uniform noise (``fade``), with a ``strength`` share of
    its pixels replaced (``dissolve``), plus Gaussian noise (``gaussian``), or elastically warped,
    flipped and mixed with noise (``shuffle``); clamped to 0..1, then blurred by an odd ``blur``.
    The random draws are seeded by the image's sum, so one image always gives one noise.

    Raises:
        ValueError: an unknown ``kind``.
    """
    if kind not in NOISE_TYPES:
        raise ValueError(f"`type` must be one of {', '.join(NOISE_TYPES)}; got {kind!r}")
    if image is None:
        base = torch.zeros(1, size, size, 3)
    else:
        square = _square(image.permute(0, 3, 1, 2).float().cpu(), "center")
        base = torch.nn.functional.interpolate(square, size=(size, size), mode="bicubic", align_corners=False,
                                               antialias=True).permute(0, 2, 3, 1)
    gen = torch.Generator().manual_seed(int(base.sum().item()) % 1000000007)
    if kind == "fade":
        noise = base * (1 - strength) + torch.rand(base.shape, generator=gen) * strength
    elif kind == "dissolve":
        mask = (torch.rand(base.shape, generator=gen) < strength).float()
        noise = base * (1 - mask) + torch.rand(base.shape, generator=gen) * mask
    elif kind == "gaussian":
        noise = base + torch.randn(base.shape, generator=gen) * strength
    else:
        warped = _elastic(base.permute(0, 3, 1, 2), 75.0, (1 - strength) * 3.5, gen).flip(-1).flip(-2)
        warped = warped.permute(0, 2, 3, 1)
        grain = torch.randn(warped.shape, generator=gen) * (strength * 0.75)
        noise = warped * (1 - grain) + grain
    noise = noise.clamp(0, 1)
    if blur > 0:
        noise = gaussian_blur_k(noise.permute(0, 3, 1, 2), blur + (blur % 2 == 0)).permute(0, 2, 3, 1)
    return noise



def _pil_resize(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """``[B, C, H, W]`` resized by PIL's Lanczos filter through 8-bit pixels."""
    from PIL import Image as PILImage

    frames = []
    for frame in image:
        pixels = (frame.clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        resized = PILImage.fromarray(np.ascontiguousarray(pixels)).resize((width, height), PILImage.Resampling.LANCZOS)
        frames.append(torch.from_numpy(np.asarray(resized).copy()).float().div(255).permute(2, 0, 1))
    return torch.stack(frames)


def _center(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    top, left = max(0, (t.shape[-2] - h) // 2), max(0, (t.shape[-1] - w) // 2)
    return t[..., top:top + h, left:left + w]


def reference_tiles(image: torch.Tensor, mask: torch.Tensor | None = None, sharpening: float = 0.0,
                    tile: int = 256) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Tiles of a reference image for a tiled IP-Adapter, and for each the mask of where it acts.

    A near-square image (height/width between 0.75 and 1.33) is centre-cropped to a square and
    resized to 2×2 tiles; otherwise its shorter side becomes one tile and the longer keeps the
    proportion (at most 4 tiles: longer images are centre-cropped). Tiles overlap evenly to cover
    the image. ``mask`` (default all on) is resized like the image; each tile's mask is the mask
    inside the tile and 0 elsewhere. ``sharpening`` applies contrast-adaptive sharpening.

    Returns:
        the tiles ``[B, tile, tile, C]`` and masks ``[M, H', W']`` (the resized image's size).
    """
    _, oh, ow, _ = image.shape
    x = image.permute(0, 3, 1, 2).float()
    m = torch.ones(1, 1, oh, ow) if mask is None else mask.float().reshape(-1, 1, *mask.shape[-2:])
    m = torch.nn.functional.interpolate(m, size=(oh, ow), mode="bicubic", align_corners=False, antialias=True)
    if 0.75 < oh / ow < 1.33:
        side = min(oh, ow)
        x, m = _center(x, side, side), _center(m, side, side)
        width = height = tile * 2
    elif oh < ow:
        width, height = int(tile * ow / oh), tile
    else:
        width, height = tile, int(tile * oh / ow)
    x = _pil_resize(x, width, height)
    m = torch.nn.functional.interpolate(m, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    if oh / ow > 4 or oh / ow < 0.25:
        h, w = (tile, tile * 4) if oh < ow else (tile * 4, tile)
        x, m = _center(x, h, w), _center(m, h, w)
    if sharpening > 0:
        x = contrast_adaptive_sharpen(x, sharpening)
    x, m = x.permute(0, 2, 3, 1), m[:, 0]
    h, w = x.shape[1:3]
    nx, ny = -(-w // tile), -(-h // tile)
    step_x = tile - max(0.0, (nx * tile - w) / max(nx - 1, 1))
    step_y = tile - max(0.0, (ny * tile - h) / max(ny - 1, 1))
    tiles, masks = [], []
    for j in range(ny):
        for i in range(nx):
            x0, y0 = int(i * step_x), int(j * step_y)
            tiles.append(x[:, y0:y0 + tile, x0:x0 + tile])
            one = torch.zeros_like(m)
            one[:, y0:y0 + tile, x0:x0 + tile] = m[:, y0:y0 + tile, x0:x0 + tile]
            masks.append(one)
    return tiles, masks
