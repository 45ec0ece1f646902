"""Import spandrel (the upscale-model architecture library) where torchvision is absent.

spandrel's package ``__init__`` registers every architecture it knows, and two of them import
torchvision at module level: LaMa (``rotate``, ``InterpolationMode``) and RestoreFormer
(``normalize``). The rest — ESRGAN/RRDBNet, Real-ESRGAN, SRVGGNet (compact), SwinIR, HAT, DAT,
SPAN, ... — are plain torch. torchvision's PyPI build does not import beside a CPU-only torch
of another build, so it is not a dependency of nodeloom. When torchvision is not installed,
this module lends spandrel a torchvision stand-in for the duration of its import only: a real
``normalize`` and an ``InterpolationMode`` enum, and a ``rotate`` that raises an error naming
torchvision. The stand-in is taken out of ``sys.modules`` right after, so nothing else sees it.
A real torchvision, where installed, is always used instead.
"""

from __future__ import annotations

import enum
import importlib.machinery
import importlib.util
import sys
import threading
import types
from typing import Any

from nodeloom.errors import MissingDependencyError, require

__all__ = ["import_spandrel"]

_LOCK = threading.Lock()
_NAMES = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")


class _InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


def _normalize(tensor: Any, mean: Any, std: Any, inplace: bool = False) -> Any:
    """Per-channel ``(x - mean) / std`` on a ``[..., C, H, W]`` tensor (torchvision's contract)."""
    import torch

    mean_t = torch.as_tensor(mean, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
    out = tensor if inplace else tensor.clone()
    return out.sub_(mean_t).div_(std_t)


def _rotate(*args: Any, **kwargs: Any) -> Any:
    raise MissingDependencyError(
        "this model (LaMa with a learnable rotation) needs torchvision's `rotate`, and torchvision is"
        " not installed; install a torchvision build that matches your torch to use it",
        extra_info={"module": "torchvision"},
    )


def _stand_in() -> dict[str, types.ModuleType]:
    mods = {}
    for name in _NAMES:
        mod = types.ModuleType(name, "Import-time stand-in for torchvision (see nodeloom.diffusion.spandrel_import).")
        mod.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        mod.__path__ = []
        mods[name] = mod
    functional = mods["torchvision.transforms.functional"]
    functional.normalize = _normalize  # type: ignore[attr-defined]
    functional.rotate = _rotate  # type: ignore[attr-defined]
    functional.InterpolationMode = _InterpolationMode  # type: ignore[attr-defined]
    mods["torchvision"].transforms = mods["torchvision.transforms"]  # type: ignore[attr-defined]
    mods["torchvision.transforms"].functional = functional  # type: ignore[attr-defined]
    return mods


def import_spandrel() -> Any:
    """The ``spandrel`` module, importable with or without torchvision.

    Raises:
        MissingDependencyError: spandrel (or its ``einops`` need) is not installed; the error
            names the ``upscale`` extra.
    """
    loaded = sys.modules.get("spandrel")
    if loaded is not None:
        return loaded
    for module in ("spandrel", "einops"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(
                f"`{module}` is not installed; upscale models need `pip install --no-deps spandrel==0.4.2` and"
                " `pip install 'nodeloom[upscale]'` (spandrel's declared torchvision dependency is not needed)",
                extra_info={"module": module, "extra": "upscale"})
    with _LOCK:
        if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is not None:
            return require("spandrel", "upscale")
        stand_in = _stand_in()
        sys.modules.update(stand_in)
        try:
            return require("spandrel", "upscale")
        finally:
            for name, mod in stand_in.items():
                if sys.modules.get(name) is mod:
                    del sys.modules[name]
