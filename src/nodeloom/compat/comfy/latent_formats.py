"""``comfy.latent_formats``: each model family's latent layout (channels, scale, shift or per-channel
statistics), as packs read it.

nodeloom LATENT values hold raw VAE latents; ``process_in`` brings them to what the diffusion
model sees and ``process_out`` undoes it. Scalar formats scale (and, for SD3/Flux, shift); the
Wan-style formats (Wan 2.1, Wan 2.2, Qwen-Image) normalise each channel with the VAE's published
``latents_mean``/``latents_std``. No RGB preview factors are shipped: nodeloom fits its preview map
from the model's own VAE (:mod:`nodeloom.diffusion.preview`), so ``latent_rgb_factors`` is None.
:func:`for_model` picks the format of a nodeloom MODEL from its family and its own statistics.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["SD3", "SD15", "SDXL", "Flux", "LatentFormat", "QwenImage", "SD_X4", "Wan21", "Wan22", "for_model"]


class LatentFormat:
    """A latent layout: ``latent_channels`` and the ``scale_factor`` applied going in."""

    scale_factor = 1.0
    latent_channels = 4
    latent_dimensions = 2
    latent_rgb_factors = None
    latent_rgb_factors_bias = None
    taesd_decoder_name: str | None = None

    def process_in(self, latent: torch.Tensor) -> torch.Tensor:
        return latent * self.scale_factor

    def process_out(self, latent: torch.Tensor) -> torch.Tensor:
        return latent / self.scale_factor


class SD15(LatentFormat):
    """Stable Diffusion 1.x/2.x."""

    scale_factor = 0.18215
    taesd_decoder_name = "taesd_decoder"


class SDXL(LatentFormat):
    """Stable Diffusion XL."""

    scale_factor = 0.13025
    taesd_decoder_name = "taesdxl_decoder"


class SD_X4(LatentFormat):  # noqa: N801 - ComfyUI's name
    """The SD x4 upscaler's latent."""

    scale_factor = 0.08333


class SD3(LatentFormat):
    """Stable Diffusion 3/3.5: 16 channels, ``(latent − shift) · scale``."""

    latent_channels = 16
    scale_factor = 1.5305
    shift_factor = 0.0609
    taesd_decoder_name = "taesd3_decoder"

    def process_in(self, latent: torch.Tensor) -> torch.Tensor:
        return (latent - self.shift_factor) * self.scale_factor

    def process_out(self, latent: torch.Tensor) -> torch.Tensor:
        return latent / self.scale_factor + self.shift_factor


class Flux(SD3):
    """Flux.1 (and the families sharing its VAE: Chroma, Z-Image, Lumina 2)."""

    scale_factor = 0.3611
    shift_factor = 0.1159
    taesd_decoder_name = "taef1_decoder"


#: the Wan 2.1 VAE's per-channel latent statistics (also the Qwen-Image VAE's)
_WAN21_MEAN = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
               0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
_WAN21_STD = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
              3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160)
#: the Wan 2.2 (TI2V-5B) VAE's 48 channels
_WAN22_MEAN = (-0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557,
               -0.1382, 0.0542, 0.2813, 0.0891, 0.1570, -0.0098, 0.0375, -0.1825,
               -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
               -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230,
               -0.0313, -0.1649, 0.0117, 0.0723, -0.2839, -0.2083, -0.0520, 0.3748,
               0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667)
_WAN22_STD = (0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013,
              0.8158, 1.0344, 0.5894, 1.0901, 0.6885, 0.6165, 0.8454, 0.4978,
              0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
              0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093,
              0.5709, 0.6065, 0.6415, 0.4944, 0.5726, 1.2042, 0.5458, 1.6887,
              0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744)


def _on_channels(stat: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A ``[1, C, 1, 1, 1]`` statistic laid on the channel axis of an image or video latent."""
    return stat.reshape(1, -1, *[1] * (like.ndim - 2)).to(like.device, like.dtype)


class Wan21(LatentFormat):
    """Wan 2.1: 16 channels of video latent, each normalised ``(latent − mean) · scale / std``.

    ``latents_mean``/``latents_std`` are ``[1, C, 1, 1, 1]`` tensors, as ComfyUI's are; they are
    laid on the channel axis of a 4-D image latent too.
    """

    latent_channels = 16
    latent_dimensions = 3
    _mean: tuple[float, ...] = _WAN21_MEAN
    _std: tuple[float, ...] = _WAN21_STD

    def __init__(self) -> None:
        self.scale_factor = 1.0
        self.latents_mean = torch.tensor(self._mean).view(1, self.latent_channels, 1, 1, 1)
        self.latents_std = torch.tensor(self._std).view(1, self.latent_channels, 1, 1, 1)

    def process_in(self, latent: torch.Tensor) -> torch.Tensor:
        mean, std = _on_channels(self.latents_mean, latent), _on_channels(self.latents_std, latent)
        return (latent - mean) * self.scale_factor / std

    def process_out(self, latent: torch.Tensor) -> torch.Tensor:
        mean, std = _on_channels(self.latents_mean, latent), _on_channels(self.latents_std, latent)
        return latent * std / self.scale_factor + mean


class Wan22(Wan21):
    """Wan 2.2's 5B model (its 48-channel VAE)."""

    latent_channels = 48
    _mean = _WAN22_MEAN
    _std = _WAN22_STD


class QwenImage(Wan21):
    """Qwen-Image (its VAE is Wan 2.1's, with the same statistics)."""


#: nodeloom family id → the ComfyUI format class packs expect
_FAMILY_FORMATS: dict[str, type[LatentFormat]] = {
    "sdxl": SDXL, "sd3": SD3, "flux": Flux, "chroma": Flux, "z_image": Flux, "lumina2": Flux,
    "qwen_image": QwenImage, "wan": Wan21,
}


def _per_channel(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.numel() > 1


def for_model(model: object) -> LatentFormat:
    """The format of a nodeloom MODEL: the class ComfyUI uses for its family, carrying the model's
    own ``latent_scale``/``latent_shift`` (per-channel statistics for Wan and Qwen-Image)."""
    scale = getattr(model, "latent_scale", SD15.scale_factor)
    shift = getattr(model, "latent_shift", 0.0)
    family = str(getattr(model, "family", ""))
    if _per_channel(scale) or _per_channel(shift):
        scale_t = torch.as_tensor(scale, dtype=torch.float32).reshape(-1)
        shift_t = torch.as_tensor(shift, dtype=torch.float32).reshape(-1)
        channels = max(scale_t.numel(), shift_t.numel())
        cls: type[Wan21] = QwenImage if family == "qwen_image" else Wan22 if channels == 48 else Wan21
        fmt: Any = cls()
        fmt.latent_channels = channels
        fmt.latents_mean = shift_t.expand(channels).reshape(1, channels, 1, 1, 1).clone()
        fmt.latents_std = (1.0 / scale_t).expand(channels).reshape(1, channels, 1, 1, 1).clone()
        return fmt
    base = _FAMILY_FORMATS.get(family, SD15)
    if issubclass(base, Wan21):  # a Wan-style model holding scalar statistics: plain scaling
        base = LatentFormat
    fmt = base()
    fmt.scale_factor = float(scale)
    if float(shift) != 0.0 or isinstance(fmt, SD3):
        if not isinstance(fmt, SD3):
            fmt = SD3()
            fmt.scale_factor = float(scale)
        fmt.shift_factor = float(shift)
    return fmt
