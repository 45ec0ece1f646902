"""IP-Adapter attention: image tokens attended to beside the text in a diffusers UNet's
cross-attention layers, installed for one sampling run and removed after it.

Owns the per-layer weight plans of the IP-Adapter weight types (layers counted as ComfyUI
counts its transformer blocks: input blocks, middle, output blocks — 16 on SD1.5, 11 on SDXL;
SDXL's style layer is 6, up block 0 attention 1, its composition layer 3, down block 2
attention 1), the start/end window as sigmas, the cond/uncond split of each UNet call, and the
attention processor that wraps whatever processor each layer had. The MODEL's UNet is shared:
:meth:`IPAdapterPatch.installed` swaps processors in and restores them on exit.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from nodeloom.errors import ValidationError

__all__ = ["EMBEDS_SCALING", "WEIGHT_TYPES", "IPAdapterPatch", "weight_plan"]

WEIGHT_TYPES = ["linear", "ease in", "ease out", "ease in-out", "reverse in-out", "weak input", "weak output",
                "weak middle", "strong middle", "style transfer", "composition", "strong style transfer",
                "style and composition", "style transfer precise", "composition precise"]
EMBEDS_SCALING = ["V only", "K+V", "K+V w/ C penalty", "K+mean(V) w/ C penalty"]

_SD15_STYLE = (0, 1, 2, 3, 9, 10, 11, 12, 13, 14, 15)


def _dict_plan(weight_type: str, w: float, wc: float, sdxl: bool) -> dict[int, float] | None:
    """The per-layer weights of the style/composition types (None: the type scales every layer)."""
    every = range(11 if sdxl else 16)
    if weight_type == "style transfer":
        return {6: w} if sdxl else {i: w for i in _SD15_STYLE}
    if weight_type == "composition":
        return {3: w} if sdxl else {4: w * 0.25, 5: w}
    if weight_type == "strong style transfer":
        skip = (3,) if sdxl else (4, 5)
        return {i: w for i in every if i not in skip}
    if weight_type in ("style and composition", "style transfer precise"):
        return {3: wc, 6: w} if sdxl else {**{i: w for i in _SD15_STYLE}, 4: wc * 0.25, 5: wc}
    if weight_type == "strong style and composition":
        comp = {3: wc} if sdxl else {4: wc, 5: wc}
        return {i: comp.get(i, w) for i in every}
    if weight_type == "composition precise":
        if sdxl:
            return {i: (wc if i == 3 else w if i == 6 else w * 0.1) for i in every}
        return {i: (wc * 0.25 if i == 4 else wc if i == 5 else w * 0.1 if i in (6, 7, 8) else w) for i in every}
    return None


def weight_plan(weight_type: str, weight: float, weight_composition: float, sdxl: bool,
                t_idx: int, block: str) -> tuple[float, bool]:
    """The weight of transformer layer ``t_idx`` (in block ``input``/``middle``/``output``) and
    whether it takes the uncond tokens as cond (the *precise* types' swapped layers)."""
    if weight_type not in WEIGHT_TYPES and weight_type != "strong style and composition":
        raise ValidationError(f"`weight_type` must be one of {', '.join(WEIGHT_TYPES)}; got {weight_type!r}")
    layers = 11 if sdxl else 16
    if weight_type.endswith("precise"):
        weight_composition = weight  # the precise types weigh both parts alike
    per_layer = _dict_plan(weight_type, weight, weight_composition, sdxl)
    if per_layer is not None:
        comp = (3,) if sdxl else (4, 5)
        swap = (weight_type == "style transfer precise" and t_idx in comp) or \
               (weight_type == "composition precise" and t_idx not in comp)
        return per_layer.get(t_idx, 0.0), swap
    ramp = {"ease in": 1 - t_idx / layers, "ease out": t_idx / layers,
            "ease in-out": 1 - abs(t_idx - layers / 2) / (layers / 2),
            "reverse in-out": abs(t_idx - layers / 2) / (layers / 2)}
    if weight_type in ramp:
        return weight * (0.05 + 0.95 * ramp[weight_type]), False
    weak = {"weak input": ("input",), "weak middle": ("middle",), "weak output": ("output",),
            "strong middle": ("input", "output")}
    if block in weak.get(weight_type, ()):
        return weight * 0.2, False
    return weight, False


def transformer_layers(unet: Any) -> list[tuple[str, str]]:
    """``(module name, block type)`` of the UNet's transformer layers in ComfyUI's counting order
    (down blocks, the middle block, up blocks)."""
    found = [re.fullmatch(r"(down_blocks|mid_block|up_blocks)(?:\.(\d+))?\.attentions\.(\d+)", n)
             for n, _ in unet.named_modules()]
    order = {"down_blocks": (0, "input"), "mid_block": (1, "middle"), "up_blocks": (2, "output")}
    keyed = sorted((order[m[1]][0], int(m[2] or 0), int(m[3]), m[0], order[m[1]][1]) for m in found if m)
    return [(name, block) for *_, name, block in keyed]


@dataclass
class _CallState:
    sigma: float = 0.0
    uncond: list[bool] = field(default_factory=list)
    hw: tuple[int, int] = (0, 0)  # the latent's height and width


@dataclass(frozen=True)
class _Layer:
    to_k: torch.Tensor
    to_v: torch.Tensor
    weight: float
    swap: bool
    alt: bool  # the composition layer, fed the composition image's tokens when there is one


class _Processor:
    """Runs the layer's own processor, then adds ``weight ·`` attention over the image tokens
    (through the layer's output projection, its bias left out)."""

    def __init__(self, base: Any, layer: _Layer, patch: IPAdapterPatch) -> None:
        self.base, self.layer, self.patch = base, layer, patch

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: Any = None,
                 attention_mask: Any = None, temb: Any = None, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = self.base(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        if self.layer.weight == 0 or not self.patch.active() or hidden_states.ndim != 3:
            return out
        tokens = self.patch.batch_tokens(self.layer, hidden_states.shape[0]).to(hidden_states.device, hidden_states.dtype)
        k = torch.nn.functional.linear(tokens, self.layer.to_k.to(tokens.dtype))
        v = torch.nn.functional.linear(tokens, self.layer.to_v.to(tokens.dtype))
        weight, scaling = self.layer.weight, self.patch.embeds_scaling
        if "penalty" in scaling:
            weight = weight * k.shape[-1] / 1280.0
        if scaling == "K+mean(V) w/ C penalty":
            mean = v.mean(dim=1, keepdim=True)
            k, v = k * weight, (v - mean) + mean * weight
        elif scaling in ("K+V", "K+V w/ C penalty"):
            k, v = k * weight, v * weight
        q = attn.to_q(hidden_states)
        heads = attn.heads
        split = lambda t: t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)  # noqa: E731
        ip = torch.nn.functional.scaled_dot_product_attention(split(q), split(k), split(v))
        ip = ip.transpose(1, 2).reshape(q.shape[0], q.shape[1], -1)
        if scaling == "V only":
            ip = ip * weight
        if self.patch.mask is not None:
            ip = ip * self.patch.mask_for(q.shape[1]).to(ip.device, ip.dtype)
        proj = attn.to_out[0]
        delta = proj(ip) - proj(torch.zeros_like(ip[:, :1]))  # the projection without its bias (LoRA included)
        return out + delta / attn.rescale_output_factor


def _rows(tokens: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` rows of tokens: one set repeated, or one per image (the last repeated past the end)."""
    if tokens.shape[0] == 1:
        return tokens.expand(count, -1, -1)
    if tokens.shape[0] >= count:
        return tokens[:count]
    return torch.cat([tokens, tokens[-1:].expand(count - tokens.shape[0], -1, -1)])


@dataclass
class IPAdapterPatch:
    """One IP-Adapter applied to a MODEL: tokens, weights, window; installed per sampling run."""

    adapter: Any
    cond: torch.Tensor
    uncond: torch.Tensor
    weight: float
    weight_type: str
    sigma_start: float
    sigma_end: float
    embeds_scaling: str = "V only"
    weight_composition: float = 1.0
    cond_composition: torch.Tensor | None = None
    sdxl: bool = False  # the MODEL's family picks the layer counting (11 SDXL layers, 16 SD1.5 ones)
    mask: torch.Tensor | None = None  # [H, W]: where the image acts (0..1), any size; resized per layer
    unfold: bool = False  # cond tokens [N, tokens, width]: row i of each call gets image i's (the last past N)
    state: _CallState = field(default_factory=_CallState)

    def before_call(self, sigma: float, uncond: list[bool], hw: tuple[int, int] = (0, 0)) -> None:
        """Record the step's sigma, which entries of the coming UNet call are unconditional and
        the latent's size (for the mask)."""
        self.state.sigma, self.state.uncond, self.state.hw = float(sigma), list(uncond), (int(hw[0]), int(hw[1]))

    def mask_for(self, tokens: int) -> torch.Tensor:
        """The mask resized to a layer's token grid, ``[1, tokens, 1]`` (the UNet halves the
        latent per level, rounding up)."""
        h, w = self.state.hw
        if not h or not w or self.mask is None:
            raise ValidationError("`attn_mask` needs the latent's size, which this sampler call did not give")
        down = max(1, round(math.sqrt(h * w / tokens)))
        grid = (-(-h // down), -(-w // down))
        if grid[0] * grid[1] != tokens:
            raise ValidationError(f"`attn_mask`: a {h}×{w} latent gives no grid of {tokens} tokens at this layer")
        mask = torch.nn.functional.interpolate(self.mask[None, None].float(), size=grid, mode="bilinear")
        return mask.reshape(1, tokens, 1)

    def active(self) -> bool:
        return self.sigma_end <= self.state.sigma <= self.sigma_start

    def batch_tokens(self, layer: _Layer, batch: int) -> torch.Tensor:
        """Image tokens for each row of the UNet call: uncond rows get the uncond tokens."""
        cond = self.cond_composition if layer.alt and self.cond_composition is not None else self.cond
        uncond = self.uncond
        if layer.swap:
            cond, uncond = torch.zeros_like(cond), cond
        flags = self.state.uncond or [False]
        per = batch // len(flags) if batch % len(flags) == 0 else batch
        flags = flags if per * len(flags) == batch else [False]
        return torch.cat([_rows(uncond if f else cond, per) for f in flags])

    def layers(self, unet: Any) -> dict[str, _Layer]:
        """The patched layers of ``unet`` (its cross-attention modules by name).

        Raises:
            ValidationError: the adapter's layers or token width do not fit the UNet.
        """
        cross = [n for n, m in unet.named_modules() if n.endswith(".attn2") and hasattr(m, "processor")]
        if len(cross) != len(self.adapter.layers):
            raise ValidationError(f"IP-Adapter `{self.adapter.name}` has {len(self.adapter.layers)} attention layers; "
                                  f"the MODEL's UNet has {len(cross)} cross-attention layers (SD1.5 and SDXL adapters "
                                  "fit only their own family)")
        width = int(getattr(unet.config, "cross_attention_dim", 0) or 0)
        if width and int(self.cond.shape[-1]) != width:
            raise ValidationError(f"IP-Adapter `{self.adapter.name}` makes {self.cond.shape[-1]}-wide tokens; the "
                                  f"MODEL's UNet attends to {width}-wide context")
        where = {name: (i, block) for i, (name, block) in enumerate(transformer_layers(unet))}
        modules = dict(unet.named_modules())
        sdxl = self.sdxl
        out = {}
        for n, name in enumerate(cross):
            t_idx, block = where[name.split(".transformer_blocks.")[0]]
            weight, swap = weight_plan(self.weight_type, self.weight, self.weight_composition, sdxl, t_idx, block)
            k, v = self.adapter.layers[2 * n + 1]
            device = modules[name].to_k.weight.device  # the UNet's device (it was placed before sampling)
            out[name] = _Layer(k.weight.detach().to(device), v.weight.detach().to(device), weight, swap, alt=t_idx == 3)
        return out

    @contextlib.contextmanager
    def installed(self, unet: Any) -> Iterator[None]:
        """Wrap each cross-attention layer's processor for the block; the originals come back after."""
        modules = dict(unet.named_modules())
        saved: dict[str, Any] = {}
        try:
            for name, layer in self.layers(unet).items():
                module = modules[name]
                saved[name] = module.processor
                module.processor = _Processor(module.processor, layer, self)
            yield
        finally:
            for name, processor in saved.items():
                modules[name].processor = processor
