"""ComfyUI's CLIPAttentionMultiply on nodeloom's CLIP values: the text encoders' self-attention
projection weights and biases (parameter names ending ``self_attn.q_proj``/``k_proj``/``v_proj``/
``out_proj`` ``.weight``/``.bias``, ComfyUI's rule) scaled while a patched CLIP encodes.

Owns :class:`MultipliedClip`, a CLIP value wrapping another: its encoding methods run with every
torch module the wrapped value holds (:func:`clip_modules`: CLIP-L/G, T5, Llama, Qwen, Gemma,
Mistral encoders, nested CLIP values such as Flux's CLIP-L) patched by
:class:`~nodeloom.diffusion.attention_multiply.AttentionMultiply`, which scales in place and puts
the weights back afterwards; every other attribute is the wrapped value's. nodeloom's encoders are
transformers modules that name these layers as ComfyUI's own text encoders do (CLIP:
``self_attn.{q,k,v,out}_proj``; Llama-style: ``self_attn.{q,k,v,o}_proj``, so ``out`` reaches no
weight there; T5: ``SelfAttention.q``, reached by none), so the same weights change.
Model code: no nodes, no engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator
from typing import Any

import torch

from nodeloom.diffusion.attention_multiply import AttentionMultiply

__all__ = ["CLIP_PROJECTIONS", "MultipliedClip", "clip_attention_multiply", "clip_modules"]

#: CLIPAttentionMultiply's inputs → the projection its factor scales (after ``self_attn.``)
CLIP_PROJECTIONS = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "out": "out_proj"}
#: methods of a CLIP value that run its encoders (ComfyUI's and nodeloom's entry points)
_ENCODING = ("encode", "encode_conditioning", "extra_conditioning", "glyph_states", "encode_from_tokens",
             "encode_from_tokens_scheduled")


def clip_attention_multiply(q: float, k: float, v: float, out: float) -> AttentionMultiply:
    """The patch CLIPAttentionMultiply's factors describe."""
    factors = dict(zip(("q", "k", "v", "out"), (q, k, v, out)))
    return AttentionMultiply(tuple(("self_attn", CLIP_PROJECTIONS[n], None, float(f)) for n, f in factors.items()))


def clip_modules(clip: Any) -> list[torch.nn.Module]:
    """Every torch module a CLIP value holds, each once: its fields that are modules, tuples or lists
    of them, and the fields that are CLIP values themselves (objects with ``encode``), searched alike."""
    found: dict[int, torch.nn.Module] = {}

    def visit(value: Any, depth: int) -> None:
        if isinstance(value, torch.nn.Module):
            found.setdefault(id(value), value)
        elif isinstance(value, (tuple, list)):
            for item in value:
                visit(item, depth)
        elif isinstance(value, MultipliedClip):
            visit(value.__wrapped__, depth)
        elif depth < 4 and dataclasses.is_dataclass(value) and not isinstance(value, type) \
                and (depth == 0 or callable(getattr(value, "encode", None))):
            for f in dataclasses.fields(value):
                visit(getattr(value, f.name, None), depth + 1)

    visit(clip, 0)
    return list(found.values())


class MultipliedClip:
    """A CLIP value whose encodes run with its text encoders' attention weights scaled by
    ``patches`` (applied in order; chained CLIPAttentionMultiply nodes multiply, as in ComfyUI)."""

    __slots__ = ("__wrapped__", "_patches")

    def __init__(self, clip: Any, patches: tuple[AttentionMultiply, ...]) -> None:
        if isinstance(clip, MultipliedClip):  # one wrapper, the patches chained
            clip, patches = clip.__wrapped__, clip._patches + tuple(patches)
        self.__wrapped__ = clip
        self._patches = tuple(patches)

    @property
    def patches(self) -> tuple[AttentionMultiply, ...]:
        return self._patches

    def clone(self, **changes: Any) -> MultipliedClip:
        """The wrapped value's ``clone(**changes)``, still patched."""
        return MultipliedClip(self.__wrapped__.clone(**changes), self._patches)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """The patches on every module of the wrapped value until the block ends."""
        with contextlib.ExitStack() as stack:
            modules = clip_modules(self.__wrapped__)
            for patch in self._patches:
                for module in modules:
                    stack.enter_context(patch.installed(module))
            yield

    def __getattr__(self, name: str) -> Any:
        if name in MultipliedClip.__slots__:  # not set yet (a copy being built): no wrapped value to ask
            raise AttributeError(name)
        value = getattr(self.__wrapped__, name)
        if name in _ENCODING and callable(value):
            return self._while_installed(value)
        return value

    def _while_installed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self.installed():
                return method(*args, **kwargs)

        return run

    def __repr__(self) -> str:
        return f"MultipliedClip({self.__wrapped__!r}, {len(self._patches)} patch(es))"
