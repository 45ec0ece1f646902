"""Tell a CLIP-vision file's family and sizes from its tensors, and bring it into transformers' layout.

Two layouts are read, as ComfyUI reads them: transformers' own (``vision_model.*`` plus
``visual_projection.weight``; ComfyUI's repackaged ``clip_vision_*.safetensors`` and IP-Adapter's
image encoders) and the OpenAI/OpenCLIP original (``visual.conv1``,
``visual.transformer.resblocks.N``, ``visual.proj``), which is converted. Families: CLIP (class
token, pre-layernorm), SigLIP (no class token, patch bias) and DINOv2 (transformers' key
layout, which ComfyUI also accepts here). Every size — width, depth, MLP width, patch, image
size, projection — comes from tensor shapes; what shapes cannot tell (activation, norm epsilon,
heads, mean/std) comes from the small JSON configs in ``data/clip_vision_configs/``. Pure dict
work on tensors.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from nodeloom.diffusion.weights import wrong_kind_error
from nodeloom.errors import ValidationError

__all__ = ["VisionSpec", "convert_openclip", "vision_spec"]

_CONFIGS = Path(__file__).parent / "data" / "clip_vision_configs"
_PREFIX = "vision_model."
#: keys of other model kinds, and the loader node that takes them
_UPSCALE = "UpscaleModelLoader (an upscale model)"
_OTHER_KINDS = {"text_model.": "CLIPLoader (a CLIP text encoder)", "model.diffusion_model.": "CheckpointLoaderSimple",
                "conv_first.weight": _UPSCALE, "body.0.weight": _UPSCALE, "model.0.weight": _UPSCALE}


class VisionSpec:
    """What a file holds: the transformers config, preprocessing values and optional parts.

    Attributes:
        config: keyword arguments for ``CLIPVisionConfig`` / ``SiglipVisionConfig`` / ``Dinov2Config``.
        model_type: ``clip_vision_model``, ``siglip_vision_model`` or ``dinov2``.
        image_mean, image_std: normalisation of the pixel values.
        projection: the file has ``visual_projection.weight``.
        llava_projector: ``(in, out)`` widths of a LLaVA multi-modal projector, or None.
    """

    def __init__(self, config: dict[str, Any], model_type: str, image_mean: list[float], image_std: list[float],
                 projection: bool, llava_projector: tuple[int, int] | None) -> None:
        self.config, self.model_type = config, model_type
        self.image_mean, self.image_std = image_mean, image_std
        self.projection, self.llava_projector = projection, llava_projector

    @property
    def image_size(self) -> int:
        return int(self.config["image_size"])


def convert_openclip(sd: dict[str, Any], prefix: str = "visual.") -> dict[str, Any]:
    """Rename an OpenAI/OpenCLIP vision tower (``visual.*``) to transformers' CLIP keys.

    The fused attention projection ``in_proj_weight`` is split into q/k/v, and ``proj``
    (``[width, dim]``) becomes ``visual_projection.weight`` (``[dim, width]``).
    """
    names = {"class_embedding": "embeddings.class_embedding", "conv1.weight": "embeddings.patch_embedding.weight",
             "positional_embedding": "embeddings.position_embedding.weight", "ln_pre.weight": "pre_layrnorm.weight",
             "ln_pre.bias": "pre_layrnorm.bias", "ln_post.weight": "post_layernorm.weight",
             "ln_post.bias": "post_layernorm.bias"}
    parts = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
             "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
    out: dict[str, Any] = {}
    for key, value in sd.items():
        if not key.startswith(prefix):
            out[key] = value
            continue
        rest = key[len(prefix):]
        block = re.match(r"transformer\.resblocks\.(\d+)\.(.+?)[._](weight|bias)$", rest)
        if rest in names:
            out[_PREFIX + names[rest]] = value
        elif rest == "proj":
            out["visual_projection.weight"] = value.t().contiguous()
        elif block and block.group(2) == "attn.in_proj":
            layer = f"{_PREFIX}encoder.layers.{block.group(1)}.self_attn"
            for name, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                out[f"{layer}.{name}.{block.group(3)}"] = chunk.contiguous()
        elif block and block.group(2) in parts:
            out[f"{_PREFIX}encoder.layers.{block.group(1)}.{parts[block.group(2)]}.{block.group(3)}"] = value
        else:
            out[key] = value
    return out


def _base_config(file: str) -> dict[str, Any]:
    data = json.loads((_CONFIGS / file).read_text("utf-8"))
    data.pop("_comment", None)
    return data


def _swiglu_ratio(hidden: int, width: int) -> int | None:
    """The ``mlp_ratio`` whose SwiGLU width (transformers' rounding to 8) gives ``width``."""
    for ratio in (4, 3, 2, 1, 5, 6, 8):
        inner = int(hidden * ratio)
        if ((int(inner * 2 / 3) + 7) // 8 * 8) * 2 == width:
            return ratio
    return None


def _dinov2_spec(sd: dict[str, Any], name: str, depth: int) -> VisionSpec:
    base = _base_config("dinov2.json")
    mean, std = base.pop("image_mean"), base.pop("image_std")
    model_type, head_dim = base.pop("model_type"), base.pop("head_dim")
    patch = sd["embeddings.patch_embeddings.projection.weight"]
    hidden = int(patch.shape[0])
    grid = math.isqrt(sd["embeddings.position_embeddings"].shape[1] - 1)
    swiglu = "encoder.layer.0.mlp.weights_in.weight" in sd
    if swiglu:
        ratio = _swiglu_ratio(hidden, int(sd["encoder.layer.0.mlp.weights_in.weight"].shape[0]))
    else:
        inner = int(sd["encoder.layer.0.mlp.fc1.weight"].shape[0])
        ratio = inner // hidden if inner % hidden == 0 else None
    if ratio is None or hidden % head_dim:
        raise ValidationError(f"`{name}`: a DINOv2 tower of width {hidden} with this MLP is not one transformers"
                              " can build (the width must split into 64-wide heads and the MLP be a whole multiple"
                              " of it)", extra_info={"name": name})
    config = {**base, "hidden_size": hidden, "num_attention_heads": hidden // head_dim, "num_hidden_layers": depth,
              "num_channels": int(patch.shape[1]), "patch_size": int(patch.shape[2]),
              "image_size": grid * int(patch.shape[2]), "mlp_ratio": ratio, "use_swiglu_ffn": swiglu}
    return VisionSpec(config, model_type, mean, std, False, None)


def vision_spec(sd: dict[str, Any], name: str) -> VisionSpec:
    """Read the family and every size of a transformers-layout vision tower from its tensors.

    Raises:
        ValidationError: the tensors are not a CLIP, SigLIP or DINOv2 vision tower; the message names
            the file, what was looked for and, when recognisable, the node to use instead.
    """
    dino = {int(m.group(1)) for k in sd if (m := re.match(r"encoder\.layer\.(\d+)\.layer_scale2\.lambda1$", k))}
    if dino:
        return _dinov2_spec(sd, name, max(dino) + 1)
    layers = {int(m.group(1)) for k in sd if (m := re.match(r"vision_model\.encoder\.layers\.(\d+)\.", k))}
    patch = sd.get(_PREFIX + "embeddings.patch_embedding.weight")
    pos = sd.get(_PREFIX + "embeddings.position_embedding.weight")
    if not layers or patch is None or pos is None:
        raise wrong_kind_error(name, sd, "is not a CLIP-vision model: looked for `vision_model.encoder.layers.N.*`"
                               " (transformers layout), `visual.transformer.resblocks.N.*` (OpenAI/OpenCLIP layout)"
                               " or `encoder.layer.N.layer_scale2.lambda1` (DINOv2)", _OTHER_KINDS)
    siglip = _PREFIX + "embeddings.class_embedding" not in sd
    depth = max(layers) + 1
    base = _base_config("siglip.json" if siglip else "openai_clip.json" if depth == 24 else "open_clip.json")
    mean, std = base.pop("image_mean"), base.pop("image_std")
    model_type = base.pop("model_type")
    grid = math.isqrt(pos.shape[0] - (0 if siglip else 1))
    config = {**base, "hidden_size": int(patch.shape[0]), "num_channels": int(patch.shape[1]),
              "patch_size": int(patch.shape[2]), "image_size": grid * int(patch.shape[2]), "num_hidden_layers": depth,
              "intermediate_size": int(sd[f"{_PREFIX}encoder.layers.0.mlp.fc1.weight"].shape[0])}
    if config["hidden_size"] % config["num_attention_heads"]:
        raise ValidationError(f"`{name}`: a vision width of {config['hidden_size']} does not split into"
                              f" {config['num_attention_heads']} attention heads")
    projection = "visual_projection.weight" in sd and not siglip
    if projection:
        config["projection_dim"] = int(sd["visual_projection.weight"].shape[0])
    if siglip:
        config["vision_use_head"] = False  # ComfyUI uses the normed tokens, not the pooling head
    llava = sd.get("multi_modal_projector.linear_1.weight")
    return VisionSpec(config, model_type, mean, std, projection,
                      (int(llava.shape[1]), int(llava.shape[0])) if llava is not None else None)
