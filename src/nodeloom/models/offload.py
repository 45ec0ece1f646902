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
running the fp8-rounded weights in the compute dtype. Weights that came from a scaled fp8 file keep
the file's fp8 values and their per-tensor ``weight_scale`` (:func:`keep_quantised`): the forward
computes ``weight · weight_scale``, the same numbers as the dequantised weight. Layers a diffusers
model marks precision-sensitive (:func:`skip_patterns`: timestep and caption embedders, patch
embeddings) stay in the compute dtype.
An fp8 input (a model reading a layer's weight dtype to cast its input) computes in the layer's
``compute_dtype`` instead. :func:`compute_param` is the parameter whose dtype inputs should take.

Only torch; imported lazily by :class:`nodeloom.models.manager.ModelManager`. The CUDA side of
both (real host ↔ device copies, fp8 on a GPU) is untested here: no GPU.
"""

from __future__ import annotations

import types
from typing import Any

__all__ = ["BlockOffload", "compute_param", "dequantised_state_dict", "find_blocks", "fp8_bytes", "keep_quantised",
           "skip_patterns", "store_fp8"]

#: ComfyUI's ``weight_dtype`` names → torch dtypes (``_fast`` picks fp8 matmuls on GPUs; the storage is the same)
FP8_NAMES = {"fp8_e4m3fn": "float8_e4m3fn", "fp8_e4m3fn_fast": "float8_e4m3fn", "fp8_e5m2": "float8_e5m2"}


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


def _is_fp8(dtype: Any) -> bool:
    return "float8" in str(dtype)


def compute_param(module: Any) -> Any:
    """The first parameter not stored in fp8 (whose dtype and device inputs should take), else the first one.

    Raises:
        StopIteration: the module has no parameters.
    """
    first = None
    for p in module.parameters():
        if not _is_fp8(p.dtype):
            return p
        first = first if first is not None else p
    if first is None:
        raise StopIteration(f"{type(module).__name__} has no parameters")
    return first


def fp8_bytes(module: Any) -> tuple[int, int]:
    """``(bytes of fp8-stored parameters, bytes of all parameters)`` of ``module``."""
    fp8 = total = 0
    for p in module.parameters():
        n = p.numel() * p.element_size()
        total += n
        fp8 += n if _is_fp8(p.dtype) else 0
    return fp8, total


def skip_patterns(module: Any) -> tuple[str, ...]:
    """The layer-name patterns fp8 storage leaves alone: the precision-sensitive modules a diffusers
    model declares (``_skip_layerwise_casting_patterns``: timestep and caption embedders, patch
    embeddings) without the generic ``norm``, which there means norm layers (no Linear/Conv weights)
    but would also catch the AdaLN modulation projections (``norm1.linear``), the largest Linear
    layers after attention and MLP, which ComfyUI stores in fp8."""
    return tuple(p for p in getattr(module, "_skip_layerwise_casting_patterns", None) or () if p != "norm")


def _layers(module: Any, skip: Any) -> list[tuple[str, Any, Any]]:
    """``(name, layer, forward)`` of the Linear/Conv layers fp8 storage applies to."""
    import re

    import torch

    if skip is None:
        skip = skip_patterns(module)
    out = []
    for name, sub in module.named_modules():
        if isinstance(sub, torch.nn.Linear):
            forward = _linear_forward
        elif isinstance(sub, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            forward = _conv_forward
        else:
            continue
        if any(re.search(pattern, name) for pattern in skip):
            continue
        if _is_fp8(sub.weight.dtype) or not sub.weight.is_floating_point():
            continue  # stored already
        out.append((name, sub, forward))
    return out


def _store(sub: Any, forward: Any, weight: Any, scale: Any = None) -> None:
    import torch

    sub.compute_dtype = sub.weight.dtype  # also what PEFT casts LoRA adapters to
    sub.weight = torch.nn.Parameter(weight, requires_grad=False)
    if scale is not None:
        sub.register_buffer("weight_scale", scale.detach().to(torch.float32).reshape(()))
    sub.forward = types.MethodType(forward, sub)


def store_fp8(module: Any, weight_dtype: str, skip: Any = None) -> int:
    """Keep ``module``'s Linear and Conv weights in fp8; each forward upcasts to the input's dtype.

    Args:
        module: the model, changed in place.
        weight_dtype: ``fp8_e4m3fn``, ``fp8_e4m3fn_fast`` or ``fp8_e5m2`` (ComfyUI's ``weight_dtype`` names).
        skip: regular expressions of layer names left as they are (None: :func:`skip_patterns`).

    Returns:
        how many layers now store fp8 weights.

    Raises:
        ValueError: an unknown ``weight_dtype``.
    """
    import torch

    if weight_dtype not in FP8_NAMES:
        raise ValueError(f"`weight_dtype` must be one of {sorted(FP8_NAMES)}, got {weight_dtype!r}")
    fp8 = getattr(torch, FP8_NAMES[weight_dtype])
    layers = _layers(module, skip)
    for _, sub, forward in layers:
        _store(sub, forward, sub.weight.detach().to(fp8))
    return len(layers)


def keep_quantised(module: Any, quantised: dict[str, tuple[Any, Any]], skip: Any = None) -> int:
    """Give layers whose weights were dequantised from fp8 their file's fp8 values and scale back.

    A layer's weight ``W`` came from the fp8 tensor ``q`` with per-tensor scale ``s`` when
    ``q.float() · s`` (the dequantisation) gives ``W`` exactly; the file's key names need not match
    the module's (converters rename, split fused projections and reorder rows), so the layer is
    matched on its values: each candidate scale of a file tensor with the same input width is tried
    on two rows, then checked on the whole weight. Layers with no exact match are left as they are.

    Args:
        module: the model built from the dequantised weights, changed in place.
        quantised: file layer name → ``(fp8 tensor, scalar scale)`` (1.0 for plain fp8 weights).
        skip: as :func:`store_fp8`.

    Returns:
        how many layers now store fp8 weights with their scale.
    """
    import torch

    candidates: dict[tuple[Any, tuple[int, ...]], list[float]] = {}
    for q, scale in quantised.values():
        if scale.numel() != 1:
            continue  # per-row scales stay dequantised
        key = (q.dtype, tuple(q.shape[1:]))
        value = float(scale)
        if value not in candidates.setdefault(key, []):
            candidates[key].append(value)
    count = 0
    for _, sub, forward in _layers(module, skip):
        w = sub.weight.detach()
        if w.dtype != torch.float32:
            continue  # the dequantisation is float32: nothing else can match exactly
        for (fp8, cols), scales in candidates.items():
            if tuple(w.shape[1:]) != cols:
                continue
            match = _match(w, fp8, scales)
            if match is not None:
                _store(sub, forward, match[0], torch.tensor(match[1], dtype=torch.float32))
                count += 1
                break
    return count


def _match(w: Any, fp8: Any, scales: list[float]) -> tuple[Any, float] | None:
    """The fp8 values and scale that give ``w`` exactly, trying every candidate scale at once on two rows."""
    import torch

    probe = w[: min(2, w.shape[0])].reshape(1, -1)
    cand = torch.tensor(scales, dtype=torch.float32).reshape(-1, 1)
    fits = torch.nonzero(((probe / cand).to(fp8).float() * cand == probe).all(dim=1)).flatten().tolist()
    for i in fits:
        s = cand[i, 0]
        q = (w / s).to(fp8)
        if torch.equal(q.float() * s, w):
            return q, scales[i]
    return None


def _weight(self: Any, dtype: Any) -> Any:
    weight = self.weight.to(dtype)
    scale = getattr(self, "weight_scale", None)
    return weight * scale.to(dtype) if scale is not None else weight


def _compute_dtype(self: Any, x: Any) -> Any:
    """The input's dtype, unless it is fp8 (a model that cast its input to this layer's weight dtype)."""
    return self.compute_dtype if _is_fp8(x.dtype) else x.dtype


def _linear_forward(self: Any, x: Any) -> Any:
    import torch.nn.functional as F

    dtype = _compute_dtype(self, x)
    x = x.to(dtype)
    bias = self.bias.to(dtype) if self.bias is not None else None
    return F.linear(x, _weight(self, dtype), bias)


def _conv_forward(self: Any, x: Any) -> Any:
    dtype = _compute_dtype(self, x)
    x = x.to(dtype)
    bias = self.bias.to(dtype) if self.bias is not None else None
    return self._conv_forward(x, _weight(self, dtype), bias)


def dequantised_state_dict(module: Any) -> dict[str, Any]:
    """``module``'s state dict with fp8-stored weights as the float32 numbers they compute with
    (``weight · weight_scale``) and no ``weight_scale`` entries: comparable with a float model's."""
    import torch

    out: dict[str, Any] = {}
    scales = {f"{name}.weight": sub.weight_scale for name, sub in module.named_modules()
              if isinstance(getattr(sub, "weight_scale", None), torch.Tensor) and hasattr(sub, "compute_dtype")}
    for key, value in module.state_dict().items():
        if key[: -len("_scale")] in scales and key.endswith(".weight_scale"):
            continue
        if _is_fp8(value.dtype):
            value = value.float() * scales[key] if key in scales else value.float()
        out[key] = value
    return out
