"""ComfyUI's output-block patches on a diffusers UNet: ``patch(h, hsp, transformer_options)``
called where each decoder step joins its input ``h`` with the skip connection ``hsp``, returning
the pair to join instead (FreeU and custom-node packs use it).

Owns :func:`output_blocks_patched` (hooks installed for one run) and :func:`fourier_filter`.
ComfyUI's output blocks are the decoder's resnets in order, one per skip connection, which is
how diffusers' up blocks consume them. Model code: no nodes, no engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from nodeloom.errors import ValidationError

__all__ = ["OUTPUT_BLOCK_PATCH", "fourier_filter", "output_blocks_patched"]

OUTPUT_BLOCK_PATCH = "output_block_patch"
Patch = Callable[[torch.Tensor, torch.Tensor, dict[str, Any]], tuple[torch.Tensor, torch.Tensor]]


def fourier_filter(x: torch.Tensor, threshold: int, scale: float) -> torch.Tensor:
    """``x`` with the lowest spatial frequencies (a ``2·threshold`` square around DC, after
    centring the spectrum) multiplied by ``scale``; computed in float32 on the CPU when the
    device lacks FFTs."""
    try:
        spectrum = torch.fft.fftshift(torch.fft.fftn(x.float(), dim=(-2, -1)), dim=(-2, -1))
    except RuntimeError:
        return fourier_filter(x.cpu(), threshold, scale).to(x.device)
    height, width = spectrum.shape[-2:]
    mask = torch.ones(spectrum.shape, device=spectrum.device)
    cy, cx = height // 2, width // 2
    mask[..., cy - threshold:cy + threshold, cx - threshold:cx + threshold] = scale
    out = torch.fft.ifftn(torch.fft.ifftshift(spectrum * mask, dim=(-2, -1)), dim=(-2, -1)).real
    return out.to(x.dtype)


def _decoder_resnets(unet: Any) -> list[tuple[Any, int]]:
    """Each decoder resnet with the channel count of the ``h`` part of its input."""
    blocks = getattr(unet, "up_blocks", None)
    if blocks is None or not hasattr(getattr(unet, "config", None), "block_out_channels"):
        raise ValidationError(f"output-block patches (FreeU, pack patches) need a UNet model; this model's denoiser "
                              f"is a {type(unet).__name__}")
    current = int(unet.config.block_out_channels[-1])
    out = []
    for block in blocks:
        for resnet in block.resnets:
            out.append((resnet, current))
            current = int(resnet.out_channels)
    return out


@contextlib.contextmanager
def output_blocks_patched(unet: Any, patches: Sequence[Patch], options: dict[str, Any] | None = None) -> Iterator[None]:
    """Run ``patches`` (in order) on every output block of ``unet`` until the block ends.

    ``transformer_options`` handed to a patch carry ``block`` = ``("output", index)``.

    Raises:
        ValidationError: ``unet`` is no diffusers UNet.
    """
    if not patches:
        yield
        return
    handles = []

    def hook_for(index: int, h_channels: int) -> Callable[..., Any]:
        def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            x = args[0] if args else kwargs["input_tensor"]
            h, hsp = x[:, :h_channels].clone(), x[:, h_channels:].clone()
            transformer_options = {**(options or {}), "block": ("output", index)}
            for patch in patches:
                h, hsp = patch(h, hsp, transformer_options)
            joined = torch.cat([h, hsp], dim=1)
            if args:
                return (joined, *args[1:]), kwargs
            return args, {**kwargs, "input_tensor": joined}
        return hook

    try:
        for index, (resnet, h_channels) in enumerate(_decoder_resnets(unet)):
            handles.append(resnet.register_forward_pre_hook(hook_for(index, h_channels), with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()
