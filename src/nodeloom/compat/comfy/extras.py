"""``comfy_extras.*``: ComfyUI's extra node modules, answered with nodeloom's built-in nodes.

``from comfy_extras.nodes_latent import LatentBatch`` gets nodeloom's ``LatentBatch`` class:
any ``comfy_extras.<module>`` attribute that names a built-in node id resolves to that node.
A few module-level helpers packs import are mapped onto nodeloom's implementation
(:data:`HELPERS`). A name nodeloom lacks raises an AttributeError that says so.
"""

from __future__ import annotations

import types
from typing import Any

import torch

__all__ = ["HELPERS", "Noise_EmptyNoise", "Noise_RandomNoise", "composite", "load_state_dict", "make_module"]


def Noise_RandomNoise(seed: int) -> Any:  # noqa: N802 - ComfyUI's class name
    """A NOISE value drawing seeded noise (what ``RandomNoise`` outputs)."""
    from nodeloom.nodes.diffusion.custom_sampling import NoiseSource

    return NoiseSource(int(seed))


def Noise_EmptyNoise() -> Any:  # noqa: N802 - ComfyUI's class name
    """A NOISE value of zeros (what ``DisableNoise`` outputs)."""
    from nodeloom.nodes.diffusion.custom_sampling import NoiseSource

    return NoiseSource(0, enabled=False)


def composite(destination: torch.Tensor, source: torch.Tensor, x: int, y: int, mask: torch.Tensor | None = None,
              multiplier: int = 8, resize_source: bool = False) -> torch.Tensor:
    """Paste ``[B,C,H,W]`` ``source`` onto ``destination`` at pixel ``(x, y)`` (``multiplier`` pixels per
    element: 8 for latents, 1 for images), through an optional mask; returns a new tensor.

    Raises:
        ValueError: a negative ``x`` or ``y`` (nodeloom pastes inside the destination only).
    """
    if x < 0 or y < 0:
        raise ValueError(f"`composite`: `x` and `y` must be >= 0 in nodeloom, got x={x}, y={y}")
    from nodeloom.compat.comfy.nodes_shim import NODE_CLASS_MAPPINGS

    node = NODE_CLASS_MAPPINGS["ImageCompositeMasked"]
    (out,) = node.execute(destination.movedim(1, -1), source.movedim(1, -1), x // multiplier, y // multiplier,
                          resize_source, mask)
    return out.movedim(-1, 1)


def load_state_dict(state_dict: dict[str, Any]) -> Any:
    """An upscale model (spandrel ``ImageModelDescriptor``, eval mode) from its tensors: what
    ``comfy_extras.chainner_models.model_loading.load_state_dict`` gives, as nodeloom's
    ``UpscaleModelLoader`` does for files."""
    from nodeloom.diffusion.spandrel_import import import_spandrel

    return import_spandrel().ModelLoader().load_from_state_dict(state_dict).eval()


def _model_loading() -> types.ModuleType:
    module = types.ModuleType("comfy_extras.chainner_models.model_loading")
    module.__doc__ = "Upscale models from tensors (spandrel), under ComfyUI's old module name."
    module.load_state_dict = load_state_dict  # type: ignore[attr-defined]
    return module


#: module → helper name → object, for names that are not node ids.
HELPERS: dict[str, dict[str, Any]] = {
    "nodes_custom_sampler": {"Noise_RandomNoise": Noise_RandomNoise, "Noise_EmptyNoise": Noise_EmptyNoise},
    "nodes_mask": {"composite": composite},
    "chainner_models": {"model_loading": _model_loading()},
    "model_loading": {"load_state_dict": load_state_dict},
}


def make_module(fullname: str) -> types.ModuleType:
    """The module object for ``comfy_extras`` or one of its submodules."""
    module = types.ModuleType(fullname)
    short = fullname.rpartition(".")[2]
    module.__doc__ = f"nodeloom's built-in nodes under ComfyUI's module name `{fullname}`."
    helpers = HELPERS.get(short, {})

    def lookup(name: str) -> Any:
        if name in helpers:
            return helpers[name]
        if name.startswith("__"):
            raise AttributeError(name)
        from nodeloom.compat.comfy.nodes_shim import NODE_CLASS_MAPPINGS

        if name in NODE_CLASS_MAPPINGS:
            return NODE_CLASS_MAPPINGS[name]
        raise AttributeError(f"module '{fullname}' has no attribute {name!r}: nodeloom has no built-in node or "
                             "helper of that name")

    module.__getattr__ = lookup  # type: ignore[method-assign]
    if fullname == "comfy_extras":
        module.__path__ = []  # a package: submodules come from the import hook
    return module
