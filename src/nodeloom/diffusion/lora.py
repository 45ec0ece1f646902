"""LoRA stacks applied per call through PEFT adapters (kohya, diffusers/PEFT and LyCORIS LoHa/LoKr).

A LoRA file is read once (:func:`read_lora`), converted by diffusers to its PEFT layout (LyCORIS
LoHa and LoKr files, Tucker-decomposed ones included: mapped here onto PEFT's LoHa/LoKr layers,
whose factors are replaced by the file's own) and injected into a shared module as a named adapter
the first time a value that uses it runs. Scales follow ComfyUI: LoHa alpha / rank; LoKr alpha /
the rank of its decomposed factor (w2's if both are), 1 when neither factor is decomposed.
:func:`lora_active` enables exactly the adapters (and strengths) of the value being run and
disables them afterwards, so MODEL/CLIP values with different stacks share one module without
mutating each other. Runs are serialised per device by the model manager's lock.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nodeloom.errors import ValidationError, require

__all__ = ["LoraFile", "LoraPatch", "file_metadata", "lora_active", "read_lora", "unload_lora"]

_KOHYA_PARTS = {"lora_unet_": "unet", "lora_te_": "text_encoder", "lora_te1_": "text_encoder", "lora_te2_": "text_encoder_2"}
#: the factor tensors of each LyCORIS kind, as its files and PEFT's layers name them
_LYCORIS_PARAMS = {
    "loha": ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2"),
    "lokr": ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2"),
}


@dataclass(frozen=True)
class LoraFile:
    """The converted weights of one LoRA file, split per model part (keys keep their part prefix)."""

    name: str
    parts: dict[str, tuple[dict[str, Any], dict[str, float] | None]]
    kind: str = "lora"
    #: the key prefix of the denoiser's weights ("unet"; "transformer" for flow families)
    prefix: str = "unet"
    #: the file's safetensors header metadata (training parameters such as an IC-LoRA's
    #: ``reference_downscale_factor``); empty for pickle files and files without any
    metadata: dict[str, str] = field(default_factory=dict, compare=False)

    def __hash__(self) -> int:
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LoraFile) and other.name == self.name


@dataclass(frozen=True)
class LoraPatch:
    lora: LoraFile
    strength: float


#: flow family → the diffusers LoRA mixin that reads its files (kohya, trainers' and diffusers/PEFT formats)
_FLOW_MIXINS = {"flux": "FluxLoraLoaderMixin", "z_image": "ZImageLoraLoaderMixin",
                "qwen_image": "QwenImageLoraLoaderMixin", "sd3": "SD3LoraLoaderMixin",
                "flux2": "Flux2LoraLoaderMixin", "chroma": "FluxLoraLoaderMixin", "lumina2": "Lumina2LoraLoaderMixin",
                "ltxv": "LTXVideoLoraLoaderMixin", "wan": "WanLoraLoaderMixin", "ltx2": "LTX2LoraLoaderMixin",
                "hidream": "HiDreamImageLoraLoaderMixin"}


def read_lora(path: str | Path, unet_config: Any, sdxl: bool, family: str | None = None) -> LoraFile:
    """Read and convert a LoRA file (kohya ``lora_unet_*``/``lora_te*``, diffusers, PEFT, LyCORIS LoHa/LoKr;
    for the flow families of :data:`_FLOW_MIXINS`, the formats diffusers reads for them); the file's
    safetensors metadata is kept on the result.

    Raises:
        ValidationError: the file holds no LoRA weights diffusers can map.
    """
    from nodeloom.diffusion.checkpoint import load_state_dict

    p = Path(path)
    raw = load_state_dict(p)
    name = "nl_" + hashlib.sha1(f"{p.resolve()}:{p.stat().st_mtime_ns}".encode()).hexdigest()[:12]
    return replace(_read_lora_weights(raw, name, p, unet_config, sdxl, family), metadata=file_metadata(p))


def file_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file's header (empty for other files or none there)."""
    if path.suffix.lower() not in (".safetensors", ".sft"):
        return {}
    safetensors = require("safetensors", "diffusion")
    with safetensors.safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def _read_lora_weights(raw: dict[str, Any], name: str, p: Path, unet_config: Any, sdxl: bool,
                       family: str | None) -> LoraFile:
    diffusers = require("diffusers", "diffusion")
    if family in _FLOW_MIXINS:
        return _read_flow_lora(raw, name, p.name, family)
    for kind, marker in (("lokr", ".lokr_"), ("loha", ".hada_")):
        if any(marker in k for k in raw):
            return _read_lycoris(raw, name, p.name, kind, unet_config if sdxl else None)
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


#: flow families whose CLIP value applies a LoRA's CLIP-L weights (kohya ``lora_te1_``/``lora_te_``)
_FLOW_TEXT_ENCODER_LORA = ("flux",)


def _read_flow_lora(raw: dict[str, Any], name: str, file_name: str, family: str) -> LoraFile:
    """A flow family's LoRA, converted by diffusers' mixin for that family: the transformer part and,
    for :data:`_FLOW_TEXT_ENCODER_LORA` (Flux.1: CLIP-L), the text-encoder part."""
    import inspect

    from diffusers.loaders import lora_pipeline

    mixin = getattr(lora_pipeline, _FLOW_MIXINS[family])
    wants_alphas = "return_alphas" in inspect.signature(mixin.lora_state_dict).parameters
    try:
        out = mixin.lora_state_dict(dict(raw), return_alphas=True) if wants_alphas else mixin.lora_state_dict(dict(raw))
    except (ValueError, KeyError) as exc:
        raise ValidationError(f"`{file_name}` is not a {family} LoRA diffusers can apply: {exc}") from exc
    state, alphas = out if isinstance(out, tuple) else (out, None)
    from diffusers.utils.state_dict_utils import DIFFUSERS_OLD_TO_DIFFUSERS, convert_state_dict

    parts: dict[str, tuple[dict[str, Any], dict[str, float] | None]] = {}
    for part, prefix in (("unet", "transformer."), ("text_encoder", "text_encoder.")):
        sub = {k: v for k, v in state.items() if k.startswith(prefix)}
        if part == "unet":
            sub = _peft_names(sub)
        if sub and part == "text_encoder":
            # the kohya converter names attention layers the old way (``to_q_lora.down``) and MLP
            # layers the new way; one naming lets diffusers' text-encoder loader tell the format
            sub = convert_state_dict(sub, DIFFUSERS_OLD_TO_DIFFUSERS)
        if sub and (part == "unet" or family in _FLOW_TEXT_ENCODER_LORA):
            parts[part] = (sub, {k: v for k, v in (alphas or {}).items() if k.startswith(prefix)} or None)
    if not parts:
        raise ValidationError(f"`{file_name}` contains no LoRA weights for the {family} diffusion model",
                              extra_info={"name": file_name, "family": family})
    return LoraFile(name, parts, prefix="transformer")


def _peft_names(sub: dict[str, Any]) -> dict[str, Any]:
    """``lora_down``/``lora_up`` pairs some mixins pass through unrenamed (HiDream's ComfyUI-named
    files) as PEFT's ``lora_A``/``lora_B``, each pair's ``alpha`` folded into ``lora_B`` as
    ``alpha / rank``; other keys unchanged."""
    if not any(k.endswith(".lora_down.weight") for k in sub):
        return sub
    out = {}
    for key, value in sub.items():
        if key.endswith(".alpha"):
            continue
        if key.endswith(".lora_down.weight"):
            key = key[: -len("lora_down.weight")] + "lora_A.weight"
        elif key.endswith(".lora_up.weight"):
            base = key[: -len("lora_up.weight")]
            alpha = sub.get(base + "alpha")
            rank = sub[base + "lora_down.weight"].shape[0] if base + "lora_down.weight" in sub else value.shape[1]
            value = value * (float(alpha) / rank) if alpha is not None else value
            key = base + "lora_B.weight"
        out[key] = value
    return out


def _read_lycoris(raw: dict[str, Any], name: str, file_name: str, kind: str, sgm_unet_config: Any) -> LoraFile:
    """Group a kohya-named LoHa/LoKr file per part: ``{kohya module name: {param: tensor}}`` and alphas."""
    if sgm_unet_config is not None and any("input_blocks" in k or "output_blocks" in k for k in raw):
        from diffusers.loaders.lora_conversion_utils import _maybe_map_sgm_blocks_to_diffusers

        raw = _maybe_map_sgm_blocks_to_diffusers(raw, sgm_unet_config)
    label = "LoHa" if kind == "loha" else "LoKr"
    parts: dict[str, tuple[dict[str, Any], dict[str, float] | None]] = {}
    for key, value in raw.items():
        module, _, param = key.partition(".")
        prefix = next((pre for pre in _KOHYA_PARTS if module.startswith(pre)), None)
        if prefix is None:
            raise ValidationError(f"`{file_name}`: {label} key `{key}` has no kohya prefix (lora_unet_/lora_te*_)")
        tensors, alphas = parts.setdefault(_KOHYA_PARTS[prefix], ({}, {}))
        short = module[len(prefix):]
        if param == "alpha":
            alphas[short] = float(value)
        elif param in _LYCORIS_PARAMS[kind]:
            tensors.setdefault(short, {})[param] = value
    for part, (tensors, _) in parts.items():
        for module, params in tensors.items():
            _check_factors(kind, params, f"`{file_name}`: {label} module `{module}`")
    return LoraFile(name, parts, kind=kind)


def _check_factors(kind: str, params: dict[str, Any], where: str) -> None:
    """Each factor must be given whole or as its two halves."""
    if kind == "loha":
        needed = [("hada_w1_a", "hada_w1_b"), ("hada_w2_a", "hada_w2_b")]
        missing = [n for pair in needed for n in pair if n not in params]
    else:
        missing = [f"lokr_{w} (or lokr_{w}_a + lokr_{w}_b)" for w in ("w1", "w2")
                   if f"lokr_{w}" not in params and not (f"lokr_{w}_a" in params and f"lokr_{w}_b" in params)]
    if missing:
        raise ValidationError(f"{where} lacks {', '.join(missing)}")


def _lycoris_rank_alpha(kind: str, params: dict[str, Any], alpha: float | None) -> tuple[int, float]:
    """PEFT's ``r`` and ``alpha`` for one module, so that alpha / r is ComfyUI's scale."""
    if kind == "loha":
        rank = int(params["hada_w1_b"].shape[0])
        return rank, alpha if alpha is not None else float(rank)
    rank = None
    if "lokr_w1" not in params:
        rank = int(params["lokr_w1_b"].shape[0])
    if "lokr_w2" not in params:
        rank = int(params["lokr_w2_b"].shape[0])
    if rank is None or alpha is None:
        return 1, 1.0  # LyCORIS: full factors carry their own scale
    return rank, alpha


def _inject_lycoris(module: Any, lora: LoraFile, part: str) -> None:
    """Add a LoHa/LoKr adapter to ``module`` with PEFT, then put the file's factors in its place."""
    import torch
    from peft import LoHaConfig, LoKrConfig, inject_adapter_in_model

    tensors, alphas = lora.parts[part]
    by_kohya = {}
    for mname, _ in module.named_modules():
        by_kohya[mname.replace(".", "_")] = mname
        by_kohya["text_model_" + mname.replace(".", "_")] = mname
    label = "LoHa" if lora.kind == "loha" else "LoKr"
    missing = [k for k in tensors if k not in by_kohya]
    if missing:
        raise ValidationError(f"{label} modules {missing[:3]} do not exist in the {part.replace('_', ' ')}")
    targets = {by_kohya[k]: v for k, v in tensors.items()}
    scales = {by_kohya[k]: _lycoris_rank_alpha(lora.kind, v, (alphas or {}).get(k)) for k, v in tensors.items()}
    top = max(r for r, _ in scales.values())
    config_cls = LoHaConfig if lora.kind == "loha" else LoKrConfig
    cfg = config_cls(r=top, alpha=top, target_modules=sorted(targets),
                     rank_pattern={re_exact(m): r for m, (r, _) in scales.items()},
                     alpha_pattern={re_exact(m): a for m, (_, a) in scales.items()})
    inject_adapter_in_model(cfg, module, adapter_name=lora.name)
    for mname, params in targets.items():
        layer = module.get_submodule(mname)
        base = layer.get_base_layer().weight
        for pname in _LYCORIS_PARAMS[lora.kind]:
            if lora.name in getattr(layer, pname):
                del getattr(layer, pname)[lora.name]
        for pname, value in params.items():
            getattr(layer, pname)[lora.name] = torch.nn.Parameter(value.to(device=base.device, dtype=base.dtype),
                                                                  requires_grad=False)
        try:
            layer.get_delta_weight(lora.name)
        except RuntimeError as exc:
            from diffusers.utils.peft_utils import delete_adapter_layers

            delete_adapter_layers(module, lora.name)  # leave the module as it was
            if isinstance(getattr(module, "peft_config", None), dict):
                module.peft_config.pop(lora.name, None)
            raise ValidationError(f"{label} factors of `{mname}` do not make its weight shape "
                                  f"{tuple(base.shape)}: {exc}") from exc
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
    if lora.kind in _LYCORIS_PARAMS:
        _inject_lycoris(module, lora, part)
        return True
    state, alphas = lora.parts[part]
    if part == "unet":
        module.load_lora_adapter(dict(state), prefix=lora.prefix, network_alphas=alphas, adapter_name=lora.name)
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
