"""Lotus's frozen null conditioning, computed from a local SD 2 text encoder.

Lotus was trained with one fixed prompt: the empty prompt encoded by SD 2's text encoder
(OpenCLIP ViT-H/14's text tower) as the Lotus release reads it with diffusers' ``CLIPTextModel``:
the tokens ``<start>``, ``<end>`` without padding, the state after the 23rd of the tower's 24 layers
(SD 2's penultimate layer; diffusers' SD 2 ``text_encoder`` holds just those 23) with the final
layer norm, ``[1, 2, 1024]``. A tower of any other depth is read at its last layer, as
:mod:`nodeloom.diffusion.detect` reads SD 2 checkpoints. Since CLIP's attention is causal, these
two states are also the first two of SD 2's usual padded 77-token encoding of ``""``.

:func:`find_sd2_text_encoder` looks for the tower in the text-encoder folders (a 1024-wide CLIP
text tower in transformers' or OpenCLIP's key layout) and then in the checkpoint folders (an SD 2.x
checkpoint's ``cond_stage_model.model.``); :func:`null_conditioning` reads only the tower's tensors.
Imports torch/transformers lazily; no node, engine or adapter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeloom.diffusion.single_file import read_header
from nodeloom.errors import ModelNotFoundError, NodeloomError, ValidationError, require

__all__ = ["SD2_TEXT_WIDTH", "TextTower", "find_sd2_text_encoder", "null_conditioning", "tower_in"]

#: OpenCLIP ViT-H/14's text width: what marks SD 2's encoder among the CLIP text towers
SD2_TEXT_WIDTH = 1024
#: SD 2's full text tower; it conditions on the state after the layer before its last
_FULL_DEPTH = 24
_SUFFIXES = (".safetensors", ".sft")
_CHECKPOINT_TOWER = "cond_stage_model.model."
_TRANSFORMERS_PREFIXES = ("text_model.", "")
_OPEN_CLIP_PREFIXES = ("", "model.", _CHECKPOINT_TOWER)
_OPEN_CLIP_LAYER = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
                    "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}


@dataclass(frozen=True)
class TextTower:
    """Where a CLIP text tower sits in a file: its key ``prefix``, ``layout`` (``transformers`` or
    ``open_clip``), ``width``, ``depth`` (layers in the file) and ``layers`` read (SD 2's rule)."""

    path: Path
    prefix: str
    layout: str
    width: int
    depth: int

    @property
    def layers(self) -> int:
        return self.depth - 1 if self.depth == _FULL_DEPTH else self.depth


def _depth(shapes: dict[str, tuple[int, ...]], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in shapes if (m := rx.match(k))})


def tower_in(path: Path, shapes: dict[str, tuple[int, ...]]) -> TextTower | None:
    """The CLIP text tower a file's header describes (transformers or OpenCLIP layout), or None."""
    for prefix in _TRANSFORMERS_PREFIXES:
        emb = shapes.get(prefix + "embeddings.token_embedding.weight")
        if emb is not None and prefix + "encoder.layers.0.mlp.fc1.weight" in shapes:
            depth = _depth(shapes, re.escape(prefix) + r"encoder\.layers\.(\d+)\.")
            return TextTower(path, prefix, "transformers", emb[1], depth)
    for prefix in _OPEN_CLIP_PREFIXES:
        emb = shapes.get(prefix + "token_embedding.weight")
        if emb is not None and prefix + "transformer.resblocks.0.attn.in_proj_weight" in shapes:
            depth = _depth(shapes, re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.")
            return TextTower(path, prefix, "open_clip", emb[1], depth)
    return None


def _files(folders: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for root in folders:
        if Path(root).is_dir():
            found += sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() in _SUFFIXES)
    return found


def _header_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    try:
        return dict(read_header(path).shapes)
    except NodeloomError:  # an unreadable file in a model folder is not ours to judge here
        return {}


def find_sd2_text_encoder(text_folders: Sequence[Path], checkpoint_folders: Sequence[Path],
                          width: int | None = None) -> TextTower:
    """The first SD 2 text tower in the model folders: a ``width``-wide (default
    :data:`SD2_TEXT_WIDTH`) CLIP text tower among the text encoders (file names in order), else an
    SD 2.x checkpoint's (``cond_stage_model.model.*``, whatever its width).

    Raises:
        ModelNotFoundError: none found; the message names the folders searched and the files to add.
    """
    width = SD2_TEXT_WIDTH if width is None else width
    for path in _files(text_folders):
        tower = tower_in(path, _header_shapes(path))
        if tower is not None and tower.width == width:
            return tower
    for path in _files(checkpoint_folders):
        shapes = _header_shapes(path)
        if not any(k.startswith("model.diffusion_model.") for k in shapes):
            continue
        tower = tower_in(path, {k: v for k, v in shapes.items() if k.startswith(_CHECKPOINT_TOWER)})
        if tower is not None and tower.prefix == _CHECKPOINT_TOWER:
            return tower
    searched = [str(f) for f in (*text_folders, *checkpoint_folders)]
    raise ModelNotFoundError(
        "LotusConditioning computes Lotus's null prompt with SD 2's text encoder (OpenCLIP ViT-H/14, 1024 wide) and "
        "found none: put it in models/text_encoders (e.g. stable-diffusion-2-1's `text_encoder/model.safetensors`, "
        "saved under a name such as `sd2_text_encoder.safetensors`) or an SD 2.x checkpoint (e.g. "
        f"`v2-1_768-ema-pruned.safetensors`) in models/checkpoints; searched: {', '.join(searched) or 'no folders'}",
        extra_info={"name": "SD 2 text encoder", "searched": searched})


def _read_tower(tower: TextTower) -> dict[str, Any]:
    """The tower's tensors read used, renamed to transformers' ``CLIPTextModel`` keys, float32."""
    safe = require("safetensors", "diffusion")
    torch = require("torch", "diffusion")
    out: dict[str, Any] = {}
    with safe.safe_open(str(tower.path), framework="pt") as f:
        for key in f.keys():
            if not key.startswith(tower.prefix):
                continue
            name = _renamed(key[len(tower.prefix):], tower)
            if name is None:
                continue
            value = f.get_tensor(key).to(torch.float32)
            if isinstance(name, tuple):  # OpenCLIP's fused q/k/v projection
                for part, chunk in zip(name, value.chunk(3, dim=0)):
                    out[part] = chunk.contiguous()
            else:
                out[name] = value
    return out


def _renamed(key: str, tower: TextTower) -> str | tuple[str, ...] | None:
    """A tower key's ``CLIPTextModel`` name (three for a fused projection); None: not read."""
    layer = re.match(r"(?:encoder\.layers|transformer\.resblocks)\.(\d+)\.(.+)$", key)
    if layer and int(layer.group(1)) >= tower.layers:
        return None
    if tower.layout == "transformers":
        return key if key.startswith(("embeddings.", "encoder.", "final_layer_norm.")) else None
    if key == "token_embedding.weight":
        return "embeddings.token_embedding.weight"
    if key == "positional_embedding":
        return "embeddings.position_embedding.weight"
    if key.startswith("ln_final."):
        return "final_layer_norm." + key.split(".", 1)[1]
    if layer is None:
        return None  # text_projection, logit_scale, the vision tower: not part of the prompt states
    base, rest = f"encoder.layers.{layer.group(1)}.", layer.group(2)
    if rest.startswith("attn.in_proj_"):
        kind = rest.rsplit("_", 1)[1]
        return tuple(f"{base}self_attn.{p}_proj.{kind}" for p in "qkv")
    for src, dst in _OPEN_CLIP_LAYER.items():
        if rest.startswith(src + "."):
            return base + dst + rest[len(src):]
    return None


def _build(tower: TextTower, sd: dict[str, Any]) -> Any:
    transformers = require("transformers", "diffusion")
    vocab, width = sd["embeddings.token_embedding.weight"].shape
    config = transformers.CLIPTextConfig(
        vocab_size=vocab, hidden_size=width, intermediate_size=sd["encoder.layers.0.mlp.fc1.weight"].shape[0],
        num_attention_heads=max(1, width // 64), num_hidden_layers=tower.layers,
        max_position_embeddings=sd["embeddings.position_embedding.weight"].shape[0], hidden_act="gelu",
        layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
    model = transformers.CLIPTextModel(config)
    nested = any(k.startswith("text_model.") for k in model.state_dict())  # transformers < 5 nests the tower
    missing, _ = model.load_state_dict({("text_model." if nested else "") + k: v for k, v in sd.items()}, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing:
        raise ValidationError(f"`{tower.path.name}` lacks {len(missing)} weights of SD 2's text encoder, e.g. "
                              f"`{missing[0]}`", type="invalid_model_file", extra_info={"name": tower.path.name})
    return model.eval()


def null_conditioning(tower: TextTower) -> Any:
    """Lotus's null prompt states ``[1, 2, width]`` (float32, CPU) from the tower's weights.

    Raises:
        ValidationError: the file lacks some of the tower's weights.
    """
    torch = require("torch", "diffusion")
    from nodeloom.diffusion.tokenizer import clip_tokenizer

    ids = clip_tokenizer()("", padding="do_not_pad").input_ids  # <start>, <end>
    encoder = _build(tower, _read_tower(tower))
    with torch.no_grad():
        states = encoder(torch.tensor([ids])).last_hidden_state
    return states.float().contiguous()
