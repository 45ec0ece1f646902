"""HunyuanVideo 1.0: Tencent's 13B dual/single-stream video flow transformer (text-to-video).

Files: ComfyUI's repackaged ``hunyuan_video_t2v_720p_bf16.safetensors`` holds the release's key
layout (``double_blocks.N.img_attn_qkv``, ``single_blocks.N.linear1``, ``txt_in``, ``vector_in``,
``guidance_in``), with or without ComfyUI's ``model.diffusion_model.`` prefix; ComfyUI's in-memory
names (``img_mod.lin``, ``img_attn.qkv``) are read too. Sizes come from tensor shapes (head width
128, as released). The image-to-video releases (more than 16 input channels) are refused with a message.

The transformer takes ``σ·1000`` as its time and the distilled guidance (FluxGuidance's
``guidance``, 6 when none is set, as ComfyUI's) times 1000, CLIP-L's pooled vector
(``pooled_output``) and the Llama tokens, and predicts ``noise − x0`` (ComfyUI's velocity). Latents
are the raw VAE latent times 0.476986 (ComfyUI's ``HunyuanVideo`` latent format).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from nodeloom.diffusion.families import Family, from_diffusers_layout
from nodeloom.diffusion.families.hunyuan_video15 import convert_block, convert_shared, release_names
from nodeloom.diffusion.flow import FlowSampling
from nodeloom.errors import ValidationError, require

if TYPE_CHECKING:
    from nodeloom.diffusion.sampling import ModelCall

__all__ = ["FAMILY", "LATENT_SCALE", "diffusers_keys", "transformer_config"]

_SIGNATURE = ("txt_in.individual_token_refiner.blocks.0.norm1.weight", "img_in.proj.weight", "single_blocks.0.linear1.weight")
#: raw VAE latent → model space (ComfyUI's latent format, diffusers' ``scaling_factor``)
LATENT_SCALE = 0.476986
_DEFAULT_GUIDANCE = 6.0
_HEAD_DIM = 128
_TOP = {
    "img_in.proj": "x_embedder.proj", "time_in.mlp.0": "time_text_embed.timestep_embedder.linear_1",
    "time_in.mlp.2": "time_text_embed.timestep_embedder.linear_2",
    "guidance_in.mlp.0": "time_text_embed.guidance_embedder.linear_1",
    "guidance_in.mlp.2": "time_text_embed.guidance_embedder.linear_2",
    "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
    "vector_in.mlp.0": "time_text_embed.text_embedder.linear_1",
    "vector_in.mlp.2": "time_text_embed.text_embedder.linear_2",
    "final_layer.linear": "proj_out", "txt_in.input_embedder": "context_embedder.proj_in",
    "txt_in.c_embedder.linear_1": "context_embedder.time_text_embed.text_embedder.linear_1",
    "txt_in.c_embedder.linear_2": "context_embedder.time_text_embed.text_embedder.linear_2",
    "txt_in.t_embedder.mlp.0": "context_embedder.time_text_embed.timestep_embedder.linear_1",
    "txt_in.t_embedder.mlp.2": "context_embedder.time_text_embed.timestep_embedder.linear_2",
}
_SINGLE = {"linear2": "proj_out", "q_norm": "attn.norm_q", "k_norm": "attn.norm_k", "modulation.linear": "norm.linear"}
_COMFY_SINGLE = ((".modulation.lin.", ".modulation.linear."), (".norm.query_norm.scale", ".q_norm.weight"),
                 (".norm.key_norm.scale", ".k_norm.weight"))


def _matches(shapes: dict[str, tuple[int, ...]]) -> bool:
    return all(k in shapes for k in _SIGNATURE) and "cond_type_embedding.weight" not in shapes


def _count(shapes: dict[str, Any], pattern: str) -> int:
    found = {int(m.group(1)) for k in shapes if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def _names(sd: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in release_names(sd).items():
        if key.startswith("single_blocks."):
            for comfy, release in _COMFY_SINGLE:
                key = key.replace(comfy, release)
        out[key] = value
    return out


def transformer_config(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The ``HunyuanVideoTransformer3DModel`` config of a (release-named) header, read from its shapes.

    Raises:
        ValidationError: an image-to-video release (its latent and the start frame's in the input).
    """
    inner, in_ch, pt, ph, pw = shapes["img_in.proj.weight"]
    pooled = shapes.get("vector_in.mlp.0.weight", shapes.get("vector_in.in_layer.weight"))
    if pooled is None:
        raise ValidationError("this HunyuanVideo file has no `vector_in` (the CLIP-L pooled-vector embedder) that"
                              " the text-to-video release has", type="invalid_model_file")
    if in_ch != 16:
        raise ValidationError(f"this HunyuanVideo model takes {in_ch} input channels (an image-to-video release),"
                              " which nodeloom cannot run yet; the text-to-video model (16 channels) runs",
                              type="unsupported_model_variant", extra_info={"variant": "i2v"})
    return {
        "in_channels": in_ch, "out_channels": shapes["final_layer.linear.weight"][0] // (pt * ph * pw),
        "num_attention_heads": max(1, inner // _HEAD_DIM), "attention_head_dim": min(inner, _HEAD_DIM),
        "num_layers": _count(shapes, r"double_blocks\.(\d+)\."), "num_single_layers": _count(shapes, r"single_blocks\.(\d+)\."),
        "num_refiner_layers": _count(shapes, r"txt_in\.individual_token_refiner\.blocks\.(\d+)\."),
        "mlp_ratio": shapes["double_blocks.0.img_mlp.fc1.weight"][0] / inner, "patch_size": ph, "patch_size_t": pt,
        "qk_norm": "rms_norm", "guidance_embeds": "guidance_in.mlp.0.weight" in shapes,
        "text_embed_dim": shapes["txt_in.input_embedder.weight"][1],
        "pooled_projection_dim": pooled[1],
        "rope_theta": 256.0, "rope_axes_dim": (16, 56, 56),
    }


def _split_linear1(value: Any, base: str, param: str, out: dict[str, Any], hidden: int) -> bool:
    """A single block's ``linear1``: q, k, v (``hidden`` rows each), then the MLP's input."""
    torch = require("torch", "diffusion")
    q, k, v, mlp = torch.split(value, (hidden, hidden, hidden, value.shape[0] - 3 * hidden), dim=0)
    for name, part in (("attn.to_q", q), ("attn.to_k", k), ("attn.to_v", v), ("proj_mlp", mlp)):
        out[f"{base}.{name}.{param}"] = part
    return True


def diffusers_keys(sd: dict[str, Any]) -> dict[str, Any]:
    """Release-layout weights (or ComfyUI's in-memory names) under diffusers' names: fused q/k/v
    split, the single blocks' ``linear1`` cut into q, k, v and the MLP input, and the final
    layer's ``(shift, scale)`` modulation turned to diffusers' ``(scale, shift)``.

    Raises:
        ValidationError: a tensor name the HunyuanVideo layout does not have.
    """
    sd = _names(sd)
    width = int(sd["img_in.proj.weight"].shape[0])
    out: dict[str, Any] = {}
    for key, value in sd.items():
        done = False
        if m := re.match(r"double_blocks\.(\d+)\.(.+)$", key):
            done = convert_block(m.group(2), value, f"transformer_blocks.{m.group(1)}", out)
        elif m := re.match(r"single_blocks\.(\d+)\.(.+)$", key):
            base, (mod, param) = f"single_transformer_blocks.{m.group(1)}", m.group(2).rsplit(".", 1)
            if mod == "linear1":
                done = _split_linear1(value, base, param, out, width)
            elif mod in _SINGLE:
                out[f"{base}.{_SINGLE[mod]}.{param}"] = value
                done = True
        else:
            done = convert_shared(key, value, _TOP, out)
        if not done:
            raise ValidationError(f"`{key}` is not a HunyuanVideo transformer tensor nodeloom knows",
                                  type="invalid_model_file", extra_info={"key": key})
    return out


def _load(sd: dict[str, Any], dtype: Any) -> Any:
    diffusers = require("diffusers", "diffusion")
    sd = _names(sd)
    cfg = transformer_config({k: tuple(v.shape) for k, v in sd.items()})
    return from_diffusers_layout(diffusers.HunyuanVideoTransformer3DModel, diffusers_keys(sd), cfg, dtype,
                                 "HunyuanVideo 1.0")


def _adapter(module: Any, x: Any, sigma: Any, group: ModelCall) -> Any:
    """One transformer call per conditioning entry (each has its pooled vector and guidance): time
    ``σ·1000``, guidance ×1000; the output is ComfyUI's velocity."""
    torch = require("torch", "diffusion")
    per = x.shape[0] // len(group.entries)
    outs = []
    for i, entry in enumerate(group.entries):
        pooled = entry.extra.get("pooled_output")
        if pooled is None:
            raise ValidationError("HunyuanVideo conditioning needs CLIP-L's `pooled_output`: encode the prompt with a"
                                  " DualCLIPLoader of type hunyuan_video (clip_l + llava_llama3)")
        ctx = group.context[i * per:(i + 1) * per].to(x.dtype)
        guidance = float(entry.extra.get("guidance", _DEFAULT_GUIDANCE))
        kwargs = {"guidance": torch.full((per,), guidance * 1000.0, device=x.device, dtype=x.dtype)} \
            if module.config.guidance_embeds else {}
        out = module(hidden_states=x[i * per:(i + 1) * per], timestep=(sigma * 1000.0).to(x.dtype).reshape(1).expand(per),
                     encoder_hidden_states=ctx, encoder_attention_mask=torch.ones(per, ctx.shape[1], device=x.device),
                     pooled_projections=pooled[:1].to(x.device, x.dtype).expand(per, -1), return_dict=False,
                     **kwargs)[0]
        outs.append(out)
    return torch.cat(outs)


FAMILY = Family(
    name="hunyuan_video", title="HunyuanVideo 1.0", matches=_matches, load=_load, adapter=_adapter,
    sampling=lambda module: FlowSampling(shift=7.0, multiplier=1000.0),  # ComfyUI's default before ModelSamplingSD3
    latent_scale=LATENT_SCALE, latent_shift=0.0, latent_channels=16, signature=_SIGNATURE,
)
