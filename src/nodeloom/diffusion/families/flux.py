"""Flux.1 (dev, schnell): Black Forest Labs' double/single-stream flow transformer.

Files: ComfyUI's ``flux1-dev.safetensors`` / ``flux1-schnell.safetensors`` (and ``flux1-fill-dev``) carry the original
release layout (``double_blocks.N.img_attn.qkv``, ``single_blocks.N.linear1``, ...), with or
without ComfyUI's prefix; the diffusers layout (``transformer_blocks.N.attn.to_q``) loads too.
:func:`bfl_to_diffusers` / :func:`diffusers_to_bfl` convert between the two for any width (the
converter diffusers ships assumes the full 3072-wide model). The adapter packs latents into 2×2
patches with their position ids, passes σ as the time and the conditioning's ``guidance`` (dev),
and unpacks the velocity. Schnell has no guidance embedder; its default schedule is unshifted.
Fill (384 input channels) also takes InpaintModelConditioning's masked image and mask
(:func:`fill_channels`), packed beside the latent's patches.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from nodeloom.diffusion.families import Family, family_config, from_diffusers_layout
from nodeloom.diffusion.flow import FluxSampling
from nodeloom.diffusion.state_keys import indexed_count as _blocks
from nodeloom.errors import ValidationError, require

if TYPE_CHECKING:
    from nodeloom.diffusion.sampling import ModelCall

__all__ = ["FAMILY", "bfl_to_diffusers", "diffusers_to_bfl", "fill_channels", "pack_patches", "patch_ids", "transformer_config",
           "unpack_patches"]

_SIGNATURE = ("double_blocks.0.img_attn.qkv.weight", "single_blocks.0.linear1.weight", "img_in.weight")

_TOP = [("time_in.in_layer", "time_text_embed.timestep_embedder.linear_1"),
        ("time_in.out_layer", "time_text_embed.timestep_embedder.linear_2"),
        ("vector_in.in_layer", "time_text_embed.text_embedder.linear_1"),
        ("vector_in.out_layer", "time_text_embed.text_embedder.linear_2"),
        ("guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1"),
        ("guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2"),
        ("txt_in", "context_embedder"), ("img_in", "x_embedder"), ("final_layer.linear", "proj_out")]
_DOUBLE = [("img_mod.lin", "norm1.linear"), ("txt_mod.lin", "norm1_context.linear"),
           ("img_attn.norm.query_norm.scale", "attn.norm_q.weight"), ("img_attn.norm.key_norm.scale", "attn.norm_k.weight"),
           ("txt_attn.norm.query_norm.scale", "attn.norm_added_q.weight"),
           ("txt_attn.norm.key_norm.scale", "attn.norm_added_k.weight"),
           ("img_mlp.0", "ff.net.0.proj"), ("img_mlp.2", "ff.net.2"), ("txt_mlp.0", "ff_context.net.0.proj"),
           ("txt_mlp.2", "ff_context.net.2"), ("img_attn.proj", "attn.to_out.0"), ("txt_attn.proj", "attn.to_add_out")]
_SINGLE = [("modulation.lin", "norm.linear"), ("norm.query_norm.scale", "attn.norm_q.weight"),
           ("norm.key_norm.scale", "attn.norm_k.weight"), ("linear2", "proj_out")]
_QKV = {"img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
        "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")}


def _matches(shapes: dict[str, tuple[int, ...]]) -> bool:
    return all(k in shapes for k in _SIGNATURE) or (
        "transformer_blocks.0.attn.add_q_proj.weight" in shapes and "single_transformer_blocks.0.proj_mlp.weight" in shapes
        and "time_text_embed.text_embedder.linear_1.weight" in shapes)


def _swap_halves(t: Any) -> Any:
    torch = require("torch", "diffusion")
    a, b = t.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def _suffixes(name: str) -> tuple[str, ...]:
    return ("",) if name.endswith(".scale") else (".weight", ".bias")


def _rename_table(n_double: int, n_single: int) -> list[tuple[str, str]]:
    """(original, diffusers) prefixes of every plainly renamed tensor (weight/bias suffix added by callers)."""
    table = list(_TOP)
    for i in range(n_double):
        table += [(f"double_blocks.{i}.{a}", f"transformer_blocks.{i}.{b}") for a, b in _DOUBLE]
    for i in range(n_single):
        table += [(f"single_blocks.{i}.{a}", f"single_transformer_blocks.{i}.{b}") for a, b in _SINGLE]
    return table


def bfl_to_diffusers(sd: dict[str, Any]) -> dict[str, Any]:
    """The original Flux layout → diffusers ``FluxTransformer2DModel`` keys (any width)."""
    torch = require("torch", "diffusion")
    src = dict(sd)
    out: dict[str, Any] = {}
    n_double, n_single = _blocks(src, r"double_blocks\.(\d+)\."), _blocks(src, r"single_blocks\.(\d+)\.")
    for old, new in _rename_table(n_double, n_single):
        for suffix in _suffixes(old):
            if old + suffix in src:
                out[new + suffix] = src.pop(old + suffix)
    for i in range(n_double):
        for old, news in _QKV.items():
            for suffix in (".weight", ".bias"):
                for new, part in zip(news, src.pop(f"double_blocks.{i}.{old}{suffix}").chunk(3, dim=0)):
                    out[f"transformer_blocks.{i}.{new}{suffix}"] = part
    inner = out["x_embedder.weight"].shape[0]
    for i in range(n_single):
        for suffix in (".weight", ".bias"):
            w = src.pop(f"single_blocks.{i}.linear1{suffix}")
            q, k, v, mlp = torch.split(w, (inner, inner, inner, w.shape[0] - 3 * inner), dim=0)
            for name, part in (("attn.to_q", q), ("attn.to_k", k), ("attn.to_v", v), ("proj_mlp", mlp)):
                out[f"single_transformer_blocks.{i}.{name}{suffix}"] = part
    for suffix in (".weight", ".bias"):
        if "final_layer.adaLN_modulation.1" + suffix in src:  # Chroma prunes it
            out["norm_out.linear" + suffix] = _swap_halves(src.pop("final_layer.adaLN_modulation.1" + suffix))
    if src:
        raise ValidationError(f"the Flux weights hold {len(src)} tensors nodeloom cannot place, e.g. `{next(iter(src))}`",
                              type="invalid_model_file")
    return out


def diffusers_to_bfl(sd: dict[str, Any]) -> dict[str, Any]:
    """diffusers ``FluxTransformer2DModel`` keys → the original Flux layout (what ComfyUI's files hold)."""
    torch = require("torch", "diffusion")
    src = dict(sd)
    out: dict[str, Any] = {}
    n_double = _blocks(src, r"transformer_blocks\.(\d+)\.")
    n_single = _blocks(src, r"single_transformer_blocks\.(\d+)\.")
    for old, new in _rename_table(n_double, n_single):
        for suffix in _suffixes(old):
            if new + suffix in src:
                out[old + suffix] = src.pop(new + suffix)
    for i in range(n_double):
        for old, news in _QKV.items():
            for suffix in (".weight", ".bias"):
                out[f"double_blocks.{i}.{old}{suffix}"] = torch.cat(
                    [src.pop(f"transformer_blocks.{i}.{n}{suffix}") for n in news])
    for i in range(n_single):
        for suffix in (".weight", ".bias"):
            out[f"single_blocks.{i}.linear1{suffix}"] = torch.cat(
                [src.pop(f"single_transformer_blocks.{i}.{n}{suffix}")
                 for n in ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")])
    for suffix in (".weight", ".bias"):
        if "norm_out.linear" + suffix in src:
            out["final_layer.adaLN_modulation.1" + suffix] = _swap_halves(src.pop("norm_out.linear" + suffix))
    return out


def transformer_config(sd: dict[str, Any]) -> dict[str, Any]:
    """The ``FluxTransformer2DModel`` config of diffusers-layout weights, read from their shapes."""
    cfg = family_config("flux")
    inner, in_ch = sd["x_embedder.weight"].shape
    head = sd["transformer_blocks.0.attn.norm_q.weight"].shape[0]
    eighth = head // 8
    cfg.update(in_channels=in_ch, out_channels=sd["proj_out.weight"].shape[0], num_layers=_blocks(sd, r"transformer_blocks\.(\d+)\."),
               num_single_layers=_blocks(sd, r"single_transformer_blocks\.(\d+)\."), attention_head_dim=head,
               num_attention_heads=inner // head, joint_attention_dim=sd["context_embedder.weight"].shape[1],
               pooled_projection_dim=sd["time_text_embed.text_embedder.linear_1.weight"].shape[1],
               guidance_embeds="time_text_embed.guidance_embedder.linear_1.weight" in sd,
               axes_dims_rope=[eighth, (head - eighth) // 2, head - eighth - (head - eighth) // 2])
    return cfg


def _load(sd: dict[str, Any], dtype: Any) -> Any:
    diffusers = require("diffusers", "diffusion")
    if "double_blocks.0.img_attn.qkv.weight" in sd:
        sd = bfl_to_diffusers(sd)
    return from_diffusers_layout(diffusers.FluxTransformer2DModel, sd, transformer_config(sd), dtype, "Flux")


def pack_patches(x: Any) -> Any:
    b, c, h, w = x.shape
    return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_patches(tokens: Any, c: int, h: int, w: int) -> Any:
    """The inverse of :func:`pack_patches`: ``[B, h/2·w/2, 4c]`` tokens → ``[B, c, h, w]``."""
    b = tokens.shape[0]
    return tokens.reshape(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def patch_ids(h: int, w: int, device: Any, dtype: Any, index: int = 0, h_off: int = 0, w_off: int = 0) -> Any:
    torch = require("torch", "diffusion")
    ids = torch.zeros(h, w, 3)
    ids[..., 0] = index
    ids[..., 1] = torch.arange(h_off, h_off + h)[:, None]
    ids[..., 2] = torch.arange(w_off, w_off + w)[None, :]
    return ids.reshape(h * w, 3).to(device, dtype)


def _references(refs: list[Any], like: Any, method: str, h_len: int, w_len: int) -> tuple[list[Any], list[Any]]:
    """Packed reference latents (Kontext) and their position ids, placed as ComfyUI places them:
    ``offset`` (default) — index 1, each next reference beside or below the ones before, whichever
    keeps the area smaller; ``index`` — index 1, 2, ... at the origin; ``uxo`` — index 0, diagonally
    past the image (``h_len``×``w_len`` tokens) and the references before."""
    if method not in ("offset", "index", "uxo"):
        raise ValidationError(f"Flux.1 places reference latents by offset, index or uxo, got '{method}'")
    tokens, ids = [], []
    h = w = index = 0
    for raw in refs:
        ref = ((raw.float() - 0.1159) * 0.3611).to(like.device, like.dtype)  # the model's latent space
        if ref.shape[-2] % 2 or ref.shape[-1] % 2:
            raise ValidationError(f"reference latents need an even height and width, got {tuple(ref.shape[-2:])}")
        if method == "index":
            index, h_off, w_off = index + 1, 0, 0
        elif method == "uxo":
            index, h_off, w_off = 0, h_len * 2 + h, w_len * 2 + w
            h, w = h + ref.shape[-2], w + ref.shape[-1]
        else:
            index, h_off, w_off = 1, 0, 0
            if ref.shape[-2] + h > ref.shape[-1] + w:
                w_off = w
            else:
                h_off = h
            h, w = max(h, ref.shape[-2] + h_off), max(w, ref.shape[-1] + w_off)
        tokens.append(pack_patches(ref))
        ids.append(patch_ids(ref.shape[-2] // 2, ref.shape[-1] // 2, like.device, like.dtype, index, (h_off + 1) // 2,
                        (w_off + 1) // 2))
    return tokens, ids


def fill_channels(x: Any, extra: dict[str, Any]) -> Any:
    """Flux Fill's extra input channels for latents ``x`` [B,16,h,w]: InpaintModelConditioning's
    masked-image latent in the model's space, then its mask (1 = regenerate) at 8× the latent size
    with each 8×8 pixel block laid out as 64 channels (ComfyUI's and the release's order); no
    masked image means zeros, no mask means everything regenerates."""
    torch = require("torch", "diffusion")
    import torch.nn.functional as F

    b, _, h, w = x.shape
    image = extra.get("concat_latent_image")
    if image is None:
        image = torch.zeros_like(x)
    else:
        image = ((image.float() - 0.1159) * 0.3611).to(x.device, x.dtype)
        if tuple(image.shape[-2:]) != (h, w):
            image = F.interpolate(image, size=(h, w), mode="bilinear")
    mask = extra.get("concat_mask")
    if mask is None:
        mask = torch.ones(b, 1, h * 8, w * 8, device=x.device, dtype=x.dtype)
    mask = mask.float().reshape(-1, *mask.shape[-2:])[:, None] if mask.ndim != 4 else mask.float()
    mask = F.interpolate(mask.mean(dim=1, keepdim=True).to(x.device, x.dtype), size=(h * 8, w * 8), mode="bilinear")
    mask = mask.view(-1, h, 8, w, 8).permute(0, 2, 4, 1, 3).reshape(-1, 64, h, w)
    image, mask = (t if t.shape[0] == b else t[:1].expand(b, -1, -1, -1) for t in (image, mask))
    return torch.cat([image, mask], dim=1)


def _adapter(module: Any, x: Any, sigma: Any, group: ModelCall) -> Any:
    """Pack 2×2 patches (and any reference latents), run the transformer with σ as time and the
    conditioning's guidance, unpack the velocity of the image tokens."""
    torch = require("torch", "diffusion")
    b, c, h, w = x.shape
    if h % 2 or w % 2:
        raise ValidationError(f"Flux latents need an even height and width, got {h}×{w} (use a multiple of 16 pixels)")
    entries = group.entries
    per = b // len(entries)
    outs = []
    for k, entry in enumerate(entries):  # one call per conditioning entry: each may carry its own references
        extra = entry.extra
        if extra.get("pooled_output") is None:
            raise ValidationError("Flux conditioning needs a pooled CLIP-L output; encode the prompt with a"
                                  " DualCLIPLoader (type flux) CLIP")
        xs = x[k * per:(k + 1) * per]
        tokens, ids = [pack_patches(xs)], [patch_ids(h // 2, w // 2, x.device, x.dtype)]
        if module.config.in_channels > c * 4:  # Fill: the masked image's latent and the mask ride along
            tokens[0] = torch.cat([tokens[0], pack_patches(fill_channels(xs, extra))], dim=2)
        more_tokens, more_ids = _references(list(extra.get("reference_latents") or []), xs,
                                            str(extra.get("reference_latents_method", "offset")), h // 2, w // 2)
        tokens += [t.expand(per, -1, -1) for t in more_tokens]
        ids += more_ids
        ctx = group.context[k * per:(k + 1) * per].to(x.dtype)
        g = torch.full((per,), float(extra.get("guidance", 3.5)), device=x.device, dtype=x.dtype)
        out = module(hidden_states=torch.cat(tokens, dim=1), encoder_hidden_states=ctx,
                     pooled_projections=extra["pooled_output"].to(x.device, x.dtype).expand(per, -1),
                     timestep=sigma.to(x.dtype).reshape(1).expand(per), img_ids=torch.cat(ids),
                     txt_ids=torch.zeros(ctx.shape[1], 3, device=x.device, dtype=x.dtype),
                     guidance=g if module.config.guidance_embeds else None, return_dict=False)[0]
        outs.append(out[:, : (h // 2) * (w // 2)])
    return unpack_patches(torch.cat(outs), c, h, w)


FAMILY = Family(
    name="flux", title="Flux.1", matches=_matches, load=_load, adapter=_adapter,
    sampling=lambda module: FluxSampling(shift=1.15 if module.config.guidance_embeds else 1.0), latent_scale=0.3611, latent_shift=0.1159, latent_channels=16,
    signature=_SIGNATURE,
)
