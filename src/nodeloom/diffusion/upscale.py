"""Upscale models (ESRGAN family and the other single-image architectures spandrel knows).

Owns loading an upscale-model file (read by :mod:`nodeloom.diffusion.weights`: ``.safetensors``,
or ``.pth``/``.pt``/``.bin`` through ``torch.load(weights_only=True)`` only), recognising its
architecture with spandrel, the memory estimate made before a run, and the tiled run itself
(ComfyUI's 512-pixel tiles with 32 pixels of overlap, the tile halved on out-of-memory). The
loaded value is spandrel's ``ImageModelDescriptor``, as in ComfyUI, so packs that read
``.scale`` or ``.model`` or call it on a tile keep working. Imports no node class or engine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nodeloom.diffusion.spandrel_import import import_spandrel
from nodeloom.diffusion.weights import read_weights, wrong_kind_error
from nodeloom.errors import OutOfMemoryError, ValidationError, require
from nodeloom.ops.tiled_scale import tile_count, tiled_scale

__all__ = ["estimate_upscale_bytes", "load_upscale_model", "upscale_image"]

#: key prefixes of other model kinds, and the loader node that takes them instead
_OTHER_KINDS = {
    "model.diffusion_model.": "CheckpointLoaderSimple (a Stable Diffusion checkpoint)",
    "vision_model.": "CLIPVisionLoader (a CLIP-vision model)",
    "visual.transformer.": "CLIPVisionLoader (a CLIP-vision model)",
    "lora_unet_": "LoraLoader (a LoRA)",
    "input_blocks.": "UNETLoader (a diffusion model)",
    "double_blocks.": "UNETLoader (a diffusion model)",
    "encoder.down.": "VAELoader (a VAE)",
}


def load_upscale_model(path: str | Path) -> Any:
    """Load an upscale-model file into a spandrel ``ImageModelDescriptor`` (eval mode, on the CPU).

    Raises:
        ValidationError: the file is unreadable, not an upscale model, or not a single-image
            model (e.g. an inpainting model); the message names the file.
    """
    p = Path(path)
    sd = read_weights(p)
    # SwinIR-type files saved from DataParallel carry a "module." prefix on some keys only
    if "module.layers.0.residual_group.blocks.0.norm1.weight" in sd:
        sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    spandrel = import_spandrel()
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(sd)
    except spandrel.UnsupportedModelError:
        raise wrong_kind_error(p.name, sd, "is not an upscale model: no architecture spandrel knows (ESRGAN/RRDBNet,"
                               " Real-ESRGAN, SRVGGNet compact, SwinIR, HAT, DAT, SPAN, ...) matches its keys",
                               _OTHER_KINDS) from None
    except (KeyError, RuntimeError, ValueError, IndexError) as exc:
        raise ValidationError(f"`{p.name}` matches an upscale architecture but its weights do not fit it: {exc}",
                              extra_info={"name": p.name}) from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise ValidationError(
            f"`{p.name}` is a {descriptor.architecture.name} model, which needs more than one image"
            " (e.g. an image and a mask); an upscale model must be a single-image model",
            extra_info={"name": p.name})
    return descriptor.eval()


def estimate_upscale_bytes(model: Any, image: Any) -> int:
    """Memory an upscale run needs: the weights, working memory for a 512² tile, the image.

    The working-memory term is ComfyUI's (384 bytes-per-input-byte of a 512x512 RGB tile,
    times the scale), a deliberately generous bound across architectures.
    """
    weights = sum(t.numel() * t.element_size() for t in model.model.state_dict().values())
    work = 512 * 512 * 3 * image.element_size() * max(float(model.scale), 1.0) * 384.0
    return int(weights + work + image.nelement() * image.element_size())


def _run_tiled(model: Any, pixels: Any, tile: int, overlap: int, on_progress: Callable[[int, int], None]) -> Any:
    total = pixels.shape[0] * tile_count(pixels.shape[2], pixels.shape[3], tile, overlap)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        on_progress(done, total)

    on_progress(0, total)
    return tiled_scale(pixels, model, scale=model.scale, tile=tile, overlap=overlap,
                       out_channels=model.output_channels, on_tile=tick)


def _model_input(image: Any, channels: int) -> Any:
    """The channels the model takes: RGB(A) -> RGB, or its BT.601 luma for a greyscale model."""
    if channels == 1 and image.shape[-1] >= 3:
        weights = image.new_tensor([0.299, 0.587, 0.114])
        return (image[..., :3] * weights).sum(-1, keepdim=True)
    return image[..., :channels]


def upscale_image(model: Any, image: Any, device: Any, on_progress: Callable[[int, int], None],
                  tile: int = 512, overlap: int = 32, min_tile: int = 128) -> Any:
    """Upscale an IMAGE ``[B,H,W,C]`` with ``model`` tile by tile, halving the tile on out-of-memory.

    Args:
        model: a spandrel ``ImageModelDescriptor`` already on ``device``.
        image: IMAGE tensor, 0..1.
        device: where the tiles run.
        on_progress: ``(tiles_done, tiles_total)`` after each tile (may raise to interrupt).
        tile, overlap: ComfyUI's defaults; ``min_tile``: give up below this tile size.

    Returns:
        The upscaled IMAGE ``[B, H*scale, W*scale, C_out]``, clamped to 0..1, on the CPU; a
        greyscale model gets the image's luma and its output is repeated to three channels.

    Raises:
        ValidationError: the image has fewer channels than the model takes.
        OutOfMemoryError: even ``min_tile`` tiles do not fit.
    """
    torch = require("torch", "upscale")
    channels = int(model.input_channels)
    if image.ndim != 4 or image.shape[-1] < channels:
        raise ValidationError(f"`image` must be [B,H,W,C] with at least {channels} channels for this"
                              f" {model.architecture.name} model, got shape {tuple(image.shape)}")
    dtype = next(iter(model.model.parameters())).dtype
    pixels = _model_input(image, channels).movedim(-1, 1).to(device=device, dtype=dtype)
    while True:
        try:
            out = _run_tiled(model, pixels, tile, overlap, on_progress)
            break
        except torch.OutOfMemoryError as exc:
            tile //= 2
            if tile < min_tile:
                raise OutOfMemoryError(f"upscaling a {tuple(image.shape[1:3])} image ran out of memory even with"
                                       f" {tile * 2}px tiles", details=str(exc)) from exc
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    out = torch.clamp(out.movedim(1, -1).float(), 0.0, 1.0)
    return out.expand(*out.shape[:3], 3).contiguous() if out.shape[-1] == 1 else out
