"""Qwen-Image's text encoder: Qwen2.5-VL (``qwen_2.5_vl_7b*.safetensors``, CLIPLoader type ``qwen_image``).

:func:`load_qwen25_vl` builds the transformers model from the file's shapes — the language model
alone when the file has no vision tower, ``Qwen2_5_VLModel`` when it has ``visual.*`` weights —
from ComfyUI's layout (``model.layers.*``, ``visual.blocks.*``, with or without ``lm_head``).
:class:`QwenImageClip` is the CLIP value: a prompt is wrapped in the chat template Qwen-Image was
trained with (:data:`T2I_TEMPLATE`, or :data:`EDIT_TEMPLATE` when images come with it), encoded,
and the template's system turn and ``<|im_start|>user\\n`` dropped (ComfyUI's rule: everything before
the second ``<|im_start|>`` and the ``user\\n`` tokens after it; with Qwen's tokenizer this is the
34 / 64 tokens diffusers' pipelines drop). Images are preprocessed by transformers' Qwen2-VL image
processor and each ``<|image_pad|>`` expanded to its merged patch count. Imports no node or engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeloom.diffusion.flow import accelerator_dtype
from nodeloom.diffusion.lora import LoraPatch
from nodeloom.diffusion.state_keys import indexed_count as _count
from nodeloom.errors import ValidationError, require

__all__ = ["EDIT_PLUS_TEMPLATE", "EDIT_TEMPLATE", "IMAGE_PROMPT", "QwenImageClip", "T2I_TEMPLATE", "load_qwen25_vl",
           "qwen_image_processor", "template_start"]

T2I_TEMPLATE = ("<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, text,"
                " spatial relationships of the objects and background:<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n"
                "<|im_start|>assistant\n")
_EDIT_SYSTEM = ("<|im_start|>system\nDescribe the key features of the input image (color, shape, size, texture, objects,"
                " background), then explain how the user's text instruction should alter or modify the image. Generate"
                " a new image that meets the user's requirements while maintaining consistency with the original input"
                " where appropriate.<|im_end|>\n<|im_start|>user\n")
#: the Edit model's template: the image's vision tokens, then the instruction
EDIT_TEMPLATE = _EDIT_SYSTEM + "<|vision_start|><|image_pad|><|vision_end|>{}<|im_end|>\n<|im_start|>assistant\n"
#: the Edit Plus (2509+) template: "Picture N: <vision tokens>" for each image, then the instruction
EDIT_PLUS_TEMPLATE = _EDIT_SYSTEM + "{}<|im_end|>\n<|im_start|>assistant\n"
IMAGE_PROMPT = "Picture {}: <|vision_start|><|image_pad|><|vision_end|>"
_HEAD_DIM = 128  # Qwen2.5's attention head width (the 3B and 7B models alike)
_VISION_HEAD_DIM = 80  # Qwen2.5-VL's vision tower head width


def _text_config(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    vocab, hidden = shapes["model.embed_tokens.weight"]
    return dict(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=_count(shapes, r"model\.layers\.(\d+)\."),
                intermediate_size=shapes["model.layers.0.mlp.gate_proj.weight"][0],
                num_attention_heads=shapes["model.layers.0.self_attn.q_proj.weight"][0] // _HEAD_DIM,
                num_key_value_heads=shapes["model.layers.0.self_attn.k_proj.weight"][0] // _HEAD_DIM,
                rms_norm_eps=1e-6, max_position_embeddings=128000, tie_word_embeddings=False,
                rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}, rope_theta=1000000.0,
                bos_token_id=None, eos_token_id=None)  # no generation here: the ids would only be checked


def _vision_config(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    hidden, in_ch, temporal, patch, _ = shapes["visual.patch_embed.proj.weight"]
    depth = _count(shapes, r"visual\.blocks\.(\d+)\.")
    merged = shapes["visual.merger.mlp.0.weight"][1]
    return dict(depth=depth, hidden_size=hidden, in_channels=in_ch, temporal_patch_size=temporal, patch_size=patch,
                intermediate_size=shapes["visual.blocks.0.mlp.gate_proj.weight"][0],
                num_heads=max(1, hidden // _VISION_HEAD_DIM), out_hidden_size=shapes["visual.merger.mlp.2.weight"][0],
                spatial_merge_size=round((merged // hidden) ** 0.5), window_size=112,
                fullatt_block_indexes=[i for i in range(depth) if i % 8 == 7])


def load_qwen25_vl(sd: dict[str, Any], tokenizer: Any, name: str) -> Any:
    """The Qwen2.5-VL encoder of a text-encoder file (no LM head), eval mode, float32.

    Raises:
        ValidationError: weights that do not fit the model their shapes describe.
    """
    transformers = require("transformers", "diffusion")
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    text = _text_config(shapes)
    weights = {"language_model." + k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    if "visual.patch_embed.proj.weight" in shapes:
        ids = {"image_token_id": tokenizer.convert_tokens_to_ids("<|image_pad|>"),
               "vision_start_token_id": tokenizer.convert_tokens_to_ids("<|vision_start|>"),
               "vision_end_token_id": tokenizer.convert_tokens_to_ids("<|vision_end|>")}
        cfg = transformers.Qwen2_5_VLConfig(text_config=text, vision_config=_vision_config(shapes), **ids)
        model = transformers.Qwen2_5_VLModel(cfg)
        weights.update({k: v for k, v in sd.items() if k.startswith("visual.")})
    else:
        model = transformers.Qwen2_5_VLTextModel(transformers.Qwen2_5_VLTextConfig(**text))
        weights = {k[len("language_model."):]: v for k, v in weights.items()}
    missing, _ = model.load_state_dict(weights, strict=False)
    if missing:
        raise ValidationError(f"`{name}` lacks {len(missing)} weights of a Qwen2.5-VL encoder, e.g. `{missing[0]}`",
                              type="invalid_model_file", extra_info={"name": name})
    return model.eval()


def template_start(ids: Sequence[int], im_start: int, user: Sequence[int]) -> int:
    """Where the prompt's own tokens begin: after the second ``<|im_start|>`` and the ``user\\n``
    tokens that follow it (ComfyUI's rule); 0 when the text has no such template."""
    starts = [i for i, t in enumerate(ids) if t == im_start][:2]
    if len(starts) < 2:
        return 0
    end = starts[1]
    if list(ids[end + 1:end + 1 + len(user)]) == list(user):
        end += 1 + len(user)
    return end


def _pil(image: Any) -> Any:
    """An IMAGE ``[H,W,C]`` in 0..1 as a PIL image (8-bit, as the image processor expects)."""
    from PIL import Image

    torch = require("torch", "diffusion")
    array = (image[..., :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return Image.fromarray(array)


@dataclass(frozen=True)
class QwenImageClip:
    """The CLIP value of Qwen-Image: a Qwen2.5-VL encoder, its tokenizer and image processor."""

    encoder: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    image_processor: Any = field(default=None, repr=False)
    family: str = "qwen_image"
    layer: int | None = None
    loras: tuple[LoraPatch, ...] = ()
    cpu_only: bool = False

    def clone(self, **changes: Any) -> QwenImageClip:
        return dataclasses.replace(self, **changes)

    @property
    def encoders(self) -> tuple[Any, ...]:
        return (self.encoder,)

    def _vision(self, text: str, images: Sequence[Any]) -> tuple[str, dict[str, Any]]:
        if self.image_processor is None or not hasattr(self.encoder, "visual"):
            raise ValidationError("this Qwen2.5-VL text encoder file has no vision tower (`visual.*` weights), so it"
                                  " cannot read images; use the full qwen_2.5_vl_7b file for the Edit models")
        out = self.image_processor(images=[_pil(im) for im in images], return_tensors="pt")
        merge = self.image_processor.merge_size ** 2
        pieces = text.split("<|image_pad|>")
        if len(pieces) - 1 != len(images):
            raise ValidationError(f"the prompt has {len(pieces) - 1} image placeholders for {len(images)} images")
        counts = [int(g.prod()) // merge for g in out["image_grid_thw"]]
        text = pieces[0] + "".join("<|image_pad|>" * n + rest for n, rest in zip(counts, pieces[1:]))
        return text, {"pixel_values": out["pixel_values"], "image_grid_thw": out["image_grid_thw"]}

    def encode(self, text: str, manager: Any = None, embeddings: Callable[[str], Any] | None = None,
               texts: Sequence[str] | None = None, images: Sequence[Any] = (), template: str | None = None
               ) -> tuple[Any, Any]:
        """Encode a prompt (and images ``[H,W,C]`` for the Edit models): ``(cond [1, n, dim], None)``.

        ``template`` defaults to :data:`T2I_TEMPLATE` (:data:`EDIT_TEMPLATE` with images); a prompt
        that starts with ``<|im_start|>`` is used as written.

        Raises:
            ValidationError: several prompts, images without a vision tower, placeholders ≠ images.
        """
        torch = require("torch", "diffusion")
        if texts is not None and len(texts) != 1:
            raise ValidationError(f"{len(texts)} prompts for 1 text encoder (qwen_image)")
        prompt = texts[0] if texts is not None else text
        if template is None:
            template = EDIT_TEMPLATE if images else T2I_TEMPLATE
        full = prompt if prompt.startswith("<|im_start|>") else template.format(prompt)
        extra: dict[str, Any] = {}
        if images:
            full, extra = self._vision(full, images)
        enc = self.encoder.to("cpu", torch.float32) if self.cpu_only or manager is None else \
            manager.prepare(self.encoder, dtype=accelerator_dtype(manager))
        dev = next(enc.parameters()).device
        ids = self.tokenizer(full, return_tensors="pt", add_special_tokens=False).input_ids
        extra = {k: v.to(dev) for k, v in extra.items()}
        if "pixel_values" in extra:
            extra["pixel_values"] = extra["pixel_values"].to(next(enc.parameters()).dtype)
        with torch.no_grad():
            out = enc(input_ids=ids.to(dev), attention_mask=torch.ones_like(ids).to(dev), output_hidden_states=True,
                      **extra)
        layer = -1 if self.layer is None else self.layer
        start = template_start(ids[0].tolist(), self.tokenizer.convert_tokens_to_ids("<|im_start|>"),
                               self.tokenizer("user\n", add_special_tokens=False).input_ids)
        return out.hidden_states[layer][:, start:].float().cpu(), None


def qwen_image_processor(folder: Path | None) -> Any:
    """Qwen2-VL's image processor: the folder's ``preprocessor_config.json`` when present, else the
    Qwen2.5-VL release's settings (14-pixel patches merged 2×2, 3136..12845056 pixels)."""
    transformers = require("transformers", "diffusion")
    cls = getattr(transformers, "Qwen2VLImageProcessorPil", None) or transformers.Qwen2VLImageProcessor
    if folder is not None and (Path(folder) / "preprocessor_config.json").is_file():
        return cls.from_pretrained(str(folder), local_files_only=True)
    return cls(min_pixels=3136, max_pixels=12845056)
