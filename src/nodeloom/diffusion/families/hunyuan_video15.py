"""HunyuanVideo 1.5: Tencent's 8.3B dual-stream video flow transformer (text- and image-to-video).

Files: ComfyUI's repackaged ``hunyuanvideo1.5_*_fp16.safetensors`` hold the release's key layout
(``double_blocks.N.img_attn_q``, ``txt_in.individual_token_refiner``, ``byt5_in``, ``vision_in``,
``cond_type_embedding``), with or without ComfyUI's ``model.diffusion_model.`` prefix; the fused
``img_attn_qkv`` form and ComfyUI's in-memory names (``img_attn.qkv``, ``img_mod.lin``) are read too.
Sizes come from tensor shapes (head width 128, as released). The 1080p super-resolution model
(98 input channels) and the mean-flow step-distilled models (``time_r_in``) are refused with a message.

The transformer takes ``σ·1000`` as its time and predicts ``noise − x0`` (ComfyUI's velocity).
Its input is the noise latent, then 32 channels of the start image's latent (model space; zeros for
text-to-video) and one mask channel (1 = a known frame), as ComfyUI's ``HunyuanVideo15`` model
builds it from ``concat_latent_image`` / ``concat_mask``. The text stream is the SigLIP image tokens
(``clip_vision_output``, image-to-video), the byT5 glyph tokens (``conditioning_byt5small``, quoted
text in the prompt) and the Qwen2.5-VL tokens, in that order. Latents are the raw VAE latent times
1.03682 (ComfyUI's ``HunyuanVideo15`` latent format).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from nodeloom.diffusion.families import Family, from_diffusers_layout
from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.state_keys import indexed_count as _count
from nodeloom.errors import ValidationError, require

if TYPE_CHECKING:
    from nodeloom.diffusion.sampling import ModelCall

__all__ = ["FAMILY", "LATENT_SCALE", "convert_block", "convert_refiner", "convert_shared", "diffusers_keys", "release_names",
           "transformer_config"]

_SIGNATURE = ("cond_type_embedding.weight", "img_in.proj.weight", "txt_in.individual_token_refiner.blocks.0.norm1.weight")
#: raw VAE latent → model space (ComfyUI's latent format, diffusers' ``scaling_factor``)
LATENT_SCALE = 1.03682
_HEAD_DIM = 128

#: ComfyUI's in-memory names → the release's (a file saved from a loaded ComfyUI model has the former)
_COMFY_NAMES = (
    ("_attn.qkv.", "_attn_qkv."), ("_attn.proj.", "_attn_proj."), ("_mod.lin.", "_mod.linear."),
    ("_attn.norm.query_norm.scale", "_attn_q_norm.weight"), ("_attn.norm.key_norm.scale", "_attn_k_norm.weight"),
    ("_mlp.0.", "_mlp.fc1."), ("_mlp.2.", "_mlp.fc2."), ("self_attn.qkv.", "self_attn_qkv."),
    ("self_attn.proj.", "self_attn_proj."), ("_embedder.in_layer.", "_embedder.mlp.0."), ("_embedder.out_layer.", "_embedder.mlp.2."),
    ("_in.in_layer.", "_in.mlp.0."), ("_in.out_layer.", "_in.mlp.2."),
)
#: a double block's module names: release → diffusers (the text stream's ``txt_`` twins follow)
_BLOCK = {
    "img_attn_q": "attn.to_q", "img_attn_k": "attn.to_k", "img_attn_v": "attn.to_v",
    "img_attn_q_norm": "attn.norm_q", "img_attn_k_norm": "attn.norm_k", "img_attn_proj": "attn.to_out.0",
    "txt_attn_q": "attn.add_q_proj", "txt_attn_k": "attn.add_k_proj", "txt_attn_v": "attn.add_v_proj",
    "txt_attn_q_norm": "attn.norm_added_q", "txt_attn_k_norm": "attn.norm_added_k", "txt_attn_proj": "attn.to_add_out",
    "img_mlp.fc1": "ff.net.0.proj", "img_mlp.fc2": "ff.net.2", "txt_mlp.fc1": "ff_context.net.0.proj",
    "txt_mlp.fc2": "ff_context.net.2", "img_mod.linear": "norm1.linear", "txt_mod.linear": "norm1_context.linear",
}
_REFINER = {"self_attn_proj": "attn.to_out.0", "mlp.fc1": "ff.net.0.proj", "mlp.fc2": "ff.net.2", "norm1": "norm1",
            "norm2": "norm2", "adaLN_modulation.1": "norm_out.linear"}
_TOP = {
    "img_in.proj": "x_embedder.proj", "time_in.mlp.0": "time_embed.timestep_embedder.linear_1",
    "time_in.mlp.2": "time_embed.timestep_embedder.linear_2", "vision_in.proj.0": "image_embedder.norm_in",
    "vision_in.proj.1": "image_embedder.linear_1", "vision_in.proj.3": "image_embedder.linear_2",
    "vision_in.proj.4": "image_embedder.norm_out", "byt5_in.layernorm": "context_embedder_2.norm",
    "byt5_in.fc1": "context_embedder_2.linear_1", "byt5_in.fc2": "context_embedder_2.linear_2",
    "byt5_in.fc3": "context_embedder_2.linear_3", "cond_type_embedding": "cond_type_embed",
    "final_layer.linear": "proj_out", "txt_in.input_embedder": "context_embedder.proj_in",
    "txt_in.c_embedder.linear_1": "context_embedder.time_text_embed.text_embedder.linear_1",
    "txt_in.c_embedder.linear_2": "context_embedder.time_text_embed.text_embedder.linear_2",
    "txt_in.t_embedder.mlp.0": "context_embedder.time_text_embed.timestep_embedder.linear_1",
    "txt_in.t_embedder.mlp.2": "context_embedder.time_text_embed.timestep_embedder.linear_2",
}


def _matches(shapes: dict[str, tuple[int, ...]]) -> bool:
    return all(k in shapes for k in _SIGNATURE)


def release_names(sd: dict[str, Any]) -> dict[str, Any]:
    """A state dict with ComfyUI's in-memory module names put back to the release's."""
    out = {}
    for key, value in sd.items():
        for comfy, release in _COMFY_NAMES:
            key = key.replace(comfy, release)
        key = re.sub(r"^(txt_in\.individual_token_refiner\.blocks\.\d+\.mlp)\.([02])\.",
                     lambda m: f"{m.group(1)}.fc{int(m.group(2)) // 2 + 1}.", key)
        out[key] = value
    return out


def _refuse(shapes: dict[str, tuple[int, ...]]) -> None:
    if any(k.startswith("time_r_in.") for k in shapes):
        raise ValidationError("this is a HunyuanVideo 1.5 mean-flow step-distilled model (`time_r_in`), which nodeloom"
                              " cannot run yet; the 480p/720p text- and image-to-video models run",
                              type="unsupported_model_variant", extra_info={"variant": "meanflow"})
    latent = shapes["final_layer.linear.weight"][0] // max(1, _prod(shapes["img_in.proj.weight"][2:]))
    if shapes["img_in.proj.weight"][1] != 2 * latent + 1:
        raise ValidationError(f"this HunyuanVideo 1.5 model takes {shapes['img_in.proj.weight'][1]} input channels (the"
                              f" 1080p super-resolution model takes 98), which nodeloom cannot run yet; the 480p/720p"
                              f" text- and image-to-video models ({2 * latent + 1} channels) run",
                              type="unsupported_model_variant", extra_info={"variant": "super_resolution"})


def _prod(values: Any) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def transformer_config(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The ``HunyuanVideo15Transformer3DModel`` config of a (release-named) header, read from its shapes.

    Raises:
        ValidationError: a variant nodeloom cannot run (super-resolution, mean-flow distilled).
    """
    _refuse(shapes)
    inner, in_ch, pt, ph, pw = shapes["img_in.proj.weight"]
    if ph != pw:
        raise ValidationError(f"the HunyuanVideo 1.5 patch embedding is {ph}×{pw}; only square patches are supported")
    return {
        "in_channels": in_ch, "out_channels": shapes["final_layer.linear.weight"][0] // (pt * ph * pw),
        "num_attention_heads": max(1, inner // _HEAD_DIM), "attention_head_dim": min(inner, _HEAD_DIM),
        "num_layers": _count(shapes, r"double_blocks\.(\d+)\."),
        "num_refiner_layers": _count(shapes, r"txt_in\.individual_token_refiner\.blocks\.(\d+)\."),
        "mlp_ratio": shapes["double_blocks.0.img_mlp.fc1.weight"][0] / inner, "patch_size": ph, "patch_size_t": pt,
        "qk_norm": "rms_norm", "text_embed_dim": shapes["txt_in.input_embedder.weight"][1],
        "text_embed_2_dim": shapes["byt5_in.fc1.weight"][1], "image_embed_dim": shapes["vision_in.proj.0.weight"][0],
        "rope_theta": 256.0, "rope_axes_dim": (16, 56, 56),
    }


def _split(value: Any) -> list[Any]:
    return list(value.chunk(3, dim=0))


def convert_block(rest: str, value: Any, base: str, out: dict[str, Any]) -> bool:
    """A double block's tensor (``rest`` after ``double_blocks.N.``) into ``out`` under ``base``; False if unknown."""
    mod, param = rest.rsplit(".", 1)
    for stream, names in (("img", ("attn.to_q", "attn.to_k", "attn.to_v")),
                          ("txt", ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"))):
        if mod == f"{stream}_attn_qkv":
            for name, part in zip(names, _split(value)):
                out[f"{base}.{name}.{param}"] = part
            return True
    if mod not in _BLOCK:
        return False
    out[f"{base}.{_BLOCK[mod]}.{param}"] = value
    return True


def convert_refiner(rest: str, value: Any, base: str, out: dict[str, Any]) -> bool:
    """A token-refiner block's tensor into ``out`` under ``base`` (fused q/k/v split); False if unknown."""
    mod, param = rest.rsplit(".", 1)
    if mod == "self_attn_qkv":
        for name, part in zip(("attn.to_q", "attn.to_k", "attn.to_v"), _split(value)):
            out[f"{base}.{name}.{param}"] = part
        return True
    if mod not in _REFINER:
        return False
    out[f"{base}.{_REFINER[mod]}.{param}"] = value
    return True


def diffusers_keys(sd: dict[str, Any]) -> dict[str, Any]:
    """Release-layout weights (or ComfyUI's in-memory names) under diffusers' names: fused q/k/v
    split, and the final layer's ``(shift, scale)`` modulation turned to diffusers' ``(scale, shift)``.

    Raises:
        ValidationError: a tensor name the HunyuanVideo 1.5 layout does not have.
    """
    out: dict[str, Any] = {}
    for key, value in release_names(sd).items():
        done = False
        if m := re.match(r"double_blocks\.(\d+)\.(.+)$", key):
            done = convert_block(m.group(2), value, f"transformer_blocks.{m.group(1)}", out)
        else:
            done = convert_shared(key, value, _TOP, out)
        if not done:
            raise ValidationError(f"`{key}` is not a HunyuanVideo 1.5 transformer tensor nodeloom knows",
                                  type="invalid_model_file", extra_info={"key": key})
    return out


def convert_shared(key: str, value: Any, top: dict[str, str], out: dict[str, Any]) -> bool:
    """What HunyuanVideo 1.0 and 1.5 name alike into ``out``: the token refiner, the final layer
    (``(shift, scale)`` turned to diffusers' ``(scale, shift)``) and the modules of ``top``; False if unknown."""
    if m := re.match(r"txt_in\.individual_token_refiner\.blocks\.(\d+)\.(.+)$", key):
        return convert_refiner(m.group(2), value, f"context_embedder.token_refiner.refiner_blocks.{m.group(1)}", out)
    if key.startswith("final_layer.adaLN_modulation.1."):
        torch = require("torch", "diffusion")
        shift, scale = value.chunk(2, dim=0)
        out["norm_out.linear." + key.rsplit(".", 1)[1]] = torch.cat([scale, shift], dim=0)
        return True
    mod, _, param = key.rpartition(".")
    if mod not in top:
        return False
    out[f"{top[mod]}.{param}"] = value
    return True


def _load(sd: dict[str, Any], dtype: Any) -> Any:
    diffusers = require("diffusers", "diffusion")
    sd = release_names(sd)
    cfg = transformer_config({k: tuple(v.shape) for k, v in sd.items()})
    return from_diffusers_layout(diffusers.HunyuanVideo15Transformer3DModel, diffusers_keys(sd), cfg, dtype,
                                 "HunyuanVideo 1.5")


def _fit(image: Any, like: Any) -> Any:
    """A conditioning tensor ``[b,c,t,h,w]`` resized to the sampled latent's size (bilinear, as
    ComfyUI upscales it), frames padded with zeros or cut to the latent's."""
    torch = require("torch", "diffusion")
    if tuple(image.shape[-2:]) != tuple(like.shape[-2:]):
        b, c, t = image.shape[:3]
        flat = image.movedim(2, 1).reshape(b * t, c, *image.shape[-2:])
        flat = torch.nn.functional.interpolate(flat, size=tuple(like.shape[-2:]), mode="bilinear")
        image = flat.reshape(b, t, c, *like.shape[-2:]).movedim(1, 2)
    if image.shape[2] < like.shape[2]:
        image = torch.nn.functional.pad(image, (0, 0, 0, 0, 0, like.shape[2] - image.shape[2]))
    return image[:, :, : like.shape[2]]


def concat_channels(extra: dict[str, Any], x: Any, channels: int) -> Any:
    """What follows the noise in the model's input: the start image's latent in model space (zeros
    without one) and the mask channel, 1 where a frame is known (``1 − concat_mask``)."""
    torch = require("torch", "diffusion")
    b = x.shape[0]
    image = extra.get("concat_latent_image")
    if image is None:
        image = torch.zeros(1, channels, *x.shape[2:])
    else:
        image = _fit(image.float() * LATENT_SCALE, x)
    mask = extra.get("concat_mask")
    mask = torch.zeros(1, 1, *x.shape[2:]) if mask is None else _fit(1.0 - mask.float(), x)
    parts = []
    for value in (image, mask):
        value = value.to(x.device, x.dtype)
        parts.append(value[:1].expand(b, -1, -1, -1, -1) if value.shape[0] != b else value)
    return torch.cat(parts, dim=1)


def _vision_states(out: Any) -> Any:
    if isinstance(out, dict):
        return out["last_hidden_state"]
    return out.last_hidden_state


def _entry_inputs(module: Any, extra: dict[str, Any], n: int, device: Any, dtype: Any) -> dict[str, Any]:
    """The byT5 and image tokens of one conditioning entry, with their (all-valid) masks."""
    torch = require("torch", "diffusion")
    cfg = module.config
    glyph = extra.get("conditioning_byt5small")
    if glyph is None:  # no quoted text: no glyph tokens (one masked-out zero token, which attends to nothing)
        glyph, glyph_mask = torch.zeros(1, 1, cfg.text_embed_2_dim), torch.zeros(1, 1)
    else:
        glyph_mask = torch.ones(1, glyph.shape[1])
    vision = extra.get("clip_vision_output")
    if vision is None:  # text-to-video: an all-zero image token, which the transformer masks out
        image = torch.zeros(1, 1, cfg.image_embed_dim)
    else:
        image = _vision_states(vision).float()
        if image.shape[-1] != cfg.image_embed_dim:
            raise ValidationError(f"`clip_vision_output` holds {image.shape[-1]}-wide image states; this HunyuanVideo 1.5"
                                  f" model takes {cfg.image_embed_dim} (SigLIP so400m, sigclip_vision_patch14_384)")
    return {"encoder_hidden_states_2": glyph[:1].to(device, dtype).expand(n, -1, -1),
            "encoder_attention_mask_2": glyph_mask.to(device).expand(n, -1),
            "image_embeds": image[:1].to(device, dtype).expand(n, -1, -1)}


def _adapter(module: Any, x: Any, sigma: Any, group: ModelCall) -> Any:
    """One transformer call per conditioning entry (each has its own glyph and image tokens): the
    noise with the image-to-video channels appended, time ``σ·1000``; the output is ComfyUI's velocity."""
    torch = require("torch", "diffusion")
    n = x.shape[0]
    per = n // len(group.entries)
    extra_channels = module.config.in_channels - x.shape[1]
    outs = []
    for i, entry in enumerate(group.entries):
        xs = x[i * per:(i + 1) * per]
        if extra_channels > 0:
            xs = torch.cat([xs, concat_channels(entry.extra, xs, extra_channels - 1)], dim=1)
        ctx = group.context[i * per:(i + 1) * per].to(x.dtype)
        t = (sigma * 1000.0).to(x.dtype).reshape(1).expand(per)
        out = module(hidden_states=xs, timestep=t, encoder_hidden_states=ctx,
                     encoder_attention_mask=torch.ones(per, ctx.shape[1], device=x.device),
                     return_dict=False, **_entry_inputs(module, entry.extra, per, x.device, x.dtype))[0]
        outs.append(out)
    return torch.cat(outs)


FAMILY = Family(
    name="hunyuan_video15", title="HunyuanVideo 1.5", matches=_matches, load=_load, adapter=_adapter,
    sampling=lambda module: FlowSampling(shift=7.0, multiplier=1000.0),  # ComfyUI's default before ModelSamplingSD3
    latent_scale=LATENT_SCALE, latent_shift=0.0, latent_channels=32, signature=_SIGNATURE,
)
