"""LTX-2's text encoder (LTXAVTextEncoderLoader's CLIP): Gemma 3 from ComfyUI's
``gemma_3_12B_it*.safetensors`` (``model.layers.*`` keys; a vision tower beside it is skipped) and
the feature projection that sits in the LTX-2 checkpoint (``text_embedding_projection.aggregate_embed``).

Encoding, as LTX2Pipeline does for the prompt's tokens: Gemma's ``<bos>`` then the stripped prompt,
every hidden state (embeddings and each layer's output) stacked, each layer normalised over the
prompt's tokens (minus the mean, divided by the range, times 8), flattened and projected to the
caption width. The result is the prompt's CONDITIONING; the model's text connectors take it from
there (:mod:`nodeloom.diffusion.families.ltx2`). Sizes come from shapes; the 12B release's
attention pattern (5 sliding-window layers of 1024 then one global, global rotary positions
stretched 8×) is written in :func:`gemma3_config`. Imports no node or engine.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nodeloom.diffusion.lora import LoraPatch
from nodeloom.diffusion.text_encoders import placed_encoder, single_prompt
from nodeloom.errors import ValidationError, require

__all__ = ["PROJECTION_KEY", "LTXAVClip", "gemma3_config", "is_gemma3", "load_gemma3", "normalise_layers"]

PROJECTION_KEY = "text_embedding_projection.aggregate_embed.weight"
_GEMMA3 = ("model.layers.0.self_attn.q_norm.weight", "model.layers.0.pre_feedforward_layernorm.weight")


def is_gemma3(shapes: dict[str, Any]) -> bool:
    """True for a Gemma 3 text-encoder file (query/key norms and Gemma's four layer norms)."""
    return all(k in shapes for k in _GEMMA3)


def gemma3_config(shapes: dict[str, tuple[int, ...]]) -> Any:
    """A ``Gemma3TextConfig`` from a file's shapes, with the 12B release's conventions."""
    transformers = require("transformers", "diffusion")
    vocab, hidden = shapes["model.embed_tokens.weight"]
    head = shapes["model.layers.0.self_attn.q_norm.weight"][0]
    layers = len({m.group(1) for k in shapes if (m := re.match(r"model\.layers\.(\d+)\.", k))})
    return transformers.Gemma3TextConfig(
        vocab_size=vocab, hidden_size=hidden, head_dim=head, num_hidden_layers=layers,
        num_attention_heads=shapes["model.layers.0.self_attn.q_proj.weight"][0] // head,
        num_key_value_heads=shapes["model.layers.0.self_attn.k_proj.weight"][0] // head,
        intermediate_size=shapes["model.layers.0.mlp.gate_proj.weight"][0], query_pre_attn_scalar=head,
        sliding_window=1024, rms_norm_eps=1e-6, max_position_embeddings=131072,
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                         "full_attention": {"rope_type": "linear", "rope_theta": 1000000.0, "factor": 8.0}})


def load_gemma3(sd: dict[str, Any], name: str) -> Any:
    """A ``Gemma3TextModel`` (eval, float32) from a file's weights (``model.`` or
    ``model.language_model.`` keys; vision weights ignored).

    Raises:
        ValidationError: not a Gemma 3 file, or weights missing.
    """
    transformers = require("transformers", "diffusion")
    sd = {("model." + k[len("model.language_model."):] if k.startswith("model.language_model.") else k): v
          for k, v in sd.items()}
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    if not is_gemma3(shapes):
        raise ValidationError(f"`{name}` is not a Gemma 3 text encoder (looked for `{_GEMMA3[0]}` and `{_GEMMA3[1]}`);"
                              " LTX-2 prompts are encoded by Gemma 3 12B (gemma_3_12B_it*.safetensors)",
                              type="unknown_text_encoder", extra_info={"name": name})
    model = transformers.Gemma3TextModel(gemma3_config(shapes))
    missing, _ = model.load_state_dict({k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")},
                                       strict=False)
    if missing:
        raise ValidationError(f"`{name}` lacks {len(missing)} weights of a Gemma 3 encoder, e.g. `{missing[0]}`",
                              type="invalid_model_file", extra_info={"name": name})
    return model.float().eval()


def normalise_layers(states: Any, scale: float = 8.0, eps: float = 1e-6) -> Any:
    """``[B, T, D, L]`` stacked hidden states (every token real) → ``[B, T, D·L]``: each layer minus
    its mean over tokens and features, over its range, times ``scale`` (LTX-2.0's feature norm)."""
    mean = states.mean(dim=(1, 2), keepdim=True)
    low = states.amin(dim=(1, 2), keepdim=True)
    high = states.amax(dim=(1, 2), keepdim=True)
    return ((states - mean) / (high - low + eps) * scale).flatten(2)


@dataclass(frozen=True)
class LTXAVClip:
    """The CLIP value of LTX-2: Gemma 3 and the checkpoint's feature projection."""

    encoder: Any = field(repr=False)
    projection: Any = field(repr=False)  # torch.nn.Linear, caption width ← width × (layers + 1)
    tokenizer: Any = field(repr=False)
    family: str = "ltx2"
    layer: int | None = None
    loras: tuple[LoraPatch, ...] = ()
    cpu_only: bool = False

    def clone(self, **changes: Any) -> LTXAVClip:
        return dataclasses.replace(self, **changes)

    @property
    def encoders(self) -> tuple[Any, ...]:
        return (self.encoder, self.projection)

    def encode(self, text: str, manager: Any = None, embeddings: Callable[[str], Any] | None = None,
               texts: Sequence[str] | None = None) -> tuple[Any, Any]:
        """Encode a prompt: ``(features [1, tokens, caption width], None)`` on the CPU in float32.

        Raises:
            ValidationError: several prompts given.
        """
        torch = require("torch", "diffusion")
        prompt = single_prompt(text, texts, self.family).strip()
        enc = placed_encoder(self.encoder, manager, self.cpu_only)
        dev = next(enc.parameters()).device
        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=True).input_ids
        with torch.no_grad():
            out = enc(input_ids=ids.to(dev), output_hidden_states=True)
            states = torch.stack(out.hidden_states, dim=-1).float()
            proj = self.projection.to(states.device, torch.float32)
            if proj.in_features != states.shape[2] * states.shape[3]:
                raise ValidationError(f"the LTX-2 feature projection takes {proj.in_features} features but this Gemma 3"
                                      f" gives {states.shape[2]}×{states.shape[3]}: the text encoder and the checkpoint"
                                      " do not belong together")
            return proj(normalise_layers(states)).float().cpu(), None
