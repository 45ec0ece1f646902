"""Running a DiT with some of its blocks skipped, for skip-layer guidance (SkipLayerGuidanceDiT).

A skipped block passes its inputs through unchanged, which is what ComfyUI's ``skip`` patch and
diffusers' ``skip_layers`` do. Blocks are diffusers' ``transformer_blocks`` (ComfyUI's
"double" blocks: SD3's joint blocks, the double-stream blocks of Flux, Flux.2, Chroma and
HunyuanVideo, the blocks of Wan, Qwen-Image and LTX-Video) and ``single_transformer_blocks`` (the
"single" blocks of Flux-type models); a skipped two-stream block hands back both streams in the
order its class returns them. Families whose blocks are named otherwise (Z-Image, Lumina 2,
HiDream) are refused.
Model code: imports no node class, engine or adapter.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import torch

from nodeloom.errors import ValidationError

__all__ = ["block_counts", "blocks_skipped", "check_blocks", "skipping_adapter", "uncond_skipping_adapter"]

_DOUBLE, _SINGLE = "transformer_blocks", "single_transformer_blocks"


def block_counts(module: Any) -> tuple[int, int]:
    """How many double and single blocks ``module`` has (0 where it has none of that kind)."""
    return len(getattr(module, _DOUBLE, None) or ()), len(getattr(module, _SINGLE, None) or ())


def check_blocks(node: str, module: Any, family: str, double: list[int], single: list[int]) -> None:
    """Refuse block numbers the transformer does not have.

    Raises:
        ValidationError: a model without diffusers-style blocks, or a number past its depth.
    """
    n_double, n_single = block_counts(module)
    if not n_double and not n_single:
        raise ValidationError(f"{node}: the {family} model has no transformer blocks to skip; it takes DiT models "
                              "(SD3, Flux, Wan, HunyuanVideo, Qwen-Image...)")
    for name, wanted, depth in (("double_layers", double, n_double), ("single_layers", single, n_single)):
        bad = [i for i in wanted if i >= depth]
        if bad and depth:
            raise ValidationError(f"{node}: `{name}` {bad} name blocks past the model's {depth} (0..{depth - 1})")


#: two-stream blocks that return ``(hidden_states, other)``; the rest return ``(encoder_hidden_states, hidden_states)``
_HIDDEN_FIRST = ("HunyuanVideo", "HiDream", "LTX2")


def _identity(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> Any:
    """The block's output replaced by its inputs, in the output's form: a tensor, or the two streams
    in the order the block's class returns them (LTX-2's second stream is its audio)."""
    hidden = args[0] if args else kwargs["hidden_states"]
    kind = type(module).__name__
    if not isinstance(output, tuple):
        context = args[1] if len(args) > 1 else kwargs.get("encoder_hidden_states")
        if isinstance(context, torch.Tensor) and output.shape != hidden.shape and hidden.ndim == 3 \
                and output.shape[1] == hidden.shape[1] + context.shape[1]:
            return torch.cat([context, hidden], dim=1)  # a single-stream block handed the text apart (Flux.2's form)
        return hidden
    if len(output) != 2:
        raise ValidationError(f"skip-layer guidance cannot skip a {kind}: it returns {len(output)} values")
    name = "audio_hidden_states" if kind.startswith("LTX2") else "encoder_hidden_states"
    other = args[1] if len(args) > 1 else kwargs.get(name)
    return (hidden, other) if kind.startswith(_HIDDEN_FIRST) else (other, hidden)


@contextlib.contextmanager
def blocks_skipped(module: Any, double: list[int], single: list[int]) -> Iterator[None]:
    """Within the block, ``module``'s double blocks ``double`` and single blocks ``single`` pass
    their inputs through (numbers past the model's depth are ignored; :func:`check_blocks` refuses
    them up front)."""
    handles = []
    try:
        for name, wanted in ((_DOUBLE, double), (_SINGLE, single)):
            blocks = getattr(module, name, None) or ()
            for i in wanted:
                if i < len(blocks):
                    handles.append(blocks[i].register_forward_hook(_identity, with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


def skipping_adapter(adapter: Any, double: list[int], single: list[int]) -> Any:
    """A family ``adapter`` whose calls run without the given blocks."""

    def skipping(module: Any, *args: Any, **kwargs: Any) -> Any:
        with blocks_skipped(module, double, single):
            return adapter(module, *args, **kwargs)

    return skipping


def uncond_skipping_adapter(adapter: Any, double: list[int], single: list[int], sigma_start: float,
                            sigma_end: float) -> Any:
    """SkipLayerGuidanceDiTSimple's form for any DiT: while σ lies in [``sigma_end``, ``sigma_start``]
    the call's unguided (negative) entries run apart, without the given blocks; the others as before."""

    def run(module: Any, x: torch.Tensor, sigma: Any, group: Any, **kw: Any) -> torch.Tensor:
        flags = [e.uncond for e in group.entries]
        if not sigma_end <= float(sigma) <= sigma_start or not any(flags):
            return adapter(module, x, sigma, group, **kw)
        per = x.shape[0] // len(flags)
        outs: list[torch.Tensor | None] = [None] * len(flags)
        for skip in (True, False):
            idx = [i for i, flag in enumerate(flags) if flag == skip]
            if not idx:
                continue
            rows = torch.cat([torch.arange(i * per, (i + 1) * per) for i in idx]).to(x.device)
            sub = dataclasses.replace(
                group, entries=[group.entries[i] for i in idx], context=group.context[rows],
                added=None if group.added is None else {k: v[rows] for k, v in group.added.items()},
                context_mask=None if group.context_mask is None else group.context_mask[rows])
            with blocks_skipped(module, double, single) if skip else contextlib.nullcontext():
                out = adapter(module, x[rows], sigma, sub, **kw)
            for j, i in enumerate(idx):
                outs[i] = out[j * per:(j + 1) * per]
        return torch.cat([o for o in outs if o is not None])

    return run
