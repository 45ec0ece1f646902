"""IP-Adapter for SD1.5/SDXL UNets: image-prompt tokens attended to beside the text in every
cross-attention layer.

Owns reading the IP-Adapter files users download (``image_proj`` + ``ip_adapter`` tensors, as
``.safetensors`` with those prefixes or a ``.bin`` of two dicts), building the image projection
(diffusers' ``ImageProjection`` / ``IPAdapterPlusImageProjection`` / full-face projection from
the tensors), encoding reference images into the embeddings an adapter reads, combining them,
and turning embeddings into cond/uncond image tokens. The attention side
(per-layer key/value projections installed during sampling) is in
:mod:`nodeloom.diffusion.ip_attention`. Imports no node code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nodeloom.errors import ValidationError

__all__ = ["COMBINE_METHODS", "IPAdapterModel", "apply_faceid", "apply_ip_adapter", "apply_ip_adapter_embeds", "combine_embeds",
           "embeds_tokens", "encode_images", "face_embeds", "image_tokens", "load_ip_adapter"]


@dataclass
class IPAdapterModel:
    """A loaded IP-Adapter (the pack's ``IPADAPTER`` value).

    Attributes:
        projection: the image projection module (vision embeddings → tokens in the text width).
        layers: ``{key_id: (to_k_ip, to_v_ip)}`` linear layers, key ids 1, 3, 5… in the UNet's
            cross-attention order.
        plus: True when it reads the vision model's penultimate hidden states (Plus, full face,
            FaceID Plus), False when it reads the projected image embedding.
        name: the file's name (for messages).
        faceid: a FaceID adapter (it reads InsightFace identity embeddings).
        v2: FaceID Plus v2 (the identity tokens join the resampler's output; named ``plusv2``).
    """

    projection: torch.nn.Module
    layers: dict[int, tuple[torch.nn.Linear, torch.nn.Linear]]
    plus: bool
    name: str
    faceid: bool = False
    v2: bool = False

    @property
    def cross_attention_dim(self) -> int:
        return int(self.layers[1][0].in_features)


def _read(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    if path.suffix.lower() in (".safetensors", ".sft"):
        from safetensors.torch import load_file

        flat = load_file(str(path))
        parts: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
        for key, value in flat.items():
            head, _, rest = key.partition(".")
            if head in parts:
                parts[head][rest] = value
        return parts
    loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(loaded, dict):
        raise ValidationError(f"IP-Adapter `{path.name}` holds a {type(loaded).__name__}, not a dict of tensors")
    return {k: v for k, v in loaded.items() if k in ("image_proj", "ip_adapter") and isinstance(v, dict)}


def _check(parts: dict[str, dict[str, torch.Tensor]], name: str) -> None:
    proj, ip = parts.get("image_proj") or {}, parts.get("ip_adapter") or {}
    if not proj or "1.to_k_ip.weight" not in ip:
        raise ValidationError(f"`{name}` is not an IP-Adapter: it needs `image_proj.*` tensors and "
                              "`ip_adapter.1.to_k_ip.weight` (the layout of the released IP-Adapter files)")


def _is_faceid(proj: dict[str, torch.Tensor], ip: dict[str, torch.Tensor]) -> bool:
    return "0.to_q_lora.down.weight" in ip or "perceiver_resampler.proj_in.weight" in proj or (
        "proj.2.weight" in proj and "proj.3.weight" not in proj)


def _projection(proj: dict[str, torch.Tensor], name: str) -> tuple[torch.nn.Module, bool]:
    """The projection module for ``proj`` (diffusers' conversion of the released key layout) and
    whether it reads hidden states (Plus / full face) rather than the image embedding."""
    from diffusers.loaders.unet import UNet2DConditionLoadersMixin

    known = ("proj.weight", "proj.3.weight", "latents", "perceiver_resampler.proj_in.weight")
    if not (any(k in proj for k in known) or ("norm.weight" in proj and "proj.2.weight" in proj)):
        raise ValidationError(f"`{name}`: its `image_proj` tensors ({sorted(proj)[:4]}) are no IP-Adapter "
                              "projection nodeloom knows")
    convert = UNet2DConditionLoadersMixin._convert_ip_adapter_image_proj_to_diffusers
    try:
        module = convert(None, dict(proj), low_cpu_mem_usage=False)  # reads no state of the UNet at this setting
    except (RuntimeError, KeyError, IndexError) as exc:
        raise ValidationError(f"`{name}`: its `image_proj` tensors do not fit one IP-Adapter projection: "
                              f"{str(exc).splitlines()[0]}") from exc
    faceid_mlp = "norm.weight" in proj and "perceiver_resampler.proj_in.weight" not in proj  # reads the identity only
    return module, "proj.weight" not in proj and not faceid_mlp


def load_ip_adapter(path: str | Path) -> IPAdapterModel:
    """Read an IP-Adapter file (``.safetensors`` or ``.bin``) on the CPU.

    Raises:
        ValidationError: the file is not an image-embedding IP-Adapter; the message names it.
    """
    path = Path(path)
    parts = _read(path)
    _check(parts, path.name)
    projection, plus = _projection(parts["image_proj"], path.name)
    layers: dict[int, tuple[torch.nn.Linear, torch.nn.Linear]] = {}
    for key, value in parts["ip_adapter"].items():
        if key.endswith(".to_k_ip.weight"):
            key_id = int(key.split(".")[0])
            k = torch.nn.Linear(value.shape[1], value.shape[0], bias=False)
            v_weight = parts["ip_adapter"][f"{key_id}.to_v_ip.weight"]
            v = torch.nn.Linear(v_weight.shape[1], v_weight.shape[0], bias=False)
            with torch.no_grad():
                k.weight.copy_(value)
                v.weight.copy_(v_weight)
            layers[key_id] = (k.eval(), v.eval())
    faceid = _is_faceid(parts["image_proj"], parts["ip_adapter"])
    return IPAdapterModel(projection.eval(), layers, plus, path.name, faceid, faceid and "plusv2" in path.name.lower())


def _vision_input(adapter: IPAdapterModel, output: Any, what: str) -> torch.Tensor:
    key = "penultimate_hidden_states" if adapter.plus else "image_embeds"
    value = output[key]
    if value is None:
        raise ValidationError(f"the {what} CLIP-vision output has no `{key}`, which `{adapter.name}` reads")
    return value


COMBINE_METHODS = ["concat", "add", "subtract", "average", "norm average", "max", "min"]


def combine_embeds(embeds: torch.Tensor, method: str) -> torch.Tensor:
    """Join several images' embeddings (the first axis): ``concat`` keeps them all; ``add``,
    ``subtract`` (the first minus the mean of the rest), ``average``, ``norm average`` (each
    divided by its norm over the images first), ``max`` and ``min`` give one.

    Raises:
        ValidationError: ``method`` is none of :data:`COMBINE_METHODS`.
    """
    if method not in COMBINE_METHODS:
        raise ValidationError(f"`combine_embeds` must be one of {', '.join(COMBINE_METHODS)}; got {method!r}")
    if method == "concat" or embeds.shape[0] < 2:
        return embeds
    if method == "add":
        return embeds.sum(0, keepdim=True)
    if method == "subtract":
        return (embeds[0] - embeds[1:].mean(0)).unsqueeze(0)
    if method == "average":
        return embeds.mean(0, keepdim=True)
    if method == "norm average":
        return (embeds / embeds.norm(dim=0, keepdim=True)).mean(0, keepdim=True)
    return (embeds.amax(0) if method == "max" else embeds.amin(0)).unsqueeze(0)


_combine = combine_embeds  # for functions whose `combine_embeds` parameter shadows it


def embeds_tokens(adapter: IPAdapterModel, cond: torch.Tensor, uncond: torch.Tensor, combine: str = "concat",
                  unfold: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Cond and uncond image tokens from embeddings (image embeds ``[N, dim]`` for standard
    adapters, hidden states ``[N, tokens, dim]`` for Plus ones).

    Several images: ``unfold`` keeps one set of tokens per image (``[N, tokens, width]``, for a
    batch of latents), else they are joined by ``combine`` and, for ``concat``, laid side by side
    (``[1, N·tokens, width]``). The uncond tokens are the first uncond embedding's.
    """
    want = 3 if adapter.plus else 2
    if cond.ndim != want:
        raise ValidationError(f"`{adapter.name}` reads {'hidden states [N, tokens, dim]' if adapter.plus else 'image embeds [N, dim]'}; "
                              f"the embeds have shape {tuple(cond.shape)}")
    if not unfold:
        cond = combine_embeds(cond, combine)
    p = next(adapter.projection.parameters())
    with torch.inference_mode():
        tokens = adapter.projection(torch.cat([cond, uncond[:1].to(cond)]).to(p.device, p.dtype)).float().cpu()
    cond_tokens = tokens[:-1] if unfold else tokens[:-1].reshape(1, -1, tokens.shape[-1])
    return cond_tokens, tokens[-1:]


def image_tokens(adapter: IPAdapterModel, cond_output: Any, uncond_output: Any | None,
                 combine: str = "concat", unfold: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Cond and uncond image tokens ``[1, tokens, width]`` from CLIP-vision outputs.

    ``uncond_output`` is the negative image's encoding (for Plus models, the encoding of a black
    image when the caller has no negative); None gives zero embeddings (standard models).
    ``combine`` joins several reference images (:func:`combine_embeds`).
    """
    cond = _vision_input(adapter, cond_output, "reference")
    uncond = torch.zeros_like(cond[:1]) if uncond_output is None else _vision_input(adapter, uncond_output, "negative")[:1]
    return embeds_tokens(adapter, cond, uncond, combine, unfold)


def _encode(clip_vision: Any, image: torch.Tensor, mask: torch.Tensor | None = None, batch_size: int = 0) -> Any:
    if not hasattr(clip_vision, "encode_image"):
        raise ValidationError(f"`clip_vision` must be a CLIP_VISION model (Load CLIP Vision), got {type(clip_vision).__name__}")
    if image.ndim != 4 or image.shape[-1] != 3:
        raise ValidationError(f"an IP-Adapter image must be an IMAGE [B, H, W, 3]; got shape {tuple(image.shape)}")
    step = image.shape[0] if batch_size <= 0 else min(batch_size, image.shape[0])
    outs = [clip_vision.encode_image(part, crop=True, pixel_mask=mask) if mask is not None
            else clip_vision.encode_image(part, crop=True) for part in image.split(step)]
    if len(outs) == 1:
        return outs[0]
    return {key: torch.cat([o[key] for o in outs]) for key in ("image_embeds", "penultimate_hidden_states")}


def encode_images(adapter: IPAdapterModel, clip_vision: Any, image: torch.Tensor, image_negative: torch.Tensor | None = None,
                  mask: torch.Tensor | None = None, batch_size: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The embeddings the adapter reads for ``image`` and its negative: hidden states for Plus
    adapters (the negative defaults to a black image), image embeds for standard ones (the
    negative defaults to zeros). ``mask`` multiplies the preprocessed pixels (a MASK resized to
    the vision model's square); ``batch_size`` > 0 encodes that many images at a time."""
    if adapter.faceid:
        raise ValidationError(f"`{adapter.name}` is a FaceID IP-Adapter: it reads a face's identity, so apply it "
                              "with IPAdapter FaceID and an InsightFace model")
    cond = _vision_input(adapter, _encode(clip_vision, image, mask, batch_size), "reference")
    if image_negative is None and adapter.plus:
        size = int(clip_vision.image_size)
        image_negative = torch.zeros(1, size, size, 3)
    if image_negative is None:
        return cond, torch.zeros_like(cond[:1])
    return cond, _vision_input(adapter, _encode(clip_vision, image_negative, None, batch_size), "negative")


def _one_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    if mask is None:
        return None
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim != 2:
        raise ValidationError(f"`attn_mask` must be one mask [H, W] (or a batch of one); got shape {tuple(mask.shape)}")
    return mask.float().cpu()


def apply_ip_adapter(model: Any, adapter: IPAdapterModel, clip_vision: Any, image: torch.Tensor, *,
                     image_negative: torch.Tensor | None = None, image_composition: torch.Tensor | None = None,
                     encode_batch_size: int = 0, **options: Any) -> Any:
    """A clone of ``model`` (an SD1.5/SD2/SDXL MODEL) that attends to ``image`` through ``adapter``;
    ``options`` are :func:`apply_ip_adapter_embeds`'s.

    Raises:
        ValidationError: the MODEL is no UNet family, or an input is out of its range.
    """
    _check_model(model)
    cond, uncond = encode_images(adapter, clip_vision, image, image_negative, batch_size=encode_batch_size)
    composition = None
    if image_composition is not None:
        composition = encode_images(adapter, clip_vision, image_composition, batch_size=encode_batch_size)[0]
    return apply_ip_adapter_embeds(model, adapter, cond, uncond, composition=composition, **options)


def _check_model(model: Any) -> None:
    if model.adapter is not None or model.family not in ("sd1", "sd2", "sdxl"):
        raise ValidationError(f"IP-Adapter runs on SD1.5 and SDXL UNets; `model` is a {model.family} model")


def apply_ip_adapter_embeds(model: Any, adapter: IPAdapterModel, cond: torch.Tensor, uncond: torch.Tensor, *,
                            weight: float = 1.0, weight_type: str = "linear", start_at: float = 0.0, end_at: float = 1.0,
                            combine_embeds: str = "concat", embeds_scaling: str = "V only",
                            composition: torch.Tensor | None = None, weight_composition: float = 1.0,
                            attn_mask: torch.Tensor | None = None, unfold_batch: bool = False,
                            tokens: tuple[torch.Tensor, torch.Tensor] | None = None) -> Any:
    """A clone of ``model`` that attends to the image tokens of the embeddings ``cond`` / ``uncond``
    (:func:`encode_images`' values) while sampling between ``start_at`` and ``end_at`` (fractions
    of the run, as sigmas), and where ``attn_mask`` (a MASK, one for the batch) is on.
    ``unfold_batch`` gives latent *i* of the batch image *i*'s tokens (the last image's past the end).
    ``tokens`` (cond, uncond) replaces the projection of the embeddings (FaceID computes its own).

    Raises:
        ValidationError: the MODEL is no UNet family, or an input is out of its range.
    """
    from nodeloom.diffusion.ip_attention import EMBEDS_SCALING, IPAdapterPatch, weight_plan

    _check_model(model)
    if embeds_scaling not in EMBEDS_SCALING:
        raise ValidationError(f"`embeds_scaling` must be one of {', '.join(EMBEDS_SCALING)}; got {embeds_scaling!r}")
    weight_plan(weight_type, weight, weight_composition, model.is_sdxl, 0, "input")  # names the valid types
    if not 0.0 <= start_at <= end_at <= 1.0:
        raise ValidationError(f"`start_at` and `end_at` must satisfy 0 ≤ start_at ≤ end_at ≤ 1; got {start_at}, {end_at}")
    if tokens is not None:
        cond_tokens, uncond_tokens = tokens
    else:
        cond_tokens, uncond_tokens = embeds_tokens(adapter, cond, uncond, combine_embeds, unfold_batch)
    comp_tokens = None
    if composition is not None:
        comp_tokens = embeds_tokens(adapter, composition, uncond, combine_embeds, unfold_batch)[0]
    patch = IPAdapterPatch(adapter, cond_tokens, uncond_tokens, float(weight), weight_type,
                           model.sampling.percent_to_sigma(start_at), model.sampling.percent_to_sigma(end_at),
                           embeds_scaling, float(weight_composition), comp_tokens, sdxl=model.is_sdxl,
                           mask=_one_mask(attn_mask), unfold=unfold_batch)
    patch.layers(model.unet)  # an adapter made for another family is an error here, not mid-run
    out = model.clone(fast_path=False)  # the patch changes per step, which a captured CUDA graph cannot follow
    out.extra["attn_patches"] = tuple(out.extra.get("attn_patches", ())) + (patch,)
    return out


def face_embeds(adapter: IPAdapterModel, insightface: Any, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The best face of each image: its normalised identity embeddings ``[N, dim]`` and its crops
    aligned on ArcFace's template (``[N, S, S, 3]``, S 256 for SDXL adapters, else 224).

    Raises:
        ValidationError: an image has no face; the message names which.
    """
    import numpy as np

    from nodeloom.ops.face_align import align_face

    size = 256 if adapter.cross_attention_dim == 2048 else 224
    pixels = (image[..., :3].clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()
    embeds, crops = [], []
    for i, frame in enumerate(pixels):
        faces = insightface.faces(np.ascontiguousarray(frame))
        if not faces:
            raise ValidationError(f"InsightFace found no face in `image` {i + 1} of {len(pixels)}")
        embeds.append(torch.from_numpy(np.asarray(faces[0].embedding, dtype=np.float32)))
        crops.append(torch.from_numpy(align_face(frame, faces[0].keypoints, size)).float() / 255.0)
    return torch.stack(embeds), torch.stack(crops)


def _faceid_tokens(adapter: IPAdapterModel, faces: torch.Tensor, clip_cond: torch.Tensor | None,
                   clip_uncond: torch.Tensor | None, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    p = next(adapter.projection.parameters())
    proj = adapter.projection

    def run(ids: torch.Tensor, clip: torch.Tensor | None) -> torch.Tensor:
        if clip is not None:  # FaceID Plus: the resampler reads the face crop's CLIP hidden states
            proj.clip_embeds = clip[:, None].to(p.device, p.dtype)
            proj.shortcut, proj.shortcut_scale = adapter.v2, float(scale)
        try:
            return proj(ids.to(p.device, p.dtype)).float().cpu()
        finally:
            if clip is not None:
                proj.clip_embeds = None

    with torch.inference_mode():
        cond = run(faces, clip_cond)
        uncond = run(torch.zeros_like(faces[:1]), None if clip_uncond is None else clip_uncond[:1])
    return cond.reshape(1, -1, cond.shape[-1]), uncond


def apply_faceid(model: Any, adapter: IPAdapterModel, insightface: Any, clip_vision: Any, image: torch.Tensor, *,
                 weight_faceidv2: float = 1.0, image_negative: torch.Tensor | None = None,
                 combine_embeds: str = "concat", **options: Any) -> tuple[Any, torch.Tensor]:
    """A clone of ``model`` steered by the identity of the best face in each image through a FaceID
    ``adapter``, and the aligned face crops. FaceID Plus also reads the crops' CLIP hidden states
    (the uncond from a black image, or ``image_negative``); v2 adds the identity tokens scaled
    by ``weight_faceidv2``. ``options`` are :func:`apply_ip_adapter_embeds`'s.

    Raises:
        ValidationError: the adapter is not a FaceID one, an image has no face, or (Plus) the
            CLIP-vision model is missing.
    """
    if not adapter.faceid:
        raise ValidationError(f"`{adapter.name}` is no FaceID IP-Adapter; apply it with IPAdapter or IPAdapter Advanced")
    _check_model(model)
    faces, crops = face_embeds(adapter, insightface, image)
    clip_cond = clip_uncond = None
    if adapter.plus:
        if clip_vision is None:
            raise ValidationError("`clip_vision` is missing: FaceID Plus reads the face crop's CLIP hidden states")
        clip_cond = _vision_input(adapter, _encode(clip_vision, crops), "face")
        size = int(clip_vision.image_size)
        negative = image_negative if image_negative is not None else torch.zeros(1, size, size, 3)
        clip_uncond = _vision_input(adapter, _encode(clip_vision, negative), "negative")
        clip_cond = _combine(clip_cond, combine_embeds)
    faces = _combine(faces, combine_embeds)
    tokens = _faceid_tokens(adapter, faces, clip_cond, clip_uncond, weight_faceidv2)
    empty = torch.zeros(1, 1)
    return apply_ip_adapter_embeds(model, adapter, empty, empty, tokens=tokens, **options), crops

