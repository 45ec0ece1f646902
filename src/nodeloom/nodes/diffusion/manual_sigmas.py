"""``ManualSigmas``: a noise schedule typed in as text (every number in the string, in order)."""

from __future__ import annotations

import re

import torch

from nodeloom.node_api import Node, Output, Schema, String, ValidationError

__all__ = ["ManualSigmas", "parse_sigmas"]

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def parse_sigmas(text: str) -> torch.Tensor:
    """Every number in ``text`` (commas, spaces or anything else between them) as a float tensor."""
    if not isinstance(text, str):
        raise ValidationError(f"`sigmas` must be text such as '1, 0.5', got {type(text).__name__}")
    values = [float(v) for v in _NUMBER.findall(text)]
    if not values:
        raise ValidationError(f"`sigmas` holds no number, got {text!r}; write them like '1, 0.5, 0.1'")
    return torch.tensor(values, dtype=torch.float32)


class ManualSigmas(Node):
    """A custom sequence of noise levels (sigmas), typed as numbers, for the custom sampling nodes."""

    SCHEMA = Schema(
        "ManualSigmas", display_name="ManualSigmas", category="_for_testing/custom_sampling",
        inputs=[String("sigmas", "1, 0.5", tooltip="The sigmas, highest first: every number in the text, e.g. '1, 0.5, 0.1'.")],
        outputs=[Output("SIGMAS", "SIGMAS", tooltip="The schedule for SamplerCustom / SamplerCustomAdvanced.")],
    )

    @classmethod
    def execute(cls, sigmas: str) -> tuple[torch.Tensor]:
        return (parse_sigmas(sigmas),)
