"""``comfy_api.torch_helpers.torch_compile``: ``set_torch_compile_wrapper`` on a nodeloom MODEL.

ComfyUI's helper compiles the diffusion model (or the listed submodules) with ``torch.compile``
and has the sampler use the compiled one. Here the MODEL's denoiser becomes the compiled module
(``torch.compile`` is lazy: it compiles on the first sampling step); the original module stays
on every other MODEL value, so patch a ``clone()`` as ComfyUI's nodes do. Keys name the whole
denoiser (``"diffusion_model"``) or a submodule under it by its attribute path in nodeloom's
(diffusers) module, e.g. ``"diffusion_model.transformer_blocks.0"``; ComfyUI's own module paths
differ and are refused with the paths that exist.
"""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.diffusion.models import DiffusionModel

__all__ = ["COMPILE_KEY", "TORCH_COMPILE_KWARGS", "set_torch_compile_wrapper"]

COMPILE_KEY = "torch.compile"
TORCH_COMPILE_KWARGS = "torch_compile_kwargs"
_ROOT = "diffusion_model"


def _original(module: Any) -> Any:
    """The module under any earlier compile wrapper (a new call replaces the old one, as ComfyUI's)."""
    return getattr(module, "_orig_mod", module)


def _split(key: str, root: Any) -> tuple[Any, str] | None:
    """``(parent module, attribute)`` of a ``diffusion_model.<path>`` key; None for the whole model."""
    if key == _ROOT:
        return None
    if not key.startswith(_ROOT + "."):
        raise ValueError(f"`keys`: {key!r} must be {_ROOT!r} or start with '{_ROOT}.'")
    *parents, leaf = key[len(_ROOT) + 1:].split(".")
    parent = root
    for part in parents:
        parent = getattr(parent, part, None) if not part.isdigit() else parent[int(part)]
        if parent is None:
            break
    if parent is None or not isinstance(getattr(parent, leaf, None) if not leaf.isdigit() else parent[int(leaf)],
                                        torch.nn.Module):
        children = [name for name, _ in root.named_children()]
        raise ValueError(f"`keys`: {key!r} is not a submodule of this model's denoiser; its top-level modules "
                         f"are {children} (nodeloom runs the diffusers module, whose paths differ from ComfyUI's)")
    return parent, leaf


def set_torch_compile_wrapper(model: DiffusionModel, backend: str, options: dict[str, str] | None = None,
                              mode: str | None = None, fullgraph: bool = False, dynamic: bool | None = None,
                              keys: list[str] | None = None, *args: Any, **kwargs: Any) -> None:
    """Compile ``model``'s denoiser (or the submodules ``keys`` names) with ``torch.compile``.

    Args:
        model: the MODEL to patch in place (a clone).
        backend, options, mode, fullgraph, dynamic: ``torch.compile``'s arguments.
        keys: ``["diffusion_model"]`` (default) or submodule paths under it.

    Raises:
        TypeError: ``model`` is not a nodeloom MODEL.
        ValueError: a key that names no submodule.
    """
    if not isinstance(model, DiffusionModel):
        raise TypeError(f"`set_torch_compile_wrapper` takes a MODEL, got {type(model).__name__}")
    compile_kwargs = {"backend": backend, "options": options, "mode": mode, "fullgraph": fullgraph, "dynamic": dynamic}
    root = _original(model.unet)
    keys = list(keys or [_ROOT])
    if _ROOT in keys:
        compiled: Any = torch.compile(root, **compile_kwargs)
    else:
        compiled = _SubmoduleCompiled(root, {key: _split(key, root) for key in keys}, compile_kwargs)
    # ComfyUI's helper patches the ModelPatcher it is given; a MODEL value is frozen, so its
    # denoiser field is replaced on this one object (callers pass a clone)
    object.__setattr__(model, "unet", compiled)
    model.model_options[TORCH_COMPILE_KWARGS] = compile_kwargs


class _SubmoduleCompiled(torch.nn.Module):
    """The denoiser with some submodules swapped for compiled ones only while it runs, so the
    module other MODEL values share is never left changed."""

    def __init__(self, root: torch.nn.Module, places: dict[str, Any], compile_kwargs: dict[str, Any]) -> None:
        super().__init__()
        self._orig_mod = root
        self._places = [(parent, leaf, torch.compile(_child(parent, leaf), **compile_kwargs))
                        for parent, leaf in places.values()]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        saved = [(parent, leaf, _child(parent, leaf)) for parent, leaf, _ in self._places]
        try:
            for parent, leaf, compiled in self._places:
                _set_child(parent, leaf, compiled)
            return self._orig_mod(*args, **kwargs)
        finally:
            for parent, leaf, original in saved:
                _set_child(parent, leaf, original)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._orig_mod, name)


def _child(parent: Any, leaf: str) -> Any:
    return parent[int(leaf)] if leaf.isdigit() else getattr(parent, leaf)


def _set_child(parent: Any, leaf: str, module: Any) -> None:
    if leaf.isdigit():
        parent[int(leaf)] = module
    else:
        setattr(parent, leaf, module)
