"""The opaque MODEL, CLIP and VAE values that flow between diffusion nodes.

Each wraps shared diffusers/transformers modules plus per-value options (LoRA stack, CLIP
layer, fast path), so nodes derive new values with :meth:`clone` and never mutate their inputs.
Modules are moved to the compute device through the engine's ``ModelManager.prepare``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from nodeloom.diffusion.embeddings import vectors_for_encoder
from nodeloom.diffusion.lora import LoraPatch, lora_active
from nodeloom.diffusion.prompt import apply_weights, tokenize_weighted
from nodeloom.diffusion.schedules import ModelSampling
from nodeloom.diffusion.tokenizer import BOS_TOKEN_ID, EOS_TOKEN_ID, clip_tokenizer
from nodeloom.errors import ValidationError

__all__ = ["ClipModel", "DiffusionModel", "VaeModel"]

#: latent of a mid-grey image for SD-family VAEs (scaled), fed to inpainting UNets without a mask
_GREY_LATENT = (0.8223, -0.6876, 0.6364, 0.1380)


def _prepare(module: Any, manager: Any, dtype: Any = None) -> Any:
    if manager is None:
        return module
    return manager.prepare(module, dtype=dtype)


@dataclass(frozen=True)
class DiffusionModel:
    """A denoising UNet and what sampling needs to know about it (ComfyUI's MODEL)."""

    unet: Any = field(repr=False)  # a module's repr is thousands of lines; values get logged and compared
    family: str
    sampling: ModelSampling = field(repr=False)
    latent_scale: float
    inpaint: bool = False
    loras: tuple[LoraPatch, ...] = ()
    fast_path: bool = False
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    #: raw latent → model space is ``(raw − latent_shift) · latent_scale`` (Flux/SD3 VAEs shift)
    latent_shift: float = 0.0
    #: for flow transformers: ``adapter(module, x, sigma, group) -> velocity`` (their calling convention)
    adapter: Any = field(default=None, repr=False)
    #: functions applied to the guided estimate after CFG, in order (see :mod:`nodeloom.diffusion.post_cfg`)
    post_cfg: tuple[Any, ...] = ()
    #: ``fn(sigma, noise_mask, sigmas, sampling) -> mask`` applied to the inpainting mask at each step (DifferentialDiffusion)
    denoise_mask_fn: Any = field(default=None, repr=False)

    def clone(self, **changes: Any) -> DiffusionModel:
        return dataclasses.replace(self, **changes)

    @property
    def is_sdxl(self) -> bool:
        return self.family == "sdxl"

    def blank_inpaint_latent(self, like: torch.Tensor) -> torch.Tensor:
        """The (scaled) latent of a grey image, shaped like ``like``."""
        grey = torch.tensor(_GREY_LATENT, dtype=like.dtype, device=like.device)
        return torch.ones_like(like) * grey[None, :, None, None]


@dataclass(frozen=True)
class ClipModel:
    """One or two CLIP text encoders with their tokenizer (ComfyUI's CLIP).

    ``layer`` is ``stop_at_clip_layer`` (-1 = last); ``None`` means the family's default
    (last for SD 1.x/2.x, penultimate without final norm for SDXL).
    """

    encoders: tuple[Any, ...] = field(repr=False)
    family: str
    layer_norm_hidden: bool = True
    layer: int | None = None
    loras: tuple[LoraPatch, ...] = ()

    def clone(self, **changes: Any) -> ClipModel:
        return dataclasses.replace(self, **changes)

    def _layer(self) -> int:
        if self.layer is not None:
            return self.layer
        return -2 if self.family in ("sdxl", "sd3") else -1

    def _run(self, encoder: Any, ids: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = encoder(ids, output_hidden_states=True)
        if layer == -1 and self.layer_norm_hidden:
            hidden = out.last_hidden_state
        else:
            hidden = out.hidden_states[layer]
            if self.layer_norm_hidden:
                final_norm = getattr(encoder, "text_model", encoder).final_layer_norm
                hidden = final_norm(hidden)
        pooled = out.text_embeds if hasattr(out, "text_embeds") else out.pooler_output
        return hidden, pooled

    @torch.no_grad()
    def encode(self, text: str, manager: Any = None,
               embeddings: Callable[[str], dict[str, torch.Tensor]] | None = None,
               texts: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a (weighted, possibly long) prompt.

        Args:
            text: the prompt.
            manager: the model manager (device placement); None keeps the CPU.
            embeddings: resolves ``embedding:name`` words (see :mod:`nodeloom.diffusion.embeddings`).
            texts: one prompt per encoder instead (SDXL: CLIP-L's, then CLIP-G's). When their
                77-token chunk counts differ, the shorter is padded with empty-prompt chunks, as
                ComfyUI's CLIPTextEncodeSDXL does.

        Returns:
            ``(cond [1, 77*k, dim], pooled [1, pooled_dim])`` on the CPU in float32; the pooled
            output is the last encoder's, from its first chunk (for SD3 every encoder's, concatenated).
        """
        prompts = list(texts) if texts is not None else [text] * len(self.encoders)
        if len(prompts) != len(self.encoders):
            raise ValidationError(f"{len(prompts)} prompt(s) for {len(self.encoders)} text encoder(s)")
        parts, pooleds = [], []
        for i, encoder in enumerate(self.encoders):
            enc = _prepare(encoder, manager)
            z, p = self._encode_one(enc, i, prompts[i], embeddings)
            parts.append((enc, i, z.float().cpu()))
            pooleds.append(p[:1].float().cpu())
        pooled = torch.cat(pooleds, dim=-1) if self.family == "sd3" else pooleds[-1]
        chunks = max(z.shape[0] for _, _, z in parts)
        zs = []
        for enc, i, z in parts:
            if z.shape[0] < chunks:
                empty, _ = self._encode_one(enc, i, "", None)
                z = torch.cat([z, empty.float().cpu().expand(chunks - z.shape[0], -1, -1)])
            zs.append(z.reshape(1, -1, z.shape[-1]))
        return torch.cat(zs, dim=-1), pooled

    def _encode_one(self, enc: Any, index: int, text: str,
                    embeddings: Callable[[str], dict[str, torch.Tensor]] | None) -> tuple[torch.Tensor, torch.Tensor]:
        tok, layer = clip_tokenizer(), self._layer()
        pad = 0 if (self.family in ("sdxl", "sd3") and index == 1) else EOS_TOKEN_ID
        token_embedding = getattr(enc, "text_model", enc).embeddings.token_embedding
        lookup = None
        if embeddings is not None:
            hidden = token_embedding.embedding_dim
            lookup = lambda name: vectors_for_encoder(embeddings(name), index, hidden, name)  # noqa: E731
        chunks = tokenize_weighted(tok, text, pad_id=pad, bos_id=BOS_TOKEN_ID, eos_id=EOS_TOKEN_ID, embedding=lookup)
        dev = token_embedding.weight.device
        extra: list[torch.Tensor] = []
        rows = []
        for chunk in chunks:
            row = []
            for t, _ in chunk:
                if isinstance(t, torch.Tensor):
                    extra.append(t)
                    t = token_embedding.num_embeddings + len(extra) - 1
                row.append(t)
            rows.append(row)
        ids = torch.tensor(rows, device=dev)
        weights = torch.tensor([[w for _, w in c] for c in chunks])
        with lora_active(enc, self.loras, part=f"text_encoder{'_2' if index else ''}"), _extra_tokens(enc, extra):
            z, p = self._run(enc, ids, layer)
            if bool((weights != 1.0).any()):
                empty = tokenize_weighted(tok, "", pad_id=pad, bos_id=BOS_TOKEN_ID, eos_id=EOS_TOKEN_ID)
                z_empty, _ = self._run(enc, torch.tensor([[t for t, _ in empty[0]]], device=dev), layer)
                z = apply_weights(z, z_empty, weights)
        return z, p


@contextlib.contextmanager
def _extra_tokens(encoder: Any, vectors: list[torch.Tensor]) -> Iterator[None]:
    """Temporarily append embedding vectors to the token table (ids from the old size up)."""
    if not vectors:
        yield
        return
    holder = getattr(encoder, "text_model", encoder).embeddings
    old = holder.token_embedding
    table = torch.cat([old.weight, torch.stack(vectors).to(old.weight.device, old.weight.dtype)])
    holder.token_embedding = torch.nn.Embedding.from_pretrained(table, freeze=True)
    try:
        yield
    finally:
        holder.token_embedding = old


@dataclass(frozen=True)
class VaeModel:
    """An ``AutoencoderKL`` (ComfyUI's VAE). LATENT values hold its raw (unscaled) latents."""

    vae: Any = field(repr=False)

    @property
    def downscale_ratio(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor, manager: Any = None) -> torch.Tensor:
        """IMAGE ``[B,H,W,C]`` in 0..1 → latent ``[B,4,H/8,W/8]`` (the posterior mean)."""
        vae = _prepare(self.vae, manager, torch.float32)
        dev = next(vae.parameters()).device
        x = pixels[..., :3].movedim(-1, 1).to(dev, torch.float32) * 2.0 - 1.0
        return vae.encode(x).latent_dist.mode().float().cpu()

    @torch.no_grad()
    def decode(self, latent: torch.Tensor, manager: Any = None) -> torch.Tensor:
        """Latent → IMAGE ``[B,H,W,3]`` in 0..1."""
        vae = _prepare(self.vae, manager, torch.float32)
        dev = next(vae.parameters()).device
        img = vae.decode(latent.to(dev, torch.float32)).sample
        return (img / 2 + 0.5).clamp(0, 1).movedim(1, -1).float().cpu()

    def decode_tiled(self, latent: torch.Tensor, tile: int = 64, overlap: int = 8, manager: Any = None) -> torch.Tensor:
        """Decode in overlapping latent tiles blended linearly (bounded memory for large images).

        Args:
            latent: ``[B,C,h,w]``.
            tile: tile size in latent pixels.
            overlap: overlap in latent pixels (clamped below ``tile // 2``).
        """
        b, _, h, w = latent.shape
        r = self.downscale_ratio
        overlap = max(0, min(overlap, tile // 2 - 1))
        out = torch.zeros(b, h * r, w * r, 3)
        weight = torch.zeros(1, h * r, w * r, 1)
        stride = max(1, tile - overlap)
        for y in range(0, max(h - overlap, 1), stride):
            for x in range(0, max(w - overlap, 1), stride):
                y0, x0 = min(y, max(h - tile, 0)), min(x, max(w - tile, 0))
                part = self.decode(latent[:, :, y0:y0 + tile, x0:x0 + tile], manager)
                mask = _ramp(part.shape[1], part.shape[2], overlap * r, y0 > 0, x0 > 0,
                             y0 + tile < h, x0 + tile < w)
                out[:, y0 * r:y0 * r + part.shape[1], x0 * r:x0 * r + part.shape[2]] += part * mask
                weight[:, y0 * r:y0 * r + part.shape[1], x0 * r:x0 * r + part.shape[2]] += mask
        return out / weight.clamp(min=1e-6)


def _ramp(h: int, w: int, o: int, top: bool, left: bool, bottom: bool, right: bool) -> torch.Tensor:
    """A blending weight that rises linearly over ``o`` pixels on the sides that overlap a neighbour."""
    wy, wx = torch.ones(h), torch.ones(w)
    if o > 0:
        ramp = (torch.arange(o, dtype=torch.float32) + 1) / (o + 1)
        if top:
            wy[:o] = torch.minimum(wy[:o], ramp)
        if bottom:
            wy[-o:] = torch.minimum(wy[-o:], ramp.flip(0))
        if left:
            wx[:o] = torch.minimum(wx[:o], ramp)
        if right:
            wx[-o:] = torch.minimum(wx[-o:], ramp.flip(0))
    return (wy[:, None] * wx[None, :])[None, :, :, None]
