"""LoRA stacks applied per call through PEFT adapters (kohya, diffusers/PEFT and LyCORIS formats).

A LoRA file is read once (:func:`read_lora`), converted by diffusers to its PEFT layout and
injected into a shared module as a named adapter the first time a value that uses it runs.
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

_TE_PREFIXES = {"text_encoder": ("lora_te_", "lora_te1_", "text_encoder."), "text_encoder_2": ("lora_te2_", "text_encoder_2.")}


@dataclass(frozen=True)
class LoraFile:
    """The converted weights of one LoRA file, split per model part (keys keep their part prefix)."""

    name: str
    parts: dict[str, tuple[dict[str, Any], dict[str, float] | None]]

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
    lycoris = sorted({k.rsplit(".", 1)[-1].split("_")[0] for k in raw if ".hada_" in k or ".lokr_" in k})
    if lycoris:
        raise ValidationError(
            f"`{p.name}` is a LyCORIS ({', '.join('LoHa' if x == 'hada' else 'LoKr' for x in lycoris)}) file;"
            " only LoRA (kohya lora_up/lora_down, diffusers and PEFT LoRA layouts) can be applied")
    mixin = diffusers.StableDiffusionXLPipeline if sdxl else diffusers.StableDiffusionPipeline
    try:
        state, alphas = mixin.lora_state_dict(raw, unet_config=unet_config)
    except (ValueError, KeyError) as exc:
        raise ValidationError(f"`{p.name}` is not a LoRA diffusers can apply: {exc}") from exc
    name = "nl_" + hashlib.sha1(f"{p.resolve()}:{p.stat().st_mtime_ns}".encode()).hexdigest()[:12]
    parts: dict[str, tuple[dict[str, Any], dict[str, float] | None]] = {}
    for part in ("unet", "text_encoder", "text_encoder_2"):
        sub = {k: v for k, v in state.items() if k.startswith(part + ".")}
        if sub:
            al = {k: v for k, v in (alphas or {}).items() if k.startswith(part + ".")} or None
            parts[part] = (sub, al)
    if not parts:
        raise ValidationError(f"`{p.name}` contains no LoRA weights for the UNet or text encoders")
    return LoraFile(name, parts)


def _loaded_adapters(module: Any) -> set[str]:
    cfg = getattr(module, "peft_config", None)
    return set(cfg) if cfg else set()


def _inject(module: Any, lora: LoraFile, part: str) -> bool:
    if part not in lora.parts:
        return False
    if lora.name in _loaded_adapters(module):
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
