"""``comfy.diffusers_convert`` / ``comfy.diffusers_load``: loading a diffusers-format model folder.

``load_diffusers(folder)`` returns ``(MODEL, CLIP, VAE)`` through the same cached path as
``CheckpointLoaderSimple`` (which reads diffusers folders as well as single files). nodeloom
runs the diffusers layout natively, so ComfyUI's state-dict renaming helpers
(``convert_unet_state_dict``, ``convert_vae_state_dict``...) are not provided.
"""

from __future__ import annotations

import os
from typing import Any

from nodeloom.nodes.diffusion.loaders import checkpoint_values_from_path

__all__ = ["load_diffusers"]


def load_diffusers(model_path: str | os.PathLike[str], output_vae: bool = True, output_clip: bool = True,
                   embedding_directory: Any = None, fp16: Any = None, **_: Any) -> tuple[Any, Any, Any]:
    """``(MODEL, CLIP, VAE)`` of a diffusers folder (``unet/``, ``vae/``, ``text_encoder/``...);
    parts not asked for are None. ``fp16`` is accepted for compatibility: the engine picks dtypes."""
    model, clip, vae = checkpoint_values_from_path(os.fspath(model_path))
    return model, clip if output_clip else None, vae if output_vae else None
