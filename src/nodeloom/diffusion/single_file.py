"""Read split model files as users download them: headers, metadata, fp8 and ComfyUI's scaled fp8.

:func:`read_header` inspects a ``.safetensors`` file without loading it (key → dtype and shape,
plus the ``__metadata__`` strings), so loaders can tell a file's family from its keys and shapes
before reading gigabytes. :func:`load_weights` reads the tensors, strips the wrapper prefixes
ComfyUI writes (``model.diffusion_model.``), and turns fp8 storage into a compute dtype:
ComfyUI's *scaled fp8* files (a ``scaled_fp8`` marker and a per-layer ``<layer>.scale_weight``)
are dequantised as ``weight · scale_weight``; plain ``float8_e4m3fn``/``float8_e5m2`` weights are
upcast. Imports torch and safetensors lazily; knows no model family.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeloom.errors import ModelNotFoundError, ValidationError, require

__all__ = ["FileHeader", "load_weights", "read_header", "strip_prefix"]

#: prefixes wrapping a diffusion model's keys in ComfyUI-saved or checkpoint-style files
DIFFUSION_PREFIXES = ("model.diffusion_model.", "diffusion_model.")
_MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class FileHeader:
    """What a safetensors header says: ``shapes`` (key → shape), ``dtypes`` (key → safetensors
    dtype name such as ``BF16`` or ``F8_E4M3``) and the free-form ``metadata``."""

    path: Path
    shapes: dict[str, tuple[int, ...]] = field(repr=False)
    dtypes: dict[str, str] = field(repr=False)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def scaled_fp8(self) -> bool:
        """ComfyUI's scaled fp8 layout (a ``scaled_fp8`` marker or per-layer ``scale_weight``)."""
        return "scaled_fp8" in self.shapes or any(k.endswith(".scale_weight") for k in self.shapes)


def _file_error(path: Path, problem: str) -> ValidationError:
    return ValidationError(f"`{path.name}` {problem}", type="invalid_model_file",
                           extra_info={"name": path.name, "folder": str(path.parent)})


def read_header(path: str | Path) -> FileHeader:
    """Read a ``.safetensors`` header (no tensor data).

    Raises:
        ModelNotFoundError: the file does not exist.
        ValidationError: not a safetensors file, or truncated (its header promises more bytes than it has).
    """
    p = Path(path)
    if not p.is_file():
        raise ModelNotFoundError(f"model file `{p.name}` does not exist in `{p.parent}`",
                                 extra_info={"name": p.name, "searched": [str(p.parent)]})
    if p.suffix.lower() not in (".safetensors", ".sft"):
        raise _file_error(p, f"is a `{p.suffix}` file; split model files must be .safetensors")
    size = p.stat().st_size
    with p.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise _file_error(p, "is empty or truncated (no safetensors header)")
        n = struct.unpack("<Q", raw)[0]
        if n > min(_MAX_HEADER, size - 8):
            raise _file_error(p, f"is truncated or not a safetensors file (header of {n} bytes, file of {size})")
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _file_error(p, f"has an unreadable safetensors header ({exc})") from exc
    meta = header.pop("__metadata__", None) or {}
    end = max((v["data_offsets"][1] for v in header.values()), default=0)
    if 8 + n + end > size:
        raise _file_error(p, f"is truncated: its tensors need {8 + n + end} bytes, the file has {size}")
    return FileHeader(p, {k: tuple(v["shape"]) for k, v in header.items()},
                      {k: str(v["dtype"]) for k, v in header.items()}, {str(k): str(v) for k, v in meta.items()})


def strip_prefix(keys: Any, prefixes: tuple[str, ...] = DIFFUSION_PREFIXES) -> str:
    """The wrapper prefix every key of ``keys`` shares (from ``prefixes``), or ``""``."""
    keys = list(keys)
    for prefix in prefixes:
        if keys and all(k.startswith(prefix) or k == "scaled_fp8" for k in keys):
            return prefix
    return ""


def _dequantise(sd: dict[str, Any], dtype: Any) -> dict[str, Any]:
    torch = require("torch", "diffusion")
    out: dict[str, Any] = {}
    for key, value in sd.items():
        if key == "scaled_fp8" or key.endswith((".scale_weight", ".scale_input")):
            continue
        if key.endswith(".weight") and key[: -len("weight")] + "scale_weight" in sd:
            scale = sd[key[: -len("weight")] + "scale_weight"].float()
            value = value.float() * (scale if scale.numel() == 1 else scale.reshape(-1, *[1] * (value.ndim - 1)))
        elif value.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
            value = value.float()
        out[key] = value.to(dtype) if dtype is not None and value.is_floating_point() else value
    return out


def load_weights(path: str | Path, *, dtype: Any = None, prefix: str | None = None) -> dict[str, Any]:
    """Load a ``.safetensors`` file's tensors, prefix stripped, fp8 turned into ``dtype``.

    Args:
        path: the file.
        dtype: floating dtype of the result (None: fp8 and scaled fp8 become float32, others stay).
        prefix: the key prefix to strip (None: detect one of ComfyUI's wrapper prefixes).

    Raises:
        ModelNotFoundError / ValidationError: as :func:`read_header`.
    """
    header = read_header(path)
    safetensors_torch = require("safetensors.torch", "diffusion")
    sd = dict(safetensors_torch.load_file(str(header.path)))
    cut = strip_prefix(sd) if prefix is None else prefix
    if cut:
        sd = {(k[len(cut):] if k.startswith(cut) else k): v for k, v in sd.items()}
    return _dequantise(sd, dtype)
