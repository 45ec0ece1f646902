"""``comfy.patcher_extension``: the wrapper and callback names packs register against, and the
helpers that file them in a ``model_options`` / ``transformer_options`` dict.

The names and the filing match ComfyUI's, so packs build their options unchanged. nodeloom's
sampler has no wrapper or callback points: a MODEL whose options hold any when it is sampled is
refused with an error naming the entry (:func:`nodeloom.diffusion.models.check_model_options`),
never sampled as if they were not there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["CallbacksMP", "WrapperExecutor", "WrappersMP", "add_callback", "add_callback_with_key", "add_wrapper",
           "add_wrapper_with_key", "get_all_callbacks", "get_all_wrappers", "merge_nested_dicts"]


class CallbacksMP:
    """Callback points of ComfyUI's model patcher (values are the option keys)."""

    ON_CLONE = "on_clone"
    ON_LOAD = "on_load_after"
    ON_DETACH = "on_detach_after"
    ON_CLEANUP = "on_cleanup"
    ON_PRE_RUN = "on_pre_run"
    ON_PREPARE_STATE = "on_prepare_state"
    ON_APPLY_HOOKS = "on_apply_hooks"
    ON_REGISTER_ALL_HOOK_PATCHES = "on_register_all_hook_patches"
    ON_INJECT_MODEL = "on_inject_model"
    ON_EJECT_MODEL = "on_eject_model"

    @classmethod
    def init_callbacks(cls) -> dict[str, dict[str, list[Callable[..., Any]]]]:
        """An empty callbacks dict."""
        return {}


class WrappersMP:
    """Wrapper points of ComfyUI's sampling path (values are the option keys)."""

    OUTER_SAMPLE = "outer_sample"
    PREPARE_SAMPLING = "prepare_sampling"
    SAMPLER_SAMPLE = "sampler_sample"
    PREDICT_NOISE = "predict_noise"
    CALC_COND_BATCH = "calc_cond_batch"
    APPLY_MODEL = "apply_model"
    DIFFUSION_MODEL = "diffusion_model"


def _file(kind: str, point: str, key: str, function: Callable[..., Any], options: dict[str, Any],
          is_model_options: bool) -> None:
    target = options.setdefault("transformer_options", {}) if is_model_options else options
    target.setdefault(kind, {}).setdefault(point, {}).setdefault(key, []).append(function)


def add_wrapper_with_key(wrapper_type: str, key: str, wrapper: Callable[..., Any], transformer_options: dict[str, Any],
                         is_model_options: bool = False) -> None:
    """File ``wrapper`` under ``wrapper_type`` and ``key`` (``transformer_options["wrappers"]``)."""
    _file("wrappers", wrapper_type, key, wrapper, transformer_options, is_model_options)


def add_wrapper(wrapper_type: str, wrapper: Callable[..., Any], transformer_options: dict[str, Any],
                is_model_options: bool = False) -> None:
    """:func:`add_wrapper_with_key` under the empty key."""
    _file("wrappers", wrapper_type, "", wrapper, transformer_options, is_model_options)


def add_callback_with_key(call_type: str, key: str, callback: Callable[..., Any], transformer_options: dict[str, Any],
                          is_model_options: bool = False) -> None:
    """File ``callback`` under ``call_type`` and ``key`` (``transformer_options["callbacks"]``)."""
    _file("callbacks", call_type, key, callback, transformer_options, is_model_options)


def add_callback(call_type: str, callback: Callable[..., Any], transformer_options: dict[str, Any],
                 is_model_options: bool = False) -> None:
    """:func:`add_callback_with_key` under the empty key."""
    _file("callbacks", call_type, "", callback, transformer_options, is_model_options)


def _all(kind: str, point: str, options: dict[str, Any], is_model_options: bool) -> list[Callable[..., Any]]:
    source = options.get("transformer_options", {}) if is_model_options else options
    return [fn for fns in source.get(kind, {}).get(point, {}).values() for fn in fns]


def get_all_wrappers(wrapper_type: str, transformer_options: dict[str, Any], is_model_options: bool = False) -> list[Any]:
    """Every wrapper filed under ``wrapper_type``, in filing order per key."""
    return _all("wrappers", wrapper_type, transformer_options, is_model_options)


def get_all_callbacks(call_type: str, transformer_options: dict[str, Any], is_model_options: bool = False) -> list[Any]:
    """Every callback filed under ``call_type``, in filing order per key."""
    return _all("callbacks", call_type, transformer_options, is_model_options)


def merge_nested_dicts(dict1: dict[str, Any], dict2: dict[str, Any], copy_dict1: bool = True) -> dict[str, Any]:
    """``dict1`` with ``dict2`` merged in: nested dicts merged, lists concatenated, others replaced."""
    merged = dict(dict1) if copy_dict1 else dict1
    for key, value in dict2.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_nested_dicts(merged[key], value)
        elif isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = merged[key] + value
        else:
            merged[key] = value
    return merged


class WrapperExecutor:
    """ComfyUI's chain of wrappers around a call: ``execute(*args)`` runs the first wrapper, which
    receives this executor (next step) first; the last step is ``original``."""

    def __init__(self, original: Callable[..., Any], class_obj: Any, wrappers: list[Callable[..., Any]], idx: int) -> None:
        self.original, self.class_obj, self.wrappers, self.idx = original, class_obj, wrappers, idx

    @classmethod
    def new_executor(cls, original: Callable[..., Any], wrappers: list[Callable[..., Any]], idx: int = 0) -> WrapperExecutor:
        return cls(original, None, wrappers, idx)

    @classmethod
    def new_class_executor(cls, original: Callable[..., Any], class_obj: Any, wrappers: list[Callable[..., Any]],
                           idx: int = 0) -> WrapperExecutor:
        return cls(original, class_obj, wrappers, idx)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.idx >= len(self.wrappers):
            return self.original(*args, **kwargs)
        return self.wrappers[self.idx](WrapperExecutor(self.original, self.class_obj, self.wrappers, self.idx + 1),
                                       *args, **kwargs)

    execute = __call__
