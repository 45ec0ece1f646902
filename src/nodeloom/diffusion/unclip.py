"""SDXL "Revision": CLIP-vision image embeddings in place of the pooled text embedding.

unCLIPConditioning stores ``unclip_conditioning`` items (``clip_vision_output``, ``strength``,
``noise_augmentation``) on conditioning entries. Of the families nodeloom samples, SDXL reads
them, as ComfyUI's SDXL does: each image embedding (CLIP-G vision, 1280 wide) is noised to the
level ``round(999 · noise_augmentation)`` of a 1000-step squared-cosine schedule,
``√ᾱ_t · e + √(1 − ᾱ_t) · n`` with ``n`` drawn from a CPU generator seeded ``seed − 10`` (the
sampler's seed; the same draw for every embedding), and scaled by ``strength``; several
embeddings (several items, or a batch of images) are summed and noised once more at level 0.
The result replaces the entry's ``pooled_output``. Every other family ignores the items, as
ComfyUI's models without an unCLIP input do.

Imports torch only; no node class.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch

from nodeloom.errors import ValidationError

__all__ = ["REVISION_WIDTH", "apply_unclip", "revision_pooled"]

REVISION_WIDTH = 1280
_LEVELS = 1000


@functools.lru_cache(maxsize=1)
def _schedule() -> tuple[torch.Tensor, torch.Tensor]:
    """``(√ᾱ, √(1 − ᾱ))`` per level of the squared-cosine schedule (betas capped at 0.999), float32."""

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = torch.tensor([min(1 - alpha_bar((i + 1) / _LEVELS) / alpha_bar(i / _LEVELS), 0.999)
                          for i in range(_LEVELS)], dtype=torch.float64)
    cumulative = torch.cumprod(1.0 - betas, dim=0)
    return cumulative.sqrt().float(), (1.0 - cumulative).sqrt().float()


def _noised(x: torch.Tensor, level: int, noise: torch.Tensor) -> torch.Tensor:
    keep, add = _schedule()
    return keep[level] * x + add[level] * noise


def _embeds(item: Any) -> torch.Tensor:
    output = item.get("clip_vision_output") if isinstance(item, dict) else None
    embeds = getattr(output, "image_embeds", None)
    if embeds is None and isinstance(output, dict):
        embeds = output.get("image_embeds")
    if not isinstance(embeds, torch.Tensor) or embeds.ndim != 2 or embeds.shape[1] != REVISION_WIDTH:
        shape = tuple(embeds.shape) if isinstance(embeds, torch.Tensor) else type(embeds).__name__
        raise ValidationError(f"unCLIPConditioning on SDXL needs image embeddings [images, {REVISION_WIDTH}] "
                              f"(CLIPVisionEncode with the CLIP-G vision model, clip_vision_g), got {shape}")
    return embeds.float().cpu()


def revision_pooled(items: list[Any], seed: int) -> torch.Tensor:
    """The ``[1, 1280]`` pooled embedding SDXL gets from ``unclip_conditioning`` items."""
    parts = []
    for item in items:
        strength, augmentation = float(item["strength"]), float(item["noise_augmentation"])
        level = round((_LEVELS - 1) * augmentation)
        for embed in _embeds(item):
            noise = torch.randn((1, REVISION_WIDTH), generator=torch.Generator().manual_seed(int(seed) - 10))
            parts.append(_noised(embed[None], level, noise) * strength)
    if not parts:
        raise ValidationError("unCLIPConditioning left an empty image embedding list")
    if len(parts) == 1:
        return parts[0]
    # ComfyUI draws this last noise unseeded; here it comes from a generator seeded alike (reproducible)
    merge_noise = torch.randn((1, REVISION_WIDTH), generator=torch.Generator().manual_seed(int(seed) - 9))
    return _noised(torch.stack(parts).sum(0), 0, merge_noise)


def apply_unclip(model: Any, conds: list[Any] | None, seed: int) -> list[Any] | None:
    """``conds`` with SDXL's Revision pooled embedding in each entry carrying ``unclip_conditioning``
    (the items consumed); unchanged for other families or entries without items."""
    if not conds or not getattr(model, "is_sdxl", False):
        return conds
    out = []
    for entry in conds:
        options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
        if not options.get("unclip_conditioning"):
            out.append(entry)
            continue
        options = dict(options)
        options["pooled_output"] = revision_pooled(options.pop("unclip_conditioning"), seed)
        out.append([entry[0], options])
    return out
