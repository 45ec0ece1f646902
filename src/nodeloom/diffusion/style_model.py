"""Style models: Flux Redux — a two-layer projection (up ×3, SiLU, down) from SigLIP vision
tokens to the text encoder's width, whose tokens are appended to a conditioning.

Owns reading a Redux ``.safetensors`` (``redux_up`` / ``redux_down``; sizes from the weights)
and projecting a ``CLIP_VISION_OUTPUT``. Imports no node code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nodeloom.errors import ValidationError

__all__ = ["ReduxEncoder", "StyleModel", "load_style_model"]


class ReduxEncoder(torch.nn.Module):
    """``down(silu(up(x)))``: vision width → 3 × text width → text width."""

    def __init__(self, vision_dim: int = 1152, text_dim: int = 4096) -> None:
        super().__init__()
        self.redux_up = torch.nn.Linear(vision_dim, text_dim * 3)
        self.redux_down = torch.nn.Linear(text_dim * 3, text_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.redux_down(torch.nn.functional.silu(self.redux_up(tokens)))


class StyleModel:
    """A loaded style model (ComfyUI's ``STYLE_MODEL``): turns vision tokens into text tokens."""

    def __init__(self, encoder: ReduxEncoder, path: Path) -> None:
        self.encoder, self.path = encoder, path

    def get_cond(self, clip_vision_output: Any) -> torch.Tensor:
        """``[B, tokens, text_dim]`` from the vision output's ``last_hidden_state``.

        Raises:
            ValidationError: the vision tokens' width is not the one the model was trained on.
        """
        tokens = clip_vision_output["last_hidden_state"]
        width = self.encoder.redux_up.in_features
        if tokens.shape[-1] != width:
            raise ValidationError(f"`clip_vision_output` tokens are {tokens.shape[-1]} wide; style model "
                                  f"`{self.path.name}` takes {width} (Redux pairs with a SigLIP vision model)")
        p = next(self.encoder.parameters())
        with torch.inference_mode():
            return self.encoder(tokens.to(p.device, p.dtype)).float().cpu()


def load_style_model(path: str | Path) -> StyleModel:
    """Read a Redux style model file.

    Raises:
        ValidationError: the file is not a Flux Redux model (other style models are not supported).
    """
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix.lower() not in (".safetensors", ".sft"):
        raise ValidationError(f"style model `{path.name}` must be a .safetensors file")
    sd = load_file(str(path))
    if "redux_up.weight" not in sd or "redux_down.weight" not in sd:
        kind = "a T2I style adapter" if "style_embedding" in sd else "not a style model nodeloom knows"
        raise ValidationError(f"style model `{path.name}` is {kind}; only Flux Redux files "
                              "(`redux_up` / `redux_down` weights) are supported")
    text3, vision = sd["redux_up.weight"].shape
    encoder = ReduxEncoder(int(vision), int(text3) // 3)
    encoder.load_state_dict(sd)
    return StyleModel(encoder.eval(), path)
