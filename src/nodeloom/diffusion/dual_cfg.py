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
    cfg (the guider's ``cfg_cond2_negative``); post-CFG functions see the inner CFG of each form.
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
                post_cfg: Any) -> torch.Tensor:
        """The guided estimate; ``post_cfg(guided, cond, uncond, scale)`` applies the model's post-CFG functions."""
        if self.nested:
            text = post_cfg(middle + (pos - middle) * self.cfg1, pos, middle, self.cfg1)
            return neg + cfg2 * (text - neg)
        inner = post_cfg(neg + (middle - neg) * cfg2, middle, neg, cfg2)
        return inner + (pos - middle) * self.cfg1
