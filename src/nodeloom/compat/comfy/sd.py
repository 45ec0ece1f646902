"""``comfy.sd``: checkpoint loading that returns nodeloom's MODEL, CLIP and VAE values.

``load_checkpoint_guess_config(path)`` loads through the same cached path as
``CheckpointLoaderSimple`` (the engine's model manager, pickles refused unless allowed), so the
values a pack gets behave like the built-in loader's: ``clip.tokenize`` /
``encode_from_tokens``, ``vae.encode`` / ``decode`` / ``encode_tiled`` / ``decode_tiled``.
Loading from raw state dicts is refused with an error naming the nodeloom way.
"""

from __future__ import annotations

import os
from typing import Any

from nodeloom.diffusion.models import ClipModel, DiffusionModel, VaeModel
from nodeloom.nodes.diffusion.loaders import checkpoint_values_from_path

__all__ = ["CLIP", "VAE", "load_checkpoint", "load_checkpoint_guess_config", "load_diffusion_model_state_dict",
           "load_lora_for_models"]

CLIP = ClipModel
VAE = VaeModel
ModelPatcher = DiffusionModel


def load_checkpoint_guess_config(ckpt_path: str | os.PathLike[str], output_vae: bool = True, output_clip: bool = True,
                                 output_clipvision: bool = False, embedding_directory: Any = None,
                                 output_model: bool = True, model_options: Any = None,
                                 te_model_options: Any = None) -> tuple[Any, Any, Any, Any]:
    """``(MODEL, CLIP, VAE, None)`` of a checkpoint file; parts not asked for are None.

    Raises:
        ValueError: ``output_clipvision`` (SD checkpoints carry no CLIP vision model in nodeloom).
    """
    if output_clipvision:
        raise ValueError("`load_checkpoint_guess_config(output_clipvision=True)`: nodeloom loads no CLIP vision "
                         "model from checkpoints")
    model, clip, vae = checkpoint_values_from_path(os.fspath(ckpt_path))
    return (model if output_model else None, clip if output_clip else None, vae if output_vae else None, None)


def load_checkpoint(config_path: Any = None, ckpt_path: Any = None, output_vae: bool = True, output_clip: bool = True,
                    embedding_directory: Any = None, state_dict: Any = None, config: Any = None) -> tuple[Any, Any, Any]:
    """The old loader: the YAML config is not needed (nodeloom detects the family from the weights).

    Raises:
        ValueError: no ``ckpt_path`` given.
    """
    if ckpt_path is None:
        raise ValueError("`comfy.sd.load_checkpoint` needs `ckpt_path` (nodeloom loads files, not state dicts)")
    model, clip, vae, _ = load_checkpoint_guess_config(ckpt_path, output_vae, output_clip)
    return model, clip, vae


def load_diffusion_model_state_dict(sd: Any, model_options: Any = None) -> Any:
    """Refused: nodeloom builds models from files.

    Raises:
        NotImplementedError: always, naming what to use instead.
    """
    raise NotImplementedError("`comfy.sd.load_diffusion_model_state_dict`: nodeloom builds models from files; "
                              "load the checkpoint with `load_checkpoint_guess_config(path)` or a loader node")


def load_lora_for_models(model: Any, clip: Any, lora: Any, strength_model: float, strength_clip: float) -> tuple[Any, Any]:
    """Refused: nodeloom applies LoRAs by file name so they can be cached and unloaded.

    Raises:
        NotImplementedError: always, naming the node to use instead.
    """
    raise NotImplementedError("`comfy.sd.load_lora_for_models`: nodeloom applies LoRAs from files; use the "
                              "`LoraLoader` node with a file name under models/loras")
