"""Perpendicular negative guidance (ComfyUI's PerpNegGuider): the negative prompt acts only through
its part perpendicular to the positive prompt's direction, both measured from an empty prompt's
estimate. Fits the sampler's ``dual`` hook (a third conditioning evaluated with the other two);
pure torch on the three denoised estimates. Imports no node, engine or adapter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["PerpNegCfg", "perp_neg"]


def perp_neg(pos: torch.Tensor, neg: torch.Tensor, empty: torch.Tensor, neg_scale: float,
             cfg: float) -> torch.Tensor:
    """``empty + cfg·(p − neg_scale·n⊥)`` with ``p = pos − empty``, ``n = neg − empty`` and n⊥ the
    part of n perpendicular to p (the projection taken over the whole batch, as ComfyUI does)."""
    p, n = pos - empty, neg - empty
    perp = n - (torch.mul(n, p).sum() / (torch.norm(p) ** 2)) * p
    return empty + cfg * (p - perp * neg_scale)


@dataclass(frozen=True)
class PerpNegCfg:
    """The empty conditioning (``middle``, evaluated every step with the other two) and the scale of
    the perpendicular negative. The MODEL's CFG and post-CFG functions are not applied (the guider
    refuses a MODEL carrying them)."""

    middle: list[Any]
    neg_scale: float

    def needs(self, cfg: float) -> tuple[bool, bool]:
        """The negative and the empty prompt are always evaluated."""
        return True, True

    def combine(self, pos: torch.Tensor, middle: torch.Tensor, neg: torch.Tensor, cfg: float,
                cfg_fn: Any) -> torch.Tensor:
        return perp_neg(pos, neg, middle, self.neg_scale, cfg)
