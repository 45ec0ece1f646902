"""HiDream's text encoding (QuadrupleCLIPLoader, and CLIPLoader/DualCLIPLoader type hidream):
CLIP-L's and CLIP-G's projected pooled vectors side by side, T5-XXL's states of the first 128
tokens (attention-masked padding), and every hidden layer of Llama 3.1 after the embeddings
(``[1, layers, tokens, width]``, the prompt after ``<|begin_of_text|>`` padded with
``<|eot_id|>`` to at least 128 tokens, masked) — as ComfyUI encodes HiDream prompts. An encoder
that is not given is replaced by ComfyUI's zeros (pooled 768 + 1280, T5 128 × 4096, Llama
32 × 1 × 4096). Imports no node, engine or adapter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeloom.diffusion.lora import LoraPatch
from nodeloom.diffusion.models import ClipModel
from nodeloom.diffusion.single_file import load_weights
from nodeloom.diffusion.text_encoders import find_tokenizer, load_llm_encoder, placed_encoder
from nodeloom.errors import ValidationError, require

__all__ = ["HiDreamClip", "HiDreamTokens", "build_hidream_clip", "hidream_roles"]

#: tokens T5 reads (the first chunk only) and the least the Llama prompt is padded to
T5_LENGTH, LLAMA_MIN_LENGTH = 128, 128
_ROLES = ("clip_l", "clip_g", "t5", "llama")
#: ComfyUI's token keys of a HiDream prompt, in the order :meth:`HiDreamClip.encode_conditioning` takes texts
_TOKEN_KEYS = ("l", "g", "t5xxl", "llama")


class HiDreamTokens(dict):  # type: ignore[type-arg]
    """ComfyUI-style HiDream tokens: ``{"l", "g", "t5xxl", "llama"}`` → the text that part encodes.

    nodeloom encodes from text, so a pack that mixes parts the way ComfyUI's CLIPTextEncodeHiDream
    does (``tokens["l"] = clip.tokenize(other)["l"]``) gets each part's own prompt.
    """


def hidream_roles(kinds: Sequence[str], widths: Sequence[int], names: Sequence[str]) -> dict[str, int]:
    """Which given file plays which part (``{role: index}``), in any order: of two CLIP encoders the
    narrower is CLIP-L; a lone CLIP is what its width says.

    Raises:
        ValidationError: a file HiDream does not use, or two files for one part.
    """
    roles: dict[str, int] = {}
    clips = [i for i, k in enumerate(kinds) if k in ("clip_l", "clip_g")]
    if len(clips) == 2:
        low, high = sorted(clips, key=lambda i: widths[i])
        roles.update(clip_l=low, clip_g=high)
    elif len(clips) == 1:
        roles[kinds[clips[0]]] = clips[0]
    for i, kind in enumerate(kinds):
        if kind in ("t5", "llama") and kind not in roles:
            roles[kind] = i
    if len(roles) != len(kinds):
        given = ", ".join(f"`{n}` ({k})" for n, k in zip(names, kinds))
        raise ValidationError(f"HiDream text encoding takes at most one each of clip_l, clip_g, t5xxl and"
                              f" llama-3.1; got {given}", type="unsupported_text_encoder",
                              extra_info={"names": list(names)})
    return roles


@dataclass(frozen=True)
class HiDreamClip:
    """The CLIP value of HiDream: any of CLIP-L, CLIP-G (one-encoder :class:`ClipModel` each), T5-XXL
    and Llama 3.1 with their tokenizers."""

    clip_l: ClipModel | None = field(repr=False)
    clip_g: ClipModel | None = field(repr=False)
    t5: Any = field(repr=False)
    t5_tokenizer: Any = field(repr=False)
    llama: Any = field(repr=False)
    llama_tokenizer: Any = field(repr=False)
    family: str = "hidream"
    layer: int | None = None  # CLIPSetLastLayer's value; HiDream reads fixed layers
    loras: tuple[LoraPatch, ...] = ()
    cpu_only: bool = False

    def clone(self, **changes: Any) -> HiDreamClip:
        return dataclasses.replace(self, **changes)

    @property
    def encoders(self) -> tuple[Any, ...]:
        clips = [c.encoders[0] for c in (self.clip_l, self.clip_g) if c is not None]
        return (*clips, *(e for e in (self.t5, self.llama) if e is not None))

    def tokenize(self, text: str, return_word_ids: bool = False, **_: Any) -> HiDreamTokens:
        """ComfyUI's ``clip.tokenize`` for packs: every part reads ``text``."""
        return HiDreamTokens({key: text for key in _TOKEN_KEYS})

    def encode_from_tokens_scheduled(self, tokens: Any, unprojected: bool = False,
                                     add_dict: dict[str, Any] | None = None) -> list[Any]:
        """A CONDITIONING list from :meth:`tokenize` tokens (encoded on the CPU).

        Raises:
            TypeError: ``tokens`` were not made by :meth:`tokenize`.
        """
        if not isinstance(tokens, HiDreamTokens) or any(not isinstance(tokens.get(k), str) for k in _TOKEN_KEYS):
            raise TypeError("`encode_from_tokens_scheduled` needs tokens from this HiDream CLIP's `tokenize`"
                            f" (keys {list(_TOKEN_KEYS)}), got {type(tokens).__name__}")
        cond, extra = self.encode_conditioning(tokens["t5xxl"], texts=[tokens[k] for k in _TOKEN_KEYS])
        return [[cond, {**extra, **(add_dict or {})}]]

    def encode_from_tokens(self, tokens: Any, return_pooled: bool = False, return_dict: bool = False) -> Any:
        """ComfyUI's return forms (cond, ``(cond, pooled)`` or a dict with the Llama layers too)."""
        (cond, extra), = self.encode_from_tokens_scheduled(tokens)
        if return_dict:
            return {"cond": cond, **extra}
        return (cond, extra["pooled_output"]) if return_pooled else cond

    def encode(self, text: str, manager: Any = None, embeddings: Callable[[str], Any] | None = None,
               texts: Sequence[str] | None = None) -> tuple[Any, Any]:
        """``(T5 states [1, 128, width], pooled [1, L + G])``; the Llama layers need :meth:`encode_conditioning`."""
        cond, extra = self.encode_conditioning(text, manager, embeddings, texts)
        return cond, extra["pooled_output"]

    def encode_conditioning(self, text: str, manager: Any = None, embeddings: Callable[[str], Any] | None = None,
                            texts: Sequence[str] | None = None) -> tuple[Any, dict[str, Any]]:
        """``(T5 states, {"pooled_output", "conditioning_llama3"})`` on the CPU in float32.

        ``texts``: one prompt per part — CLIP-L's, CLIP-G's, T5's, Llama's (CLIPTextEncodeHiDream).

        Raises:
            ValidationError: not four prompts in ``texts``.
        """
        torch = require("torch", "diffusion")
        if texts is not None and len(texts) != 4:
            raise ValidationError(f"HiDream takes 4 prompts (clip_l, clip_g, t5xxl, llama), got {len(texts)}")
        prompts = list(texts) if texts is not None else [text] * 4
        mgr = None if self.cpu_only else manager
        pooled = []
        for clip, prompt, width in ((self.clip_l, prompts[0], 768), (self.clip_g, prompts[1], 1280)):
            pooled.append(clip.encode(prompt, mgr, embeddings=embeddings)[1] if clip is not None
                          else torch.zeros(1, width))
        t5 = self._t5(prompts[2], manager) if self.t5 is not None else torch.zeros(1, T5_LENGTH, 4096)
        llama = self._llama(prompts[3], manager) if self.llama is not None else torch.zeros(1, 32, 1, 4096)
        return t5, {"pooled_output": torch.cat(pooled, dim=-1), "conditioning_llama3": llama}

    def _t5(self, text: str, manager: Any) -> Any:
        torch = require("torch", "diffusion")
        enc = placed_encoder(self.t5, manager, self.cpu_only)
        dev = next(enc.parameters()).device
        batch = self.t5_tokenizer(text, padding="max_length", max_length=T5_LENGTH, truncation=True,
                                  return_tensors="pt")
        with torch.no_grad():
            out = enc(input_ids=batch.input_ids.to(dev), attention_mask=batch.attention_mask.to(dev))
        return out.last_hidden_state.float().cpu()

    def _llama(self, text: str, manager: Any) -> Any:
        torch = require("torch", "diffusion")
        tok = self.llama_tokenizer
        enc = placed_encoder(self.llama, manager, self.cpu_only)
        dev = next(enc.parameters()).device
        ids = list(tok(text, add_special_tokens=True).input_ids)
        pad = tok.convert_tokens_to_ids("<|eot_id|>")
        if pad is None or pad == tok.unk_token_id:
            pad = tok.eos_token_id
        real = len(ids)
        ids += [pad] * max(0, LLAMA_MIN_LENGTH - real)
        mask = torch.zeros(1, len(ids), dtype=torch.long)
        mask[:, :real] = 1
        with torch.no_grad():
            out = enc(input_ids=torch.tensor([ids], device=dev), attention_mask=mask.to(dev),
                      output_hidden_states=True)
        return torch.stack([h.float().cpu() for h in out.hidden_states[1:]], dim=1)


def _width(sd: dict[str, Any]) -> int:
    for key in ("text_model.embeddings.token_embedding.weight", "embeddings.token_embedding.weight"):
        if key in sd:
            return int(sd[key].shape[1])
    return 0


def build_hidream_clip(paths: Sequence[Path], kinds: Sequence[str], tokenizer_folders: Sequence[Path]) -> HiDreamClip:
    """HiDream's CLIP value from the given encoder files (``kinds``: their architectures).

    Raises:
        ValidationError: a file HiDream does not use or two for one part.
        ModelNotFoundError: T5's or Llama's tokenizer folder is missing.
    """
    torch = require("torch", "diffusion")
    transformers = require("transformers", "diffusion")
    sds = [load_weights(p, dtype=torch.float32, prefix="") for p in paths]
    roles = hidream_roles(kinds, [_width(sd) for sd in sds], [Path(p).name for p in paths])
    parts: dict[str, Any] = {}
    for role in _ROLES:
        if role not in roles:
            continue
        i = roles[role]
        encoder = load_llm_encoder(role, sds[i], None, Path(paths[i]).name, projected=role == "clip_l")
        if role in ("clip_l", "clip_g"):
            parts[role] = ClipModel((encoder,), "hidream", layer_norm_hidden=False)
            continue
        tok_dir = find_tokenizer(role, tokenizer_folders, Path(paths[i]))
        parts[role] = encoder
        parts[role + "_tokenizer"] = transformers.AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    return HiDreamClip(parts.get("clip_l"), parts.get("clip_g"), parts.get("t5"), parts.get("t5_tokenizer"),
                       parts.get("llama"), parts.get("llama_tokenizer"))
