"""Read split model files as users download them: headers, metadata, fp8 and ComfyUI's scaled fp8.

:func:`read_header` inspects a ``.safetensors`` file without loading it (key → dtype and shape,
plus the ``__metadata__`` strings), so loaders can tell a file's family from its keys and shapes
before reading gigabytes. :func:`load_weights` reads the tensors, strips the wrapper prefixes
ComfyUI writes (``model.diffusion_model.``), and turns fp8 storage into a compute dtype:
ComfyUI's *scaled fp8* files (a ``scaled_fp8`` marker and a per-layer ``<layer>.scale_weight``)
are dequantised as ``weight · scale_weight``; plain ``float8_e4m3fn``/``float8_e5m2`` weights are
upcast. The fp8 values and scales can be handed back (``quantised=``) so a loader keeps them.

ComfyUI's *mixed-precision* files (``*_fp8mixed``, ``*_int8``): each quantised layer carries a
small JSON description of its format, either as a ``<layer>.comfy_quant`` tensor (the JSON's UTF-8
bytes as ``uint8``) or in the header's ``__metadata__["_quantization_metadata"]`` string
(``{"format_version": ..., "layers": {layer: {...}}}``), which ComfyUI's loader turns into the
same per-layer entries. Layers without one stay in the file's plain precision (usually bf16), so
one file mixes precisions. The ``format`` key names the storage: ``float8_e4m3fn`` /
``float8_e5m2`` (``<layer>.weight`` in that fp8 dtype, a per-tensor float32 ``weight_scale``,
optionally an activation ``input_scale`` only fp8 matmul kernels use) and ``int8_tensorwise``
(int8 weights with a per-tensor or per-row ``weight_scale``). Both dequantise as
``weight · weight_scale``; the block-scaled formats (``nvfp4``, ``mxfp8``), the Hadamard-rotated
ones (``convrot``) and the 4-bit ones are refused with an error naming the layer and its format.
Imports torch and safetensors lazily; knows no model family.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeloom.errors import ModelNotFoundError, ValidationError, require

__all__ = ["QUANT_FORMATS", "FileHeader", "load_weights", "quant_layers", "read_header", "strip_prefix"]

#: prefixes wrapping a diffusion model's keys in ComfyUI-saved or checkpoint-style files
DIFFUSION_PREFIXES = ("model.diffusion_model.", "diffusion_model.")
_MAX_HEADER = 100 * 1024 * 1024
#: the mixed-precision layer formats nodeloom reads (``comfy_quant`` ``format`` values)
QUANT_FORMATS = ("float8_e4m3fn", "float8_e5m2", "int8_tensorwise")
_QUANT_SUFFIXES = (".comfy_quant", ".weight_scale", ".input_scale", ".scale_weight", ".scale_input")


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


def _json_tensor(path: Path, key: str, value: Any) -> dict[str, Any]:
    try:
        conf = json.loads(bytes(value.reshape(-1).tolist()).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _file_error(path, f"has an unreadable `{key}` (expected UTF-8 JSON bytes: {exc})") from exc
    if not isinstance(conf, dict):
        raise _file_error(path, f"has a `{key}` that is not a JSON object")
    return conf


def quant_layers(header: FileHeader, sd: dict[str, Any] | None = None, prefix: str = "") -> dict[str, dict[str, Any]]:
    """Per-layer quantisation of a mixed-precision file: layer name (``prefix`` cut) → its JSON
    description, from ``__metadata__["_quantization_metadata"]`` and ``<layer>.comfy_quant`` tensors
    (read from ``sd`` when given).

    Raises:
        ValidationError: an unreadable description.
    """
    layers: dict[str, dict[str, Any]] = {}
    raw = header.metadata.get("_quantization_metadata")
    if raw:
        try:
            meta = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise _file_error(header.path, f"has unreadable `_quantization_metadata` ({exc})") from exc
        for name, conf in (meta.get("layers") or {}).items() if isinstance(meta, dict) else ():
            layers[name] = {"format": conf} if isinstance(conf, str) else dict(conf)
    for key, value in (sd or {}).items():
        if key.endswith(".comfy_quant"):
            layers[key[: -len(".comfy_quant")]] = _json_tensor(header.path, key, value)
    if prefix:
        layers = {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in layers.items()}
    return layers


def _check_format(path: Path, layer: str, conf: dict[str, Any]) -> str:
    fmt = str(conf.get("format"))
    if fmt not in QUANT_FORMATS or conf.get("convrot"):
        kind = f"`{fmt}` with a Hadamard rotation (convrot)" if conf.get("convrot") else f"`{fmt}`"
        raise ValidationError(
            f"`{path.name}` (in {path.parent}) stores layer `{layer}` as {kind}, a quantised format nodeloom cannot"
            f" read; it reads {', '.join(QUANT_FORMATS)} layers: use the file's bf16, fp8 or fp8mixed release",
            type="unsupported_model_file", extra_info={"name": path.name, "layer": layer, "format": fmt})
    return fmt


def _dequantise(sd: dict[str, Any], dtype: Any, layers: dict[str, dict[str, Any]], path: Path,
                quantised: dict[str, tuple[Any, Any]] | None) -> dict[str, Any]:
    torch = require("torch", "diffusion")
    fp8_types = (torch.float8_e4m3fn, torch.float8_e5m2)
    for layer, conf in layers.items():
        _check_format(path, layer, conf)
    quantised_layers = set(layers) | {k[: -len(".weight")] for k, v in sd.items()
                                      if k.endswith(".weight") and v.dtype in (*fp8_types, torch.int8)}
    out: dict[str, Any] = {}
    for key, value in sd.items():
        layer = key.rsplit(".", 1)[0] if "." in key else ""
        if key.rsplit(".", 1)[-1] == "scaled_fp8" or (key.endswith(_QUANT_SUFFIXES) and layer in quantised_layers):
            continue  # markers, descriptions and scales: folded into the weights below
        scale = None
        if key.endswith(".weight"):
            scale = sd.get(layer + ".weight_scale", sd.get(layer + ".scale_weight"))
        if value.dtype in (*fp8_types, torch.int8) and (scale is not None or value.dtype != torch.int8):
            scale = torch.ones((), dtype=torch.float32) if scale is None else scale.float()
            if quantised is not None and value.dtype in fp8_types:
                quantised[layer] = (value, scale)
            flat = scale if scale.numel() == 1 else scale.reshape(-1, *[1] * (value.ndim - 1))
            value = value.float() * flat
        out[key] = value.to(dtype) if dtype is not None and value.is_floating_point() else value
    return out


def load_weights(path: str | Path, *, dtype: Any = None, prefix: str | None = None,
                 quantised: dict[str, tuple[Any, Any]] | None = None) -> dict[str, Any]:
    """Load a ``.safetensors`` file's tensors, prefix stripped, fp8, scaled fp8 and mixed-precision
    layers dequantised into ``dtype``.

    Args:
        path: the file.
        dtype: floating dtype of the result (None: quantised weights become float32, others stay).
        prefix: the key prefix to strip (None: detect one of ComfyUI's wrapper prefixes).
        quantised: filled with layer name → ``(fp8 tensor, float32 scale)`` for the fp8 weights
            read (scale 1 for plain fp8), so a loader can keep them in fp8.

    Raises:
        ModelNotFoundError / ValidationError: as :func:`read_header`; a layer in a quantised format
            nodeloom cannot read.
    """
    header = read_header(path)
    safetensors_torch = require("safetensors.torch", "diffusion")
    sd = dict(safetensors_torch.load_file(str(header.path)))
    cut = strip_prefix(sd) if prefix is None else prefix
    if cut:
        sd = {(k[len(cut):] if k.startswith(cut) else k): v for k, v in sd.items()}
    return _dequantise(sd, dtype, quant_layers(header, sd, cut), header.path, quantised)
