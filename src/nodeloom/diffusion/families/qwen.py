"""Qwen-Image (and its Edit models): Alibaba Qwen's 20B MMDiT flow transformer on a Wan-2.1-style VAE.

Files: ComfyUI's repackaged ``qwen_image_*.safetensors`` hold the diffusers key layout
(``transformer_blocks.N.attn.to_q``, ``img_in``, ``txt_norm``) under ComfyUI's
``model.diffusion_model.`` prefix; the original release's shards hold the same keys without it.
Sizes come from tensor shapes, the rotary split of the head dimension (⅛, 7⁄16, 7⁄16 as released)
from ``data/families/qwen_image.json``. The transformer takes σ as its time and predicts the
velocity ``noise − x0`` (ComfyUI's convention as is). Latents are normalised per channel with the
VAE's mean and standard deviation (ComfyUI's ``Wan21`` latent format). Reference latents
(TextEncodeQwenImageEdit*, ReferenceLatent) are packed after the image's tokens, each on its own
RoPE frame index, as ComfyUI's ``index`` method and diffusers' Edit pipelines place them;
``index_timestep_zero`` (the Edit 2511 template) also modulates them at timestep 0.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from nodeloom.diffusion.families import Family, family_config
from nodeloom.diffusion.flow import FluxSampling
from nodeloom.errors import ValidationError, require

if TYPE_CHECKING:
    from nodeloom.diffusion.sampling import ModelCall

__all__ = ["FAMILY", "LATENTS_MEAN", "LATENTS_STD", "latent_stats", "transformer_config"]

_SIGNATURE = ("txt_norm.weight", "img_in.weight", "transformer_blocks.0.img_mod.1.weight")

#: the Qwen-Image VAE's per-channel latent statistics (ComfyUI's Wan21 latent format, diffusers' VAE config)
LATENTS_MEAN = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
LATENTS_STD = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
               3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.916)


def latent_stats() -> tuple[Any, Any]:
    """``(scale, shift)`` tensors ``[1, 16, 1, 1]``: raw latent → model space ``(raw − mean) / std``."""
    torch = require("torch", "diffusion")
    mean = torch.tensor(LATENTS_MEAN).reshape(1, -1, 1, 1)
    return 1.0 / torch.tensor(LATENTS_STD).reshape(1, -1, 1, 1), mean


def _matches(shapes: dict[str, tuple[int, ...]]) -> bool:
    return all(k in shapes for k in _SIGNATURE)


def transformer_config(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The ``QwenImageTransformer2DModel`` config of a file, read from its shapes."""
    cfg = family_config("qwen_image")
    inner, in_ch = shapes["img_in.weight"]
    head = shapes["transformer_blocks.0.attn.norm_q.weight"][0]
    eighth = head // 8
    blocks = {int(m.group(1)) for k in shapes if (m := re.match(r"transformer_blocks\.(\d+)\.", k))}
    cfg.pop("_class_name", None)
    cfg.update(in_channels=in_ch, out_channels=shapes["proj_out.weight"][0] // 4, num_layers=max(blocks) + 1,
               attention_head_dim=head, num_attention_heads=inner // head,
               joint_attention_dim=shapes["txt_in.weight"][1],
               axes_dims_rope=[eighth, (head - eighth) // 2, head - eighth - (head - eighth) // 2])
    return cfg


def _load(sd: dict[str, Any], dtype: Any) -> Any:
    diffusers = require("diffusers", "diffusion")
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    model = diffusers.QwenImageTransformer2DModel.from_config(transformer_config(shapes))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValidationError(f"the Qwen-Image weights do not fit the model: missing {missing[:2]},"
                              f" unexpected {unexpected[:2]}", type="invalid_model_file")
    return (model.to(dtype) if dtype is not None else model).eval()


def pack(x: Any) -> Any:
    """``[B, C, h, w]`` (or ``[B, C, 1, h, w]``) → 2×2 patch tokens ``[B, h/2 · w/2, 4C]``."""
    if x.ndim == 5:
        x = x[:, :, 0]
    b, c, h, w = x.shape
    return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


_ZERO_T_LOCK = threading.Lock()


@contextlib.contextmanager
def _zero_cond_t(module: Any, on: bool) -> Iterator[None]:
    """diffusers' ``zero_cond_t`` switched for one call: the reference tokens are modulated at
    timestep 0 (Edit 2511; ComfyUI's ``index_timestep_zero`` method). A forward-only flag, no weights."""
    if bool(module.config.zero_cond_t) == on:
        yield
        return
    flagged = [module, *module.transformer_blocks]
    with _ZERO_T_LOCK:
        for m in flagged:
            m.zero_cond_t = on
        try:
            yield
        finally:
            for m in flagged:
                m.zero_cond_t = bool(module.config.zero_cond_t)


def _references(refs: list[Any], like: Any, method: str) -> tuple[list[Any], list[tuple[int, int, int]]]:
    """Reference latents in model space, packed, with their ``(frames, h/2, w/2)`` shapes."""
    if method not in ("index", "index_timestep_zero"):
        raise ValidationError(f"Qwen-Image places reference latents by `index` (or `index_timestep_zero`, Edit 2511)"
                              f" only, got reference_latents_method '{method}'")
    scale, shift = latent_stats()
    tokens, shapes = [], []
    for raw in refs:
        ref = raw[:, :, 0] if raw.ndim == 5 else raw
        if ref.shape[-2] % 2 or ref.shape[-1] % 2:
            raise ValidationError(f"reference latents need an even height and width, got {tuple(ref.shape[-2:])}")
        ref = ((ref.float() - shift) * scale).to(like.device, like.dtype)
        tokens.append(pack(ref))
        shapes.append((1, ref.shape[-2] // 2, ref.shape[-1] // 2))
    return tokens, shapes


def _adapter(module: Any, x: Any, sigma: Any, group: ModelCall) -> Any:
    """Pack 2×2 patches (and any reference latents), run the transformer with σ as time, unpack
    the velocity of the image tokens. One call per conditioning entry (each has its references)."""
    torch = require("torch", "diffusion")
    frame = x.ndim == 5  # a VAE-encoded image is a one-frame clip [B, C, 1, h, w] (the Wan 2.1-layout VAE)
    if frame:
        if x.shape[2] != 1:
            raise ValidationError(f"Qwen-Image samples single images, got a latent of {x.shape[2]} frames")
        x = x[:, :, 0]
    b, c, h, w = x.shape
    if h % 2 or w % 2:
        raise ValidationError(f"Qwen-Image latents need an even height and width, got {h}×{w} (use a multiple of 16 pixels)")
    per = b // len(group.entries)
    outs = []
    for k, entry in enumerate(group.entries):
        xs = x[k * per:(k + 1) * per]
        refs, ref_shapes = _references(list(entry.extra.get("reference_latents") or []), xs,
                                       str(entry.extra.get("reference_latents_method", "index")))
        tokens = torch.cat([pack(xs), *[r.expand(per, -1, -1) for r in refs]], dim=1)
        ctx = group.context[k * per:(k + 1) * per].to(x.dtype)
        zero_t = str(entry.extra.get("reference_latents_method", "index")) == "index_timestep_zero"
        with _zero_cond_t(module, zero_t):
            out = module(hidden_states=tokens, encoder_hidden_states=ctx, encoder_hidden_states_mask=None,
                         timestep=sigma.to(x.dtype).reshape(1).expand(per),
                         img_shapes=[[(1, h // 2, w // 2), *ref_shapes]] * per, return_dict=False)[0]
        outs.append(out[:, : (h // 2) * (w // 2)])
    out = torch.cat(outs).float()
    out = out.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)
    return out.unsqueeze(2) if frame else out


FAMILY = Family(
    name="qwen_image", title="Qwen-Image", matches=_matches, load=_load, adapter=_adapter,
    sampling=lambda module: FluxSampling(shift=1.15),  # ComfyUI's default before ModelSamplingAuraFlow
    latent_scale=latent_stats()[0], latent_shift=latent_stats()[1], latent_channels=16,
    signature=_SIGNATURE,
)
