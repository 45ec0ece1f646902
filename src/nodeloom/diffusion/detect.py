"""Recognise a Stable Diffusion checkpoint from its tensor keys and derive its diffusers configs.

Single-file checkpoints (original SD/LDM key layout) carry no configuration. The family
(SD 1.x, SD 2.x, SDXL) is read from characteristic keys; layer counts and widths are read from
tensor shapes, so any checkpoint of a known family (full-size or a tiny test model) gets exact
configs. What shapes cannot tell (attention heads, norm groups, activations) follows each
family's published convention, from the JSON files in ``data/configs``. Pure functions on a
mapping of tensor shapes; no I/O besides reading those package-data files.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from nodeloom.errors import ValidationError

__all__ = ["CheckpointInfo", "UNET_PREFIX", "detect_checkpoint", "family_defaults", "infer_clip_config",
           "infer_controlnet_config", "infer_open_clip_config", "infer_unet_config", "infer_vae_config"]

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_CLIP_PREFIX = "cond_stage_model.transformer.text_model."
SD2_CLIP_PREFIX = "cond_stage_model.model."
SDXL_CLIP_L_PREFIX = "conditioner.embedders.0.transformer.text_model."
SDXL_CLIP_G_PREFIX = "conditioner.embedders.1.model."
FAMILIES = ("sd1", "sd2", "sdxl")


@dataclass
class CheckpointInfo:
    """What a checkpoint is: family, variant and the diffusers configs of its parts."""

    family: str
    prediction_type: str
    latent_scale: float
    inpaint: bool
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    clip_layer_norm_hidden: bool = True


def family_defaults(family: str) -> dict[str, Any]:
    """The shipped base configuration of a family (``sd1``, ``sd2`` or ``sdxl``).

    Raises:
        ValidationError: the family is unknown.
    """
    if family not in FAMILIES:
        raise ValidationError(f"model family `{family}` is not supported; supported: {list(FAMILIES)}")
    text = resources.files("nodeloom.diffusion").joinpath(f"data/configs/{family}.json").read_text("utf-8")
    return json.loads(text)


def _shape(sd: Mapping[str, Any], key: str) -> tuple[int, ...]:
    return tuple(sd[key].shape)


def _count(sd: Mapping[str, Any], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd for m in [rx.match(k)] if m})


def detect_checkpoint(sd: Mapping[str, Any], name: str = "checkpoint") -> CheckpointInfo:
    """Identify a single-file SD checkpoint and infer the configs of its parts.

    Args:
        sd: the state dict (tensors or anything with ``.shape``), original SD key layout.
        name: the file name, for error messages.

    Returns:
        The family, prediction type, latent scale, inpainting flag and per-part configs
        (``unet``, ``vae``, ``text_encoder`` and, for SDXL, ``text_encoder_2``).

    Raises:
        ValidationError: the keys match no supported family.
    """
    if UNET_PREFIX + "input_blocks.0.0.weight" not in sd:
        raise ValidationError(
            f"`{name}` is not a Stable Diffusion checkpoint: it has no `{UNET_PREFIX}input_blocks.0.0.weight`"
            " (supported: SD 1.x, SD 2.x and SDXL single files, or diffusers folders)",
            type="unsupported_checkpoint",
        )
    if SDXL_CLIP_G_PREFIX + "positional_embedding" in sd:
        family = "sdxl"
    elif SD2_CLIP_PREFIX + "token_embedding.weight" in sd:
        family = "sd2"
    elif SD1_CLIP_PREFIX + "embeddings.token_embedding.weight" in sd:
        family = "sd1"
    else:
        raise ValidationError(
            f"`{name}` has a UNet but no text encoder this loader knows (SD 1.x CLIP-L, SD 2.x OpenCLIP-H or"
            " SDXL CLIP-L + OpenCLIP-bigG)",
            type="unsupported_checkpoint",
        )
    base = family_defaults(family)
    configs = {"unet": infer_unet_config(sd, base["unet"], family), "vae": infer_vae_config(sd, base["vae"])}
    if family == "sd1":
        configs["text_encoder"] = infer_clip_config(sd, SD1_CLIP_PREFIX, base["text_encoder"])
    elif family == "sd2":
        configs["text_encoder"] = infer_open_clip_config(sd, SD2_CLIP_PREFIX, base["text_encoder"])
        if configs["text_encoder"]["num_hidden_layers"] == 24:
            # SD 2.x conditions on the penultimate OpenCLIP-H layer: diffusers drops the 24th
            configs["text_encoder"]["num_hidden_layers"] = 23
    else:
        configs["text_encoder"] = infer_clip_config(sd, SDXL_CLIP_L_PREFIX, base["text_encoder"])
        configs["text_encoder_2"] = infer_open_clip_config(sd, SDXL_CLIP_G_PREFIX, base["text_encoder_2"])
        pooled = configs["text_encoder_2"]["projection_dim"]
        proj_in = configs["unet"]["projection_class_embeddings_input_dim"]
        configs["unet"]["addition_time_embed_dim"] = (proj_in - pooled) // 6
    return CheckpointInfo(
        family=family,
        prediction_type=_prediction_type(sd, base["prediction_type"]),
        latent_scale=float(base["latent_scale"]),
        inpaint=configs["unet"]["in_channels"] == 9,
        configs=configs,
        clip_layer_norm_hidden=bool(base["clip_layer_norm_hidden"]),
    )


def _prediction_type(sd: Mapping[str, Any], default: str) -> str:
    """v-prediction is marked by a ``v_pred`` key, or (SD 2.x 768-v) betrayed by the spread of one
    output norm bias — the heuristic ComfyUI also relies on."""
    if "v_pred" in sd:
        return "v_prediction"
    probe = UNET_PREFIX + "output_blocks.11.1.transformer_blocks.0.norm1.bias"
    if probe in sd and SD2_CLIP_PREFIX + "token_embedding.weight" in sd:
        if float(sd[probe].float().std(unbiased=False)) > 0.09:
            return "v_prediction"
    return default


def _heads(channels: int, family: str, base: Any) -> int:
    if family == "sd1":
        return int(base)
    return max(1, channels // 64)


def infer_unet_config(sd: Mapping[str, Any], base: dict[str, Any], family: str, prefix: str = UNET_PREFIX) -> dict[str, Any]:
    """A diffusers ``UNet2DConditionModel`` config read from an LDM UNet's shapes.

    Args:
        sd: state dict in the LDM layout.
        base: the family's base UNet config (conventions shapes cannot tell).
        family: ``sd1``, ``sd2`` or ``sdxl`` (decides attention heads).
        prefix: key prefix of the UNet (``model.diffusion_model.`` or ``control_model.``).
    """
    cfg = copy.deepcopy(base)
    first = _shape(sd, prefix + "input_blocks.0.0.weight")
    cfg["in_channels"] = first[1]
    if prefix + "out.2.weight" in sd:
        cfg["out_channels"] = _shape(sd, prefix + "out.2.weight")[0]
    levels: list[dict[str, Any]] = [{"resnets": 0, "channels": first[0], "depth": 0}]
    idx = 1
    while any(k.startswith(f"{prefix}input_blocks.{idx}.") for k in sd):
        block = f"{prefix}input_blocks.{idx}."
        if block + "0.op.weight" in sd:
            levels.append({"resnets": 0, "channels": levels[-1]["channels"], "depth": 0})
        else:
            level = levels[-1]
            level["resnets"] += 1
            level["channels"] = _shape(sd, block + "0.in_layers.2.weight")[0]
            depth = _count(sd, re.escape(block) + r"1\.transformer_blocks\.(\d+)\.")
            level["depth"] = max(level["depth"], depth)
            if block + "1.proj_in.weight" in sd:
                cfg["use_linear_projection"] = len(_shape(sd, block + "1.proj_in.weight")) == 2
            k_key = block + "1.transformer_blocks.0.attn2.to_k.weight"
            if k_key in sd:
                cfg["cross_attention_dim"] = _shape(sd, k_key)[1]
        idx += 1
    channels = [lv["channels"] for lv in levels]
    cfg["block_out_channels"] = channels
    cfg["layers_per_block"] = levels[0]["resnets"]
    cfg["down_block_types"] = ["CrossAttnDownBlock2D" if lv["depth"] else "DownBlock2D" for lv in levels]
    cfg["up_block_types"] = ["CrossAttnUpBlock2D" if lv["depth"] else "UpBlock2D" for lv in reversed(levels)]
    depths = [max(lv["depth"], 1) for lv in levels]
    mid_depth = _count(sd, re.escape(prefix) + r"middle_block\.1\.transformer_blocks\.(\d+)\.")
    cfg["transformer_layers_per_block"] = depths[:-1] + [max(mid_depth, 1)] if family == "sdxl" else 1
    base_heads = base["attention_head_dim"]
    if family == "sd1":
        cfg["attention_head_dim"] = int(base_heads)
    else:
        cfg["attention_head_dim"] = [_heads(c, family, base_heads) for c in channels]
    time_dim = _shape(sd, prefix + "time_embed.0.weight")[0]
    if time_dim != 4 * channels[0]:
        cfg["time_embedding_dim"] = time_dim
    label = prefix + "label_emb.0.0.weight"
    if label in sd:
        cfg["projection_class_embeddings_input_dim"] = _shape(sd, label)[1]
    return cfg


def infer_vae_config(sd: Mapping[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """A diffusers ``AutoencoderKL`` config read from an LDM VAE's shapes (with or without the
    ``first_stage_model.`` prefix)."""
    prefix = VAE_PREFIX if any(k.startswith(VAE_PREFIX) for k in sd) else ""
    if prefix + "encoder.conv_in.weight" not in sd:
        raise ValidationError("the file has no VAE weights (`encoder.conv_in.weight` is missing)", type="unsupported_checkpoint")
    cfg = copy.deepcopy(base)
    n_levels = _count(sd, re.escape(prefix) + r"encoder\.down\.(\d+)\.")
    cfg["block_out_channels"] = [_shape(sd, f"{prefix}encoder.down.{i}.block.0.conv1.weight")[0] for i in range(n_levels)]
    cfg["layers_per_block"] = _count(sd, re.escape(prefix) + r"encoder\.down\.0\.block\.(\d+)\.")
    cfg["down_block_types"] = ["DownEncoderBlock2D"] * n_levels
    cfg["up_block_types"] = ["UpDecoderBlock2D"] * n_levels
    cfg["in_channels"] = _shape(sd, prefix + "encoder.conv_in.weight")[1]
    cfg["out_channels"] = _shape(sd, prefix + "decoder.conv_out.weight")[0]
    if prefix + "post_quant_conv.weight" in sd:
        cfg["latent_channels"] = _shape(sd, prefix + "post_quant_conv.weight")[0]
    else:  # Flux/SD3-style VAE (16 channels, no quant convs)
        cfg["latent_channels"] = _shape(sd, prefix + "decoder.conv_in.weight")[1]
        cfg.update(use_quant_conv=False, use_post_quant_conv=False)
    return cfg


def _clip_common(base: dict[str, Any], hidden: int, vocab: int, positions: int, layers: int, inner: int) -> dict[str, Any]:
    cfg = copy.deepcopy(base)
    cfg.update(hidden_size=hidden, vocab_size=vocab, max_position_embeddings=positions, num_hidden_layers=layers,
               intermediate_size=inner, num_attention_heads=max(1, hidden // 64))
    return cfg


def infer_clip_config(sd: Mapping[str, Any], prefix: str, base: dict[str, Any]) -> dict[str, Any]:
    """A ``CLIPTextConfig`` dict for a transformers-layout CLIP text model under ``prefix``."""
    vocab, hidden = _shape(sd, prefix + "embeddings.token_embedding.weight")
    positions = _shape(sd, prefix + "embeddings.position_embedding.weight")[0]
    layers = _count(sd, re.escape(prefix) + r"encoder\.layers\.(\d+)\.")
    inner = _shape(sd, prefix + "encoder.layers.0.mlp.fc1.weight")[0]
    return _clip_common(base, hidden, vocab, positions, layers, inner)


def infer_open_clip_config(sd: Mapping[str, Any], prefix: str, base: dict[str, Any]) -> dict[str, Any]:
    """A ``CLIPTextConfig`` dict for an OpenCLIP-layout text tower under ``prefix``."""
    vocab, hidden = _shape(sd, prefix + "token_embedding.weight")
    positions = _shape(sd, prefix + "positional_embedding")[0]
    layers = _count(sd, re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.")
    inner = _shape(sd, prefix + "transformer.resblocks.0.mlp.c_fc.weight")[0]
    cfg = _clip_common(base, hidden, vocab, positions, layers, inner)
    if prefix + "text_projection" in sd:
        cfg["projection_dim"] = _shape(sd, prefix + "text_projection")[1]
    return cfg


_CONTROLNET_KEYS = ("in_channels", "down_block_types", "block_out_channels", "layers_per_block", "cross_attention_dim",
                    "attention_head_dim", "use_linear_projection", "norm_num_groups", "norm_eps", "act_fn",
                    "flip_sin_to_cos", "freq_shift", "downsample_padding", "upcast_attention",
                    "transformer_layers_per_block", "addition_embed_type", "addition_time_embed_dim",
                    "projection_class_embeddings_input_dim", "time_embedding_dim")


def infer_controlnet_config(sd: Mapping[str, Any], name: str = "controlnet") -> dict[str, Any]:
    """A diffusers ``ControlNetModel`` config read from an original-layout ControlNet
    (``control_model.`` prefixed or bare ``input_hint_block``/``zero_convs`` keys).

    Raises:
        ValidationError: the keys are not an original-layout ControlNet.
    """
    prefix = "control_model." if any(k.startswith("control_model.") for k in sd) else ""
    if prefix + "input_hint_block.0.weight" not in sd or prefix + "input_blocks.0.0.weight" not in sd:
        raise ValidationError(f"`{name}` is not a ControlNet in the original layout (no `input_hint_block`)",
                              type="unsupported_checkpoint")
    family = "sdxl" if prefix + "label_emb.0.0.weight" in sd else "sd1"
    probe = next((k for k in sd if k.startswith(prefix) and k.endswith("attn2.to_k.weight")), None)
    if family == "sd1" and probe is not None and _shape(sd, probe)[1] == 1024:
        family = "sd2"
    base = family_defaults(family)["unet"]
    unet = infer_unet_config(sd, base, family, prefix)
    cfg = {k: unet[k] for k in _CONTROLNET_KEYS if k in unet}
    if family == "sdxl":
        cfg["addition_time_embed_dim"] = (unet["projection_class_embeddings_input_dim"] - 1280) // 6
    hint = sorted(int(m.group(1)) for k in sd for m in [re.match(re.escape(prefix) + r"input_hint_block\.(\d+)\.weight$", k)] if m)
    outs = [_shape(sd, f"{prefix}input_hint_block.{i}.weight")[0] for i in hint]
    cfg["conditioning_embedding_out_channels"] = [outs[0]] + outs[2:-1:2]
    cfg["_class_name"] = "ControlNetModel"
    return cfg
