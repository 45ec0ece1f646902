"""The Wan video VAE (``wan_2.1_vae.safetensors``) as ComfyUI's VAE value: a causal 3-D autoencoder.

:func:`is_wan_vae` recognises the original release's layout (``decoder.middle.0.residual.0.gamma``)
and :func:`load_wan_vae` builds diffusers' ``AutoencoderKLWan`` from it (sizes from shapes,
weights through diffusers' key converter). :class:`WanVae` is the VAE value the nodes see:
IMAGE frames ``[T,H,W,3]`` encode to one video latent ``[1,16,1+(T−1)/4,H/8,W/8]`` (raw, the
model normalises), a 5-D latent decodes to ``[B·T,H,W,3]``. :meth:`WanVae.decode_tiled` decodes
in overlapping spatial tiles blended linearly, each streamed through time a latent frame at a time
with the causal cache carried over (exact in time), so long and large clips decode in bounded
device memory. The Wan 2.2 VAE (``wan2.2_vae.safetensors``: 48 channels, 16× in space, residual
down/up blocks, 2×2 pixel patches) is read from its own layout (``downsamples.N.downsamples.M``)
with the release's latent statistics from ``data/families/wan22_vae.json``.

One-frame fast path (:func:`use_one_frame_convs`, applied on load; the Qwen-Image VAE file is this
layout too and loads as this value): a causal 3-D convolution over a lone frame with no cached past
sees zero padding in every earlier time slot, so only its kernel's last time slice meets data and it
equals that slice's 2-D convolution. Images (one-frame clips) and the first frame of every clip take
it; frames with a cached past go through the module's own forward.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from nodeloom.diffusion.state_keys import indexed_count as _count_groups
from nodeloom.diffusion.video_vae import CausalVideoVae
from nodeloom.errors import ValidationError, require
from nodeloom.ops.tiles import blend_ramp, tile_starts

__all__ = ["WanVae", "is_wan22_vae", "is_wan_vae", "load_wan_vae", "use_one_frame_convs", "video_frames_for",
           "wan22_vae_settings"]

WAN_VAE_KEY = "decoder.middle.0.residual.0.gamma"
#: a key only the Wan 2.2 VAE's residual up blocks have
WAN22_VAE_KEY = "decoder.upsamples.0.upsamples.0.residual.2.weight"
_RESNET = {"residual.0.gamma": "norm1.gamma", "residual.2.": "conv1.", "residual.3.gamma": "norm2.gamma",
           "residual.6.": "conv2.", "shortcut.": "conv_shortcut."}


def is_wan_vae(keys: Any) -> bool:
    """True for a Wan VAE file in the original layout (the keys of its header)."""
    return WAN_VAE_KEY in keys


def video_frames_for(latent_frames: int) -> int:
    """How many frames ``latent_frames`` decode to: the first alone, each next one to four."""
    return 1 + 4 * (latent_frames - 1)


def is_wan22_vae(keys: Any) -> bool:
    """True for the Wan 2.2 VAE (48-channel latent) in the release layout."""
    return WAN22_VAE_KEY in keys


def wan22_vae_settings() -> dict[str, Any]:
    """The Wan 2.2 VAE's published settings: latent statistics and patch/scale factors (the JSON shipped with nodeloom)."""
    from importlib import resources

    text = resources.files("nodeloom.diffusion").joinpath("data/families/wan22_vae.json").read_text("utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def _wan22_key(key: str) -> str | None:
    """A Wan 2.2 residual-block key under diffusers' name (None for keys diffusers' converter handles)."""
    m = re.match(r"(encoder|decoder)\.(downsamples|upsamples)\.(\d+)\.(downsamples|upsamples)\.(\d+)\.(.*)", key)
    if m is None:
        return None
    side, _, block, _, index, rest = m.groups()
    blocks, sampler = ("down_blocks", "downsampler") if side == "encoder" else ("up_blocks", "upsampler")
    if rest.startswith(("resample.", "time_conv.")):
        return f"{side}.{blocks}.{block}.{sampler}.{rest}"
    for old, new in _RESNET.items():
        if rest.startswith(old):
            rest = new + rest[len(old):]
            break
    return f"{side}.{blocks}.{block}.resnets.{index}.{rest}"


def _load_wan22_vae(sd: dict[str, Any], name: str) -> Any:
    """An ``AutoencoderKLWan`` with the Wan 2.2 structure (residual blocks, pixel patches), sizes from shapes."""
    diffusers = require("diffusers", "diffusion")
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    blocks = {k: v for k, v in sd.items() if _wan22_key(k) is not None}
    weights = convert_wan_vae_to_diffusers({k: v for k, v in sd.items() if k not in blocks})
    weights.update({_wan22_key(k): v for k, v in blocks.items()})
    base = int(sd["encoder.conv1.weight"].shape[0])
    stages = _count_groups(sd, r"encoder\.downsamples\.(\d+)\.")
    res = _count_groups(sd, r"encoder\.downsamples\.0\.downsamples\.(\d+)\.residual")
    mults = [int(sd[f"encoder.downsamples.{i}.downsamples.0.residual.2.weight"].shape[0]) // base for i in range(stages)]
    temporal = [f"encoder.downsamples.{i}.downsamples.{res}.time_conv.weight" in sd for i in range(stages - 1)]
    pixels = int(sd["encoder.conv1.weight"].shape[1])
    patch = round((pixels // 3) ** 0.5)
    settings = wan22_vae_settings()
    z_dim = int(sd["conv2.weight"].shape[0])
    if len(settings["latents_mean"]) != z_dim:
        raise ValidationError(f"`{name}` has a {z_dim}-channel latent; the Wan 2.2 VAE has 48",
                              type="invalid_model_file", extra_info={"name": name})
    settings.update(in_channels=pixels, out_channels=int(sd["decoder.head.2.weight"].shape[0]), patch_size=patch,
                    scale_factor_spatial=patch * 2 ** (stages - 1))
    model = diffusers.AutoencoderKLWan(
        base_dim=base, decoder_base_dim=int(sd["decoder.conv1.weight"].shape[0]) // mults[-1], z_dim=z_dim,
        dim_mult=mults, num_res_blocks=res, temperal_downsample=temporal, attn_scales=[], **settings)
    return _checked(model, weights, name)


def _checked(model: Any, weights: dict[str, Any], name: str) -> Any:
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ValidationError(f"`{name}` does not fit the Wan VAE its shapes describe ({len(missing)} missing,"
                              f" {len(unexpected)} unexpected, e.g. `{(missing or unexpected)[0]}`)",
                              type="invalid_model_file", extra_info={"name": name})
    use_one_frame_convs(model)
    return model.eval()


def load_wan_vae(sd: dict[str, Any], name: str) -> Any:
    """An ``AutoencoderKLWan`` (eval, float32) from original-layout weights: the Wan 2.1 VAE or the
    Wan 2.2 one (48 channels).

    Raises:
        ValidationError: weights that do not fit the shapes' architecture.
    """
    if is_wan22_vae(sd):
        return _load_wan22_vae(sd, name)
    diffusers = require("diffusers", "diffusion")
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    z_dim = sd["conv2.weight"].shape[0]
    base = sd["encoder.conv1.weight"].shape[0]
    downs = sorted({int(m.group(1)) for k in sd if (m := re.match(r"encoder\.downsamples\.(\d+)\.", k))})
    temporal = [f"encoder.downsamples.{i}.time_conv.weight" in sd for i in downs if
                f"encoder.downsamples.{i}.resample.1.weight" in sd]
    mults = [sd[f"encoder.downsamples.{i}.residual.6.weight"].shape[0] // base for i in downs
             if f"encoder.downsamples.{i}.residual.6.weight" in sd]
    stages = len(temporal) + 1
    per_stage = len(mults) // stages
    model = diffusers.AutoencoderKLWan(base_dim=base, z_dim=z_dim, dim_mult=mults[::per_stage],
                                       num_res_blocks=per_stage, temperal_downsample=temporal, attn_scales=[])
    return _checked(model, convert_wan_vae_to_diffusers(sd), name)


def use_one_frame_convs(model: Any) -> int:
    """Give ``model``'s causal 3-D convolutions (diffusers' Wan and Qwen-Image VAEs: Conv3d layers
    with a ``_padding`` tuple, the time padding all in the past) the one-frame 2-D path; returns how many."""
    count = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Conv3d) and hasattr(module, "_padding"):
            module.forward = functools.partial(_one_frame_conv, module)
            count += 1
    return count


def _one_frame_conv(conv: Any, x: torch.Tensor, cache_x: torch.Tensor | None = None) -> torch.Tensor:
    """A causal 3-D convolution over a lone frame whose past is zero padding: only the kernel's last
    time slice meets data, so it is that slice's 2-D convolution (the same sums without the zero
    terms; several times faster on the CPU, where 3-D convolutions of few channels are slow).
    Anything else (cached past frames, clips, strided time) goes through the module's own forward."""
    pad = conv._padding
    if cache_x is not None or x.shape[2] != 1 or pad[4] != conv.kernel_size[0] - 1 or conv.stride[0] != 1 \
            or pad[5] != 0 or conv.dilation[0] != 1:
        return type(conv).forward(conv, x, cache_x)
    frame = F.pad(x[:, :, 0], pad[:4])
    return F.conv2d(frame, conv.weight[:, :, -1], conv.bias, stride=conv.stride[1:], dilation=conv.dilation[1:]).unsqueeze(2)


@dataclass(frozen=True)
class WanVae(CausalVideoVae):
    """ComfyUI's VAE value for the Wan video VAE (LATENT values hold raw latents)."""

    @property
    def downscale_ratio(self) -> int:
        return int(self.vae.config.scale_factor_spatial)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.z_dim)

    @torch.no_grad()
    def decode(self, latent: torch.Tensor, manager: Any = None) -> torch.Tensor:
        """A latent ``[B,C,t,h,w]`` (or one frame ``[B,C,h,w]``) → IMAGE ``[B·T,H,W,3]`` in 0..1."""
        if latent.ndim == 4:
            latent = latent.unsqueeze(2)
        vae = self._module(manager)
        dev = next(vae.parameters()).device
        video = vae.decode(latent.to(dev, torch.float32)).sample.float().cpu()
        return (video / 2 + 0.5).clamp(0, 1).movedim(1, -1).flatten(0, 1)

    def decode_tiled(self, latent: torch.Tensor, tile: int = 64, overlap: int = 8, manager: Any = None,
                     temporal_size: int = 64, temporal_overlap: int = 8) -> torch.Tensor:
        """Decode in overlapping spatial tiles (``tile``/``overlap`` in latent pixels) blended linearly,
        each tile streamed through time.

        In time the decode is exact: the VAE is causal, so each latent frame is decoded with the
        convolution cache the previous frames left (as one whole decode does) and moved off the
        device at once; ``temporal_size``/``temporal_overlap`` (VAEDecodeTiled's inputs) bound
        nothing further and need no blending. Only spatial tiles differ from a whole decode.
        """
        if latent.ndim == 4:
            latent = latent.unsqueeze(2)
        overlap = max(0, min(overlap, tile // 2 - 1))
        return self._decode_space(latent, tile, overlap, manager).flatten(0, 1)

    @torch.no_grad()
    def decode_streamed(self, latent: torch.Tensor, manager: Any = None) -> torch.Tensor:
        """``[B,C,t,h,w]`` → ``[B,T,H,W,3]`` on the CPU, one latent frame on the device at a time.

        Uses diffusers' own per-frame decode loop of ``AutoencoderKLWan`` (its causal cache
        ``_feat_map``); the result equals :meth:`decode`.
        """
        from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

        vae = self._module(manager)
        dev = next(vae.parameters()).device
        vae.clear_cache()
        try:
            x = vae.post_quant_conv(latent.to(dev, torch.float32))
            frames = []
            for i in range(x.shape[2]):
                vae._conv_idx = [0]
                out = vae.decoder(x[:, :, i:i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx,
                                  first_chunk=i == 0)
                if vae.config.patch_size is not None:  # the Wan 2.2 VAE decodes 2×2 pixel patches
                    out = unpatchify(out, patch_size=vae.config.patch_size)
                frames.append((out.clamp(-1.0, 1.0).float().cpu() / 2 + 0.5).clamp(0, 1))
        finally:
            vae.clear_cache()
        return torch.cat(frames, dim=2).movedim(1, -1)

    def _decode_space(self, latent: torch.Tensor, tile: int, overlap: int, manager: Any) -> torch.Tensor:
        """A latent decoded in spatial tiles, each streamed through time: ``[B,T,H,W,3]``."""
        b, _, t, h, w = latent.shape
        r = self.downscale_ratio
        frames = video_frames_for(t)
        out = torch.zeros(b, frames, h * r, w * r, 3)
        weight = torch.zeros(1, 1, h * r, w * r, 1)
        for y in tile_starts(h, tile, overlap):
            for x in tile_starts(w, tile, overlap):
                part = self.decode_streamed(latent[..., y:y + tile, x:x + tile], manager)
                ph, pw = part.shape[2], part.shape[3]
                m = (blend_ramp(ph, overlap * r, y == 0, y + tile >= h)[:, None]
                     * blend_ramp(pw, overlap * r, x == 0, x + tile >= w)[None, :])[None, None, :, :, None]
                out[:, :, y * r:y * r + ph, x * r:x * r + pw] += part * m
                weight[:, :, y * r:y * r + ph, x * r:x * r + pw] += m
        return out / weight.clamp(min=1e-6)


def read_wan_vae(path: str | Path) -> Any:
    """Load a Wan VAE file (safetensors) into an ``AutoencoderKLWan``."""
    from nodeloom.diffusion.single_file import load_weights

    return load_wan_vae(load_weights(path, dtype=torch.float32, prefix=""), Path(path).name)
