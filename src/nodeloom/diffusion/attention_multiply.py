"""The attention-multiply patch: ComfyUI's ``UNet*AttentionMultiply`` nodes scale the weights (and
biases) of a model's attention projections — ``to_q``/``to_k``/``to_v``/``to_out.0`` of the
self-attention (``attn1``) or cross-attention (``attn2``) layers, or only their output projection
split into spatial ("structural") and temporal layers.

Owns :class:`AttentionMultiply`, a MODEL patch (``extra["attn_patches"]``) that, while installed
for a run, multiplies the matching parameters in place and restores them from a copy afterwards.
ComfyUI matches parameter names of its own model code; diffusers' UNet and LTX-Video transformer
name these layers the same way, so :func:`matching_parameters` reads the same names. Model code:
no nodes, no engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from nodeloom.errors import ValidationError

__all__ = ["AttentionMultiply", "PROJECTIONS", "matching_parameters"]

#: the projections a factor can name, as the parameter-name part that follows the attention layer
PROJECTIONS = ("to_q", "to_k", "to_v", "to_out.0")
#: module names that mark a temporal layer (ComfyUI's SVD UNet: ``time_stack``; diffusers': temporal blocks)
_TEMPORAL = (".time_stack.", "temporal_transformer_blocks.")


def _is_temporal(name: str) -> bool:
    return any(mark in name for mark in _TEMPORAL)


@dataclass(frozen=True)
class AttentionMultiply:
    """Factors keyed by ``(layer, projection, temporal)``: ``layer`` ``attn1``/``attn2``,
    ``projection`` one of :data:`PROJECTIONS`, ``temporal`` True, False, or None for both."""

    factors: tuple[tuple[str, str, bool | None, float], ...]

    def factor_for(self, name: str) -> float | None:
        """The factor the parameter ``name`` is multiplied by, or None when no rule names it."""
        for layer, projection, temporal, factor in self.factors:
            if not any(name.endswith(f"{layer}.{projection}.{kind}") for kind in ("weight", "bias")):
                continue
            if temporal is None or temporal == _is_temporal(name):
                return factor
        return None

    @contextlib.contextmanager
    def installed(self, unet: Any) -> Iterator[None]:
        """Multiply the matching parameters until the block ends, then put the originals back."""
        saved: list[tuple[torch.Tensor, torch.Tensor]] = []
        try:
            with torch.no_grad():
                for param, factor in matching_parameters(unet, self):
                    if factor == 1.0:
                        continue
                    if param.dtype.itemsize == 1:
                        raise ValidationError("the attention-multiply nodes cannot scale weights stored in fp8; "
                                              "load the model with `weight_dtype` default")
                    saved.append((param, param.detach().clone()))
                    param.mul_(factor)
            yield
        finally:
            with torch.no_grad():
                for param, original in saved:
                    param.copy_(original)


def matching_parameters(module: Any, patch: AttentionMultiply) -> list[tuple[torch.Tensor, float]]:
    """``(parameter, factor)`` for each parameter of ``module`` a rule of ``patch`` names."""
    found = []
    for name, param in module.named_parameters():
        factor = patch.factor_for(name)
        if factor is not None:
            found.append((param, factor))
    return found
