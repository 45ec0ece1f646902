"""Guidance with two conditionings and a negative (ComfyUI's DualCFGGuider): which estimates a
step needs and how they combine. Pure torch on the three denoised estimates; the sampler's
``_guided`` evaluates them and hands them here. Imports no node, engine or adapter."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["DualCfg"]


@dataclass(frozen=True)
class DualCfg:
    """The second conditioning (``middle``) and how it is mixed in.

    ``regular``: ``neg + (middle − neg)·cfg2 + (pos − middle)·cfg1``;
    ``nested``: ``neg + cfg2·((middle + (pos − middle)·cfg1) − neg)``. ``cfg2`` is the sampler's own
    cfg (the guider's ``cfg_cond2_negative``); CFG and post-CFG functions see the inner CFG of each form.
    """

    middle: list[Any]
    cfg1: float
    nested: bool = False

    def needs(self, cfg2: float) -> tuple[bool, bool]:
        """(evaluate the negative, evaluate the middle): the regular form skips the negative at
        cfg2 = 1 and, when cfg1 = 1 too, the middle (their terms then cancel), as ComfyUI does."""
        if self.nested:
            return True, True
        use_neg = not math.isclose(cfg2, 1.0)
        return use_neg, use_neg or not math.isclose(self.cfg1, 1.0)

    def combine(self, pos: torch.Tensor, middle: torch.Tensor, neg: torch.Tensor, cfg2: float,
                cfg_fn: Any) -> torch.Tensor:
        """The guided estimate; ``cfg_fn(cond, uncond, scale)`` is the model's CFG step (with the
        CFG and post-CFG functions set on it), applied to the inner pair of each form as ComfyUI does."""
        if self.nested:
            text = cfg_fn(pos, middle, self.cfg1)
            return neg + cfg2 * (text - neg)
        return cfg_fn(middle, neg, cfg2) + (pos - middle) * self.cfg1
