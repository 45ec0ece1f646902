"""``comfy.model_management``: devices, memory and interruption, as custom nodes call them.

Devices come from the active engine's model manager (``--cpu`` / ``device=`` honoured);
interruption goes through the running node's context, so ``engine.interrupt()`` stops a
pack's loop at its next ``throw_exception_if_processing_interrupted()``. Model loading and
offloading belong to nodeloom's model manager: ``load_models_gpu`` hands the modules of
nodeloom MODEL/CLIP/VAE values (or plain torch modules) to it.
"""

from __future__ import annotations

import os
from enum import Enum
from typing import Any

import torch

from nodeloom.core.context import current_node_context, current_services
from nodeloom.errors import Interrupted

__all__ = [
    "CPUState",
    "InterruptProcessingException",
    "OOM_EXCEPTION",
    "VRAMState",
    "cpu_mode",
    "get_free_memory",
    "get_torch_device",
    "get_total_memory",
    "intermediate_device",
    "interrupt_current_processing",
    "is_device_cpu",
    "is_device_cuda",
    "is_device_mps",
    "processing_interrupted",
    "should_use_fp16",
    "soft_empty_cache",
    "text_encoder_device",
    "throw_exception_if_processing_interrupted",
    "unet_offload_device",
    "unload_all_models",
    "vae_device",
    "vae_dtype",
    "unet_dtype",
    "text_encoder_dtype",
    "intermediate_dtype",
    "load_models_gpu",
    "load_model_gpu",
    "free_memory",
    "raise_non_oom",
    "is_intel_xpu",
    "is_directml_enabled",
    "get_torch_device_name",
    "get_autocast_device",
    "xformers_enabled",
    "pytorch_attention_enabled",
    "module_size",
    "cast_to_device",
    "device_supports_non_blocking",
]

#: What ComfyUI raises on interruption; here it is nodeloom's own ``Interrupted``.
InterruptProcessingException = Interrupted
OOM_EXCEPTION = torch.cuda.OutOfMemoryError


class VRAMState(Enum):
    DISABLED = 0
    NO_VRAM = 1
    LOW_VRAM = 2
    NORMAL_VRAM = 3
    HIGH_VRAM = 4
    SHARED = 5


class CPUState(Enum):
    GPU = 0
    CPU = 1
    MPS = 2


def get_torch_device() -> torch.device:
    """The device models run on: the active engine's choice, else CUDA when available."""
    services = current_services(required=False)
    if services is not None and getattr(services, "models", None) is not None:
        return services.models.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_mode() -> bool:
    """Whether models run on the CPU."""
    return get_torch_device().type == "cpu"


def intermediate_device() -> torch.device:
    """Where nodes keep tensors between steps (CPU, as ComfyUI does by default)."""
    return torch.device("cpu")


def unet_offload_device() -> torch.device:
    """Where idle diffusion models are parked (CPU)."""
    return torch.device("cpu")


def text_encoder_device() -> torch.device:
    return get_torch_device()


def vae_device() -> torch.device:
    return get_torch_device()


def is_device_cpu(device: Any) -> bool:
    return torch.device(device).type == "cpu"


def is_device_cuda(device: Any) -> bool:
    return torch.device(device).type == "cuda"


def is_device_mps(device: Any) -> bool:
    return torch.device(device).type == "mps"


def should_use_fp16(device: Any = None, **_: Any) -> bool:
    """fp16 on CUDA devices, never on the CPU."""
    return torch.device(device if device is not None else get_torch_device()).type == "cuda"


def _host_memory() -> tuple[int, int]:
    """(total, available) host bytes: psutil when installed, else POSIX sysconf."""
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        page = os.sysconf("SC_PAGE_SIZE")
        return page * os.sysconf("SC_PHYS_PAGES"), page * os.sysconf("SC_AVPHYS_PAGES")
    vm = psutil.virtual_memory()
    return int(vm.total), int(vm.available)


def get_total_memory(dev: Any = None, torch_total_too: bool = False) -> int | tuple[int, int]:
    """Total bytes of ``dev`` (default: the torch device)."""
    device = torch.device(dev) if dev is not None else get_torch_device()
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
    else:
        total = _host_memory()[0]
    return (total, total) if torch_total_too else total


def get_free_memory(dev: Any = None, torch_free_too: bool = False) -> int | tuple[int, int]:
    """Free bytes on ``dev`` (default: the torch device)."""
    device = torch.device(dev) if dev is not None else get_torch_device()
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
    else:
        free = _host_memory()[1]
    return (free, free) if torch_free_too else free


def soft_empty_cache(force: bool = False) -> None:
    """Release cached accelerator memory."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def unload_all_models() -> None:
    """Drop every model the active engine holds."""
    services = current_services(required=False)
    if services is not None and getattr(services, "models", None) is not None:
        services.models.free()
    soft_empty_cache()


def processing_interrupted() -> bool:
    """Whether the running prompt was interrupted."""
    ctx = current_node_context()
    return ctx is not None and ctx.interrupt.is_set()


def interrupt_current_processing(value: bool = True) -> None:
    """Interrupt (or, with False, un-interrupt) the running prompt."""
    ctx = current_node_context()
    if ctx is None:
        return
    if value:
        ctx.interrupt.set()
    else:
        ctx.interrupt.clear()


def throw_exception_if_processing_interrupted() -> None:
    """Raise :data:`InterruptProcessingException` if the running prompt was interrupted."""
    ctx = current_node_context()
    if ctx is not None:
        ctx.check_interrupted()


def vae_dtype(device: Any = None, allowed_dtypes: Any = None) -> torch.dtype:
    """nodeloom runs VAEs in float32 (their decoders overflow in fp16)."""
    return torch.float32


def unet_dtype(device: Any = None, model_params: int = 0, supported_dtypes: Any = None, weight_dtype: Any = None) -> torch.dtype:
    """fp16 on CUDA, float32 on the CPU."""
    return torch.float16 if should_use_fp16(device) else torch.float32


def text_encoder_dtype(device: Any = None) -> torch.dtype:
    return unet_dtype(device)


def intermediate_dtype() -> torch.dtype:
    """The dtype of tensors passed between nodes (float32)."""
    return torch.float32


def _modules_of(value: Any) -> list[torch.nn.Module]:
    """The torch modules inside a nodeloom MODEL / CLIP / VAE value, or the module itself."""
    if isinstance(value, torch.nn.Module):
        return [value]
    found: list[torch.nn.Module] = []
    for name in ("unet", "vae", "model"):
        part = getattr(value, name, None)
        if isinstance(part, torch.nn.Module):
            found.append(part)
    found += [e for e in getattr(value, "encoders", ()) if isinstance(e, torch.nn.Module)]
    return found


def load_models_gpu(models: Any, memory_required: int = 0, force_patch_weights: bool = False,
                    minimum_memory_required: Any = None, force_full_load: bool = False) -> None:
    """Move the modules of ``models`` to the compute device through the engine's model manager.

    Raises:
        TypeError: a value holds no torch module nodeloom can place.
    """
    services = current_services(required=False)
    manager = getattr(services, "models", None) if services is not None else None
    for value in models:
        modules = _modules_of(value)
        if not modules:
            raise TypeError(f"`load_models_gpu` got a {type(value).__name__}, which holds no torch module to place")
        if manager is not None:
            for module in modules:
                manager.prepare(module)


def load_model_gpu(model: Any) -> None:
    load_models_gpu([model])


def free_memory(memory_required: int, device: Any, keep_loaded: Any = ()) -> None:
    """Make room on ``device``: drop the engine's cached models and release cached memory."""
    unload_all_models()


def raise_non_oom(exc: BaseException) -> None:
    """Re-raise ``exc`` unless it is an out-of-memory error."""
    if not isinstance(exc, OOM_EXCEPTION):
        raise exc


def is_intel_xpu() -> bool:
    return get_torch_device().type == "xpu"


def is_directml_enabled() -> bool:
    return False


def get_torch_device_name(device: Any) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"{device} {torch.cuda.get_device_name(device)}"
    return str(device)


def get_autocast_device(dev: Any) -> str:
    return torch.device(dev).type if dev is not None else "cuda"


def xformers_enabled() -> bool:
    return False


def pytorch_attention_enabled() -> bool:
    """nodeloom's models use torch's scaled-dot-product attention."""
    return True


def module_size(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers."""
    return sum(t.nelement() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def device_supports_non_blocking(device: Any) -> bool:
    return torch.device(device).type == "cuda"


def cast_to_device(tensor: torch.Tensor, device: Any, dtype: Any, copy: bool = False) -> torch.Tensor:
    return tensor.to(device=device, dtype=dtype, copy=copy)
