"""Tiny random-weight upscale models in the key layouts users download, for tests.

* :func:`rrdbnet_basicsr` — RRDBNet as BasicSR / Real-ESRGAN save it (``conv_first``,
  ``body.N.rdbK.convJ``, ``conv_body``, ``conv_up1/2``, ``conv_hr``, ``conv_last``); scale 2 and 1
  use the pixel-unshuffle front (``conv_first`` takes 4x / 16x the input channels), as
  RealESRGAN_x2plus does.
* :func:`rrdbnet_esrgan` — the same weights renamed to the original ESRGAN layout
  (``model.0``, ``model.1.sub.N.RDBK.convJ.0``, ``model.3/6/8/10``), scale 4 only.
* :func:`srvgg_compact` — SRVGGNetCompact (realesr-general-x4v3, animevideov3):
  ``body.0`` conv, ``body.1`` PReLU, ..., a last conv to ``out * scale²`` channels.

Weights are drawn from a seeded generator, scaled small so outputs stay inside 0..1.
"""

from __future__ import annotations

from typing import Any

__all__ = ["rrdbnet_basicsr", "rrdbnet_esrgan", "srvgg_compact"]


def _conv(gen: Any, cout: int, cin: int, std: float = 0.05) -> dict[str, Any]:
    import torch

    return {"weight": torch.randn(cout, cin, 3, 3, generator=gen) * std,
            "bias": torch.randn(cout, generator=gen) * 0.01}


def rrdbnet_basicsr(scale: int = 4, nf: int = 8, nb: int = 2, channels: int = 3, seed: int = 0) -> dict[str, Any]:
    """A random RRDBNet state dict in BasicSR's key layout (scale 4, or 2/1 with pixel-unshuffle).

    The growth channels are 32, as in every released RRDBNet (spandrel assumes it).
    """
    import torch

    if scale not in (1, 2, 4):
        raise ValueError(f"`scale` must be 1, 2 or 4, got {scale}")
    gc = 32
    gen = torch.Generator().manual_seed(seed)
    layers: dict[str, dict[str, Any]] = {"conv_first": _conv(gen, nf, channels * (4 // scale) ** 2)}
    for i in range(nb):
        for k in (1, 2, 3):
            for j in range(1, 6):
                layers[f"body.{i}.rdb{k}.conv{j}"] = _conv(gen, gc if j < 5 else nf, nf + (j - 1) * gc)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        layers[name] = _conv(gen, nf, nf)
    layers["conv_last"] = _conv(gen, channels, nf)
    layers["conv_last"]["bias"] += 0.5  # centre the output in 0..1, away from the clamp
    return {f"{layer}.{p}": t for layer, params in layers.items() for p, t in params.items()}


def rrdbnet_esrgan(basicsr: dict[str, Any]) -> dict[str, Any]:
    """Rename a scale-4 :func:`rrdbnet_basicsr` state dict to the original ESRGAN layout."""
    nb = 1 + max(int(k.split(".")[1]) for k in basicsr if k.startswith("body."))
    fixed = {"conv_first": "model.0", "conv_body": f"model.1.sub.{nb}", "conv_up1": "model.3",
             "conv_up2": "model.6", "conv_hr": "model.8", "conv_last": "model.10"}
    out = {}
    for key, value in basicsr.items():
        layer, param = key.rsplit(".", 1)
        if layer in fixed:
            out[f"{fixed[layer]}.{param}"] = value
        else:  # body.i.rdbK.convJ -> model.1.sub.i.RDBK.convJ.0
            _, i, rdb, conv = layer.split(".")
            out[f"model.1.sub.{i}.RDB{rdb[3:]}.{conv}.0.{param}"] = value
    return out


def srvgg_compact(scale: int = 4, nf: int = 8, num_conv: int = 2, channels: int = 3, seed: int = 0) -> dict[str, Any]:
    """A random SRVGGNetCompact state dict (PReLU activations, pixel-shuffle tail)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, Any] = {}
    idx = 0
    for cin in [channels] + [nf] * num_conv:
        conv = _conv(gen, nf, cin, std=0.1)
        sd[f"body.{idx}.weight"], sd[f"body.{idx}.bias"] = conv["weight"], conv["bias"]
        sd[f"body.{idx + 1}.weight"] = torch.full((nf,), 0.25)
        idx += 2
    last = _conv(gen, channels * scale * scale, nf, std=0.1)
    sd[f"body.{idx}.weight"], sd[f"body.{idx}.bias"] = last["weight"], last["bias"]
    return sd
