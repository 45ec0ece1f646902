"""``comfy.ldm.modules.attention``: the attention functions packs call in their own modules.

``attention_pytorch(q, k, v, heads, mask, ...)`` is multi-head scaled dot-product attention with
ComfyUI's calling convention: ``q``/``k``/``v`` as ``[B, tokens, heads·dim]`` (or, with
``skip_reshape``, ``[B, heads, tokens, dim]``), the output as ``[B, tokens, heads·dim]`` (or
``[B, heads, tokens, dim]`` with ``skip_output_reshape``); masks broadcast over batch and heads.
``optimized_attention`` / ``attention_basic`` / ``optimized_attention_masked`` are the same
function (torch's SDPA picks the kernel). ``wrap_attn`` honours a pack's
``transformer_options["optimized_attention_override"]``. nodeloom's own UNets do not call these:
they are for the modules packs build themselves. ``comfy.ldm``'s model code is not provided.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["attention_basic", "attention_pytorch", "optimized_attention", "optimized_attention_masked", "wrap_attn"]


def wrap_attn(func: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Route calls through ``transformer_options["optimized_attention_override"](func, *args, **kwargs)``
    when the caller passes one (once per call: the override's own call of ``func`` runs it)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> torch.Tensor:
        if kwargs.pop("_inside_attn_wrapper", False):
            return func(*args, **kwargs)
        override = (kwargs.get("transformer_options") or {}).get("optimized_attention_override")
        if override is not None:
            return override(func, *args, _inside_attn_wrapper=True, **kwargs)
        return func(*args, **kwargs)

    return wrapper


def _heads_first(t: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, width = t.shape
    if width % heads:
        raise ValueError(f"attention: the width {width} is not divisible by heads={heads}")
    return t.view(b, n, heads, width // heads).transpose(1, 2)


def _broadcast_mask(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    if mask is None:
        return None
    while mask.ndim < 4:
        mask = mask.unsqueeze(0 if mask.ndim == 2 else 1)
    return mask.to(like.device) if mask.dtype == torch.bool else mask.to(like.device, like.dtype)


@wrap_attn
def attention_pytorch(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, mask: torch.Tensor | None = None,
                      attn_precision: Any = None, skip_reshape: bool = False, skip_output_reshape: bool = False,
                      **_: Any) -> torch.Tensor:
    """Multi-head attention of ``q`` over ``k``/``v`` (see the module docstring for the layouts)."""
    if not skip_reshape:
        q, k, v = (_heads_first(t, heads) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=_broadcast_mask(mask, q), dropout_p=0.0, is_causal=False)
    if skip_output_reshape:
        return out
    b, h, n, d = out.shape
    return out.transpose(1, 2).reshape(b, n, h * d)


attention_basic = attention_pytorch
optimized_attention = attention_pytorch
optimized_attention_masked = attention_pytorch
