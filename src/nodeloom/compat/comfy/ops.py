"""``comfy.ops``: layer classes packs build their own modules from.

``disable_weight_init.<Layer>`` is the torch layer without random initialisation (weights are
loaded right after, so initialising them is wasted time); ``manual_cast.<Layer>`` also computes
with its weights cast to the input's dtype and device at each call (weights kept in a storage
dtype). ``cast_bias_weight`` is that cast on its own, ``pick_operations`` chooses between the two
sets. The layers are plain ``torch.nn`` subclasses, so pack modules built from them run anywhere
torch runs, inside or outside an engine.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["CastWeightBiasOp", "cast_bias_weight", "disable_weight_init", "manual_cast", "pick_operations"]


class CastWeightBiasOp:
    """Marks layers of this module; ``comfy_cast_weights`` turns the per-call cast on."""

    comfy_cast_weights = False
    weight_function: list[Any] = []
    bias_function: list[Any] = []


def cast_bias_weight(s: torch.nn.Module, input: torch.Tensor | None = None, dtype: Any = None, device: Any = None,
                     bias_dtype: Any = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(weight, bias)`` of layer ``s`` in ``dtype`` on ``device`` (default: the input's), with the
    layer's ``weight_function`` / ``bias_function`` applied in order."""
    if input is not None:
        dtype = input.dtype if dtype is None else dtype
        device = input.device if device is None else device
    weight = s.weight.to(device=device, dtype=dtype)
    for fn in getattr(s, "weight_function", []):
        weight = fn(weight)
    bias = None
    if getattr(s, "bias", None) is not None:
        bias = s.bias.to(device=device, dtype=bias_dtype or dtype)
        for fn in getattr(s, "bias_function", []):
            bias = fn(bias)
    return weight, bias


def _layer(base: type[torch.nn.Module], cast: bool) -> type[torch.nn.Module]:
    class Layer(base, CastWeightBiasOp):  # type: ignore[misc,valid-type]
        comfy_cast_weights = cast

        def reset_parameters(self) -> None:
            return None

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            if not self.comfy_cast_weights or getattr(self, "weight", None) is None or self.__dict__.get("_casting"):
                return base.forward(self, *args, **kwargs)
            weight, bias = cast_bias_weight(self, args[0] if args and torch.is_floating_point(args[0]) else None)
            params = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
            self.__dict__["_casting"] = True
            try:
                return torch.func.functional_call(self, params, args, kwargs)
            finally:
                self.__dict__["_casting"] = False

    Layer.__name__ = Layer.__qualname__ = base.__name__
    return Layer


_LAYERS = ("Linear", "Conv1d", "Conv2d", "Conv3d", "GroupNorm", "LayerNorm", "ConvTranspose1d", "ConvTranspose2d",
           "Embedding", "RMSNorm")


class disable_weight_init:  # noqa: N801 - ComfyUI's name
    """Torch layers that skip random initialisation."""


class manual_cast(disable_weight_init):  # noqa: N801 - ComfyUI's name
    """Torch layers that skip initialisation and cast their weights to the input at each call."""


for _name in _LAYERS:
    _base = getattr(torch.nn, _name, None)
    if _base is not None:
        setattr(disable_weight_init, _name, _layer(_base, cast=False))
        setattr(manual_cast, _name, _layer(_base, cast=True))


def pick_operations(weight_dtype: Any, compute_dtype: Any, load_device: Any = None, disable_fast_fp8: bool = False,
                    fp8_optimizations: bool = False, scaled_fp8: Any = None, model_config: Any = None) -> type:
    """:class:`manual_cast` when weights are stored in another dtype than the one computed in, else
    :class:`disable_weight_init`."""
    if compute_dtype is None or weight_dtype == compute_dtype:
        return disable_weight_init
    return manual_cast
