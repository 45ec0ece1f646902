"""LoRA stacks applied per call through PEFT adapters (kohya, diffusers/PEFT and LyCORIS LoHa formats).

A LoRA file is read once (:func:`read_lora`), converted by diffusers to its PEFT layout (LoHa
files: mapped here onto PEFT's LoHa layers) and injected into a shared module as a named adapter
the first time a value that uses it runs.
:func:`lora_active` enables exactly the adapters (and strengths) of the value being run and
disables them afterwards, so MODEL/CLIP values with different stacks share one module without
mutating each other. Runs are serialised per device by the model manager's lock.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeloom.errors import ValidationError, require

__all__ = ["LoraFile", "LoraPatch", "lora_active", "read_lora", "unload_lora"]

_KOHYA_PARTS = {"lora_unet_": "unet", "lora_te_": "text_encoder", "lora_te1_": "text_encoder", "lora_te2_": "text_encoder_2"}
_LOHA_PARAMS = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")


@dataclass(frozen=True)
class LoraFile:
    """The converted weights of one LoRA file, split per model part (keys keep their part prefix)."""

    name: str
    parts: dict[str, tuple[dict[str, Any], dict[str, float] | None]]
    kind: str = "lora"

    def __hash__(self) -> int:
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LoraFile) and other.name == self.name


@dataclass(frozen=True)
class LoraPatch:
    lora: LoraFile
    strength: float


def read_lora(path: str | Path, unet_config: Any, sdxl: bool) -> LoraFile:
    """Read and convert a LoRA file (kohya ``lora_unet_*``/``lora_te*``, diffusers, PEFT).

    Raises:
        ValidationError: the file holds no LoRA weights diffusers can map.
    """
    from nodeloom.diffusion.checkpoint import load_state_dict

    diffusers = require("diffusers", "diffusion")
    p = Path(path)
    raw = load_state_dict(p)
    name = "nl_" + hashlib.sha1(f"{p.resolve()}:{p.stat().st_mtime_ns}".encode()).hexdigest()[:12]
    if any(".lokr_" in k or ".hada_t1" in k for k in raw):
        raise ValidationError(f"`{p.name}` is a LyCORIS LoKr (or Tucker-decomposed LoHa) file; supported: LoRA"
                              " (kohya, diffusers, PEFT layouts) and plain LoHa")
    if any(".hada_w1_a" in k for k in raw):
        return _read_loha(raw, name, p.name, unet_config if sdxl else None)
    mixin = diffusers.StableDiffusionXLPipeline if sdxl else diffusers.StableDiffusionPipeline
    try:
        state, alphas = mixin.lora_state_dict(raw, unet_config=unet_config)
    except (ValueError, KeyError) as exc:
        raise ValidationError(f"`{p.name}` is not a LoRA diffusers can apply: {exc}") from exc
    parts: dict[str, tuple[dict[str, Any], dict[str, float] | None]] = {}
    for part in ("unet", "text_encoder", "text_encoder_2"):
        sub = {k: v for k, v in state.items() if k.startswith(part + ".")}
        if sub:
            al = {k: v for k, v in (alphas or {}).items() if k.startswith(part + ".")} or None
            parts[part] = (sub, al)
    if not parts:
        raise ValidationError(f"`{p.name}` contains no LoRA weights for the UNet or text encoders")
    return LoraFile(name, parts)


def _read_loha(raw: dict[str, Any], name: str, file_name: str, sgm_unet_config: Any) -> LoraFile:
    """Group a kohya-named LoHa file per part: ``{kohya module name: {param: tensor}}`` and alphas."""
    if sgm_unet_config is not None and any("input_blocks" in k or "output_blocks" in k for k in raw):
        from diffusers.loaders.lora_conversion_utils import _maybe_map_sgm_blocks_to_diffusers

        raw = _maybe_map_sgm_blocks_to_diffusers(raw, sgm_unet_config)
    parts: dict[str, tuple[dict[str, Any], dict[str, float] | None]] = {}
    for key, value in raw.items():
        module, _, param = key.partition(".")
        prefix = next((pre for pre in _KOHYA_PARTS if module.startswith(pre)), None)
        if prefix is None:
            raise ValidationError(f"`{file_name}`: LoHa key `{key}` has no kohya prefix (lora_unet_/lora_te*_)")
        tensors, alphas = parts.setdefault(_KOHYA_PARTS[prefix], ({}, {}))
        short = module[len(prefix):]
        if param == "alpha":
            alphas[short] = float(value)
        elif param in _LOHA_PARAMS:
            tensors.setdefault(short, {})[param] = value
    return LoraFile(name, parts, kind="loha")


def _inject_loha(module: Any, lora: LoraFile, part: str) -> None:
    """Add a LoHa adapter to ``module`` with PEFT and copy the file's factors in."""
    import torch
    from peft import LoHaConfig, inject_adapter_in_model

    tensors, alphas = lora.parts[part]
    by_kohya = {}
    for mname, _ in module.named_modules():
        by_kohya[mname.replace(".", "_")] = mname
        by_kohya["text_model_" + mname.replace(".", "_")] = mname
    missing = [k for k in tensors if k not in by_kohya]
    if missing:
        raise ValidationError(f"LoHa modules {missing[:3]} do not exist in the {part.replace('_', ' ')}")
    targets = {by_kohya[k]: v for k, v in tensors.items()}
    ranks = {m: int(v["hada_w1_b"].shape[0]) for m, v in targets.items()}
    alpha = {by_kohya[k]: a for k, a in (alphas or {}).items() if k in by_kohya}
    cfg = LoHaConfig(r=max(ranks.values()), alpha=max(ranks.values()), target_modules=sorted(targets),
                     rank_pattern={re_exact(m): r for m, r in ranks.items()},
                     alpha_pattern={re_exact(m): alpha.get(m, ranks[m]) for m in targets})
    inject_adapter_in_model(cfg, module, adapter_name=lora.name)
    with torch.no_grad():
        for mname, params in targets.items():
            layer = module.get_submodule(mname)
            for pname, value in params.items():
                getattr(layer, pname)[lora.name].copy_(value.reshape(getattr(layer, pname)[lora.name].shape))
    if not isinstance(getattr(module, "peft_config", None), dict):
        module.peft_config = {}
    module.peft_config[lora.name] = cfg


def re_exact(name: str) -> str:
    """A PEFT pattern that matches exactly the module ``name``."""
    import re

    return re.escape(name)


def _loaded_adapters(module: Any) -> set[str]:
    cfg = getattr(module, "peft_config", None)
    return set(cfg) if cfg else set()


def _inject(module: Any, lora: LoraFile, part: str) -> bool:
    if part not in lora.parts:
        return False
    if lora.name in _loaded_adapters(module):
        return True
    if lora.kind == "loha":
        _inject_loha(module, lora, part)
        return True
    state, alphas = lora.parts[part]
    if part == "unet":
        module.load_lora_adapter(dict(state), prefix="unet", network_alphas=alphas, adapter_name=lora.name)
    else:
        from diffusers.loaders.lora_base import _load_lora_into_text_encoder

        _load_lora_into_text_encoder(state_dict=dict(state), network_alphas=alphas, text_encoder=module, prefix=part,
                                     adapter_name=lora.name)
    return True


@contextlib.contextmanager
def lora_active(module: Any, patches: tuple[LoraPatch, ...], part: str) -> Iterator[None]:
    """Enable exactly ``patches`` (those that touch ``part``) on ``module`` for the block."""
    from diffusers.utils.peft_utils import set_adapter_layers, set_weights_and_activate_adapters

    names: list[str] = []
    weights: list[float] = []
    for patch in patches:
        if patch.strength != 0 and _inject(module, patch.lora, part):
            names.append(patch.lora.name)
            weights.append(float(patch.strength))
    had_adapters = bool(_loaded_adapters(module))
    try:
        if names:
            set_weights_and_activate_adapters(module, names, weights)
            set_adapter_layers(module, enabled=True)
        elif had_adapters:
            set_adapter_layers(module, enabled=False)
        yield
    finally:
        if had_adapters or names:
            set_adapter_layers(module, enabled=False)


def unload_lora(module: Any, lora: LoraFile) -> bool:
    """Remove a LoRA's adapter from a module; True if it was loaded."""
    from diffusers.utils.peft_utils import delete_adapter_layers

    if lora.name not in _loaded_adapters(module):
        return False
    delete_adapter_layers(module, lora.name)
    module.peft_config.pop(lora.name, None)
    return True
