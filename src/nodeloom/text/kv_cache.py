"""KV-cache modes for the decoding loop: building the cache, and measuring what it holds.

Modes: ``none`` (recompute the whole sequence every step), ``dynamic`` (grows by
concatenation), ``static`` (pre-allocated to prompt + new tokens), ``sliding`` (keeps the
last ``window - 1`` tokens of every layer, so attention sees at most ``window`` tokens),
and ``quantized-fp8`` / ``quantized-quanto`` / ``quantized-hqq`` (keys and values stored
in 8/4-bit). The expected size of a cache is 2 (keys and values) × layers × kv heads ×
head dim × bytes per element × tokens held. Uses transformers' cache classes.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from typing import Any

import torch

from nodeloom.errors import MissingDependencyError, ValidationError

__all__ = [
    "CACHE_MODES",
    "CacheSpec",
    "KVShape",
    "cache_bytes",
    "expected_cache_bytes",
    "expected_held_tokens",
    "kv_shape",
    "make_cache",
]

CACHE_MODES = ("none", "dynamic", "static", "sliding", "quantized-fp8", "quantized-quanto", "quantized-hqq")

#: quantized backend -> (module transformers imports, pip requirement that brings it)
_QUANT_BACKENDS = {
    "quanto": ("optimum.quanto", "optimum-quanto>=0.2.5"),
    "hqq": ("hqq", "hqq"),
    "fp8": (None, None),
}


@dataclass(frozen=True)
class CacheSpec:
    """Which cache to use.

    Attributes:
        mode: one of :data:`CACHE_MODES`.
        window: tokens attended to in ``sliding`` mode (≥ 2).
        nbits: bits per element for the quanto/hqq backends (2 or 4).
    """

    mode: str = "dynamic"
    window: int = 256
    nbits: int = 4

    def __post_init__(self) -> None:
        if self.mode not in CACHE_MODES:
            raise ValidationError(f"`cache_mode` must be one of {list(CACHE_MODES)}, got {self.mode!r}")
        if self.mode == "sliding" and self.window < 2:
            raise ValidationError(f"`sliding_window` must be ≥ 2, got {self.window}")
        if self.nbits not in (2, 4):
            raise ValidationError(f"`nbits` must be 2 or 4, got {self.nbits}")

    @property
    def quant_backend(self) -> str | None:
        return self.mode.split("-", 1)[1] if self.mode.startswith("quantized-") else None


@dataclass(frozen=True)
class KVShape:
    """The per-token shape of a decoder's KV cache."""

    layers: int
    kv_heads: int
    head_dim: int

    def bytes_per_token(self, bytes_per_element: float) -> float:
        """2 (K and V) × layers × kv heads × head dim × bytes per element."""
        return 2 * self.layers * self.kv_heads * self.head_dim * bytes_per_element


def kv_shape(config: Any) -> KVShape:
    """Layers, key/value heads and head dim of a decoder config (GQA-aware)."""
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    heads = int(text.num_attention_heads)
    kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return KVShape(layers=int(text.num_hidden_layers), kv_heads=kv_heads, head_dim=int(head_dim))


def _model_window(config: Any) -> int | None:
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    window = getattr(text, "sliding_window", None)
    return int(window) if window else None


def make_cache(model: Any, spec: CacheSpec, max_length: int) -> Any:
    """Build the cache object for one generation.

    Args:
        model: a transformers causal LM.
        spec: the cache mode.
        max_length: prompt tokens + new tokens (the size a static cache pre-allocates).

    Returns:
        A transformers ``Cache``, or None for mode ``none``.

    Raises:
        MissingDependencyError: a quantized backend's package is not installed (named).
        ValidationError: the mode does not fit the model (e.g. quantizing a sliding-window model).
    """
    from transformers import cache_utils as cu

    config = model.config
    if spec.mode == "none":
        return None
    if spec.mode == "dynamic":
        return cu.DynamicCache(config=config)
    if spec.mode == "static":
        return cu.StaticCache(config=config, max_cache_len=max_length)
    if spec.mode == "sliding":
        layers = [cu.DynamicSlidingWindowLayer(sliding_window=spec.window) for _ in range(kv_shape(config).layers)]
        return cu.Cache(layers=layers)
    return _quantized_cache(cu, config, spec)


def _quantized_cache(cu: Any, config: Any, spec: CacheSpec) -> Any:
    backend = spec.quant_backend or ""
    module, requirement = _QUANT_BACKENDS[backend]
    if module is not None and importlib.util.find_spec(module.split(".")[0]) is None:
        raise MissingDependencyError(
            f"cache mode `{spec.mode}` needs the `{requirement}` package; install it with "
            f"`pip install '{requirement}'`, or pick `quantized-fp8`, which needs nothing extra",
            extra_info={"module": module, "requirement": requirement},
        )
    if _model_window(config) is not None:
        raise ValidationError(
            f"cache mode `{spec.mode}` needs a model whose layers all use full attention; this model "
            "uses a sliding window: pick `dynamic`, `static` or `sliding`",
        )
    # groups must divide every quantized slice; a divisor of head_dim always does
    group = math.gcd(64, kv_shape(config).head_dim)
    kwargs: dict[str, Any] = {} if backend == "fp8" else {"nbits": spec.nbits, "q_group_size": group}
    try:
        return cu.QuantizedCache(backend=backend, config=config, **kwargs)
    except ImportError as exc:
        raise MissingDependencyError(
            f"cache mode `{spec.mode}` could not start its backend: {exc}",
            extra_info={"requirement": requirement},
        ) from exc
    except ValueError as exc:
        raise ValidationError(f"cache mode `{spec.mode}` is not available here: {exc}") from exc


def _tensor_bytes(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        if obj.numel() == 0:
            return 0
        if hasattr(obj, "_data") and hasattr(obj, "_scale"):  # an optimum-quanto QTensor
            return sum(_tensor_bytes(getattr(obj, name)) for name in ("_data", "_scale", "_shift") if hasattr(obj, name))
        return obj.numel() * obj.element_size()
    if isinstance(obj, (tuple, list)):
        return sum(_tensor_bytes(o) for o in obj)
    if isinstance(obj, dict):
        return sum(_tensor_bytes(o) for o in obj.values())
    return 0


def cache_bytes(cache: Any) -> int:
    """Bytes held by a cache's key/value tensors (quantized stores counted as stored)."""
    if cache is None:
        return 0
    total = 0
    for layer in getattr(cache, "layers", []):
        for name in ("keys", "values", "_quantized_keys", "_quantized_values"):
            total += _tensor_bytes(getattr(layer, name, None))
    return total


def expected_held_tokens(spec: CacheSpec, config: Any, seen_tokens: int, max_length: int) -> int:
    """How many tokens per layer a cache of ``spec`` should hold after ``seen_tokens``.

    Static caches hold their whole allocation (``max_length``, or the model's window for
    sliding layers); sliding caches (and dynamic caches of sliding-window models) keep the
    last ``window - 1`` tokens, the most the next step needs.
    """
    window = _model_window(config)
    if spec.mode == "none":
        return 0
    if spec.mode == "static":
        return min(max_length, window) if window else max_length
    if spec.mode == "sliding":
        return min(seen_tokens, spec.window - 1)
    if spec.mode == "dynamic" and window:
        return min(seen_tokens, window - 1)
    return seen_tokens


def expected_cache_bytes(shape: KVShape, tokens: int, bytes_per_element: float, batch: int = 1) -> int:
    """The formula: 2 × layers × kv heads × head dim × bytes per element × tokens × batch."""
    return int(round(shape.bytes_per_token(bytes_per_element) * tokens * batch))
