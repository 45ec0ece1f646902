"""``comfy.model_patcher``: ``ModelPatcher`` as nodeloom's MODEL value and the ``model_options`` helpers.

nodeloom's MODEL (:class:`nodeloom.diffusion.models.DiffusionModel`) is what packs receive where
ComfyUI hands them a ``ModelPatcher``: ``isinstance(model, ModelPatcher)`` holds for it, and its
``clone``, ``model_options``, ``set_model_sampler_cfg_function`` /
``set_model_sampler_post_cfg_function`` and ``get_model_object("model_sampling")`` are honoured.
The option helpers below fill a ``model_options`` dict the way ComfyUI's do; what nodeloom's
sampler cannot apply (attention/block patches and replacements, wrappers) is refused
when the model is sampled, with an error naming the entry. Building a ``ModelPatcher`` around a
raw ``torch.nn.Module`` is refused: nodeloom's MODEL comes from its loaders.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nodeloom.diffusion.models import DiffusionModel

__all__ = ["ModelPatcher", "create_model_options_clone", "set_model_options_patch_replace",
           "set_model_options_post_cfg_function", "set_model_options_pre_cfg_function", "string_to_seed"]


class _PatcherMeta(type):
    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, DiffusionModel)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, DiffusionModel)


class ModelPatcher(metaclass=_PatcherMeta):
    """Stands for nodeloom's MODEL in ``isinstance`` checks.

    Raises:
        NotImplementedError: on construction (wrap a module in a MODEL through a loader node).
    """

    def __init__(self, model: Any = None, load_device: Any = None, offload_device: Any = None, *args: Any,
                 **kwargs: Any) -> None:
        raise NotImplementedError(f"`comfy.model_patcher.ModelPatcher({type(model).__name__}, ...)`: nodeloom's MODEL "
                                  "values come from its loaders (CheckpointLoaderSimple, UNETLoader, comfy.sd); a raw "
                                  "module cannot be wrapped into one")


def create_model_options_clone(orig_model_options: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``model_options`` whose nested dicts and lists can be changed without touching the original."""

    def copy(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: copy(v) for k, v in value.items()}
        if isinstance(value, list):
            return [copy(v) for v in value]
        return value

    return copy(orig_model_options)


def set_model_options_patch_replace(model_options: dict[str, Any], patch: Any, name: str, block_name: str,
                                    number: int, transformer_index: int | None = None) -> dict[str, Any]:
    """File an attention replacement as ComfyUI does (refused when the model is sampled: nodeloom's
    UNet takes no ComfyUI attention patches)."""
    to = model_options.setdefault("transformer_options", {})
    block = (block_name, number) if transformer_index is None else (block_name, number, transformer_index)
    to.setdefault("patches_replace", {}).setdefault(name, {})[block] = patch
    return model_options


def _append_function(model_options: dict[str, Any], key: str, function: Callable[..., Any],
                     disable_cfg1_optimization: bool) -> dict[str, Any]:
    model_options[key] = [*model_options.get(key, []), function]
    if disable_cfg1_optimization:
        model_options["disable_cfg1_optimization"] = True
    return model_options


def set_model_options_post_cfg_function(model_options: dict[str, Any], post_cfg_function: Callable[..., Any],
                                        disable_cfg1_optimization: bool = False) -> dict[str, Any]:
    """Add a function applied to the guided estimate after CFG (honoured by nodeloom's sampler)."""
    return _append_function(model_options, "sampler_post_cfg_function", post_cfg_function, disable_cfg1_optimization)


def set_model_options_pre_cfg_function(model_options: dict[str, Any], pre_cfg_function: Callable[..., Any],
                                       disable_cfg1_optimization: bool = False) -> dict[str, Any]:
    """File a pre-CFG function (``model_options["sampler_pre_cfg_function"]``) as ComfyUI does."""
    return _append_function(model_options, "sampler_pre_cfg_function", pre_cfg_function, disable_cfg1_optimization)


def string_to_seed(data: str) -> int:
    """A 32-bit seed from text: the reflected CRC-32 over its characters' code points (ComfyUI's
    seeds for named hooks; equal to ``zlib.crc32`` for Latin-1 text)."""
    crc = 0xFFFFFFFF
    for char in data:
        crc ^= ord(char) if isinstance(char, str) else int(char)
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
