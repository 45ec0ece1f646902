"""``nodes``: MAX_RESOLUTION and nodeloom's built-in node classes under their ComfyUI names.

``NODE_CLASS_MAPPINGS`` merges the built-in packs (``nodeloom.nodes.*``; one that fails to
import is left out) — not custom packs, and not the live registry of an engine (one process
may host several engines). Built-in classes are also module attributes (``nodes.SaveImage``).
Built-in classes are nodeloom's own: those written declaratively run through
``getattr(cls(), cls.FUNCTION)(**inputs)``, not through ComfyUI's method names.
``common_ksampler`` is KSampler's sampling as a function, on nodeloom's loop.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from typing import Any

from nodeloom.node_api import MAX_RESOLUTION

__all__ = ["MAX_RESOLUTION", "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "common_ksampler"]

log = logging.getLogger(__name__)


def _builtin_mappings() -> tuple[dict[str, type], dict[str, str]]:
    import nodeloom.nodes as packs

    classes: dict[str, type] = {}
    names: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(packs.__path__), key=lambda m: m.name):
        if not info.ispkg:
            continue
        try:
            module = importlib.import_module(f"nodeloom.nodes.{info.name}")
        except Exception as exc:  # noqa: BLE001 - a broken built-in pack is reported by the engine
            log.debug("nodes shim: built-in pack %s unavailable: %s", info.name, exc)
            continue
        classes.update(getattr(module, "NODE_CLASS_MAPPINGS", None) or {})
        names.update(getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None) or {})
    return classes, names


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = _builtin_mappings()


def common_ksampler(model: Any, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str,
                    positive: list[Any], negative: list[Any], latent: dict[str, Any], denoise: float = 1.0,
                    disable_noise: bool = False, start_step: int | None = None, last_step: int | None = None,
                    force_full_denoise: bool = False) -> tuple[dict[str, Any]]:
    """KSampler on a LATENT dict (seeded noise, the latent's noise mask, step progress); returns ``(LATENT,)``."""
    import torch

    from nodeloom.compat.comfy import latent_preview, sample

    samples = sample.fix_empty_latent_channels(model, latent["samples"])
    if disable_noise:
        noise = torch.zeros_like(samples, dtype=torch.float32)
    else:
        noise = sample.prepare_noise(samples, seed, latent.get("batch_index"))
    out = sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, samples,
                        denoise=denoise, disable_noise=disable_noise, start_step=start_step, last_step=last_step,
                        force_full_denoise=force_full_denoise, noise_mask=latent.get("noise_mask"),
                        callback=latent_preview.prepare_callback(model, steps), seed=seed)
    result = dict(latent)
    result["samples"] = out
    return (result,)


def __getattr__(name: str) -> Any:
    cls = NODE_CLASS_MAPPINGS.get(name)
    if cls is None:
        raise AttributeError(f"module 'nodes' has no attribute {name!r} (nodeloom provides its built-in nodes only)")
    return cls
