"""ControlNet conditioning: hints attached to CONDITIONING and their residuals at each step.

``ControlNetApplyAdvanced`` stores a :class:`ControlSpec` under ``"control"`` in each
conditioning entry (chained to any earlier one through ``previous``); the sampler asks
:func:`control_residuals` for the summed down/mid residuals of the entries in a UNet batch.
A spec acts only while sigma lies within its start/end percent window.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from nodeloom.errors import ModelNotFoundError, require

__all__ = ["ControlNetModel", "ControlSpec", "control_residuals", "load_controlnet", "prepare_controls"]


def load_controlnet(path: str | Path, *, allow_pickle: bool = False) -> Any:
    """Load a ControlNet as a diffusers ``ControlNetModel`` (CPU, float32).

    Accepts a diffusers folder, a single file in the original layout (config inferred from its
    shapes and converted by diffusers' ``from_single_file``), or diffusers-layout weights with a
    ``config.json`` beside them.

    Raises:
        ModelNotFoundError: diffusers-layout weights without their ``config.json``.
        ValidationError: the file is no ControlNet.
    """
    from nodeloom.diffusion.checkpoint import load_state_dict
    from nodeloom.diffusion.detect import infer_controlnet_config

    diffusers = require("diffusers", "diffusion")
    p = Path(path)
    if p.is_dir():
        return diffusers.ControlNetModel.from_pretrained(str(p), local_files_only=True).eval()
    sd = load_state_dict(p, allow_pickle=allow_pickle)
    if "controlnet_cond_embedding.conv_in.weight" in sd:
        if not (p.parent / "config.json").is_file():
            raise ModelNotFoundError(
                f"ControlNet `{p.name}` holds diffusers-layout weights and needs their `config.json`;"
                f" searched: {p.parent}", extra_info={"name": "config.json", "searched": [str(p.parent)]})
        net = diffusers.ControlNetModel.from_config(diffusers.ControlNetModel.load_config(str(p.parent)))
        net.load_state_dict(sd)
        return net.eval()
    cfg = infer_controlnet_config(sd, p.name)
    with tempfile.TemporaryDirectory(prefix="nodeloom-cfg-") as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
        net = diffusers.ControlNetModel.from_single_file(sd, config=tmp, local_files_only=True)
    return net.eval()


@dataclass(frozen=True)
class ControlNetModel:
    """A loaded diffusers ``ControlNetModel`` (ComfyUI's CONTROL_NET)."""

    net: Any = field(repr=False)


@dataclass(frozen=True, eq=False)
class ControlSpec:
    """One applied ControlNet: model, hint image ``[B,H,W,C]``, strength and percent window."""

    control: ControlNetModel
    hint: torch.Tensor = field(repr=False)
    strength: float
    start_percent: float = 0.0
    end_percent: float = 1.0
    previous: ControlSpec | None = None

    def chain(self) -> Iterator[ControlSpec]:
        spec: ControlSpec | None = self
        while spec is not None:
            yield spec
            spec = spec.previous


def controls_for_uncond(positive: list[Any], negative: list[Any]) -> list[Any]:
    """The negative conditioning with ComfyUI's rule for ``control_apply_to_uncond`` entries (the
    older ControlNetApply node): when no negative entry without an area has a ControlNet, those
    entries take the ControlNets of such positive entries in turn (the k-th goes to entry k mod n;
    a later one assigned to the same entry replaces the earlier)."""
    shared = [c[1]["control"] for c in positive
              if c[1].get("control_apply_to_uncond") and "area" not in c[1] and c[1].get("control") is not None]
    targets = [i for i, c in enumerate(negative) if "area" not in c[1]]
    if not shared or not targets or any(negative[i][1].get("control") is not None for i in targets):
        return negative
    out = list(negative)
    for k, control in enumerate(shared):
        i = targets[k % len(targets)]
        out[i] = [negative[i][0], {**negative[i][1], "control": control}]
    return out


def prepare_controls(conds: list[list[Any]], manager: Any) -> None:
    """Move every ControlNet referenced by the conditioning lists onto the compute device."""
    if manager is None:
        return
    for cond in conds:
        for item in cond:
            spec = item[1].get("control") if len(item) > 1 else None
            for s in spec.chain() if spec is not None else ():
                manager.prepare(s.control.net)


def _hint(spec: ControlSpec, batch: int, size: tuple[int, int], device: Any, dtype: Any) -> torch.Tensor:
    h = spec.hint[..., :3].movedim(-1, 1).float()
    h = F.interpolate(h, size=size, mode="bilinear", align_corners=False)
    if h.shape[0] != batch:
        h = h.repeat(-(-batch // h.shape[0]), 1, 1, 1)[:batch]
    return h.to(device, dtype)


def _entry_residuals(spec: ControlSpec, model: Any, x: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor,
                     added: dict[str, Any] | None, sigma: float) -> tuple[list[torch.Tensor], torch.Tensor] | None:
    total: tuple[list[torch.Tensor], torch.Tensor] | None = None
    for s in spec.chain():
        hi = model.sampling.percent_to_sigma(s.start_percent)
        lo = model.sampling.percent_to_sigma(s.end_percent)
        if s.strength == 0 or sigma > hi or sigma < lo:
            continue
        net = s.control.net
        dtype = next(net.parameters()).dtype
        xin = x[:, : net.config.in_channels].to(dtype)
        hint = _hint(s, x.shape[0], (x.shape[-2] * 8, x.shape[-1] * 8), x.device, dtype)
        down, mid = net(xin, t, encoder_hidden_states=ctx.to(dtype), controlnet_cond=hint,
                        conditioning_scale=float(s.strength), added_cond_kwargs=added, return_dict=False)
        if total is None:
            total = (list(down), mid)
        else:
            total = ([a + b for a, b in zip(total[0], down)], total[1] + mid)
    return total


def control_residuals(model: Any, controls: list[ControlSpec | None], x: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor,
                      added: dict[str, Any] | None, sigma: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor] | None:
    """Summed ControlNet residuals for a UNet batch of conditioning entries (each ``x.shape[0] / n``
    rows), given each entry's ``control`` option (None for an entry without one).

    Returns:
        ``(down_residuals, mid_residual)`` for the whole batch, or None when no control acts.
    """
    n = len(controls)
    b = x.shape[0] // n
    s = float(sigma)
    parts = []
    for i, spec in enumerate(controls):
        rows = slice(i * b, (i + 1) * b)
        sub_added = None if added is None else {k: v[rows] for k, v in added.items()}
        parts.append(None if spec is None else _entry_residuals(spec, model, x[rows], t, ctx[rows], sub_added, s))
    if all(p is None for p in parts):
        return None
    ref = next(p for p in parts if p is not None)
    filled = [p if p is not None else ([torch.zeros_like(d) for d in ref[0]], torch.zeros_like(ref[1])) for p in parts]
    down = [torch.cat([p[0][k] for p in filled]) for k in range(len(ref[0]))]
    return down, torch.cat([p[1] for p in filled])
