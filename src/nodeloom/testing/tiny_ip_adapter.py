"""Tiny random-weight IP-Adapter files, in the key layout of the released files, for tests.

:func:`save_tiny_ip_adapter` reads the cross-attention layers of a diffusers UNet and writes a
standard IP-Adapter (``image_proj.proj`` / ``image_proj.norm``) or a Plus one (a perceiver
resampler's tensors) with one ``to_k_ip`` /
``to_v_ip`` pair per cross-attention layer, key ids 1, 3, 5…) as ``.safetensors`` or as a
``.bin`` of two dicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["save_tiny_faceid_adapter", "save_tiny_flux_ip_adapter", "save_tiny_ip_adapter", "tiny_plus_projection"]

#: diffusers' resampler names → the released files' (``layers.N.`` prefix kept)
_PLUS_NAMES = {"ln0": "0.norm1", "ln1": "0.norm2", "attn.to_q": "0.to_q", "attn.to_out.0": "0.to_out", "ff.0": "1.0",
               "ff.1.net.0.proj": "1.1", "ff.1.net.2": "1.3"}


def tiny_plus_projection(image_embed_dim: int, width: int, seed: int = 0) -> tuple[Any, dict[str, Any]]:
    """A random Plus resampler (diffusers' module; 4 layers, 1 head of 64, 4 queries) and its
    tensors in the released layout (``layers.N.0.to_kv`` fused, ``layers.N.1.{0,1,3}`` feed-forward)."""
    import torch
    from diffusers.models.embeddings import IPAdapterPlusImageProjection

    torch.manual_seed(seed)
    module = IPAdapterPlusImageProjection(embed_dims=image_embed_dim, output_dims=width, hidden_dims=64, heads=1,
                                          num_queries=4).eval()
    released: dict[str, Any] = {}
    sd = module.state_dict()
    for key, value in sd.items():
        if not key.startswith("layers."):
            released[key] = value
            continue
        _, i, rest = key.split(".", 2)
        if rest.startswith(("attn.to_k.", "attn.to_v.")):
            if rest.startswith("attn.to_k."):
                released[f"layers.{i}.0.to_kv.weight"] = torch.cat([value, sd[f"layers.{i}.attn.to_v.weight"]])
            continue
        stem, leaf = rest.rsplit(".", 1)
        released[f"layers.{i}.{_PLUS_NAMES[stem]}.{leaf}"] = value
    return module, released


def save_tiny_ip_adapter(unet: Any, path: Path, image_embed_dim: int, tokens: int = 4, seed: int = 0,
                         scale: float = 0.5, plus: bool = False) -> Path:
    """Write a random IP-Adapter for ``unet``: standard (reading ``image_embed_dim``-wide image
    embeddings) or, with ``plus``, a Plus resampler (reading hidden states that wide)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    width = int(unet.config.cross_attention_dim)
    if plus:
        proj = tiny_plus_projection(image_embed_dim, width, seed)[1]
    else:
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


def save_tiny_flux_ip_adapter(transformer: Any, path: Path, image_embed_dim: int, tokens: int = 4, seed: int = 0,
                              scale: float = 0.5) -> Path:
    """Write a random XLabs Flux IP-Adapter for a diffusers ``FluxTransformer2DModel``: the
    projection (``ip_adapter_proj_model.proj``/``.norm``) and one biased k/v pair per double block
    (``double_blocks.N.processor.ip_adapter_double_stream_{k,v}_proj``)."""
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    width = int(transformer.config.joint_attention_dim)
    inner = int(transformer.transformer_blocks[0].attn.to_q.out_features)
    flat = {"ip_adapter_proj_model.proj.weight": torch.randn(tokens * width, image_embed_dim, generator=gen) * scale,
            "ip_adapter_proj_model.proj.bias": torch.randn(tokens * width, generator=gen) * 0.1,
            "ip_adapter_proj_model.norm.weight": 1.0 + torch.randn(width, generator=gen) * 0.1,
            "ip_adapter_proj_model.norm.bias": torch.randn(width, generator=gen) * 0.1}
    for i in range(len(transformer.transformer_blocks)):
        for part in ("k", "v"):
            stem = f"double_blocks.{i}.processor.ip_adapter_double_stream_{part}_proj"
            flat[f"{stem}.weight"] = torch.randn(inner, width, generator=gen) * scale
            flat[f"{stem}.bias"] = torch.randn(inner, generator=gen) * 0.1
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in flat.items()}, str(path))
    return path


def _faceid_plus_projection(id_dim: int, clip_dim: int, width: int, seed: int) -> dict[str, Any]:
    """A random FaceID Plus projection (diffusers' module: 4 resampler layers, 1 head of 64) in the
    released layout (``proj.{0,2}``, ``norm``, ``perceiver_resampler.*`` with ``to_kv`` fused)."""
    import torch
    from diffusers.models.embeddings import IPAdapterFaceIDPlusImageProjection

    torch.manual_seed(seed)
    module = IPAdapterFaceIDPlusImageProjection(embed_dims=width, output_dims=width, hidden_dims=clip_dim, heads=1,
                                                id_embeddings_dim=id_dim)
    sd = module.state_dict()
    names = {"ln0": "0.norm1", "ln1": "0.norm2", "attn.to_q": "0.to_q", "attn.to_out.0": "0.to_out", "ff.0": "1.0",
             "ff.1.net.0.proj": "1.1", "ff.1.net.2": "1.3"}
    released: dict[str, Any] = {}
    for key, value in sd.items():
        if key.startswith("proj.net."):
            released[key.replace("proj.net.0.proj", "proj.0").replace("proj.net.2", "proj.2")] = value
        elif key.startswith("norm."):
            released[key] = value
        elif not key.startswith("layers."):
            released[f"perceiver_resampler.{key}"] = value
        else:
            _, i, rest = key.split(".", 2)
            stem, leaf = rest.rsplit(".", 1)
            if stem == "attn.to_k":
                released[f"perceiver_resampler.layers.{i}.0.to_kv.weight"] = torch.cat(
                    [value, sd[f"layers.{i}.attn.to_v.weight"]])
            elif stem != "attn.to_v":
                released[f"perceiver_resampler.layers.{i}.{names[stem]}.{leaf}"] = value
    return released


def save_tiny_faceid_adapter(unet: Any, path: Path, id_dim: int = 512, tokens: int = 4, seed: int = 0,
                             scale: float = 0.5, clip_dim: int | None = None) -> Path:
    """Write a random FaceID IP-Adapter for ``unet`` (``.bin``, as the FaceID files ship): the
    identity MLP (``proj.0``, ``proj.2``, ``norm``) or, with ``clip_dim``, FaceID Plus's resampler
    over CLIP hidden states that wide; the ``to_k_ip`` / ``to_v_ip`` pairs and one LoRA tensor of
    the released files (which the adapter does not use: its LoRA ships as a separate file)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    width = int(unet.config.cross_attention_dim)
    if clip_dim is not None:
        proj = _faceid_plus_projection(id_dim, clip_dim, width, seed)
    else:
        proj = {"proj.0.weight": torch.randn(id_dim, id_dim, generator=gen) * 0.1,
                "proj.0.bias": torch.randn(id_dim, generator=gen) * 0.1,
                "proj.2.weight": torch.randn(tokens * width, id_dim, generator=gen) * scale,
                "proj.2.bias": torch.randn(tokens * width, generator=gen) * 0.1,
                "norm.weight": 1.0 + torch.randn(width, generator=gen) * 0.1,
                "norm.bias": torch.randn(width, generator=gen) * 0.1}
    layers = {"0.to_q_lora.down.weight": torch.randn(4, width, generator=gen)}
    for i, attn in enumerate([m for n, m in unet.named_modules() if n.endswith(".attn2")]):
        inner = int(attn.to_k.out_features)
        layers[f"{2 * i + 1}.to_k_ip.weight"] = torch.randn(inner, width, generator=gen) * scale
        layers[f"{2 * i + 1}.to_v_ip.weight"] = torch.randn(inner, width, generator=gen) * scale
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"image_proj": proj, "ip_adapter": layers}, path)
    return path
