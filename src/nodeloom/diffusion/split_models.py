"""Load the split files of today's families: a diffusion model (UNETLoader) and text encoders
(CLIPLoader and its Dual/Triple/Quadruple kin) into MODEL and CLIP values.

The diffusion model's family comes from its header (:func:`nodeloom.diffusion.families.identify`)
before any tensor is read; weights are loaded through :mod:`nodeloom.diffusion.single_file` (fp8,
scaled fp8 and ComfyUI's mixed-precision layers dequantised to build the module). The weights then
stay in fp8 while sampling (:mod:`nodeloom.models.offload`, each layer upcast at compute): an fp8
file's layers keep their fp8 values and per-tensor scales, and the ``weight_dtype`` fp8 choices
store every other Linear/Conv weight in that format (ComfyUI's precision and memory). Which
encoders a ``type`` needs is :data:`CLIP_RECIPES`. Imports no node or engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nodeloom.diffusion.families import Family, identify
from nodeloom.diffusion.flux2_text import flux2_clip
from nodeloom.diffusion.lumina_text import lumina2_clip
from nodeloom.diffusion.models import ClipModel, DiffusionModel
from nodeloom.diffusion.sd3_text import Sd3Clip, sd3_roles
from nodeloom.diffusion.single_file import load_weights, read_header, strip_prefix
from nodeloom.diffusion.t5_text import T5Clip
from nodeloom.diffusion.text_encoders import (
    ZIMAGE_TEMPLATE,
    FluxClip,
    LlmClip,
    find_tokenizer,
    identify_encoder,
    load_llm_encoder,
)
from nodeloom.errors import ValidationError, require
from nodeloom.models.offload import keep_quantised, store_fp8

__all__ = ["CLIP_RECIPES", "WEIGHT_DTYPES", "build_sd3_clip", "load_diffusion_model", "load_text_encoders",
           "model_value"]

WEIGHT_DTYPES = ("default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2")

#: (CLIPLoader type, encoder architectures in file order) → the family whose prompts they encode
CLIP_RECIPES: dict[tuple[str, tuple[str, ...]], str] = {
    ("lumina2", ("qwen3",)): "z_image",
    ("flux", ("clip_l", "t5")): "flux",
    ("flux", ("t5", "clip_l")): "flux",
    ("flux2", ("qwen3",)): "flux2",
    ("flux2", ("mistral3",)): "flux2",
    ("chroma", ("t5",)): "chroma",
    ("lumina2", ("gemma2",)): "lumina2",
    ("ltxv", ("t5",)): "ltxv",
    ("qwen_image", ("qwen2.5_vl",)): "qwen_image",
    ("wan", ("umt5",)): "wan",
    ("hunyuan_video_15", ("qwen2.5_vl", "t5")): "hunyuan_video15",
    ("hunyuan_video", ("clip_l", "llama")): "hunyuan_video",
    ("hunyuan_video", ("llama", "clip_l")): "hunyuan_video",
}


def load_diffusion_model(path: str | Path, weight_dtype: str = "default", keep_fp8: bool = True) -> tuple[Any, Family]:
    """Load a diffusion-model file: ``(transformer module, family)`` on the CPU.

    Args:
        path: the file.
        weight_dtype: ComfyUI's UNETLoader choice: ``default`` keeps the file's precision (its fp8
            layers stay fp8), an fp8 choice stores the other Linear/Conv weights in that format too.
        keep_fp8: False dequantises an fp8 file's layers into float32 instead of keeping them.

    Raises:
        ModelNotFoundError: the file is missing.
        ValidationError: unreadable or truncated file, unknown family, a quantised format nodeloom
            cannot read, bad ``weight_dtype``.
    """
    if weight_dtype not in WEIGHT_DTYPES:
        raise ValidationError(f"`weight_dtype` must be one of {list(WEIGHT_DTYPES)}, got '{weight_dtype}'")
    header = read_header(path)
    cut = strip_prefix(header.shapes)
    shapes = {k[len(cut):]: v for k, v in header.shapes.items() if k.startswith(cut)}
    family = identify(header, shapes)
    torch = require("torch", "diffusion")
    quantised: dict[str, tuple[Any, Any]] | None = {} if keep_fp8 else None
    sd = load_weights(path, dtype=torch.float32, prefix=cut, quantised=quantised)
    module = family.load(sd, None)  # the weights are float32 already
    del sd
    if quantised:
        keep_quantised(module, quantised)
    if weight_dtype != "default":
        store_fp8(module, weight_dtype)
    return module, family


def model_value(module: Any, family: Family, name: str) -> DiffusionModel:
    """The MODEL value of a loaded transformer (the family's default flow schedule; a module that
    carries its own ``latent_scale``/``latent_shift``, per-channel for Wan, overrides the family's)."""
    return DiffusionModel(module, family.name, family.sampling(module), getattr(module, "latent_scale", family.latent_scale),
                          latent_shift=getattr(module, "latent_shift", family.latent_shift), adapter=family.adapter,
                          extra={"file": name, **({"video_mask": True} if getattr(module, "video_mask", family.video_mask) else {}),
                                 **({"joint_latent": True} if family.joint_latent else {}),
                                 **({"pad_context": True} if family.pad_context else {}),
                                 **({"area_crop": family.area_crop} if family.area_crop else {})})


def load_text_encoders(paths: Sequence[Path], clip_type: str, tokenizer_folders: Sequence[Path]) -> Any:
    """Load the text encoder file(s) a CLIP loader was given into a CLIP value.

    Raises:
        ModelNotFoundError: a file or the tokenizer folder is missing.
        ValidationError: a file that is not a text encoder, or a combination no family uses.
    """
    kinds = []
    for p in paths:
        header = read_header(p)
        kind = identify_encoder(header.shapes)
        if not kind:
            raise ValidationError(
                f"`{p.name}` is not a text encoder nodeloom knows (looked for Qwen3/Qwen2.5/Llama/Gemma"
                " `model.layers.*`, T5 `encoder.block.*`, CLIP `text_model.*` keys); diffusion models load with"
                " UNETLoader from models/diffusion_models, VAEs with VAELoader",
                type="unknown_text_encoder", extra_info={"name": p.name, "folder": str(p.parent)})
        kinds.append(kind)
    if clip_type == "sd3":
        torch = require("torch", "diffusion")
        sds = [load_weights(p, dtype=torch.float32, prefix="") for p in paths]
        return build_sd3_clip(sds, [Path(p) for p in paths], kinds, tokenizer_folders)
    if clip_type == "hidream":
        from nodeloom.diffusion.hidream_text import build_hidream_clip

        return build_hidream_clip([Path(p) for p in paths], kinds, tokenizer_folders)
    family = CLIP_RECIPES.get((clip_type, tuple(kinds)))
    if family is None and "gemma3" in kinds:
        raise ValidationError("Gemma 3 is LTX-2's text encoder: load it with LTXAVTextEncoderLoader (with the LTX-2"
                              " checkpoint), not a CLIP loader", type="unsupported_text_encoder",
                              extra_info={"names": [p.name for p in paths], "type": clip_type})
    if family is None:
        known = ", ".join(f"type `{t}` with {' + '.join(k)}" for t, k in CLIP_RECIPES) + \
            ", type `sd3` with clip_l + clip_g (+ t5), type `hidream` with any of clip_l, clip_g, t5, llama"
        raise ValidationError(
            f"text encoder(s) {', '.join(f'`{p.name}` ({k})' for p, k in zip(paths, kinds))} with type `{clip_type}`"
            f" are not a combination nodeloom can run yet; supported: {known}",
            type="unsupported_text_encoder", extra_info={"names": [p.name for p in paths], "type": clip_type})
    return _build_clip(family, [Path(p) for p in paths], kinds, tokenizer_folders)


def _build_clip(family: str, paths: list[Path], kinds: list[str], tokenizer_folders: Sequence[Path]) -> Any:
    transformers = require("transformers", "diffusion")
    torch = require("torch", "diffusion")
    llm = next(k for k in kinds if k != "clip_l")
    tok_dir = find_tokenizer(llm, tokenizer_folders, paths[kinds.index(llm)])
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    if family == "qwen_image":
        from nodeloom.diffusion.qwen_text import QwenImageClip, load_qwen25_vl, qwen_image_processor

        encoder = load_qwen25_vl(load_weights(paths[0], dtype=torch.float32, prefix=""), tokenizer, paths[0].name)
        return QwenImageClip(encoder, tokenizer, qwen_image_processor(tok_dir))
    if family == "hunyuan_video15":
        return _hunyuan_video15_clip(paths, tokenizer, tok_dir, tokenizer_folders)
    if family == "wan":
        from nodeloom.diffusion.wan_text import Umt5Clip, load_umt5

        return Umt5Clip(load_umt5(load_weights(paths[0], dtype=torch.float32, prefix=""), paths[0].name), tokenizer)
    encoders = {k: load_llm_encoder(k, load_weights(p, dtype=torch.float32, prefix=""), None, p.name)
                for p, k in zip(paths, kinds)}
    if family == "flux2":
        return flux2_clip(llm, encoders[llm], tokenizer)
    if family == "hunyuan_video":
        from nodeloom.diffusion.hunyuan_video_text import HunyuanVideoClip

        return HunyuanVideoClip(ClipModel((encoders["clip_l"],), "hunyuan_video"), encoders["llama"], tokenizer)
    if family == "chroma":
        return T5Clip(encoders["t5"], tokenizer, "chroma")
    if family == "lumina2":
        return lumina2_clip(encoders[llm], tokenizer)
    if family == "ltxv":
        from nodeloom.diffusion.families.ltxv import T5_TEMPLATE

        return LlmClip(encoders["t5"], tokenizer, family, template=T5_TEMPLATE, hidden_layer=-1)
    if family == "flux":
        return FluxClip(ClipModel((encoders["clip_l"],), "flux"), encoders["t5"], tokenizer)
    return LlmClip(encoders[llm], tokenizer, family, template=ZIMAGE_TEMPLATE)


def _hunyuan_video15_clip(paths: list[Path], tokenizer: Any, tok_dir: Path, tokenizer_folders: Sequence[Path]) -> Any:
    """HunyuanVideo 1.5's CLIP value: Qwen2.5-VL (first file) and the byT5 glyph encoder (second)."""
    torch = require("torch", "diffusion")
    from nodeloom.diffusion.hunyuan_video15_text import HunyuanVideo15Clip, byt5_tokenizer
    from nodeloom.diffusion.qwen_text import load_qwen25_vl

    encoder = load_qwen25_vl(load_weights(paths[0], dtype=torch.float32, prefix=""), tokenizer, paths[0].name)
    glyph = load_llm_encoder("t5", load_weights(paths[1], dtype=torch.float32, prefix=""), None, paths[1].name)
    folder = next((Path(f) / "byt5" for f in tokenizer_folders if (Path(f) / "byt5").is_dir()), None)
    return HunyuanVideo15Clip(encoder, tokenizer, glyph, byt5_tokenizer(folder))


def build_sd3_clip(sds: list[dict[str, Any]], paths: list[Path], kinds: list[str], tokenizer_folders: Sequence[Path],
                   width: int | None = None) -> Any:
    """SD3's CLIP value from the encoders' weights (``paths``: the files they came from, for messages):
    CLIP-L and CLIP-G told apart by width, T5 (and its tokenizer) when given. ``width``: the model's
    context width the CLIP states are padded to (default T5's, or 4096 without T5)."""
    widths = [_token_width(sd) for sd in sds]
    roles = sd3_roles(kinds, widths, [p.name for p in paths])
    clip_l = load_llm_encoder("clip_l", sds[roles["clip_l"]], None, paths[roles["clip_l"]].name)
    clip_g = load_llm_encoder("clip_g", sds[roles["clip_g"]], None, paths[roles["clip_g"]].name)
    t5 = tokenizer = None
    fallback = 4096  # ComfyUI pads the CLIP states to T5-XXL's width even without T5
    if "t5" in roles:
        t5_path = paths[roles["t5"]]
        transformers = require("transformers", "diffusion")
        tok_dir = find_tokenizer("t5", tokenizer_folders, t5_path)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
        t5 = load_llm_encoder("t5", sds[roles["t5"]], None, t5_path.name)
        fallback = t5.config.d_model
    return Sd3Clip(ClipModel((clip_l, clip_g), "sd3", layer_norm_hidden=False), t5, tokenizer, width or fallback)


def _token_width(sd: dict[str, Any]) -> int:
    for key in ("text_model.embeddings.token_embedding.weight", "embeddings.token_embedding.weight", "shared.weight"):
        if key in sd:
            return int(sd[key].shape[1])
    return 0
