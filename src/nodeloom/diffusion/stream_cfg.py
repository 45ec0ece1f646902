"""Guidance with one scale per stream of a joint latent (ComfyUI's LTXVDualCFGGuider): LTX-2's
video and audio latents are stepped packed end to end (:mod:`~nodeloom.diffusion.av_latent`), and
each stream's share of the guided estimate is the CFG step at that stream's scale. Pure torch on
the packed estimates; the sampler's ``_guided`` evaluates them and hands them here. Imports no
node, engine or adapter."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = ["StreamCfg", "stream_cfg_for"]

#: scales this close are one scale (the whole latent is guided as by CFGGuider)
_SAME = 1e-6


@dataclass(frozen=True)
class StreamCfg:
    """One ``(scale, size)`` per stream, in packing order: ``size`` elements per batch item of the
    packed ``[B, 1, N]`` latent are guided at ``scale``."""

    streams: tuple[tuple[float, int], ...]

    def needs_uncond(self) -> bool:
        """Whether any stream is guided (a scale other than 1 reads the negative prediction)."""
        return any(not math.isclose(scale, 1.0) for scale, _ in self.streams)

    def combine(self, cond: torch.Tensor, uncond: torch.Tensor | None,
                cfg_fn: Callable[[torch.Tensor, torch.Tensor | None, float], torch.Tensor]) -> torch.Tensor:
        """The guided estimate: ``cfg_fn(cond, uncond, scale)`` (the model's CFG step, with its CFG and
        post-CFG functions) once per distinct scale, each stream's elements taken from its own."""
        guided: dict[float, torch.Tensor] = {}
        parts, start = [], 0
        for scale, size in self.streams:
            if scale not in guided:
                guided[scale] = cfg_fn(cond, uncond, scale)
            parts.append(guided[scale][..., start:start + size])
            start += size
        return torch.cat(parts, dim=-1)


def stream_cfg_for(scales: Sequence[float] | None, shapes: Sequence[torch.Size] | None) -> StreamCfg | None:
    """Per-stream guidance for a joint latent whose streams are shaped ``shapes`` (None: not a joint
    latent): ``scales[i]`` for stream ``i``, the last scale for any further stream. None where one
    scale serves the whole latent: no ``scales``, no joint latent, or all scales the same.
    """
    if not scales or not shapes:
        return None
    per = [float(scales[min(i, len(scales) - 1)]) for i in range(len(shapes))]
    if all(math.isclose(s, per[0], rel_tol=0.0, abs_tol=_SAME) for s in per):
        return None
    return StreamCfg(tuple((s, math.prod(shape[1:])) for s, shape in zip(per, shapes)))
