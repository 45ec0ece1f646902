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

__all__ = ["ClipModel", "DiffusionModel", "PromptTokens", "VaeModel", "check_model_options", "unsupported_patch"]

#: latent of a mid-grey image for SD-family VAEs (scaled), fed to inpainting UNets without a mask
_GREY_LATENT = (0.8223, -0.6876, 0.6364, 0.1380)


def _prepare(module: Any, manager: Any, dtype: Any = None) -> Any:
    if manager is None:
        return module
    return manager.prepare(module, dtype=dtype)


#: ComfyUI ModelPatcher calls nodeloom cannot honour on its diffusers UNet, and why.
_PATCHER_CALLS = {
    "add_patches": "weight deltas keyed by ComfyUI's state-dict names cannot be applied to a diffusers UNet; "
                   "apply LoRA files with LoraLoader",
    "add_object_patch": "the MODEL has no ComfyUI inner objects to replace",
    "set_model_attn1_patch": "nodeloom's UNet attention takes no ComfyUI attention patches",
    "set_model_attn2_patch": "nodeloom's UNet attention takes no ComfyUI attention patches",
    "set_model_attn1_replace": "nodeloom's UNet attention takes no ComfyUI attention patches",
    "set_model_attn2_replace": "nodeloom's UNet attention takes no ComfyUI attention patches",
    "set_model_unet_function_wrapper": "nodeloom's sampler calls the diffusers UNet directly",
    "set_model_denoise_mask_function": "nodeloom's sampler applies noise masks itself",
    "set_model_input_block_patch": "nodeloom's UNet has no ComfyUI input-block patch points",
    "add_wrapper_with_key": "nodeloom's sampler has no ComfyUI wrapper points",
    "add_callback_with_key": "nodeloom's sampler has no ComfyUI callback points",
}


def _calling_pack() -> str | None:
    """The custom-node pack whose code is calling (its module under ``nodeloom_custom_nodes``)."""
    import inspect

    for frame in inspect.stack(context=0)[2:]:
        module = frame.frame.f_globals.get("__name__", "")
        if module.startswith("nodeloom_custom_nodes."):
            return module.split(".")[1].rsplit("_", 1)[0]
    return None


def unsupported_patch(call: str, why: str) -> str:
    """The message for a ComfyUI MODEL call nodeloom cannot honour, naming the calling pack."""
    pack = _calling_pack()
    who = f"custom nodes `{pack}` call" if pack else "a caller uses"
    return f"{who} `MODEL.{call}`, which nodeloom cannot honour: {why}"


#: ``model_options`` / ``transformer_options`` entries packs file that nodeloom's sampler cannot apply
_UNHONOURED_OPTIONS = {
    "model_function_wrapper": "nodeloom's sampler calls the diffusers UNet directly",
    "denoise_mask_function": "nodeloom's sampler applies noise masks itself",
}
_UNHONOURED_TRANSFORMER_OPTIONS = {
    "patches": "nodeloom's UNet honours output-block patches only (no input-block, middle or attention patches)",
    "patches_replace": "nodeloom's UNet attention takes no ComfyUI attention replacements",
    "wrappers": "nodeloom's sampler has no ComfyUI wrapper points",
    "callbacks": "nodeloom's sampler has no ComfyUI callback points",
}


def check_model_options(model: Any) -> None:
    """Refuse to sample a MODEL whose ``model_options`` hold a patch nodeloom cannot apply.

    Raises:
        NotImplementedError: naming the entry (and the pack that filed it, when one is calling).
    """
    options = (getattr(model, "extra", None) or {}).get("model_options") or {}
    for key, why in _UNHONOURED_OPTIONS.items():
        if options.get(key):
            raise NotImplementedError(unsupported_patch(f"model_options[{key!r}]", why))
    transformer = options.get("transformer_options") or {}
    for key, why in _UNHONOURED_TRANSFORMER_OPTIONS.items():
        value = transformer.get(key)
        if key == "patches" and isinstance(value, dict):  # output-block patches are honoured on UNets
            value = {name: v for name, v in value.items() if name != "output_block_patch" and v}
        if value:
            raise NotImplementedError(unsupported_patch(f"model_options['transformer_options'][{key!r}]", why))


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

    def latent_stats_for(self, like: torch.Tensor) -> tuple[Any, Any]:
        """``(scale, shift)`` shaped to broadcast over ``like`` (a per-channel tensor is laid on the
        channel axis of an image ``[B,C,h,w]`` or video ``[B,C,t,h,w]`` latent; floats pass through)."""
        def fit(v: Any) -> Any:
            if isinstance(v, torch.Tensor) and v.numel() > 1:
                return v.reshape(1, -1, *[1] * (like.ndim - 2)).to(like.device)
            return v
        return fit(self.latent_scale), fit(self.latent_shift)

    def to_model_space(self, raw: torch.Tensor) -> torch.Tensor:
        """A raw VAE latent in the model's space: ``(raw − shift) · scale``."""
        scale, shift = self.latent_stats_for(raw)
        return (raw.float() - shift) * scale

    def from_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_model_space`."""
        scale, shift = self.latent_stats_for(x)
        return x / scale + shift

    def clone(self, **changes: Any) -> DiffusionModel:
        """A new MODEL value; its ``model_options`` are copied, so patching the clone leaves this one alone."""
        if "extra" not in changes:
            extra = dict(self.extra)
            if "model_options" in extra:
                extra["model_options"] = {k: list(v) if isinstance(v, list) else v
                                          for k, v in extra["model_options"].items()}
                transformer = extra["model_options"].get("transformer_options")
                if isinstance(transformer, dict):  # its patch lists too: a patched clone leaves this one alone
                    transformer = dict(transformer)
                    if isinstance(transformer.get("patches"), dict):
                        transformer["patches"] = {k: list(v) for k, v in transformer["patches"].items()}
                    extra["model_options"]["transformer_options"] = transformer
            changes["extra"] = extra
        return dataclasses.replace(self, **changes)

    @property
    def model_options(self) -> dict[str, Any]:
        """ComfyUI's patch dict; nodeloom's sampler honours ``sampler_pre_cfg_function``,
        ``sampler_cfg_function`` and ``sampler_post_cfg_function`` (see :func:`nodeloom.diffusion.sampling.apply_cfg_patches`)."""
        return self.extra.setdefault("model_options", {"transformer_options": {}})

    def set_model_sampler_cfg_function(self, function: Callable[[dict[str, Any]], torch.Tensor],
                                       disable_cfg1_optimization: bool = False) -> None:
        """Replace the guidance formula (ComfyUI's ModelPatcher call; use it on a :meth:`clone`)."""
        self.model_options["sampler_cfg_function"] = function
        if disable_cfg1_optimization:
            self.model_options["disable_cfg1_optimization"] = True

    def set_model_sampler_pre_cfg_function(self, function: Callable[[dict[str, Any]], list[torch.Tensor]],
                                           disable_cfg1_optimization: bool = False) -> None:
        """Add a function that rewrites ``[cond, uncond]`` estimates before CFG combines them."""
        self.model_options.setdefault("sampler_pre_cfg_function", []).append(function)
        if disable_cfg1_optimization:
            self.model_options["disable_cfg1_optimization"] = True

    def set_model_sampler_post_cfg_function(self, function: Callable[[dict[str, Any]], torch.Tensor],
                                            disable_cfg1_optimization: bool = False) -> None:
        """Add a function applied to the guided estimate after CFG."""
        self.model_options.setdefault("sampler_post_cfg_function", []).append(function)
        if disable_cfg1_optimization:
            self.model_options["disable_cfg1_optimization"] = True

    def set_model_output_block_patch(self, patch: Callable[..., Any]) -> None:
        """Add ``patch(h, hsp, transformer_options) -> (h, hsp)``, run where each decoder step joins
        its input with the skip connection (UNet families; see :mod:`nodeloom.diffusion.block_patches`)."""
        transformer = self.model_options.setdefault("transformer_options", {})
        transformer.setdefault("patches", {}).setdefault("output_block_patch", []).append(patch)

    def get_model_object(self, name: str) -> Any:
        """``"model_sampling"`` (the noise schedule); other ComfyUI model internals do not exist here.

        Raises:
            AttributeError: any other name.
        """
        if name == "model_sampling":
            return self.sampling
        raise AttributeError(unsupported_patch(f"get_model_object({name!r})",
                                               "the MODEL is a diffusers UNet without ComfyUI's inner objects"))

    def __getattr__(self, name: str) -> Any:
        if name in _PATCHER_CALLS:
            raise NotImplementedError(unsupported_patch(name, _PATCHER_CALLS[name]))
        raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}")

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
    #: the model manager that loaded the encoders, used by the ComfyUI-style methods packs call
    #: without one (``encode_from_tokens``)
    manager: Any = field(default=None, repr=False, compare=False)

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

    def tokenize(self, text: str, return_word_ids: bool = False, **_: Any) -> PromptTokens:
        """Weighted token ids per encoder (``"l"``, plus ``"g"`` for SDXL), for packs that call
        ComfyUI's ``clip.tokenize``; ``return_word_ids`` is not supported and ignored."""
        tok, out = clip_tokenizer(), PromptTokens(text)
        for i, key in enumerate(("l", "g")[: len(self.encoders)]):
            pad = 0 if (self.family == "sdxl" and i == 1) else EOS_TOKEN_ID
            out[key] = tokenize_weighted(tok, text, pad_id=pad, bos_id=BOS_TOKEN_ID, eos_id=EOS_TOKEN_ID)
        return out

    def encode_from_tokens(self, tokens: Any, return_pooled: bool = False, return_dict: bool = False) -> Any:
        """Encode tokens from :meth:`tokenize` (ComfyUI's return forms: cond, (cond, pooled) or a dict).

        Raises:
            TypeError: ``tokens`` were not made by :meth:`tokenize`.
        """
        text = getattr(tokens, "text", None)
        if not isinstance(text, str):
            raise TypeError("`encode_from_tokens` needs tokens from this CLIP's `tokenize` (nodeloom encodes "
                            f"from the prompt text), got {type(tokens).__name__}")
        cond, pooled = self.encode(text, self.manager)
        if return_dict:
            return {"cond": cond, "pooled_output": pooled}
        return (cond, pooled) if return_pooled else cond

    def encode_from_tokens_scheduled(self, tokens: Any, unprojected: bool = False,
                                     add_dict: dict[str, Any] | None = None) -> list[Any]:
        """A CONDITIONING list ``[[cond, {"pooled_output": pooled, ...}]]`` from :meth:`tokenize` tokens."""
        cond, pooled = self.encode_from_tokens(tokens, return_pooled=True)
        return [[cond, {"pooled_output": pooled, **(add_dict or {})}]]

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


class PromptTokens(dict):  # type: ignore[type-arg]
    """ComfyUI-style tokens (``{"l": chunks, "g": chunks}`` of ``(id, weight)``) that remember their text.

    nodeloom encodes from the prompt text (weights, long prompts and embeddings included), so
    :meth:`ClipModel.encode_from_tokens` needs tokens made by :meth:`ClipModel.tokenize`.
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


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
    #: the model manager that loaded it, used by the ComfyUI-style methods packs call without one
    #: (``encode_tiled``)
    manager: Any = field(default=None, repr=False, compare=False)

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

    def spacial_compression_encode(self) -> int:
        return self.downscale_ratio

    def spacial_compression_decode(self) -> int:
        return self.downscale_ratio

    def encode_tiled(self, pixels: torch.Tensor, tile_x: int = 512, tile_y: int = 512, overlap: int = 64,
                     manager: Any = None) -> torch.Tensor:
        """:meth:`encode` in overlapping pixel tiles blended linearly (ComfyUI's ``encode_tiled``)."""
        from nodeloom.ops.tiles import tiled_apply

        r = self.downscale_ratio
        manager = manager if manager is not None else self.manager
        return tiled_apply(pixels[..., :3].movedim(-1, 1), lambda t: self.encode(t.movedim(1, -1), manager),
                           (tile_y, tile_x), overlap, 1.0 / r, self.latent_channels)

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
