"""Flux.2 (dev and Klein): Black Forest Labs' second double/single-stream flow transformer.

Files: ComfyUI's ``flux2_dev_*.safetensors`` and ``flux-2-klein-*.safetensors`` carry the
original release layout (``double_blocks.N.img_attn.qkv``, ``double_stream_modulation_img.lin``,
``single_stream_modulation.lin``, ...), with or without ComfyUI's prefix, and load through
diffusers' own converter; the diffusers layout (``transformer_blocks.N.attn.to_q``) loads as it
is. Sizes come from tensor shapes (rotary axes: the head width in four equal parts, as released).
Dev has a guidance embedder (FluxGuidance), Klein none. The latent is the Flux.2 VAE's
patchified, batch-normalised 128-channel latent (see :mod:`nodeloom.diffusion.flux2_vae`), so it
is the model's space as it is. The adapter flattens it into tokens with 4-axis (t, h, w, l)
position ids, appends each reference latent at time index 10, 20, ... (as the release places
them), passes σ as the time and unflattens the velocity of the image tokens. With the
``index_timestep_zero`` reference method (FluxKontextMultiReferenceLatentMethod, and FluxKVCache's
default) the reference tokens are modulated at timestep 0 while the image and text tokens take σ;
under FluxKVCache (:mod:`nodeloom.diffusion.reference_kv`) the first call of a run records the
references' keys and values and the later calls run without the reference tokens.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from nodeloom.diffusion import reference_kv
from nodeloom.diffusion.families import Family, family_config, from_diffusers_layout, from_original_layout
from nodeloom.diffusion.flow import FluxSampling
from nodeloom.errors import ValidationError, require

if TYPE_CHECKING:
    from nodeloom.diffusion.sampling import ModelCall

__all__ = ["FAMILY", "transformer_config"]

_ORIGINAL = ("double_stream_modulation_img.lin.weight", "single_stream_modulation.lin.weight", "img_in.weight")
_DIFFUSERS = ("double_stream_modulation_img.linear.weight", "single_stream_modulation.linear.weight",
              "x_embedder.weight")
#: where the release puts the n-th reference image on the time axis of the position ids
REFERENCE_TIME_STEP = 10


def _matches(shapes: dict[str, tuple[int, ...]]) -> bool:
    return all(k in shapes for k in _ORIGINAL) or all(k in shapes for k in _DIFFUSERS)


def _count(keys: Any, pattern: str) -> int:
    found = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def transformer_config(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The ``Flux2Transformer2DModel`` config of a file (either layout), read from its shapes."""
    cfg = family_config("flux2")
    original = "img_in.weight" in shapes
    inner, in_ch = shapes["img_in.weight" if original else "x_embedder.weight"]
    head = shapes["double_blocks.0.img_attn.norm.query_norm.scale" if original
                  else "transformer_blocks.0.attn.norm_q.weight"][0]
    mlp_in = shapes["double_blocks.0.img_mlp.0.weight" if original else "transformer_blocks.0.ff.linear_in.weight"][0]
    if inner % head or head % 4:
        raise ValidationError(f"the Flux.2 transformer is {inner} wide with {head}-wide heads, which do not divide"
                              " into whole heads and four rotary axes", type="invalid_model_file")
    blocks = (r"double_blocks\.(\d+)\.", r"single_blocks\.(\d+)\.") if original else \
        (r"transformer_blocks\.(\d+)\.", r"single_transformer_blocks\.(\d+)\.")
    cfg.update(in_channels=in_ch, num_layers=_count(shapes, blocks[0]), num_single_layers=_count(shapes, blocks[1]),
               attention_head_dim=head, num_attention_heads=inner // head,
               joint_attention_dim=shapes["txt_in.weight" if original else "context_embedder.weight"][1],
               mlp_ratio=mlp_in / 2 / inner, axes_dims_rope=[head // 4] * 4,
               guidance_embeds=("guidance_in.in_layer.weight" if original
                                else "time_guidance_embed.guidance_embedder.linear_1.weight") in shapes)
    return cfg


def _load(sd: dict[str, Any], dtype: Any) -> Any:
    diffusers = require("diffusers", "diffusion")
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    cfg = transformer_config(shapes)
    if "img_in.weight" in shapes:
        return from_original_layout(diffusers.Flux2Transformer2DModel, sd, cfg, dtype)
    return from_diffusers_layout(diffusers.Flux2Transformer2DModel, sd, cfg, dtype, "Flux.2")


def _ids(t: int, h: int, w: int, device: Any) -> Any:
    """(t, h, w, l) position ids of an ``h``×``w`` token grid at time index ``t``, ``[h·w, 4]``."""
    torch = require("torch", "diffusion")
    return torch.cartesian_prod(torch.tensor([t]), torch.arange(h), torch.arange(w), torch.tensor([0])).to(device)


def _tokens(x: Any) -> Any:
    return x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)


def _per_token(main: Any, ref: Any, start: int, end: int, length: int) -> Any:
    """Modulation rows ``[B, length, width]``: ``main`` everywhere but tokens ``start:end``, which take ``ref``."""
    torch = require("torch", "diffusion")
    main = main if main.ndim == 3 else main.unsqueeze(1)
    ref = ref if ref.ndim == 3 else ref.unsqueeze(1)
    b = main.shape[0]
    return torch.cat([main.expand(b, start, -1), ref.expand(b, end - start, -1), main.expand(b, length - end, -1)], 1)


def _forward_zero_t(module: Any, hidden: Any, ctx: Any, timestep: Any, img_ids: Any, txt_ids: Any, guidance: Any,
                    n_img: int) -> Any:
    """``Flux2Transformer2DModel.forward`` with the tokens after the first ``n_img`` (the references)
    modulated at timestep 0 in the double- and single-stream blocks; the velocity of all tokens."""
    torch = require("torch", "diffusion")
    dtype, n_txt, n_all = hidden.dtype, ctx.shape[1], hidden.shape[1]
    t = timestep.to(dtype) * 1000
    g = guidance.to(dtype) * 1000 if guidance is not None else None
    temb = module.time_guidance_embed(t, g)
    temb0 = module.time_guidance_embed(torch.zeros_like(t), g)
    mod_img = _per_token(module.double_stream_modulation_img(temb), module.double_stream_modulation_img(temb0),
                         n_img, n_all, n_all)
    mod_txt = module.double_stream_modulation_txt(temb)
    mod_single = _per_token(module.single_stream_modulation(temb), module.single_stream_modulation(temb0),
                            n_txt + n_img, n_txt + n_all, n_txt + n_all)
    hidden = module.x_embedder(hidden)
    ctx = module.context_embedder(ctx)
    img_rope, txt_rope = module.pos_embed(img_ids), module.pos_embed(txt_ids)
    rope = (torch.cat([txt_rope[0], img_rope[0]]), torch.cat([txt_rope[1], img_rope[1]]))
    for block in module.transformer_blocks:
        ctx, hidden = block(hidden_states=hidden, encoder_hidden_states=ctx, temb_mod_img=mod_img,
                            temb_mod_txt=mod_txt, image_rotary_emb=rope)
    hidden = torch.cat([ctx, hidden], dim=1)
    for block in module.single_transformer_blocks:
        hidden = block(hidden_states=hidden, encoder_hidden_states=None, temb_mod=mod_single, image_rotary_emb=rope)
    return module.proj_out(module.norm_out(hidden[:, n_txt:], temb))


def _call_entry(module: Any, xs: Any, sigma: Any, ctx: Any, extra: dict[str, Any]) -> Any:
    """One conditioning entry's velocity tokens for the image (references appended, then dropped)."""
    torch = require("torch", "diffusion")
    per, c, h, w = xs.shape
    refs = list(extra.get("reference_latents") or [])
    store = reference_kv.active(module)
    method = str(extra.get("reference_latents_method") or (store.default_method if store else "index"))
    key = store.key(extra, refs, per) if store is not None and refs else None
    replay = key is not None and store.has(key)  # type: ignore[union-attr]
    tokens, ids = [_tokens(xs)], [_ids(0, h, w, xs.device)]
    for i, ref in enumerate([] if replay else refs):
        if ref.ndim != 4 or ref.shape[1] != c:
            raise ValidationError(f"a Flux.2 reference latent must be [B,{c},h,w] (VAE Encode with the Flux.2 VAE),"
                                  f" got {tuple(ref.shape)}")
        tokens.append(_tokens(ref[:1].to(xs.device, xs.dtype)).expand(per, -1, -1))
        ids.append(_ids(REFERENCE_TIME_STEP * (i + 1), ref.shape[-2], ref.shape[-1], xs.device))
    txt_ids = torch.cartesian_prod(torch.tensor([0]), torch.tensor([0]), torch.tensor([0]),
                                   torch.arange(ctx.shape[1])).to(xs.device)
    guidance = None
    if module.config.guidance_embeds:
        guidance = torch.full((per,), float(extra.get("guidance", 3.5)), device=xs.device, dtype=xs.dtype)
    hidden, img_ids, timestep = torch.cat(tokens, dim=1), torch.cat(ids), sigma.to(xs.dtype).reshape(1).expand(per)
    zero_t = method == "index_timestep_zero" and len(tokens) > 1

    def run() -> Any:
        if zero_t:
            return _forward_zero_t(module, hidden, ctx, timestep, img_ids, txt_ids, guidance, h * w)
        return module(hidden_states=hidden, encoder_hidden_states=ctx, timestep=timestep, img_ids=img_ids,
                      txt_ids=txt_ids, guidance=guidance, return_dict=False)[0]

    if key is None:
        out = run()
    elif replay:
        with store.reading(key):  # type: ignore[union-attr]
            out = run()
    else:
        with store.filling(key, hidden.shape[1] - h * w):  # type: ignore[union-attr]
            out = run()
    return out[:, : h * w]


def _adapter(module: Any, x: Any, sigma: Any, group: ModelCall) -> Any:
    """Run the transformer once per conditioning entry (each may carry its own references)."""
    torch = require("torch", "diffusion")
    b, c, h, w = x.shape
    per = b // len(group.entries)
    outs = [_call_entry(module, x[k * per:(k + 1) * per], sigma, group.context[k * per:(k + 1) * per].to(x.dtype),
                        entry.extra) for k, entry in enumerate(group.entries)]
    return torch.cat(outs).permute(0, 2, 1).reshape(b, c, h, w)


FAMILY = Family(
    name="flux2", title="Flux.2", matches=_matches, load=_load, adapter=_adapter,
    sampling=lambda module: FluxSampling(shift=2.02), latent_scale=1.0, latent_shift=0.0, latent_channels=128,
    signature=_ORIGINAL,
)
