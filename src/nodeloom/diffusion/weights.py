"""Read model weights safely: ``.safetensors``, or ``.pth``-style pickles restricted to tensors.

Shared by the loaders of small single-file models (upscale, CLIP vision). A pickle is only ever
read with ``torch.load(weights_only=True)``, which refuses anything but tensors and plain
containers, so no file can run code while it loads. Imports torch lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nodeloom.errors import ModelNotFoundError, ValidationError, require

__all__ = ["read_weights", "wrong_kind_error"]

_PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


def read_weights(path: str | Path) -> dict[str, Any]:
    """Read a state dict from ``.safetensors`` or, restricted to tensors, a ``.pth``-style pickle.

    Raises:
        ModelNotFoundError: the file does not exist.
        ValidationError: an unknown file type, or a pickle holding more than weights.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelNotFoundError(f"model file `{p.name}` does not exist in `{p.parent}`",
                                 extra_info={"name": p.name, "searched": [str(p.parent)]})
    suffix = p.suffix.lower()
    if suffix in (".safetensors", ".sft"):
        safetensors_torch = require("safetensors.torch", "torch")
        try:
            return dict(safetensors_torch.load_file(str(p)))
        except Exception as exc:  # noqa: BLE001 - any parse failure is reported with the file name
            raise ValidationError(f"`{p.name}` is not a readable .safetensors file: {exc}") from exc
    if suffix in _PICKLE_SUFFIXES:
        torch = require("torch", "torch")
        try:
            data = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - weights_only refusals and truncation alike
            raise ValidationError(
                f"`{p.name}` could not be read as plain weights (torch.load with weights_only=True):"
                f" {str(exc).splitlines()[0]}; re-save it as .safetensors") from exc
        if not isinstance(data, dict):
            raise ValidationError(f"`{p.name}` holds a {type(data).__name__}, not a state dict of weights")
        return data
    raise ValidationError(f"`{p.name}`: unsupported model file type `{p.suffix}`"
                          " (expected .safetensors, .pth, .pt or .bin)")


def wrong_kind_error(name: str, sd: dict[str, Any], message: str, hints: dict[str, str]) -> ValidationError:
    """The error for a file that is not the kind of model a loader takes.

    Args:
        name: the file name, put first in the message.
        sd: its tensors; the first keys go into ``extra_info``.
        message: what the file is not and what was looked for.
        hints: key prefix -> the loader node that takes files with such keys.
    """
    keys = [k for k in sd if isinstance(k, str)]
    hint = next((node for prefix, node in hints.items() if any(k.startswith(prefix) for k in keys)), None)
    full = f"`{name}` {message}" + (f"; it looks like a file for {hint}" if hint else "")
    return ValidationError(full, extra_info={"name": name, "first_keys": keys[:8]})

