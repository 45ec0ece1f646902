"""Wan 2.1 / 2.2: Alibaba's video flow transformer (text-, image- and first–last-frame-to-video).

Files: ComfyUI's repackaged ``wan2.1_*``/``wan2.2_*`` diffusion models (the original release's
key names — ``blocks.N.self_attn.q``, ``head.modulation`` — with or without ComfyUI's wrapper
prefix). The variant comes from the header as ComfyUI tells it: text-to-video (16 input channels),
image-to-video (36: noise, 4 mask channels and the start image's latent; Wan 2.1's also carries a
CLIP-vision image embedder ``img_emb``), first–last frame (``img_emb.emb_pos``) and VACE
(``vace_blocks``, diffusers' ``WanVACETransformer3DModel``), the Wan 2.2 5B models (48-channel
latent of the Wan 2.2 VAE: text/image-to-video, Fun inpaint and Fun control) and the Fun camera
models (image-to-video plus the camera adapter of :mod:`.wan_camera`); the sound, HuMo and Animate
variants are recognised and refused with a message. Sizes come from tensor shapes
(head dimension 128 as every release); the weights go through diffusers' own key converter.

The 5B models read the latent's noise mask as ComfyUI's WAN22 does (the family's ``video_mask``):
each latent frame's time is ``σ·1000`` times its mean mask, so a start frame that
Wan22ImageToVideoLatent put in the latent reads as clean and stays as given.

The transformer takes ``σ·1000`` as its time and predicts ``noise − x0``, ComfyUI's velocity, so the
adapter passes it through. Latents are normalised per channel with the Wan VAE's statistics
(``(raw − mean) / std``); image-to-video conditioning (``concat_latent_image``, ``concat_mask``,
``clip_vision_output``) and VACE controls (``vace_frames``, ``vace_mask``, ``vace_strength``) are
read from each conditioning entry as ComfyUI's WAN21 models do.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from nodeloom.diffusion.families import Family
from nodeloom.diffusion.flow import FlowSampling
from nodeloom.diffusion.state_keys import indexed_count as _count
from nodeloom.errors import ValidationError, require

if TYPE_CHECKING:
    from nodeloom.diffusion.sampling import ModelCall

__all__ = ["FAMILY", "diffusers_keys", "latent_stats", "transformer_config", "variant"]

_SIGNATURE = ("head.modulation", "blocks.0.self_attn.q.weight", "patch_embedding.weight")
#: header key → the variant it marks that nodeloom cannot run yet (diffusers has no such transformer)
_REFUSED = {
    "casual_audio_encoder.encoder.final_linear.weight": "S2V (sound to video)",
    "audio_proj.audio_proj_glob_1.layer.bias": "HuMo",
    "face_adapter.fuser_blocks.0.k_norm.weight": "Animate",
}


def _matches(shapes: dict[str, tuple[int, ...]]) -> bool:
    return all(k in shapes for k in _SIGNATURE)


def variant(shapes: dict[str, tuple[int, ...]]) -> str:
    """The release a header is: ``t2v``, ``i2v``, ``flf2v`` or ``vace`` (or raises for what cannot run).

    Raises:
        ValidationError: a Wan variant nodeloom cannot run (S2V, HuMo, Animate).
    """
    for key, name in _REFUSED.items():
        if key in shapes:
            raise ValidationError(f"this is a Wan {name} model, which nodeloom cannot run yet (diffusers has no"
                                  " transformer nodeloom drives for it); text-, image- and first-last-frame-to-video models run",
                                  type="unsupported_model_variant", extra_info={"variant": name})
    out = shapes["head.head.weight"][0] // 4
    if out not in (16, 48):
        raise ValidationError(f"this Wan model predicts a {out}-channel latent; Wan 2.1/2.2 14B models take 16"
                              " channels (wan_2.1_vae) and Wan 2.2 5B ones 48 (wan2.2_vae)", type="invalid_model_file")
    if "vace_patch_embedding.weight" in shapes:
        return "vace"
    if "img_emb.emb_pos" in shapes:
        return "flf2v"
    return "i2v" if shapes["patch_embedding.weight"][1] > out else "t2v"


def transformer_config(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The ``WanTransformer3DModel`` config of a header, read from its shapes."""
    dim = shapes["head.modulation"][-1]
    cfg: dict[str, Any] = {
        "patch_size": [1, 2, 2], "num_attention_heads": max(1, dim // 128), "attention_head_dim": min(dim, 128),
        "in_channels": shapes["patch_embedding.weight"][1], "out_channels": shapes["head.head.weight"][0] // 4,
        "text_dim": shapes["text_embedding.0.weight"][1], "freq_dim": shapes["time_embedding.0.weight"][1],
        "ffn_dim": shapes["blocks.0.ffn.0.weight"][0], "num_layers": _count(shapes, r"blocks\.(\d+)\."),
        "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "rope_max_seq_len": 1024,
    }
    if "img_emb.proj.0.weight" in shapes:
        cfg.update(image_dim=shapes["img_emb.proj.0.weight"][0], added_kv_proj_dim=dim)
    if "img_emb.emb_pos" in shapes:
        cfg["pos_embed_seq_len"] = shapes["img_emb.emb_pos"][1]
    if "vace_patch_embedding.weight" in shapes:  # VACE blocks sit evenly from the first layer, as released
        count = _count(shapes, r"vace_blocks\.(\d+)\.")
        step = max(1, cfg["num_layers"] // count)
        cfg.update(vace_layers=list(range(0, cfg["num_layers"], step))[:count],
                   vace_in_channels=shapes["vace_patch_embedding.weight"][1])
    return cfg


def diffusers_keys(sd: dict[str, Any]) -> dict[str, Any]:
    """Release-layout weights under diffusers' names (its converter, plus the first–last-frame
    position table it leaves)."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    weights = convert_wan_transformer_to_diffusers(dict(sd))
    if "img_emb.emb_pos" in weights:
        weights["condition_embedder.image_embedder.pos_embed"] = weights.pop("img_emb.emb_pos")
    return weights


def _load(sd: dict[str, Any], dtype: Any) -> Any:
    diffusers = require("diffusers", "diffusion")
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    kind = variant(shapes)
    cfg = transformer_config(shapes)
    weights = diffusers_keys(sd)
    cls = diffusers.WanVACETransformer3DModel if kind == "vace" else diffusers.WanTransformer3DModel
    model = cls.from_config(cfg)
    if "control_adapter.conv.weight" in shapes:  # Wan Fun camera: the camera embedding's adapter
        from nodeloom.diffusion.families.wan_camera import camera_adapter

        model.control_adapter = camera_adapter(shapes, shapes["head.modulation"][-1])
    if "ref_conv.weight" in shapes:  # Wan 2.2 Fun control: the reference image's patch embedding
        torch = require("torch", "diffusion")
        width, channels, kh, kw = shapes["ref_conv.weight"]
        model.ref_conv = torch.nn.Conv2d(channels, width, kernel_size=(kh, kw), stride=(kh, kw))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        first = (missing or unexpected)[0]
        raise ValidationError(f"the Wan {kind} weights do not fit the transformer their shapes describe"
                              f" ({len(missing)} missing, {len(unexpected)} unexpected, e.g. `{first}`)",
                              type="invalid_model_file")
    model.wan_variant = kind
    model.video_mask = cfg["out_channels"] == 48  # Wan 2.2 5B: per-frame times from the noise mask
    mean, std = latent_stats(cfg["out_channels"])
    model.latent_scale, model.latent_shift = 1.0 / std, mean
    return (model.to(dtype) if dtype is not None else model).eval()


def latent_stats(channels: int = 16) -> tuple[Any, Any]:
    """The Wan VAE's per-channel latent ``(mean, std)`` as ``[1, C, 1, 1, 1]`` tensors: 16 channels
    for the Wan 2.1 VAE (the statistics diffusers' ``AutoencoderKLWan`` config carries by default),
    48 for the Wan 2.2 VAE (the release's, shipped in ``data/families/wan22_vae.json``)."""
    torch = require("torch", "diffusion")
    if channels == 48:
        from nodeloom.diffusion.wan_vae import wan22_vae_settings

        settings = wan22_vae_settings()
        mean, std = torch.tensor(settings["latents_mean"]), torch.tensor(settings["latents_std"])
    else:
        diffusers = require("diffusers", "diffusion")
        params = inspect.signature(diffusers.AutoencoderKLWan.__init__).parameters
        mean = torch.tensor(params["latents_mean"].default, dtype=torch.float32)
        std = torch.tensor(params["latents_std"].default, dtype=torch.float32)
    if mean.numel() != channels:
        raise ValidationError(f"no Wan latent statistics for {channels} channels (the Wan 2.1 VAE has 16, the"
                              " Wan 2.2 VAE 48)")
    return mean.view(1, -1, 1, 1, 1).float(), std.view(1, -1, 1, 1, 1).float()


def _fit(image: Any, like: Any) -> Any:
    """A conditioning latent resized to the sampled latent's frames and size (as ComfyUI upscales it)."""
    torch = require("torch", "diffusion")
    if tuple(image.shape[-2:]) != tuple(like.shape[-2:]):
        b, c, t = image.shape[:3]
        flat = image.movedim(2, 1).reshape(b * t, c, *image.shape[-2:])
        flat = torch.nn.functional.interpolate(flat, size=tuple(like.shape[-2:]), mode="bilinear")
        image = flat.reshape(b, t, c, *like.shape[-2:]).movedim(1, 2)
    if image.shape[2] < like.shape[2]:
        image = torch.nn.functional.pad(image, (0, 0, 0, 0, 0, like.shape[2] - image.shape[2]))
    return image[:, :, : like.shape[2]]


def _normalised(image: Any, channels: int) -> Any:
    """A raw conditioning latent normalised chunk by chunk (a Fun control latent holds two latents)."""
    torch = require("torch", "diffusion")
    mean, std = latent_stats(channels)
    return torch.cat([(image[:, i:i + channels].float() - mean) / std for i in range(0, image.shape[1], channels)], dim=1)


def concat_channels(extra: dict[str, Any], x: Any, extra_channels: int) -> Any:
    """The channels an image-to-video transformer takes after the noise, as ComfyUI's WAN21 builds
    them: the normalised conditioning latent(s) with 4 mask channels (1 = a known frame) first, or at
    ``concat_mask_index`` (Wan 2.2 Fun control: control latent, mask, start latent); a model whose
    extra channels are exactly the conditioning's (Wan 2.1 Fun control) takes no mask. Zeros where
    the conditioning has none."""
    torch = require("torch", "diffusion")
    b = x.shape[0]
    image = extra.get("concat_latent_image")
    if image is None:
        return torch.zeros(b, extra_channels, *x.shape[2:], dtype=x.dtype, device=x.device)
    image = _fit(_normalised(image, x.shape[1]), x).to(x.device, x.dtype)
    image = image[:1].expand(b, -1, -1, -1, -1) if image.shape[0] != b else image
    if image.shape[1] == extra_channels:
        return image
    if image.shape[1] > extra_channels - 4:
        image = image[:, : extra_channels - 4]
    mask = extra.get("concat_mask")
    if mask is None:
        mask = torch.zeros(1, 4, *x.shape[2:])
    else:
        mask = mask.float()
        mask = 1.0 - (mask.mean(dim=1, keepdim=True) if mask.shape[1] != 4 else mask)
        mask = _fit(mask, x)
        mask = mask.expand(-1, 4, -1, -1, -1) if mask.shape[1] == 1 else mask
    mask = mask.to(x.device, x.dtype)
    mask = mask[:1].expand(b, -1, -1, -1, -1) if mask.shape[0] != b else mask
    at = int(extra.get("concat_mask_index") or 0)
    return torch.cat([image[:, :at], mask, image[:, at:]], dim=1)


def _entry_inputs(module: Any, values: list[Any], what: str, part: tuple[str, str], node: str, model: str) -> bool:
    """Whether the entries hold an extra input (``what``, from ``node``) the model reads through its
    ``part`` (attribute, name); an error when the model lacks the part or only some entries hold it."""
    if all(v is None for v in values):
        return False
    if getattr(module, part[0], None) is None:
        raise ValidationError(f"the conditioning holds {what} ({node}) but this Wan model has no {part[1]} (`{part[0]}`);"
                              f" use a {model}")
    if any(v is None for v in values):
        raise ValidationError(f"only one of the positive and negative conditionings holds {what}; connect both from {node}")
    return True


def _references(module: Any, group: ModelCall, x: Any) -> Any:
    """The reference image's latent per batch row (normalised, ``[B,C,h,w]``) for a Fun model with a
    ``ref_conv`` (Wan 2.2 Fun control's ``ref_image``), or None when no entry holds one."""
    refs = [(e.extra.get("reference_latents") or [None])[-1] for e in group.entries]
    if not _entry_inputs(module, refs, "a reference image", ("ref_conv", "reference input"),
                         "Wan22FunControlToVideo's `ref_image`", "Wan 2.2 Fun control model"):
        return None
    torch = require("torch", "diffusion")
    per = x.shape[0] // len(refs)
    rows = [_fit(_normalised(r, module.config.out_channels), x)[:1, :, 0].expand(per, -1, -1, -1) for r in refs]
    return torch.cat(rows).to(x.device, x.dtype)


def _cameras(module: Any, group: ModelCall, x: Any) -> Any:
    """The Plücker camera embedding per batch row (WanCameraImageToVideo's ``camera_conditions``)
    for a Fun camera model, or None when no entry holds one."""
    cams = [e.extra.get("camera_conditions") for e in group.entries]
    if not _entry_inputs(module, cams, "a camera motion", ("control_adapter", "camera adapter"),
                         "WanCameraImageToVideo's `camera_conditions`", "Wan Fun camera model"):
        return None
    torch = require("torch", "diffusion")
    per = x.shape[0] // len(cams)
    return torch.cat([c[:1].expand(per, -1, -1, -1, -1) for c in cams]).to(x.device, x.dtype)


def _with_reference(module: Any, ref: Any, call: Any, x: Any, t: Any) -> Any:
    """Run ``call(x, t)`` with the reference image as an extra first frame, as ComfyUI's Wan model
    puts ``ref_conv``'s tokens before the video's (rotary positions from frame 0, the video's from 1):
    a blank frame is prepended and its patch embedding replaced by the reference's; the frame is
    dropped from the output."""
    torch = require("torch", "diffusion")
    tokens = module.ref_conv(ref)

    def swap(_mod: Any, _inputs: Any, out: Any) -> Any:
        out = out.clone()
        out[:, :, 0] = tokens.to(out.dtype)
        return out

    if t.ndim == 2:  # per-token times: the reference's tokens read as clean, like a kept frame
        t = torch.cat([torch.zeros_like(t[:, : tokens.shape[-2] * tokens.shape[-1]]), t], dim=1)
    handle = module.patch_embedding.register_forward_hook(swap)
    try:
        out = call(torch.cat([torch.zeros_like(x[:, :, :1]), x], dim=2), t)
    finally:
        handle.remove()
    return out[:, :, 1:]


def _image_states(module: Any, group: ModelCall, n: int, device: Any, dtype: Any) -> Any:
    """The CLIP-vision states (penultimate layer) for the image embedder of Wan 2.1 I2V/FLF2V, or None."""
    if module.condition_embedder.image_embedder is None:
        return None
    torch = require("torch", "diffusion")
    states = []
    for entry in group.entries:
        out = entry.extra.get("clip_vision_output")
        if out is None:
            raise ValidationError("this Wan image-to-video model needs `clip_vision_output` in its conditioning:"
                                  " connect CLIPVisionEncode (clip_vision_h) to WanImageToVideo")
        hidden = out["penultimate_hidden_states"] if isinstance(out, dict) else out.penultimate_hidden_states
        states.append(hidden.to(device, dtype).expand(n // len(group.entries), -1, -1))
    out = torch.cat(states)
    if module.condition_embedder.image_embedder.pos_embed is not None:  # first-last frame: diffusers takes the two
        out = out.reshape(-1, out.shape[1] // 2, out.shape[2])  # images' states as batch rows, not one row
    return out


def _vace_control(module: Any, group: ModelCall, x: Any) -> dict[str, Any]:
    """The VACE model's control input per conditioning entry: the control video's inactive and
    reactive latents (normalised) and the 64-channel mask, with the strength as every VACE layer's
    scale. Without WanVaceToVideo the control is empty (zeros, mask ones), as ComfyUI's."""
    torch = require("torch", "diffusion")
    per = x.shape[0] // len(group.entries)
    controls, strengths = [], set()
    for entry in group.entries:
        frames, masks = entry.extra.get("vace_frames"), entry.extra.get("vace_mask")
        if frames is not None and len(frames) > 1:
            raise ValidationError(f"{len(frames)} WanVaceToVideo controls are chained on one conditioning; nodeloom's"
                                  " VACE model takes one (diffusers' WanVACETransformer3DModel)")
        if frames is None:
            video = torch.zeros(1, 32, *x.shape[2:])
            mask = torch.ones(1, 64, *x.shape[2:])
        else:
            mean, std = latent_stats()
            video = frames[0].float()
            video = torch.cat([(video[:, i:i + 16] - mean) / std for i in range(0, video.shape[1], 16)], dim=1)
            mask = masks[0].float()
        strengths.add(float((entry.extra.get("vace_strength") or [1.0])[0]))
        control = torch.cat([video, mask], dim=1).to(x.device, x.dtype)
        controls.append(control.expand(per, -1, -1, -1, -1))
    if len(strengths) > 1:
        raise ValidationError("the positive and negative conditioning hold different VACE strengths; use one strength")
    scale = torch.full((len(module.config.vace_layers),), strengths.pop(), device=x.device, dtype=x.dtype)
    return {"control_hidden_states": torch.cat(controls), "control_hidden_states_scale": scale}


def _times(module: Any, x: Any, sigma: Any, mask: Any) -> Any:
    """``σ·1000`` per batch row, or with a noise ``mask`` (Wan 2.2 5B) per token: each latent frame's
    time scaled by its mean mask, as ComfyUI's WAN22 model does (``[B, F·h/2·w/2]``)."""
    n = x.shape[0]
    t = (sigma * 1000.0).to(x.dtype).reshape(1).expand(n)
    if mask is None:
        return t
    p = module.config.patch_size
    frames = mask.float().mean(dim=(1, 3, 4)).to(x.device, x.dtype)  # [B', F]
    frames = frames.repeat(n // frames.shape[0], 1) if frames.shape[0] != n else frames
    per_frame = frames * t[:, None]
    tokens = (x.shape[-2] // p[1]) * (x.shape[-1] // p[2])
    return per_frame.repeat_interleave(tokens, dim=1)


def _adapter(module: Any, x: Any, sigma: Any, group: ModelCall, mask: Any = None) -> Any:
    """Call the transformer on a batch: time ``σ·1000`` (per token from the noise ``mask`` for the
    Wan 2.2 5B), image-to-video channels and image states appended per conditioning entry; the
    output is ComfyUI's velocity already."""
    torch = require("torch", "diffusion")
    n = x.shape[0]
    per = n // len(group.entries)
    extra_channels = module.config.in_channels - x.shape[1]
    if extra_channels > 0:
        parts = [concat_channels(e.extra, x[i * per:(i + 1) * per], extra_channels)
                 for i, e in enumerate(group.entries)]
        x = torch.cat([x, torch.cat(parts)], dim=1)
    t = _times(module, x, sigma, mask)
    kwargs: dict[str, Any] = {}
    image = _image_states(module, group, n, x.device, x.dtype)
    if image is not None:
        kwargs["encoder_hidden_states_image"] = image
    if getattr(module, "wan_variant", "") == "vace":
        kwargs.update(_vace_control(module, group, x))
    elif any(e.extra.get("vace_frames") is not None for e in group.entries):
        raise ValidationError("the conditioning holds VACE controls (WanVaceToVideo) but the model is not a Wan VACE model")

    def call(hidden: Any, times: Any) -> Any:
        return module(hidden_states=hidden, timestep=times, encoder_hidden_states=group.context.to(x.dtype),
                      return_dict=False, **kwargs)[0]

    ref = _references(module, group, x)
    camera = _cameras(module, group, x)
    if camera is None:
        return call(x, t) if ref is None else _with_reference(module, ref, call, x, t)
    from nodeloom.diffusion.families.wan_camera import with_camera

    return with_camera(module, camera, lambda: call(x, t) if ref is None else _with_reference(module, ref, call, x, t))


#: the scalar fields are placeholders: the loaded module carries the per-channel ``latent_scale``
#: and ``latent_shift`` (read by :func:`nodeloom.diffusion.split_models.model_value`), so importing
#: the registry does not import diffusers
FAMILY = Family(
    name="wan", title="Wan 2.1/2.2", matches=_matches, load=_load, adapter=_adapter,
    sampling=lambda module: FlowSampling(shift=8.0, multiplier=1000.0),
    latent_scale=1.0, latent_shift=0.0, latent_channels=16, signature=_SIGNATURE,
)
