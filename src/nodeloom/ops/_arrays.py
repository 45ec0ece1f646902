"""Array plumbing shared by the pixel ops: numpy/torch in, the same kind out.

Ops compute with torch (float64 for the exact path, float32 for the fast path, on the
input's device or on CUDA when asked) and hand back the caller's array type. Owns no
algorithm; imports nothing from nodeloom but the error tree.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

from nodeloom.errors import ValidationError

__all__ = ["Array", "PRECISIONS", "as_tensor", "like", "resolve_device", "check_channels"]

Array = Union[np.ndarray, torch.Tensor]

PRECISIONS = ("exact", "fast")


def resolve_device(device: str | torch.device | None, x: Array) -> torch.device:
    """The device to compute on.

    Args:
        device: ``None`` (where ``x`` lives; numpy → CPU), ``"auto"`` (CUDA when present),
            or an explicit torch device.
        x: the input array.

    Returns:
        A ``torch.device``.
    """
    if device is None:
        return x.device if isinstance(x, torch.Tensor) else torch.device("cpu")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _dtype_for(x: Array, precision: str | None) -> torch.dtype:
    if precision is None:
        if isinstance(x, torch.Tensor) and x.dtype in (torch.float32, torch.float64):
            return x.dtype
        if isinstance(x, np.ndarray) and x.dtype == np.float32:
            return torch.float32
        return torch.float64
    if precision == "exact":
        return torch.float64
    if precision == "fast":
        return torch.float32
    raise ValidationError(f"`precision` must be one of {list(PRECISIONS)} or None, got {precision!r}")


def as_tensor(
    x: Array | float | list[float],
    precision: str | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """A floating torch view/copy of ``x`` in the dtype the precision asks for.

    Args:
        x: numpy array, torch tensor, scalar or nested list.
        precision: ``None`` (keep float32/float64, else float64), ``"exact"``, ``"fast"``.
        device: see :func:`resolve_device`.

    Returns:
        A tensor; never shares memory that a later in-place op could change in ``x``
        (ops here never write into their inputs).

    Raises:
        ValidationError: unknown precision.
    """
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        x = np.asarray(x, dtype=np.float64)
    dtype = _dtype_for(x, precision)
    dev = resolve_device(device, x)
    if isinstance(x, np.ndarray):
        arr = np.ascontiguousarray(x)
        if not arr.flags.writeable:  # torch wants writable memory even to read it
            arr = arr.copy()
        return torch.from_numpy(arr).to(device=dev, dtype=dtype)
    return x.to(device=dev, dtype=dtype)


def like(result: torch.Tensor, reference: Array) -> Array:
    """Return ``result`` as the array kind of ``reference`` (numpy stays numpy, on CPU)."""
    if isinstance(reference, torch.Tensor):
        return result
    return result.detach().cpu().numpy()


def check_channels(name: str, x: Array, channels: int = 3) -> None:
    """Raise a clear error unless the last axis of ``x`` has ``channels`` entries.

    Raises:
        ValidationError: wrong shape.
    """
    shape = tuple(x.shape) if hasattr(x, "shape") else np.shape(x)
    if len(shape) == 0 or shape[-1] != channels:
        raise ValidationError(f"`{name}` must have {channels} channels in its last axis, got shape {shape}")
