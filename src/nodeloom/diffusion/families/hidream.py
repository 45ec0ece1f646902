"""HiDream I1 (full, dev, fast) and E1 (edit): HiDream.ai's sparse (mixture-of-experts) flow transformer.

Files: ComfyUI's repackaged ``hidream_i1_*.safetensors`` / ``hidream_e1_*.safetensors`` and the
original release's transformer hold the same key names (``double_stream_blocks.N.block.attn1.to_q``,
``caption_projection.N``, ``x_embedder.proj``), with or without ComfyUI's ``model.diffusion_model.``
prefix; they load through diffusers' own single-file path. Sizes come from tensor shapes; the head
width (128), the Llama layer each block reads and the latent resolution limit come from
``data/families/hidream.json`` (the release's values). The transformer takes ``1000·σ`` as its time
and predicts ``x0 − noise``, so the adapter negates it into ComfyUI's velocity. The conditioning
carries T5's states as its tensor, the pooled CLIP-L ‖ CLIP-G vector as ``pooled_output`` and the
Llama's hidden layers as ``conditioning_llama3`` ``[B, layers, tokens, width]`` (ComfyUI's names).
E1's edit image (InstructPixToPixConditioning's ``concat_latent_image``) is joined to the latent
on the width axis and the output cropped back, as ComfyUI runs it. Imports no node or engine.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from nodeloom.diffusion.families import Family, family_config, from_original_layout
from nodeloom.diffusion.flow import FlowSampling
from nodeloom.errors import ValidationError, require

if TYPE_CHECKING:
    from nodeloom.diffusion.sampling import ModelCall

__all__ = ["FAMILY", "LATENT_SCALE", "LATENT_SHIFT", "patchify", "transformer_config"]

_SIGNATURE = ("caption_projection.0.linear.weight", "double_stream_blocks.0.block.adaLN_modulation.1.weight",
              "x_embedder.proj.weight")
#: the Flux VAE's latent format (HiDream uses the Flux.1 VAE)
LATENT_SCALE, LATENT_SHIFT = 0.3611, 0.1159


def _matches(shapes: dict[str, tuple[int, ...]]) -> bool:
    return all(k in shapes for k in _SIGNATURE)


def _count(shapes: dict[str, tuple[int, ...]], pattern: str) -> int:
    found = {int(m.group(1)) for k in shapes if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def transformer_config(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The ``HiDreamImageTransformer2DModel`` config of a file, read from its shapes.

    Raises:
        ValidationError: the patch embedding does not fit the 16-channel latent.
    """
    cfg = family_config("hidream")
    inner, patch_in = shapes["x_embedder.proj.weight"]
    patch = math.isqrt(patch_in // cfg["in_channels"])
    if patch * patch * cfg["in_channels"] != patch_in:
        raise ValidationError(f"the HiDream patch embedding takes {patch_in} values per patch, which is not"
                              f" {cfg['in_channels']} latent channels times a square patch", type="invalid_model_file")
    head = cfg["attention_head_dim"] if inner % cfg["attention_head_dim"] == 0 else inner  # narrower: one head
    double = _count(shapes, r"double_stream_blocks\.(\d+)\.")
    single = _count(shapes, r"single_stream_blocks\.(\d+)\.")
    experts = _count(shapes, r"double_stream_blocks\.0\.block\.ff_i\.experts\.(\d+)\.")
    release = cfg.pop("llama_layers")
    cfg.update(patch_size=patch, out_channels=shapes["final_layer.linear.weight"][0] // (patch * patch),
               num_layers=double, num_single_layers=single, attention_head_dim=head, num_attention_heads=inner // head,
               caption_channels=[shapes[f"caption_projection.{double + single}.linear.weight"][1],
                                 shapes["caption_projection.0.linear.weight"][1]],
               text_emb_dim=shapes["p_embedder.pooled_embedder.linear_1.weight"][1], num_routed_experts=experts,
               num_activated_experts=min(cfg["num_activated_experts"], experts) if experts else 0,
               axes_dims_rope=[head // 2, head // 4, head - head // 2 - head // 4],
               llama_layers=[release[min(i, len(release) - 1)] for i in range(double + single)])
    return cfg


def _load(sd: dict[str, Any], dtype: Any) -> Any:
    diffusers = require("diffusers", "diffusion")
    cfg = transformer_config({k: tuple(v.shape) for k, v in sd.items()})
    return from_original_layout(diffusers.HiDreamImageTransformer2DModel, sd, cfg, dtype)


def patchify(x: Any, patch: int) -> tuple[Any, Any, list[tuple[int, int]]]:
    """``[B, C, H, W]`` → ``(tokens [B, S, p·p·C], position ids [B, S, 3], [(H/p, W/p)] · B)``, any
    aspect ratio and unpadded (ComfyUI's layout; diffusers pads non-square grids to its maximum)."""
    torch = require("torch", "diffusion")
    b, c, h, w = x.shape
    ph, pw = h // patch, w // patch
    tokens = x.reshape(b, c, ph, patch, pw, patch).permute(0, 2, 4, 3, 5, 1).reshape(b, ph * pw, patch * patch * c)
    ids = torch.zeros(ph, pw, 3, device=x.device)
    ids[..., 1] += torch.arange(ph, device=x.device)[:, None]
    ids[..., 2] += torch.arange(pw, device=x.device)[None, :]
    return tokens, ids.reshape(1, ph * pw, 3).expand(b, -1, -1), [(ph, pw)] * b


def _llama(entry: Any, module: Any) -> Any:
    states = entry.extra.get("conditioning_llama3")
    if states is None:
        raise ValidationError("HiDream conditioning needs the Llama hidden states (`conditioning_llama3`); encode the"
                              " prompt with QuadrupleCLIPLoader's CLIP (or CLIPLoader/DualCLIPLoader type hidream)")
    if states.ndim != 4:
        raise ValidationError(f"`conditioning_llama3` must be [batch, layers, tokens, width], got {tuple(states.shape)}")
    need, width = max(module.config.llama_layers) + 1, module.config.caption_channels[1]
    if states.shape[1] < need or states.shape[-1] != width:
        raise ValidationError(f"the Llama conditioning has {states.shape[1]} layers {states.shape[-1]} wide but the"
                              f" HiDream model reads {need} layers {width} wide; the text encoders do not belong"
                              " to this model")
    return states


def _pooled(entry: Any, module: Any) -> Any:
    pooled = entry.extra.get("pooled_output")
    width = module.config.text_emb_dim
    if pooled is None or pooled.shape[-1] != width:
        got = "none" if pooled is None else f"{pooled.shape[-1]} wide"
        raise ValidationError(f"HiDream needs a pooled CLIP-L ‖ CLIP-G vector {width} wide, got {got}; encode the"
                              " prompt with the HiDream text encoders")
    return pooled


def _edit_image(entry: Any, like: Any) -> Any:
    """E1's edit image in model space, or None."""
    image = entry.extra.get("concat_latent_image")
    if image is None:
        return None
    if image.shape[-2] != like.shape[-2] or image.shape[1] != like.shape[1]:
        raise ValidationError(f"the edit image's latent is {tuple(image.shape[1:])} but the sampled latent is"
                              f" {tuple(like.shape[1:])}; they need the same channels and height")
    image = ((image.float() - LATENT_SHIFT) * LATENT_SCALE).to(like.device, like.dtype)
    return image if image.shape[0] == like.shape[0] else image[:1].expand(like.shape[0], -1, -1, -1)


def _call(module: Any, x: Any, sigma: Any, t5: Any, llama: Any, pooled: Any, image: Any) -> Any:
    torch = require("torch", "diffusion")
    n, _, h, w = x.shape
    full = torch.cat([x, image], dim=-1) if image is not None else x
    p = module.config.patch_size
    pad_h, pad_w = -full.shape[-2] % p, -full.shape[-1] % p
    if pad_h or pad_w:  # ComfyUI pads to the patch size by wrapping around
        full = torch.nn.functional.pad(full, (0, pad_w, 0, pad_h), mode="circular")
    tokens, ids, sizes = patchify(full, p)
    out = module(hidden_states=tokens, timesteps=(sigma * 1000.0).to(x.dtype).reshape(1).expand(n),
                 encoder_hidden_states_t5=t5.to(x.device, x.dtype),
                 encoder_hidden_states_llama3=llama.to(x.device, x.dtype).movedim(1, 0),
                 pooled_embeds=pooled.to(x.device, x.dtype), img_ids=ids, img_sizes=sizes,
                 hidden_states_masks=torch.ones(tokens.shape[:2], device=x.device, dtype=x.dtype),
                 return_dict=False)[0]
    return -out[:, :, :h, :w]


def _adapter(module: Any, x: Any, sigma: Any, group: ModelCall) -> Any:
    """Run the transformer on every conditioning entry in one batch when their Llama states and edit
    images line up, else one call per entry."""
    torch = require("torch", "diffusion")
    per = x.shape[0] // len(group.entries)
    parts = []
    for k, entry in enumerate(group.entries):
        xs = x[k * per:(k + 1) * per]
        llama, pooled = _llama(entry, module), _pooled(entry, module)
        parts.append((xs, group.context[k * per:(k + 1) * per], llama.expand(per, -1, -1, -1) if llama.shape[0] == 1
                      else llama, pooled.expand(per, -1) if pooled.shape[0] == 1 else pooled, _edit_image(entry, xs)))
    same = len({(p[2].shape, p[4] is None, None if p[4] is None else p[4].shape) for p in parts}) == 1
    if same and len(parts) > 1 and all(p[2].shape[0] == per and p[3].shape[0] == per for p in parts):
        images = None if parts[0][4] is None else torch.cat([p[4] for p in parts])
        return _call(module, x, sigma, torch.cat([p[1] for p in parts]), torch.cat([p[2] for p in parts]),
                     torch.cat([p[3] for p in parts]), images)
    return torch.cat([_call(module, *p[:1], sigma, *p[1:]) for p in parts])


FAMILY = Family(
    name="hidream", title="HiDream", matches=_matches, load=_load, adapter=_adapter,
    # ComfyUI's HiDream default is an unshifted flow (its shift 3.0 setting is overridden); the
    # templates set the shift with ModelSamplingSD3
    sampling=lambda module: FlowSampling(shift=1.0, multiplier=1000.0),
    latent_scale=LATENT_SCALE, latent_shift=LATENT_SHIFT, latent_channels=16, signature=_SIGNATURE,
)
