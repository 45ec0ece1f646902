"""Text encoders from split files (CLIPLoader and kin): language-model encoders and their prompts.

:func:`identify_encoder` tells a text-encoder file's architecture from its keys and shapes
(Qwen3, Qwen2.5-VL, T5, CLIP-L/G, Gemma 2, Llama); :func:`load_llm_encoder` builds a
transformers model from the file with its config read from shapes. Tokenizer vocabularies are
not inside ComfyUI's text-encoder files and no installed package ships them, so they come from
``models/tokenizers/<name>`` (a Hugging Face tokenizer folder); :func:`find_tokenizer` names that
folder in its error. :class:`LlmClip` is the CLIP value of LLM-encoded families (Z-Image):
prompt template, hidden layer, and ``encode`` with the same contract as ``ClipModel.encode``.
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
from nodeloom.errors import ModelNotFoundError, ValidationError, require

__all__ = ["ENCODER_KINDS", "FluxClip", "LlmClip", "find_tokenizer", "identify_encoder", "load_llm_encoder",
           "placed_encoder", "single_prompt", "t5_ids", "t5_states"]

#: architecture → (tokenizer folder names accepted, in order), for the error messages
ENCODER_KINDS: dict[str, tuple[str, ...]] = {
    "qwen3": ("qwen3", "qwen2.5", "qwen"),
    "qwen2.5_vl": ("qwen2.5_vl", "qwen2.5", "qwen"),
    "t5": ("t5",),
    "umt5": ("umt5", "t5"),
    "clip_l": (),
    "clip_g": (),
    "gemma2": ("gemma2", "gemma"),
    "gemma3": ("gemma3", "gemma"),
    "llama": ("llama3", "llama"),
    "mistral3": ("mistral3", "mistral"),
}

#: the chat turn Z-Image's prompts are wrapped in (as the release and ComfyUI format them)
ZIMAGE_TEMPLATE = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"


def identify_encoder(shapes: dict[str, tuple[int, ...]]) -> str:
    """The architecture of a text-encoder file (a key of :data:`ENCODER_KINDS`), or ``""``."""
    keys = set(shapes)
    if {"model.layers.0.self_attn.q_norm.weight", "model.layers.0.pre_feedforward_layernorm.weight"} <= keys:
        return "gemma3"  # LTX-2's encoder (LTXAVTextEncoderLoader)
    if "model.layers.0.self_attn.q_norm.weight" in keys:
        return "qwen3"
    if "model.layers.0.pre_feedforward_layernorm.weight" in keys:
        return "gemma2"
    if "model.layers.0.self_attn.q_proj.bias" in keys:
        return "qwen2.5_vl"
    if "model.layers.0.self_attn.q_proj.weight" in keys:
        from nodeloom.diffusion.flux2_text import MISTRAL_VOCAB

        return "mistral3" if shapes.get("model.embed_tokens.weight", (0,))[0] == MISTRAL_VOCAB else "llama"
    if "encoder.block.0.layer.0.SelfAttention.q.weight" in keys:
        from nodeloom.diffusion.wan_text import is_umt5

        return "umt5" if is_umt5(shapes) else "t5"
    for prefix in ("text_model.", ""):
        emb = shapes.get(prefix + "embeddings.token_embedding.weight")
        if emb is not None and prefix + "encoder.layers.0.mlp.fc1.weight" in keys:
            return "clip_g" if emb[1] >= 1280 else "clip_l"
    return ""


def find_tokenizer(kind: str, folders: Sequence[Path], encoder_path: Path) -> Path:
    """The tokenizer folder for an encoder architecture: ``<folder>/<name>`` for the first
    accepted name that holds a ``tokenizer.json`` or ``tokenizer_config.json``.

    Raises:
        ModelNotFoundError: none found; the message names the folders and names searched.
    """
    names = ENCODER_KINDS.get(kind, ())
    for root in folders:
        for name in names:
            cand = Path(root) / name
            if (cand / "tokenizer.json").is_file() or (cand / "tokenizer_config.json").is_file():
                return cand
    searched = [str(Path(r) / n) for r in folders for n in names]
    raise ModelNotFoundError(
        f"no tokenizer for the {kind} text encoder `{encoder_path.name}`: put its Hugging Face tokenizer files"
        f" (tokenizer.json, tokenizer_config.json) in one of: {', '.join(searched) or 'models/tokenizers'}",
        extra_info={"name": encoder_path.name, "searched": searched},
    )


def _qwen3_config(shapes: dict[str, tuple[int, ...]]) -> Any:
    transformers = require("transformers", "diffusion")
    vocab, hidden = shapes["model.embed_tokens.weight"]
    head = shapes["model.layers.0.self_attn.q_norm.weight"][0]
    return transformers.Qwen3Config(
        vocab_size=vocab, hidden_size=hidden, head_dim=head,
        num_hidden_layers=_count(shapes, r"model\.layers\.(\d+)\."),
        intermediate_size=shapes["model.layers.0.mlp.gate_proj.weight"][0],
        num_attention_heads=shapes["model.layers.0.self_attn.q_proj.weight"][0] // head,
        num_key_value_heads=shapes["model.layers.0.self_attn.k_proj.weight"][0] // head,
        rope_theta=1000000.0, rms_norm_eps=1e-6, max_position_embeddings=40960, tie_word_embeddings=False,
    )


def _t5_config(shapes: dict[str, tuple[int, ...]]) -> Any:
    transformers = require("transformers", "diffusion")
    vocab, d_model = shapes["shared.weight"]
    heads = shapes["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"][1]
    return transformers.T5Config(
        vocab_size=vocab, d_model=d_model, num_heads=heads,
        d_kv=shapes["encoder.block.0.layer.0.SelfAttention.q.weight"][0] // heads,
        d_ff=shapes["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"][0],
        num_layers=_count(shapes, r"encoder\.block\.(\d+)\."), feed_forward_proj="gated-gelu",
        relative_attention_num_buckets=shapes["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"][0],
        is_encoder_decoder=False, use_cache=False, tie_word_embeddings=False)


def _clip_config(sd: dict[str, Any], kind: str = "clip_l") -> Any:
    """CLIP-L takes SD 1.x's conventions (quick GELU), CLIP-G SDXL's second encoder's (GELU, projection)."""
    transformers = require("transformers", "diffusion")
    from nodeloom.diffusion.detect import family_defaults, infer_clip_config

    prefix = "text_model." if "text_model.embeddings.token_embedding.weight" in sd else ""
    base = family_defaults("sdxl")["text_encoder_2"] if kind == "clip_g" else family_defaults("sd1")["text_encoder"]
    cfg = infer_clip_config(sd, prefix, base)
    if "text_projection.weight" in sd:
        cfg["projection_dim"] = sd["text_projection.weight"].shape[0]
    return transformers.CLIPTextConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "model_type")})


def load_llm_encoder(kind: str, sd: dict[str, Any], dtype: Any, name: str, projected: bool = False) -> Any:
    """A transformers encoder (no LM head) for a text-encoder file's weights: Qwen3, T5, CLIP-L or CLIP-G.

    ``projected``: CLIP-L keeps the file's ``text_projection`` too (HiDream pools CLIP-L projected;
    CLIP-G always keeps it).

    Raises:
        ValidationError: an architecture nodeloom cannot build yet, or weights that do not fit.
    """
    transformers = require("transformers", "diffusion")
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    if kind == "qwen3":
        model = transformers.Qwen3Model(_qwen3_config(shapes))
        weights = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    elif kind in ("mistral3", "llama"):
        from nodeloom.diffusion.flux2_text import llama_config

        model = (transformers.MistralModel if kind == "mistral3" else transformers.LlamaModel)(llama_config(shapes, kind))
        weights = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    elif kind == "gemma2":
        from nodeloom.diffusion.lumina_text import gemma2_config

        model = transformers.Gemma2Model(gemma2_config(shapes))
        weights = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    elif kind == "t5":
        model = transformers.T5EncoderModel(_t5_config(shapes))
        weights = dict(sd)
        weights.setdefault("encoder.embed_tokens.weight", sd["shared.weight"])
    elif kind in ("clip_l", "clip_g"):
        with_projection = (kind == "clip_g" or projected) and "text_projection.weight" in sd
        model = (transformers.CLIPTextModelWithProjection if with_projection else transformers.CLIPTextModel)(
            _clip_config(sd, kind))
        wrapped = any(k.startswith("text_model.") for k in model.state_dict())  # transformers < 5 nests the tower
        weights = {k if k.startswith("text_projection.") else ("text_model." if wrapped else "") + k.removeprefix(
            "text_model."): v for k, v in sd.items()}
    else:
        raise ValidationError(f"`{name}` is a {kind} text encoder, which nodeloom cannot load yet"
                              " (supported: qwen3, mistral3, llama, gemma2, t5, clip_l, clip_g)",
                              type="unsupported_text_encoder", extra_info={"name": name, "kind": kind})
    missing, _ = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing:
        raise ValidationError(f"`{name}` lacks {len(missing)} weights of a {kind} encoder, e.g. `{missing[0]}`",
                              type="invalid_model_file", extra_info={"name": name})
    return (model.to(dtype) if dtype is not None else model).eval()


def single_prompt(text: str, texts: Sequence[str] | None, family: str) -> str:
    """The one prompt of a one-encoder CLIP (``texts``, when given, must hold exactly one).

    Raises:
        ValidationError: several prompts given.
    """
    if texts is not None and len(texts) != 1:
        raise ValidationError(f"{len(texts)} prompts for 1 text encoder ({family})")
    return texts[0] if texts is not None else text


def placed_encoder(encoder: Any, manager: Any, cpu_only: bool) -> Any:
    """The encoder where it runs: the CPU in float32 for CLIPLoader's ``device: cpu``, else the
    manager's device and dtype (as loaded when there is no manager)."""
    torch = require("torch", "diffusion")
    if cpu_only:
        return encoder.to("cpu", torch.float32)
    return manager.prepare(encoder, dtype=accelerator_dtype(manager)) if manager is not None else encoder


@dataclass(frozen=True)
class LlmClip:
    """The CLIP value of a family encoded by a language model (Z-Image: Qwen3, layer −2).

    ``encode`` returns the hidden states of the prompt's real tokens (no padding) and no pooled
    output, as ComfyUI does for these families.
    """

    encoder: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    family: str
    template: str = "{}"
    hidden_layer: int = -2
    layer: int | None = None
    loras: tuple[LoraPatch, ...] = ()
    #: CLIPLoader's ``device: cpu`` — keep the encoder on the CPU whatever the engine's device
    cpu_only: bool = False
    #: let the tokenizer add its own markers (Gemma's ``<bos>``)
    special_tokens: bool = False

    def clone(self, **changes: Any) -> LlmClip:
        return dataclasses.replace(self, **changes)

    @property
    def encoders(self) -> tuple[Any, ...]:
        return (self.encoder,)

    def encode(self, text: str, manager: Any = None, embeddings: Callable[[str], Any] | None = None,
               texts: Sequence[str] | None = None) -> tuple[Any, Any]:
        """Encode a prompt: ``(cond [1, tokens, dim], None)`` on the CPU in float32.

        Raises:
            ValidationError: several prompts given (one encoder only).
        """
        torch = require("torch", "diffusion")
        prompt = single_prompt(text, texts, self.family)
        enc = placed_encoder(self.encoder, manager, self.cpu_only)
        dev = next(enc.parameters()).device
        ids = self.tokenizer(self.template.format(prompt), return_tensors="pt",
                             add_special_tokens=self.special_tokens).input_ids
        layer = self.hidden_layer if self.layer is None else self.layer
        with torch.no_grad():
            out = enc(input_ids=ids.to(dev), output_hidden_states=True)
        return out.hidden_states[layer].float().cpu(), None


@dataclass(frozen=True)
class FluxClip:
    """The CLIP value of Flux.1: CLIP-L gives the pooled vector, T5 the token states.

    As ComfyUI does, the T5 tokens (ending in ``</s>``) are padded with T5's pad token to at least
    ``min_length`` (256) and encoded without an attention mask; CLIP-L runs as for SD 1.x.
    """

    clip_l: Any = field(repr=False)  # a ClipModel holding the CLIP-L encoder
    t5: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    family: str = "flux"
    min_length: int = 256
    #: pad tokens always appended after ``</s>`` (T5TokenizerOptions)
    min_padding: int = 0
    layer: int | None = None
    loras: tuple[LoraPatch, ...] = ()
    cpu_only: bool = False

    def clone(self, **changes: Any) -> FluxClip:
        return dataclasses.replace(self, **changes)

    @property
    def encoders(self) -> tuple[Any, ...]:
        return (*self.clip_l.encoders, self.t5)

    def t5_ids(self, text: str) -> Any:
        """T5 token ids of ``text`` padded to ``min_length``, ``[1, n]``."""
        return t5_ids(self.tokenizer, text, self.min_length, self.min_padding)

    def encode(self, text: str, manager: Any = None, embeddings: Callable[[str], Any] | None = None,
               texts: Sequence[str] | None = None) -> tuple[Any, Any]:
        """``(T5 states [1, n, 4096], CLIP-L pooled [1, 768])`` on the CPU in float32 (``texts``: CLIP-L's, then T5's)."""
        clip_text, t5_text = (texts[0], texts[-1]) if texts else (text, text)
        clip_l = self.clip_l.clone(loras=self.clip_l.loras + self.loras) if self.loras else self.clip_l  # LoraLoader's CLIP-L part
        _, pooled = clip_l.encode(clip_text, None if self.cpu_only else manager, embeddings=embeddings)
        states = t5_states(self.t5, self.tokenizer, t5_text, self.min_length, manager, self.cpu_only, self.min_padding)
        return states, pooled


def t5_ids(tokenizer: Any, text: str, min_length: int, min_padding: int = 0) -> Any:
    """T5 token ids of ``text`` (ending in ``</s>``), then ``min_padding`` pad tokens, then padded
    to ``min_length``, ``[1, n]`` (ComfyUI's order)."""
    torch = require("torch", "diffusion")
    ids = list(tokenizer(text, add_special_tokens=True).input_ids) + [tokenizer.pad_token_id or 0] * min_padding
    ids += [tokenizer.pad_token_id or 0] * max(0, min_length - len(ids))
    return torch.tensor([ids])


def t5_states(t5: Any, tokenizer: Any, text: str, min_length: int, manager: Any, cpu_only: bool,
              min_padding: int = 0) -> Any:
    """T5's last hidden states of ``text`` (padded as :func:`t5_ids`, no attention mask), CPU float32."""
    torch = require("torch", "diffusion")
    if cpu_only or manager is None:
        enc = t5.to("cpu") if cpu_only else t5
    else:
        enc = manager.prepare(t5, dtype=accelerator_dtype(manager))
    dev = next(enc.parameters()).device
    with torch.no_grad():
        states = enc(input_ids=t5_ids(tokenizer, text, min_length, min_padding).to(dev)).last_hidden_state
    return states.float().cpu()
