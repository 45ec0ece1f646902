"""IP-Adapter for Flux.1: XLabs' adapter files, image tokens attended to in every double-stream block.

Owns reading the XLabs files (``ip_adapter_proj_model.{proj,norm}`` and
``double_blocks.N.processor.ip_adapter_double_stream_{k,v}_proj``; the ``image_proj.`` /
``ip_adapter.`` layout diffusers writes loads too), the per-block strength curves of the
advanced node, and the patch installed on the shared transformer for one sampling run. The
adapter's attention reads the block's normed image queries (before the rotary embedding) and its
output joins the image stream after the block's feed-forward, as diffusers'
``FluxIPAdapterAttnProcessor`` does. Imports no node code.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nodeloom.errors import ValidationError

__all__ = ["SMOOTHING", "FluxIPAdapterModel", "FluxIPAdapterPatch", "apply_flux_ip_adapter", "block_strengths",
           "load_flux_ip_adapter"]

SMOOTHING = ["Linear", "First half", "Second half", "Sigmoid"]


@dataclass
class FluxIPAdapterModel:
    """A loaded XLabs Flux IP-Adapter.

    Attributes:
        projection: diffusers' ``ImageProjection`` (a CLIP image embedding → ``tokens`` tokens as
            wide as the T5 context).
        blocks: one ``(k, v)`` pair of biased linear layers per double-stream block.
        name: the file's name (for messages).
    """

    projection: torch.nn.Module
    blocks: list[tuple[torch.nn.Linear, torch.nn.Linear]]
    name: str

    @property
    def image_embed_dim(self) -> int:
        return int(self.projection.image_embeds.in_features)


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The projection's tensors and the blocks' tensors (``N.to_k_ip.weight`` ...) of a file."""
    if path.suffix.lower() not in (".safetensors", ".sft"):
        raise ValidationError(f"`{path.name}`: Flux IP-Adapters are .safetensors files (XLabs' layout)")
    from safetensors.torch import load_file

    proj: dict[str, torch.Tensor] = {}
    blocks: dict[str, torch.Tensor] = {}
    for key, value in load_file(str(path)).items():
        head, _, rest = key.partition(".")
        if head in ("ip_adapter_proj_model", "image_proj"):
            proj[rest] = value
        elif head in ("double_blocks", "ip_adapter"):
            rest = rest.replace(".processor.", ".").replace("ip_adapter_double_stream_k_proj", "to_k_ip")
            blocks[rest.replace("ip_adapter_double_stream_v_proj", "to_v_ip")] = value
    return proj, blocks


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> torch.nn.Linear:
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer.eval()


def load_flux_ip_adapter(path: str | Path) -> FluxIPAdapterModel:
    """Read an XLabs Flux IP-Adapter file on the CPU.

    Raises:
        ValidationError: the file is not a Flux IP-Adapter; the message names it and what is missing.
    """
    from diffusers.models.embeddings import ImageProjection

    path = Path(path)
    proj, blocks = _read(path)
    if "proj.weight" not in proj or "norm.weight" not in proj or "0.to_k_ip.weight" not in blocks:
        raise ValidationError(f"`{path.name}` is not a Flux IP-Adapter: it needs `ip_adapter_proj_model.proj`, "
                              "`ip_adapter_proj_model.norm` and `double_blocks.0.processor.ip_adapter_double_stream_k_proj` "
                              "tensors (XLabs' flux-ip-adapter layout)")
    width = int(proj["norm.weight"].shape[0])
    out_features, embed_dim = proj["proj.weight"].shape
    if out_features % width:
        raise ValidationError(f"`{path.name}`: its projection gives {out_features} values, no whole number of "
                              f"{width}-wide tokens")
    projection = ImageProjection(image_embed_dim=int(embed_dim), cross_attention_dim=width,
                                 num_image_text_embeds=int(out_features) // width)
    projection.load_state_dict({k.replace("proj", "image_embeds"): v for k, v in proj.items()})
    pairs = []
    for i in range(len([k for k in blocks if k.endswith(".to_k_ip.weight")])):
        try:
            pairs.append((_linear(blocks[f"{i}.to_k_ip.weight"], blocks[f"{i}.to_k_ip.bias"]),
                          _linear(blocks[f"{i}.to_v_ip.weight"], blocks[f"{i}.to_v_ip.bias"])))
        except KeyError as exc:
            raise ValidationError(f"`{path.name}`: double block {i} lacks the tensor {exc.args[0]!r}") from exc
    return FluxIPAdapterModel(projection.eval(), pairs, path.name)


def block_strengths(begin: float, end: float, kind: str, count: int) -> list[float]:
    """The advanced node's strength of each of ``count`` double blocks, from ``begin`` to ``end``:
    ``Linear`` (even steps), ``First half`` (the ramp over the first half, then ``end``),
    ``Second half`` (``begin``, then the ramp over the second half), ``Sigmoid`` (a logistic curve
    centred on the middle block, ``begin`` at its centre value offset by half the span).

    Raises:
        ValidationError: ``kind`` is none of :data:`SMOOTHING`.
    """
    def ramp(n: int) -> list[float]:
        return [begin + (end - begin) * (i / (n - 1)) if n > 1 else begin for i in range(n)]

    half = count // 2
    if kind == "Linear":
        return ramp(count)
    if kind == "First half":
        return ramp(half) + [end] * (count - half)
    if kind == "Second half":
        return [begin] * (count - half) + ramp(half)
    if kind == "Sigmoid":
        return [begin + (end - begin) * (1 / (1 + math.exp(-(i - count / 2) * 8 / count)) - 0.5) for i in range(count)]
    raise ValidationError(f"`smothing_type` must be one of {', '.join(SMOOTHING)}; got {kind!r}")


@dataclass
class _State:
    uncond: list[bool] = field(default_factory=list)
    call: int = -1  # which entry of the step's group the transformer is running (one call per entry)


class _Processor:
    """Runs the block's own joint attention, then returns the image-token attention as the third
    output, which the double-stream block adds after its feed-forward."""

    def __init__(self, base: Any, k: torch.Tensor, kb: torch.Tensor, v: torch.Tensor, vb: torch.Tensor,
                 scale: float, patch: FluxIPAdapterPatch) -> None:
        self.base, self.k, self.kb, self.v, self.vb, self.scale, self.patch = base, k, kb, v, vb, scale, patch

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: Any = None,
                 attention_mask: Any = None, image_rotary_emb: Any = None) -> Any:
        out = self.base(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)
        if encoder_hidden_states is None or self.scale == 0:
            return out
        b = hidden_states.shape[0]
        q = attn.norm_q(attn.to_q(hidden_states).unflatten(-1, (attn.heads, -1))).transpose(1, 2)
        tokens = self.patch.tokens(b).to(hidden_states.device, hidden_states.dtype)
        k = torch.nn.functional.linear(tokens, self.k.to(tokens.dtype), self.kb.to(tokens.dtype))
        v = torch.nn.functional.linear(tokens, self.v.to(tokens.dtype), self.vb.to(tokens.dtype))
        split = lambda t: t.unflatten(-1, (attn.heads, -1)).transpose(1, 2)  # noqa: E731
        ip = torch.nn.functional.scaled_dot_product_attention(q, split(k), split(v))
        ip = ip.transpose(1, 2).flatten(2, 3).to(q.dtype)
        return (*out, self.scale * ip)


@dataclass
class FluxIPAdapterPatch:
    """One Flux IP-Adapter applied to a MODEL: cond/uncond tokens and each block's strength."""

    adapter: FluxIPAdapterModel
    cond: torch.Tensor  # [1, tokens, width]
    uncond: torch.Tensor
    strengths: list[float]
    state: _State = field(default_factory=_State)

    def before_call(self, sigma: float, uncond: list[bool], hw: tuple[int, int] = (0, 0)) -> None:
        """Record which entries of the coming group are unconditional (the family adapter runs the
        transformer once per entry, in that order)."""
        self.state.uncond, self.state.call = list(uncond), -1

    def tokens(self, batch: int) -> torch.Tensor:
        flags = self.state.uncond or [False]
        uncond = flags[min(max(self.state.call, 0), len(flags) - 1)]
        return (self.uncond if uncond else self.cond).expand(batch, -1, -1)

    def check(self, transformer: Any) -> None:
        """Raises ValidationError when the adapter was made for another Flux width or depth."""
        blocks = getattr(transformer, "transformer_blocks", None)
        if blocks is None or not hasattr(transformer, "single_transformer_blocks"):
            raise ValidationError(f"`{self.adapter.name}` is a Flux IP-Adapter; `model` is no Flux transformer")
        k = self.adapter.blocks[0][0]
        inner = int(blocks[0].attn.to_q.out_features)
        context = int(transformer.config.joint_attention_dim)
        if len(blocks) != len(self.adapter.blocks) or k.out_features != inner or k.in_features != context:
            raise ValidationError(
                f"`{self.adapter.name}` fits a Flux with {len(self.adapter.blocks)} double blocks {k.out_features} wide "
                f"and {k.in_features}-wide text; `model` has {len(blocks)} blocks {inner} wide and {context}-wide text")

    @contextlib.contextmanager
    def installed(self, transformer: Any) -> Iterator[None]:
        """Wrap each double block's attention processor for the run; the originals come back after."""
        self.check(transformer)
        saved: list[tuple[Any, Any]] = []

        def next_call(*_: Any) -> None:
            self.state.call += 1

        hook = transformer.register_forward_pre_hook(next_call)
        try:
            device = transformer.transformer_blocks[0].attn.to_q.weight.device
            for block, (k, v), scale in zip(transformer.transformer_blocks, self.adapter.blocks, self.strengths):
                attn = block.attn
                saved.append((attn, attn.processor))
                weights = [t.detach().to(device) for t in (k.weight, k.bias, v.weight, v.bias)]
                attn.processor = _Processor(attn.processor, *weights, float(scale), self)
            yield
        finally:
            hook.remove()
            for attn, processor in saved:
                attn.processor = processor


def project(adapter: FluxIPAdapterModel, embeds: torch.Tensor) -> torch.Tensor:
    """Image tokens ``[1, images·tokens, width]`` of CLIP image embeddings ``[images, dim]``."""
    if embeds.ndim != 2 or embeds.shape[-1] != adapter.image_embed_dim:
        raise ValidationError(f"`{adapter.name}` reads {adapter.image_embed_dim}-wide CLIP image embeddings; the "
                              f"CLIP-vision model gives {tuple(embeds.shape)}")
    p = next(adapter.projection.parameters())
    with torch.inference_mode():
        tokens = adapter.projection(embeds[None].to(p.device, p.dtype)).float().cpu()
    return tokens.reshape(1, -1, tokens.shape[-1])


def _embeds(clip_vision: Any, image: torch.Tensor) -> torch.Tensor:
    if not hasattr(clip_vision, "encode_image"):
        raise ValidationError(f"the IP-Adapter's `clip_vision` must be a CLIP_VISION model, got {type(clip_vision).__name__}")
    embeds = clip_vision.encode_image(image, crop=True)["image_embeds"]
    if embeds is None:
        raise ValidationError("the CLIP-vision model gives no `image_embeds`, which the Flux IP-Adapter reads")
    return embeds.float()


def apply_flux_ip_adapter(model: Any, adapter: FluxIPAdapterModel, clip_vision: Any, image: torch.Tensor,
                          strengths: list[float] | float, *, average: bool = False) -> Any:
    """A clone of ``model`` (a Flux.1 MODEL) that attends to ``image`` through ``adapter``.

    Several images give their tokens side by side, or with ``average`` one set of tokens from the
    mean embedding. Unconditional rows (KSampler with cfg > 1) attend to a black image's tokens.

    Raises:
        ValidationError: the MODEL is no Flux.1 transformer or does not fit the adapter.
    """
    if model.family != "flux":
        raise ValidationError(f"the Flux IP-Adapter runs on Flux.1 models; `model` is a {model.family} model")
    if image.ndim != 4 or image.shape[-1] != 3:
        raise ValidationError(f"`image` must be an IMAGE [B, H, W, 3]; got shape {tuple(image.shape)}")
    embeds = _embeds(clip_vision, image)
    if average:
        embeds = embeds.mean(0, keepdim=True)
    cond = project(adapter, embeds)
    size = int(getattr(clip_vision, "image_size", 224))
    uncond = project(adapter, _embeds(clip_vision, torch.zeros(1, size, size, 3)))
    if isinstance(strengths, (int, float)):
        strengths = [float(strengths)] * len(adapter.blocks)
    patch = FluxIPAdapterPatch(adapter, cond, uncond, list(strengths))  # cond and uncond run in separate calls
    patch.check(model.unet)  # a mismatched adapter is an error here, not mid-run
    out = model.clone(fast_path=False)
    out.extra["attn_patches"] = tuple(out.extra.get("attn_patches", ())) + (patch,)
    return out
