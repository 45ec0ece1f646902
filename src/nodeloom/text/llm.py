"""Loading a local causal language model folder (transformers format) into an :class:`LLM`.

Owns dtype/device resolution and the offline load itself (``local_files_only=True``, no
remote code). Caching across runs is the caller's job (the node goes through the model
manager). transformers is imported lazily so the pack registers without it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nodeloom.errors import ModelNotFoundError, ValidationError, require

__all__ = ["DEVICES", "DTYPES", "LLM", "load_llm", "resolve_device", "resolve_dtype"]

DTYPES = ("auto", "float32", "float16", "bfloat16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class LLM:
    """A loaded causal LM and its tokenizer (the value on an ``LLM`` socket).

    Attributes:
        model: the ``PreTrainedModel`` (eval mode, on ``device``).
        tokenizer: its tokenizer.
        path: the folder it was loaded from.
        device: where the weights live.
        dtype: the weights' dtype.
    """

    model: Any
    tokenizer: Any
    path: Path
    device: torch.device
    dtype: torch.dtype

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def resolve_device(device: str, default: torch.device | None = None) -> torch.device:
    """Turn a device choice into a torch device.

    Args:
        device: one of :data:`DEVICES`.
        default: the device ``"auto"`` means (the model manager's); CUDA when available otherwise.

    Raises:
        ValidationError: unknown choice, or ``"cuda"`` without a CUDA device.
    """
    if device not in DEVICES:
        raise ValidationError(f"`device` must be one of {list(DEVICES)}, got {device!r}")
    if device == "auto":
        if default is not None:
            return torch.device(default)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValidationError("`device` is `cuda` but no CUDA device is available; choose `cpu` or `auto`")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Turn a dtype choice into a torch dtype.

    ``"auto"`` is bfloat16 on CUDA devices that support it (float16 on older ones) and
    float32 on the CPU, where half-precision matmuls are slow and sometimes missing.

    Raises:
        ValidationError: unknown choice.
    """
    if dtype not in DTYPES:
        raise ValidationError(f"`dtype` must be one of {list(DTYPES)}, got {dtype!r}")
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def load_llm(path: str | os.PathLike[str], *, device: torch.device, dtype: torch.dtype) -> LLM:
    """Load a causal LM folder offline.

    Args:
        path: a folder with ``config.json``, weights and tokenizer files.
        device: where to put the weights.
        dtype: the weights' dtype.

    Returns:
        The loaded :class:`LLM`, in eval mode.

    Raises:
        ModelNotFoundError: the folder or its ``config.json`` is missing.
        ValidationError: the folder is not a causal LM transformers can load offline.
        MissingDependencyError: transformers is not installed (extra ``text``).
    """
    transformers = require("transformers", "text")
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(
            f"`{folder.name}` is not a transformers model folder: `config.json` is missing",
            extra_info={"path": str(folder)},
        )
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            folder, local_files_only=True, dtype=dtype, trust_remote_code=False
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ValidationError(
            f"cannot load `{folder.name}` as a causal language model offline: {exc}",
            details=repr(exc),
            extra_info={"path": str(folder)},
        ) from exc
    model.to(device)
    model.eval()
    return LLM(model=model, tokenizer=tokenizer, path=folder.resolve(), device=device, dtype=dtype)
