"""The UNet call, plain or replayed from a captured CUDA graph (the opt-in fast path).

With ``MODEL.fast_path`` on a CUDA device, the first call for a given input signature captures
the UNet forward into a ``torch.cuda.CUDAGraph`` with static buffers; later calls copy their
inputs in and replay it, removing Python and kernel-launch overhead while running the same
kernels (same images). Calls with ControlNet residuals always run plainly.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["unet_forward"]


def _plain(unet: Any, x: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor, added: dict[str, Any] | None,
           residuals: tuple[list[torch.Tensor], torch.Tensor] | None) -> torch.Tensor:
    kw: dict[str, Any] = {"encoder_hidden_states": ctx, "return_dict": False}
    if added is not None:
        kw["added_cond_kwargs"] = added
    if residuals is not None:
        kw["down_block_additional_residuals"] = residuals[0]
        kw["mid_block_additional_residual"] = residuals[1]
    return unet(x, t, **kw)[0]


class _Graph:
    """One captured UNet call with its static input and output buffers."""

    def __init__(self, unet: Any, x: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor, added: dict[str, Any] | None):
        self.x, self.t, self.ctx = x.clone(), t.clone(), ctx.clone()
        self.added = None if added is None else {k: v.clone() for k, v in added.items()}
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):  # warm-up outside the graph (allocations, autotuning)
                _plain(unet, self.x, self.t, self.ctx, self.added, None)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = _plain(unet, self.x, self.t, self.ctx, self.added, None)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor, added: dict[str, Any] | None) -> torch.Tensor:
        self.x.copy_(x)
        self.t.copy_(t)
        self.ctx.copy_(ctx)
        for k, v in (added or {}).items():
            self.added[k].copy_(v)  # type: ignore[index]
        self.graph.replay()
        return self.out.clone()


def _signature(model: Any, unet: Any, x: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor,
               added: dict[str, Any] | None) -> tuple[Any, ...]:
    # LoRA strengths are Python floats baked into a captured graph, so they are part of the key
    loras = tuple((p.lora.name, p.strength) for p in model.loras)
    shapes = tuple(sorted((k, tuple(v.shape)) for k, v in (added or {}).items()))
    return (id(unet), tuple(x.shape), tuple(t.shape), tuple(ctx.shape), x.dtype, shapes, loras)


def unet_forward(model: Any, unet: Any, x: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor,
                 added: dict[str, Any] | None, residuals: tuple[list[torch.Tensor], torch.Tensor] | None) -> torch.Tensor:
    """Run the UNet once; through a cached CUDA graph when the fast path applies."""
    if not (model.fast_path and x.is_cuda and residuals is None):
        return _plain(unet, x, t, ctx, added, residuals)
    graphs = model.extra.setdefault("cuda_graphs", {})
    t = t.to(x.device, torch.float32).reshape(())
    key = _signature(model, unet, x, t, ctx, added)
    if key not in graphs:
        graphs[key] = _Graph(unet, x, t, ctx, added)
    return graphs[key](x, t, ctx, added)
