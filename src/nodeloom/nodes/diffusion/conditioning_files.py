"""Conditioning on disk: ``SaveConditioning`` writes one conditioning entry to the output folder as
safetensors, ``ConditioningLoader`` reads such a file back from the ``embeddings`` model folder
(e.g. to skip a large text encoder).

File format (ComfyUI's): the tensor ``conditioning``; each tensor option under its own key; a list
of tensors as ``key.0``, ``key.1``...; plain options (bool, int, float, str) as JSON in the
``conditioning_options`` metadata entry. Only ``.safetensors`` files are read (no pickles), and
names resolve inside the model folder only.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from nodeloom.node_api import Combo, Conditioning, Node, Output, Schema, String, ValidationError, atomic_target, services

__all__ = ["ConditioningLoader", "SaveConditioning", "read_conditioning", "write_conditioning"]

log = logging.getLogger(__name__)

_FOLDER = "embeddings"


def _split_options(options: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    values: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, torch.Tensor):
            tensors[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(t, torch.Tensor) for t in value):
            tensors.update({f"{key}.{i}": t for i, t in enumerate(value)})
        elif isinstance(value, (bool, int, float, str)):
            values[key] = value
        elif value is not None:
            raise ValidationError(f"conditioning option '{key}' ({type(value).__name__}) can't be saved")
    if "conditioning" in tensors or "conditioning" in values:
        raise ValidationError("conditioning option 'conditioning' can't be saved: the name holds the conditioning tensor")
    return tensors, values


def write_conditioning(conditioning: Any, path: Any) -> None:
    """Write a one-entry CONDITIONING to ``path`` (safetensors).

    Raises:
        ValidationError: not exactly one entry, or an option of a type the format cannot hold.
    """
    if not isinstance(conditioning, (list, tuple)) or len(conditioning) != 1:
        count = len(conditioning) if isinstance(conditioning, (list, tuple)) else type(conditioning).__name__
        raise ValidationError(f"Save Conditioning supports a single conditioning entry, save it before combining (got {count})")
    cond, options = conditioning[0]
    if not isinstance(cond, torch.Tensor):
        raise ValidationError(f"`conditioning` must hold a tensor, got {type(cond).__name__}")
    tensors, values = _split_options(dict(options or {}))
    data = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in {"conditioning": cond, **tensors}.items()}
    save_file(data, str(path), metadata={"conditioning_options": json.dumps(values)})


def read_conditioning(path: Any) -> list[list[Any]]:
    """A CONDITIONING from a safetensors file holding a ``conditioning`` tensor.

    Raises:
        ValidationError: the file is not safetensors, lacks ``conditioning``, or has bad options metadata.
    """
    if not str(path).lower().endswith((".safetensors", ".sft")):
        raise ValidationError(f"`conditioning_name` must be a .safetensors file, got `{path.name if hasattr(path, 'name') else path}`")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file for the user
        raise ValidationError(f"`conditioning_name`: cannot read `{path}` as safetensors: {exc}") from None
    if "conditioning" not in tensors:
        raise ValidationError(f"`conditioning_name`: `{path}` holds no `conditioning` tensor (keys: {sorted(tensors)[:8]})")
    cond = tensors.pop("conditioning")
    try:
        options = json.loads(metadata.get("conditioning_options", "{}"))
    except json.JSONDecodeError as exc:
        raise ValidationError(f"`conditioning_name`: the conditioning_options metadata is not JSON: {exc}") from None
    if not isinstance(options, dict):
        raise ValidationError("`conditioning_name`: the conditioning_options metadata must be a JSON object")
    lists: dict[str, dict[int, torch.Tensor]] = {}
    for key, value in tensors.items():
        name, _, index = key.rpartition(".")
        if name and index.isdigit():
            lists.setdefault(name, {})[int(index)] = value
        else:
            options[key] = value
    options.update({k: [v[i] for i in sorted(v)] for k, v in lists.items()})
    return [[cond, options]]


def _names() -> list[str]:
    try:
        return list(services().paths.get_filename_list(_FOLDER))
    except Exception:  # noqa: BLE001 - no engine active while listing: an empty combo
        return []


class ConditioningLoader(Node):
    """Loads a conditioning saved with Save Conditioning, or any safetensors file with a
    'conditioning' tensor, from the embeddings folder."""

    SCHEMA = Schema(
        "ConditioningLoader", display_name="Load Conditioning", category="model/loaders",
        inputs=[Combo("conditioning_name", _names, tooltip="A .safetensors file in the embeddings model folder.")],
        outputs=[Output("CONDITIONING", "CONDITIONING", tooltip="The conditioning with its restored options.")],
    )

    @classmethod
    def execute(cls, conditioning_name: str) -> tuple[Any]:
        path = services().paths.get_full_path(_FOLDER, conditioning_name)
        return (read_conditioning(path),)


class SaveConditioning(Node):
    """Saves a conditioning to the output folder as safetensors; move the file to models/embeddings
    to load it with Load Conditioning, e.g. to skip the text encoder."""

    SCHEMA = Schema(
        "SaveConditioning", display_name="Save Conditioning", category="model/conditioning", output_node=True,
        search_aliases=["save conditioning", "export conditioning", "cache text encoder output"],
        inputs=[Conditioning("conditioning", tooltip="The conditioning to save (a single entry)."),
                String("filename_prefix", "conditioning/ComfyUI",
                       tooltip="The prefix for the file to save; may contain a subfolder.")],
        outputs=[Output("CONDITIONING", "conditioning", tooltip="The same conditioning, unchanged.")],
    )

    @classmethod
    def execute(cls, conditioning: Any, filename_prefix: str) -> tuple[Any]:
        folder, name, counter, _ = services().paths.get_save_path(filename_prefix)
        target = folder / f"{name}_{counter:05}_.safetensors"
        with atomic_target(target) as tmp:  # readers never see a half-written file
            write_conditioning(conditioning, tmp)
        log.info("SaveConditioning wrote %s", target)
        return (conditioning,)
