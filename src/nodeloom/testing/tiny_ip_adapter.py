"""Tiny random-weight IP-Adapter files, in the key layout of the released files, for tests.

:func:`save_tiny_ip_adapter` reads the cross-attention layers of a diffusers UNet and writes a
standard IP-Adapter (``image_proj.proj`` / ``image_proj.norm`` and one ``to_k_ip`` /
``to_v_ip`` pair per cross-attention layer, key ids 1, 3, 5…) as ``.safetensors`` or as a
``.bin`` of two dicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["save_tiny_ip_adapter"]


def save_tiny_ip_adapter(unet: Any, path: Path, image_embed_dim: int, tokens: int = 4, seed: int = 0,
                         scale: float = 0.5) -> Path:
    """Write a random standard IP-Adapter for ``unet`` reading ``image_embed_dim``-wide embeddings."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    width = int(unet.config.cross_attention_dim)
    proj = {"proj.weight": torch.randn(tokens * width, image_embed_dim, generator=gen) * scale,
            "proj.bias": torch.randn(tokens * width, generator=gen) * 0.1,
            "norm.weight": 1.0 + torch.randn(width, generator=gen) * 0.1,
            "norm.bias": torch.randn(width, generator=gen) * 0.1}
    layers = {}
    cross = [m for n, m in unet.named_modules() if n.endswith(".attn2")]
    for i, attn in enumerate(cross):
        inner = int(attn.to_k.out_features)
        layers[f"{2 * i + 1}.to_k_ip.weight"] = torch.randn(inner, width, generator=gen) * scale
        layers[f"{2 * i + 1}.to_v_ip.weight"] = torch.randn(inner, width, generator=gen) * scale
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".bin":
        torch.save({"image_proj": proj, "ip_adapter": layers}, path)
    else:
        from safetensors.torch import save_file

        flat = {f"image_proj.{k}": v.contiguous() for k, v in proj.items()}
        flat.update({f"ip_adapter.{k}": v.contiguous() for k, v in layers.items()})
        save_file(flat, str(path))
    return path
