"""Helpers the diffusion nodes share: model-folder combos, services, progress callbacks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from nodeloom.node_api import ProgressBar, services

__all__ = ["device_guard", "file_list", "manager", "settings", "step_progress"]


def file_list(folder: str) -> Callable[[], list[str]]:
    """A combo option callable listing a model folder (empty when no engine is active)."""

    def names() -> list[str]:
        svc = services(required=False)
        return svc.paths.get_filename_list(folder) if svc is not None else []

    return names


def manager() -> Any:
    """The engine's model manager, or None outside an engine."""
    svc = services(required=False)
    return svc.models if svc is not None else None


@contextlib.contextmanager
def device_guard() -> Iterator[Any]:
    """Hold the engine's device lock (one model job per device; re-entrant) and yield the manager."""
    mgr = manager()
    if mgr is None:
        yield None
        return
    with mgr.device_lock:
        yield mgr


def settings() -> dict[str, Any]:
    svc = services(required=False)
    return dict(svc.settings) if svc is not None else {}


def step_progress(total: int, model: Any = None) -> Callable[[int, int, Any], None]:
    """A sampler callback reporting each step (and honouring interruption).

    With the engine setting ``diffusion_previews`` on and a model that knows its VAE, each step
    also carries a small preview of the current estimate.
    """
    bar = ProgressBar(total)
    projection = _preview_projection(model) if settings().get("diffusion_previews") else None

    def tick(step: int, steps: int, denoised: Any) -> None:
        preview = None
        if projection is not None:
            from nodeloom.diffusion.preview import latent_preview

            preview = latent_preview(denoised / model.latent_stats_for(denoised)[0], *projection)
        bar.update_absolute(step, steps, preview=preview)

    return tick


def _preview_projection(model: Any) -> Any:
    vae = getattr(model, "extra", {}).get("vae") if model is not None else None
    if vae is None:
        return None
    if "latent_rgb" not in model.extra:
        from nodeloom.diffusion.preview import fit_latent_rgb

        model.extra["latent_rgb"] = fit_latent_rgb(vae, manager())
    return model.extra["latent_rgb"]
