"""FluxKVCache's patch: reference-image keys and values kept from a run's first model call.

Flux.2 edit workflows append reference-image tokens to the image tokens. With the references
modulated at timestep 0 (``index_timestep_zero``, which the patch makes the default method), their
keys and values in each attention block change between steps only through what they attend to, so
ComfyUI's ``FluxKVCache`` computes them once: the first model call of a run takes the whole
sequence and records each block's reference keys and values; the later calls leave the reference
tokens out, and every attention block appends the recorded keys and values to its own. The first
call is exact, the later ones are the approximation the Klein KV model is made for, and they cost
the image and text tokens only.

Owns :class:`ReferenceKVCache`, a MODEL patch (``extra["attn_patches"]``) that, while installed for
a run, replaces the attention processors of a diffusers ``Flux2Transformer2DModel`` with ones that
record or replay those keys and values, and :func:`active` with which the Flux.2 family adapter
finds the run's store. Keys are kept after the rotary embedding, so replayed keys keep the
reference positions they were recorded at. One store per run and per conditioning entry: CFG's
two sides each keep their own, also when they share the reference latent. Model code: no nodes, no engine.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from nodeloom.errors import ValidationError

__all__ = ["ReferenceKVCache", "ReferenceStore", "active"]

#: the store of the run each transformer is in, while a ReferenceKVCache is installed on it
_ACTIVE: weakref.WeakKeyDictionary[Any, ReferenceStore] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


@dataclass
class ReferenceStore:
    """One run's recorded reference keys and values, per conditioning entry and attention block.

    The family adapter sets :attr:`mode` around each transformer call: ``("fill", key, n_ref)``
    while the whole sequence runs (the last ``n_ref`` image tokens are the references), ``("read",
    key)`` while the references are left out; None: attention as usual.
    """

    default_method: str = "index_timestep_zero"
    entries: dict[tuple[Any, ...], dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=dict)
    mode: tuple[Any, ...] | None = None
    filled: int = 0
    replayed: int = 0

    @staticmethod
    def key(entry: Any, references: Sequence[torch.Tensor], batch: int) -> tuple[Any, ...]:
        """The cache key of a conditioning entry (its extras, the same object every step of a run) and
        its reference latents: CFG's two sides may share a reference but not its keys, which depend
        on each side's prompt."""
        return (id(entry), batch, *((id(r), tuple(r.shape)) for r in references))

    def has(self, key: tuple[Any, ...]) -> bool:
        return key in self.entries

    @contextlib.contextmanager
    def filling(self, key: tuple[Any, ...], n_ref: int) -> Iterator[None]:
        """Record the last ``n_ref`` tokens' keys and values of every block during the call."""
        self.entries[key] = {}
        self.mode = ("fill", key, int(n_ref))
        try:
            yield
        except BaseException:
            self.entries.pop(key, None)  # a call that failed half-way leaves no partial record
            raise
        finally:
            self.mode = None
        self.filled += 1

    @contextlib.contextmanager
    def reading(self, key: tuple[Any, ...]) -> Iterator[None]:
        """Append the recorded keys and values in every block during the call."""
        self.mode = ("read", key)
        try:
            yield
        finally:
            self.mode = None
        self.replayed += 1

    def record(self, block: tuple[str, int], key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """In fill mode, keep the references' part of ``key``/``value`` (``[B, S, heads, dim]``); in read
        mode, return them with the recorded references appended; otherwise as they are."""
        if self.mode is None:
            return key, value
        if self.mode[0] == "fill":
            n_ref = self.mode[2]
            self.entries[self.mode[1]][block] = (key[:, -n_ref:].detach().clone(), value[:, -n_ref:].detach().clone())
            return key, value
        try:
            k_ref, v_ref = self.entries[self.mode[1]][block]
        except KeyError:
            raise ValidationError(f"FluxKVCache has no recorded keys for attention block {block[0]} {block[1]};"
                                  " the transformer's blocks changed during the run") from None
        return torch.cat([key, k_ref.to(key.dtype)], dim=1), torch.cat([value, v_ref.to(value.dtype)], dim=1)


def active(transformer: Any) -> ReferenceStore | None:
    """The store of the run ``transformer`` is in, when a :class:`ReferenceKVCache` is installed."""
    with _LOCK:
        return _ACTIVE.get(transformer)


def _projections(attn: Any, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if getattr(attn, "fused_projections", False):
        q, k, v = attn.to_qkv(hidden).chunk(3, dim=-1)
    else:
        q, k, v = attn.to_q(hidden), attn.to_k(hidden), attn.to_v(hidden)
    return tuple(t.unflatten(-1, (-1, attn.head_dim)) for t in (q, k, v))  # type: ignore[return-value]


def _attend(processor: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rope: Any, mask: Any) -> torch.Tensor:
    """Rotate, let the store record or extend the keys and values, attend: ``[B, S, heads·dim]``."""
    from diffusers.models.attention_dispatch import dispatch_attention_fn
    from diffusers.models.embeddings import apply_rotary_emb

    if rope is not None:
        q = apply_rotary_emb(q, rope, sequence_dim=1)
        k = apply_rotary_emb(k, rope, sequence_dim=1)
    k, v = processor.store.record(processor.block, k, v)
    out = dispatch_attention_fn(q, k, v, attn_mask=mask, backend=getattr(processor.base, "_attention_backend", None))
    return out.flatten(2, 3).to(q.dtype)


class _DoubleProcessor:
    """A Flux.2 double-stream block's joint attention, its reference keys recorded or replayed."""

    def __init__(self, base: Any, store: ReferenceStore, index: int) -> None:
        self.base, self.store, self.block = base, store, ("double", index)

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, image_rotary_emb: Any = None, **kwargs: Any) -> Any:
        if self.store.mode is None or encoder_hidden_states is None:
            return self.base(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb, **kwargs)
        q, k, v = _projections(attn, hidden_states)
        q, k = attn.norm_q(q), attn.norm_k(k)
        tq, tk, tv = (t.unflatten(-1, (-1, attn.head_dim)) for t in (
            attn.add_q_proj(encoder_hidden_states), attn.add_k_proj(encoder_hidden_states),
            attn.add_v_proj(encoder_hidden_states)))
        tq, tk = attn.norm_added_q(tq), attn.norm_added_k(tk)
        out = _attend(self, torch.cat([tq, q], dim=1), torch.cat([tk, k], dim=1), torch.cat([tv, v], dim=1),
                      image_rotary_emb, attention_mask)
        text, image = out.split_with_sizes([encoder_hidden_states.shape[1], out.shape[1] - encoder_hidden_states.shape[1]],
                                           dim=1)
        image = attn.to_out[1](attn.to_out[0](image))
        return image, attn.to_add_out(text)


class _SingleProcessor:
    """A Flux.2 single-stream block's attention (with its parallel MLP), reference keys recorded or replayed."""

    def __init__(self, base: Any, store: ReferenceStore, index: int) -> None:
        self.base, self.store, self.block = base, store, ("single", index)

    def __call__(self, attn: Any, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 image_rotary_emb: Any = None, **kwargs: Any) -> torch.Tensor:
        if self.store.mode is None:
            return self.base(attn, hidden_states, attention_mask, image_rotary_emb, **kwargs)
        proj = attn.to_qkv_mlp_proj(hidden_states)
        qkv_width = 3 * attn.inner_dim
        local_qkv = proj.shape[-1] * qkv_width // (qkv_width + attn.mlp_hidden_dim * attn.mlp_mult_factor)
        qkv, mlp = torch.split(proj, [local_qkv, proj.shape[-1] - local_qkv], dim=-1)
        q, k, v = (t.unflatten(-1, (-1, attn.head_dim)) for t in qkv.chunk(3, dim=-1))
        out = _attend(self, attn.norm_q(q), attn.norm_k(k), v, image_rotary_emb, attention_mask)
        return attn.to_out(torch.cat([out, attn.mlp_act_fn(mlp)], dim=-1))


@dataclass(frozen=True)
class ReferenceKVCache:
    """FluxKVCache on a MODEL: references at timestep 0 by default, their keys and values kept per run."""

    default_method: str = "index_timestep_zero"

    @staticmethod
    def check(transformer: Any) -> None:
        """Raises ValidationError unless ``transformer`` is a diffusers Flux.2 transformer."""
        double = getattr(transformer, "transformer_blocks", None)
        single = getattr(transformer, "single_transformer_blocks", None)
        if double is None or single is None or not hasattr(transformer, "single_stream_modulation"):
            raise ValidationError(f"FluxKVCache runs on Flux.2 transformers; this model's is a {type(transformer).__name__}")

    @contextlib.contextmanager
    def installed(self, transformer: Any) -> Iterator[None]:
        """A fresh store for the run and the recording processors on every block; the originals come back after."""
        self.check(transformer)
        store = ReferenceStore(default_method=self.default_method)
        saved: list[tuple[Any, Any]] = []
        with _LOCK:
            if transformer in _ACTIVE:
                raise ValidationError("FluxKVCache is applied twice to the same model; keep one")
            _ACTIVE[transformer] = store
        try:
            for i, block in enumerate(transformer.transformer_blocks):
                saved.append((block.attn, block.attn.processor))
                block.attn.processor = _DoubleProcessor(block.attn.processor, store, i)
            for i, block in enumerate(transformer.single_transformer_blocks):
                saved.append((block.attn, block.attn.processor))
                block.attn.processor = _SingleProcessor(block.attn.processor, store, i)
            yield
        finally:
            for attn, processor in saved:
                attn.processor = processor
            with _LOCK:
                _ACTIVE.pop(transformer, None)
