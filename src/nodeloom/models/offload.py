"""Run models larger than the accelerator's memory: block-by-block offload and fp8 storage.

**Block offload** (ComfyUI's ``--lowvram`` idea): a diffusion transformer's repeated blocks
(the ``nn.ModuleList`` children of its root: ``transformer_blocks``, ``single_transformer_blocks``,
``layers``, ``blocks``...) keep their weights on the CPU; everything else (embeddings, norms,
projections) goes to the device. A forward pre-hook moves a block to the device just before its
forward and a forward hook moves it back right after, so one block's weights are on the device
at a time. Results are the same as with the whole model on the device; the cost is one host →
device copy of every block per forward.

**fp8 storage**: ``Linear``/``Conv`` weights are kept as ``float8_e4m3fn``/``float8_e5m2`` (a
quarter of float32's memory) and upcast to the input's dtype for each forward; the result equals
running the fp8-rounded weights in the compute dtype.

Only torch; imported lazily by :class:`nodeloom.models.manager.ModelManager`. The CUDA side of
both (real host ↔ device copies, fp8 on a GPU) is untested here: no GPU.
"""

from __future__ import annotations

import types
from typing import Any

__all__ = ["BlockOffload", "find_blocks", "store_fp8"]

FP8_NAMES = {"fp8_e4m3fn": "float8_e4m3fn", "fp8_e5m2": "float8_e5m2"}


def find_blocks(module: Any) -> list[Any]:
    """The repeated blocks of ``module``: entries of its direct ``ModuleList`` children (≥ 2 each)."""
    import torch

    blocks: list[Any] = []
    for child in module.children():
        if isinstance(child, torch.nn.ModuleList) and len(child) >= 2:
            blocks.extend(child)
    return blocks


class BlockOffload:
    """Hooks that keep ``module``'s blocks on ``offload_device`` except while each one runs.

    Args:
        module: the model (its blocks found by :func:`find_blocks`).
        device: the compute device (everything but the blocks is moved there).
        dtype: dtype of the whole model (None: unchanged).
        offload_device: where blocks wait (default CPU).

    Raises:
        ValueError: the module has no repeated blocks to offload.
    """

    def __init__(self, module: Any, device: Any, dtype: Any = None, offload_device: Any = "cpu") -> None:
        import torch

        self.module, self.device = module, torch.device(device)
        self.offload_device = torch.device(offload_device)
        self.blocks = find_blocks(module)
        if not self.blocks:
            raise ValueError(f"{type(module).__name__} has no repeated blocks (ModuleList children) to offload")
        in_blocks = {id(t) for b in self.blocks for t in (*b.parameters(), *b.buffers())}
        if dtype is not None:
            module.to(dtype=dtype)
        for block in self.blocks:
            self._move(block, self.offload_device)
        for sub in module.modules():  # parameters and buffers outside the blocks go to the device
            for name, t in [*sub.named_parameters(recurse=False), *sub.named_buffers(recurse=False)]:
                if id(t) not in in_blocks and t.device != self.device:
                    _set_tensor(sub, name, t.to(self.device))
        self._handles = []
        for block in self.blocks:
            self._handles.append(block.register_forward_pre_hook(lambda b, args: self._move(b, self.device)))
            self._handles.append(block.register_forward_hook(lambda b, args, out: self._move(b, self.offload_device)))
        module._nodeloom_block_offload = self

    def _move(self, block: Any, device: Any) -> None:
        block.to(device)

    def remove(self) -> None:
        """Take the hooks away (the blocks stay where they are)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.module.__dict__.pop("_nodeloom_block_offload", None)


def _set_tensor(module: Any, name: str, value: Any) -> None:
    import torch

    if name in module._parameters:
        module._parameters[name] = torch.nn.Parameter(value, requires_grad=module._parameters[name].requires_grad)
    else:
        module._buffers[name] = value


def store_fp8(module: Any, weight_dtype: str) -> int:
    """Keep ``module``'s Linear and Conv weights in fp8; each forward upcasts to the input's dtype.

    Args:
        module: the model, changed in place.
        weight_dtype: ``fp8_e4m3fn`` or ``fp8_e5m2`` (ComfyUI's ``weight_dtype`` names).

    Returns:
        how many layers now store fp8 weights.

    Raises:
        ValueError: an unknown ``weight_dtype``.
    """
    import torch

    if weight_dtype not in FP8_NAMES:
        raise ValueError(f"`weight_dtype` must be one of {sorted(FP8_NAMES)}, got {weight_dtype!r}")
    fp8 = getattr(torch, FP8_NAMES[weight_dtype])
    count = 0
    for sub in module.modules():
        if isinstance(sub, torch.nn.Linear):
            forward = _linear_forward
        elif isinstance(sub, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            forward = _conv_forward
        else:
            continue
        sub.weight = torch.nn.Parameter(sub.weight.detach().to(fp8), requires_grad=False)
        sub.forward = types.MethodType(forward, sub)
        count += 1
    return count


def _linear_forward(self: Any, x: Any) -> Any:
    import torch.nn.functional as F

    bias = self.bias.to(x.dtype) if self.bias is not None else None
    return F.linear(x, self.weight.to(x.dtype), bias)


def _conv_forward(self: Any, x: Any) -> Any:
    bias = self.bias.to(x.dtype) if self.bias is not None else None
    return self._conv_forward(x, self.weight.to(x.dtype), bias)
