"""Textual-inversion embeddings (``embedding:name`` in prompts) from the ``embeddings`` model folder.

Reads A1111 ``.safetensors``/``.pt`` (``emb_params`` or ``string_to_param``) and SDXL files with
``clip_l``/``clip_g`` vectors, and picks the vectors that fit each text encoder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from nodeloom.errors import ModelNotFoundError, ValidationError

__all__ = ["embedding_resolver", "read_embedding", "vectors_for_encoder"]

_SUFFIXES = ("", ".safetensors", ".pt", ".bin")


def read_embedding(path: str | Path, *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The vectors of one embedding file, by key (``emb``, or ``clip_l``/``clip_g`` for SDXL).

    Raises:
        ValidationError: the file holds no embedding vectors.
    """
    from nodeloom.diffusion.checkpoint import load_state_dict

    p = Path(path)
    data: dict[str, Any] = load_state_dict(p, allow_pickle=allow_pickle)
    if "clip_l" in data or "clip_g" in data:
        return {k: data[k].float().reshape(-1, data[k].shape[-1]) for k in ("clip_l", "clip_g") if k in data}
    if "string_to_param" in data:
        data = dict(data["string_to_param"])
    tensors = [v for k, v in data.items() if isinstance(v, torch.Tensor) and v.ndim >= 1 and k != "step"]
    if "emb_params" in data:
        tensors = [data["emb_params"]]
    if len(tensors) != 1:
        raise ValidationError(f"`{p.name}` is not a textual-inversion embedding (expected one tensor of vectors)")
    return {"emb": tensors[0].float().reshape(-1, tensors[0].shape[-1])}


def vectors_for_encoder(vectors: dict[str, torch.Tensor], index: int, hidden: int, name: str) -> torch.Tensor:
    """Pick the vectors for text encoder ``index`` (0: CLIP-L, 1: OpenCLIP-G) of width ``hidden``.

    Raises:
        ValidationError: no vectors of that width.
    """
    preferred = ("clip_l", "emb", "clip_g") if index == 0 else ("clip_g", "emb", "clip_l")
    for key in preferred:
        if key in vectors and vectors[key].shape[-1] == hidden:
            return vectors[key]
    widths = sorted({int(v.shape[-1]) for v in vectors.values()})
    raise ValidationError(f"embedding `{name}` has vectors of width {widths}; this text encoder needs {hidden}")


def embedding_resolver(paths: Any, *, allow_pickle: bool = False) -> Callable[[str], dict[str, torch.Tensor]]:
    """A lookup ``name -> vectors`` over the ``embeddings`` folders (extension optional).

    Raises (when called):
        ModelNotFoundError: naming the embedding and every folder searched.
    """
    cache: dict[str, dict[str, torch.Tensor]] = {}

    def resolve(name: str) -> dict[str, torch.Tensor]:
        if name not in cache:
            for suffix in _SUFFIXES:
                try:
                    path = paths.get_full_path("embeddings", name + suffix)
                except ModelNotFoundError:
                    continue
                if path.is_file():
                    cache[name] = read_embedding(path, allow_pickle=allow_pickle)
                    break
            else:
                searched = [str(f) for f in paths.model_folders("embeddings")]
                raise ModelNotFoundError(f"embedding `{name}` was not found; searched: {', '.join(searched)}",
                                         extra_info={"folder": "embeddings", "name": name, "searched": searched})
        return cache[name]

    return resolve
