"""Write diffusers/transformers weights in the original SD/LDM single-file key layout.

The inverse of the conversion diffusers applies in ``from_single_file``: used to save a
checkpoint as one ``.safetensors`` that ComfyUI, A1111 and nodeloom's own loader read, and by
the tiny test models so the real single-file loading path runs. Pure functions on state dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["clip_to_ldm", "controlnet_to_ldm", "open_clip_to_ldm", "unet_to_ldm", "vae_to_ldm"]

_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "class_embedding.linear_1": "label_emb.0.0",  # a projection class embedding (Lotus's task switch)
    "class_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _rename_head(key: str, table: Mapping[str, str]) -> str:
    head, _, tail = key.partition(".")
    for src, dst in table.items():
        if key.startswith(src + "."):
            return dst + key[len(src):]
    return head + ("." + tail if tail else "")


def _unet_prefix_map(config: Mapping[str, Any], with_up: bool = True) -> list[tuple[str, str, str]]:
    """(diffusers prefix, LDM prefix, kind) for every block of the UNet (or only its encoder half)."""
    lpb = int(config["layers_per_block"])
    n = len(config["block_out_channels"])
    out: list[tuple[str, str, str]] = []
    for i in range(n):
        for j in range(lpb):
            ldm = f"input_blocks.{1 + i * (lpb + 1) + j}"
            out.append((f"down_blocks.{i}.resnets.{j}.", f"{ldm}.0.", "resnet"))
            out.append((f"down_blocks.{i}.attentions.{j}.", f"{ldm}.1.", "attn"))
        if i < n - 1:
            out.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(i + 1) * (lpb + 1)}.0.op.", "plain"))
    out += [("mid_block.resnets.0.", "middle_block.0.", "resnet"), ("mid_block.attentions.0.", "middle_block.1.", "attn"),
            ("mid_block.resnets.1.", "middle_block.2.", "resnet")]
    if not with_up:
        return out
    up_types = list(config["up_block_types"])
    for i in range(n):
        for j in range(lpb + 1):
            ldm = f"output_blocks.{i * (lpb + 1) + j}"
            out.append((f"up_blocks.{i}.resnets.{j}.", f"{ldm}.0.", "resnet"))
            out.append((f"up_blocks.{i}.attentions.{j}.", f"{ldm}.1.", "attn"))
        if i < n - 1:
            slot = 2 if up_types[i].startswith("CrossAttn") else 1
            out.append((f"up_blocks.{i}.upsamplers.0.conv.", f"output_blocks.{i * (lpb + 1) + lpb}.{slot}.conv.", "plain"))
    return out


def unet_to_ldm(sd: Mapping[str, Any], config: Mapping[str, Any], prefix: str = "model.diffusion_model.") -> dict[str, Any]:
    """Map a diffusers ``UNet2DConditionModel`` state dict to LDM keys.

    Args:
        sd: the diffusers state dict.
        config: the UNet config (``layers_per_block``, ``block_out_channels``, ``up_block_types``).
        prefix: prefix of every output key.

    Returns:
        A new dict in the LDM layout (tensors shared, not copied).

    Raises:
        KeyError: a key that no rule maps (an architecture this writer does not know).
    """
    return _map_keys(sd, _UNET_TOP, _unet_prefix_map(config), prefix, "UNet")


def _map_keys(sd: Mapping[str, Any], top: Mapping[str, str], blocks: list[tuple[str, str, str]], prefix: str,
              what: str) -> dict[str, Any]:
    """Rename every key by the top-level table, then the block table (resnet sub-names renamed)."""
    out: dict[str, Any] = {}
    for key, value in sd.items():
        new = None
        if key.startswith("controlnet_down_blocks."):
            idx, rest = key[len("controlnet_down_blocks."):].split(".", 1)
            new = f"zero_convs.{idx}.0.{rest}"
        for src, dst in top.items():
            if key.startswith(src + "."):
                new = dst + key[len(src):]
        for src, dst, kind in blocks:
            if key.startswith(src):
                rest = key[len(src):]
                new = dst + (_rename_head(rest, _UNET_RESNET) if kind == "resnet" else rest)
                break
        if new is None:
            raise KeyError(f"no LDM name for {what} key `{key}`")
        out[prefix + new] = value
    return out


def controlnet_to_ldm(sd: Mapping[str, Any], config: Mapping[str, Any], prefix: str = "control_model.") -> dict[str, Any]:
    """Map a diffusers ``ControlNetModel`` state dict to the original ControlNet layout
    (``input_hint_block``, ``zero_convs``, ``middle_block_out``).

    Raises:
        KeyError: a key that no rule maps.
    """
    n_hint = len(config["conditioning_embedding_out_channels"])
    top = dict(_UNET_TOP)
    top.update({
        "controlnet_cond_embedding.conv_in": "input_hint_block.0",
        "controlnet_cond_embedding.conv_out": f"input_hint_block.{4 * n_hint - 2}",
        "controlnet_mid_block": "middle_block_out.0",
    })
    for j in range(2 * (n_hint - 1)):
        top[f"controlnet_cond_embedding.blocks.{j}"] = f"input_hint_block.{2 * (j + 1)}"
    return _map_keys(sd, top, _unet_prefix_map(config, with_up=False), prefix, "ControlNet")


def vae_to_ldm(sd: Mapping[str, Any], config: Mapping[str, Any], prefix: str = "first_stage_model.") -> dict[str, Any]:
    """Map a diffusers ``AutoencoderKL`` state dict to LDM keys (attention projections become 1×1 convs)."""
    n = len(config["block_out_channels"])
    rules: list[tuple[str, str, str]] = []
    for part in ("encoder", "decoder"):
        rules += [(f"{part}.mid_block.resnets.0.", f"{part}.mid.block_1.", "resnet"),
                  (f"{part}.mid_block.resnets.1.", f"{part}.mid.block_2.", "resnet"),
                  (f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1.", "attn"),
                  (f"{part}.conv_norm_out.", f"{part}.norm_out.", "plain")]
    for i in range(n):
        rules += [(f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block.", "resnet"),
                  (f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample.", "plain"),
                  (f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{n - 1 - i}.block.", "resnet"),
                  (f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{n - 1 - i}.upsample.", "plain")]
    out: dict[str, Any] = {}
    for key, value in sd.items():
        new = key
        for src, dst, kind in rules:
            if key.startswith(src):
                rest = key[len(src):]
                if kind == "resnet" and src.endswith("resnets."):
                    idx, _, tail = rest.partition(".")
                    rest = idx + "." + _rename_head(tail, _VAE_RESNET)
                elif kind == "resnet":
                    rest = _rename_head(rest, _VAE_RESNET)
                elif kind == "attn":
                    rest = _rename_head(rest, _VAE_ATTN)
                    if value.ndim == 2:
                        value = value[:, :, None, None]
                new = dst + rest
                break
        out[prefix + new] = value
    return out


def clip_to_ldm(sd: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Map a transformers CLIP text model to the LDM layout (``<prefix>text_model.…``)."""
    out: dict[str, Any] = {}
    for key, value in sd.items():
        if key.endswith("position_ids"):
            continue
        body = key if key.startswith("text_model.") else "text_model." + key
        out[prefix + body] = value
    return out


_OPEN_CLIP_LAYER = {"self_attn.out_proj": "attn.out_proj", "layer_norm1": "ln_1", "layer_norm2": "ln_2",
                    "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}


def open_clip_to_ldm(sd: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Map a transformers CLIP text model (with projection) to OpenCLIP's layout under ``prefix``
    (q/k/v fused into ``in_proj``; ``text_projection`` transposed)."""
    import torch

    flat = {(k[len("text_model."):] if k.startswith("text_model.") else k): v for k, v in sd.items()}
    out: dict[str, Any] = {}
    fused: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        if key.endswith("position_ids"):
            continue
        if key == "embeddings.token_embedding.weight":
            out[prefix + "token_embedding.weight"] = value
        elif key == "embeddings.position_embedding.weight":
            out[prefix + "positional_embedding"] = value
        elif key.startswith("final_layer_norm."):
            out[prefix + "ln_final." + key.split(".", 1)[1]] = value
        elif key == "text_projection.weight":
            out[prefix + "text_projection"] = value.T.contiguous()
        elif key.startswith("encoder.layers."):
            idx, rest = key[len("encoder.layers."):].split(".", 1)
            base = f"{prefix}transformer.resblocks.{idx}."
            for qkv in ("q_proj", "k_proj", "v_proj"):
                if rest.startswith(f"self_attn.{qkv}."):
                    kind = rest.rsplit(".", 1)[1]
                    fused.setdefault(base + "attn.in_proj_" + kind, {})[qkv] = value
                    break
            else:
                for src, dst in _OPEN_CLIP_LAYER.items():
                    if rest.startswith(src + "."):
                        out[base + dst + rest[len(src):]] = value
                        break
                else:
                    raise KeyError(f"no OpenCLIP name for text encoder key `{key}`")
        else:
            raise KeyError(f"no OpenCLIP name for text encoder key `{key}`")
    for key, parts in fused.items():
        out[key] = torch.cat([parts["q_proj"], parts["k_proj"], parts["v_proj"]], dim=0)
    return out
