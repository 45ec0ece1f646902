"""Load Stable Diffusion checkpoints (single file or diffusers folder) into diffusers modules.

Single files go through diffusers' own ``from_single_file`` conversion with ``config=`` pointing
at a local folder written from :mod:`nodeloom.diffusion.detect`'s inferred configs, so nothing is
ever fetched. ``.ckpt``/``.pt`` pickles load only when the caller allows unsafe pickles.
Imports torch, diffusers and transformers lazily through ``errors.require``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeloom.diffusion.detect import CheckpointInfo, detect_checkpoint, family_defaults, infer_vae_config
from nodeloom.errors import ModelNotFoundError, PolicyDeniedError, ValidationError, require

__all__ = ["SDComponents", "load_checkpoint", "load_state_dict", "load_vae_file", "vae_from_state_dict",
           "write_config_folder"]

_PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


@dataclass
class SDComponents:
    """The parts of a loaded checkpoint and the facts the sampler needs about them."""

    family: str
    unet: Any = field(repr=False)
    vae: Any = field(repr=False)
    text_encoders: list[Any] = field(repr=False)
    prediction_type: str = "epsilon"
    latent_scale: float = 0.18215
    inpaint: bool = False
    clip_layer_norm_hidden: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def load_state_dict(path: str | Path, *, allow_pickle: bool = False) -> dict[str, Any]:
    """Read a ``.safetensors`` file (or, only if ``allow_pickle``, a pickled ``.ckpt``/``.pt``).

    Raises:
        ModelNotFoundError: the file does not exist.
        PolicyDeniedError: a pickle file while unsafe loading is off.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelNotFoundError(f"model file `{p.name}` does not exist in `{p.parent}`",
                                 extra_info={"name": p.name, "searched": [str(p.parent)]})
    if p.suffix.lower() in (".safetensors", ".sft"):
        safetensors_torch = require("safetensors.torch", "diffusion")
        return dict(safetensors_torch.load_file(str(p)))
    if p.suffix.lower() in _PICKLE_SUFFIXES:
        if not allow_pickle:
            raise PolicyDeniedError(
                f"`{p.name}` is a pickle file, which can run arbitrary code when loaded; convert it to"
                " .safetensors or start nodeloom with unsafe pickle loading allowed (`allow_unsafe_pickle`)",
                extra_info={"name": p.name},
            )
        torch = require("torch", "diffusion")
        data = torch.load(str(p), map_location="cpu", weights_only=False)
        return dict(data.get("state_dict", data)) if isinstance(data, dict) else dict(data)
    raise ValidationError(f"`{p.name}`: unsupported model file type `{p.suffix}` (expected .safetensors)")


def write_config_folder(root: Path, info: CheckpointInfo) -> Path:
    """Lay out ``info.configs`` as a diffusers repository folder (``<part>/config.json``)."""
    for part, cfg in info.configs.items():
        (root / part).mkdir(parents=True, exist_ok=True)
        (root / part / "config.json").write_text(json.dumps(cfg, indent=1), encoding="utf-8")
    return root


def _single_file(sd: dict[str, Any], name: str, dtype: Any) -> SDComponents:
    diffusers = require("diffusers", "diffusion")
    transformers = require("transformers", "diffusion")
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm

    info = detect_checkpoint(sd, name)
    with tempfile.TemporaryDirectory(prefix="nodeloom-cfg-") as tmp:
        root = write_config_folder(Path(tmp), info)
        common = {"config": str(root), "local_files_only": True, "torch_dtype": dtype}
        unet = diffusers.UNet2DConditionModel.from_single_file(sd, subfolder="unet", **common)
        vae = diffusers.AutoencoderKL.from_single_file(sd, subfolder="vae", **common)
        encoders = [create_diffusers_clip_model_from_ldm(
            transformers.CLIPTextModel, sd, subfolder="text_encoder", config=str(root),
            torch_dtype=dtype, local_files_only=True)]
        if "text_encoder_2" in info.configs:
            encoders.append(create_diffusers_clip_model_from_ldm(
                transformers.CLIPTextModelWithProjection, sd, subfolder="text_encoder_2", config=str(root),
                torch_dtype=dtype, local_files_only=True))
    return SDComponents(info.family, unet.eval(), vae.eval(), [e.eval() for e in encoders],
                        prediction_type=info.prediction_type, latent_scale=info.latent_scale,
                        inpaint=info.inpaint, clip_layer_norm_hidden=info.clip_layer_norm_hidden)


def _folder_family(unet_config: dict[str, Any], text_config: Any, has_te2: bool) -> str:
    if has_te2 or unet_config.get("addition_embed_type") == "text_time":
        return "sdxl"
    # SD 2.x uses OpenCLIP (plain GELU); SD 1.x uses OpenAI CLIP-L (quick GELU)
    return "sd2" if getattr(text_config, "hidden_act", "quick_gelu") == "gelu" else "sd1"


def _diffusers_folder(path: Path, dtype: Any) -> SDComponents:
    diffusers = require("diffusers", "diffusion")
    transformers = require("transformers", "diffusion")
    for part in ("unet", "vae", "text_encoder"):
        if not (path / part / "config.json").is_file():
            raise ModelNotFoundError(
                f"diffusers folder `{path.name}` has no `{part}/config.json`; searched: {path}",
                extra_info={"name": f"{part}/config.json", "searched": [str(path)]},
            )
    kw = {"local_files_only": True, "torch_dtype": dtype}
    unet = diffusers.UNet2DConditionModel.from_pretrained(str(path), subfolder="unet", **kw)
    vae = diffusers.AutoencoderKL.from_pretrained(str(path), subfolder="vae", **kw)
    encoders = [transformers.CLIPTextModel.from_pretrained(str(path), subfolder="text_encoder", **kw)]
    has_te2 = (path / "text_encoder_2" / "config.json").is_file()
    if has_te2:
        encoders.append(transformers.CLIPTextModelWithProjection.from_pretrained(str(path), subfolder="text_encoder_2", **kw))
    family = _folder_family(dict(unet.config), encoders[0].config, has_te2)
    prediction = "epsilon"
    sched = path / "scheduler" / "scheduler_config.json"
    if sched.is_file():
        prediction = json.loads(sched.read_text("utf-8")).get("prediction_type", "epsilon")
    base = family_defaults(family)
    scale = float(vae.config.get("scaling_factor") or base["latent_scale"])
    return SDComponents(family, unet.eval(), vae.eval(), [e.eval() for e in encoders], prediction_type=prediction,
                        latent_scale=scale, inpaint=unet.config.in_channels == 9,
                        clip_layer_norm_hidden=bool(base["clip_layer_norm_hidden"]))


def load_checkpoint(path: str | Path, *, dtype: Any = None, allow_pickle: bool = False) -> SDComponents:
    """Load a checkpoint: a single ``.safetensors`` in the original SD layout or a diffusers folder.

    Args:
        path: the file or folder.
        dtype: torch dtype for the weights (None keeps float32).
        allow_pickle: permit ``.ckpt``/``.pt`` pickles (unsafe).

    Returns:
        The loaded components, on CPU.

    Raises:
        ModelNotFoundError: the file/folder or a part's config is missing.
        ValidationError: the file is not a supported checkpoint.
        PolicyDeniedError: a pickle file while ``allow_pickle`` is False.
    """
    p = Path(path)
    if p.is_dir():
        return _diffusers_folder(p, dtype)
    return _single_file(load_state_dict(p, allow_pickle=allow_pickle), p.name, dtype)


def load_vae_file(path: str | Path, *, family: str = "sd1", dtype: Any = None, allow_pickle: bool = False) -> Any:
    """Load a standalone VAE: a diffusers folder, or a single file (LDM layout, with or without the
    ``first_stage_model.`` prefix).

    Raises:
        ModelNotFoundError / ValidationError / PolicyDeniedError: as :func:`load_checkpoint`.
    """
    diffusers = require("diffusers", "diffusion")
    p = Path(path)
    if p.is_dir():
        sub = "vae" if (p / "vae" / "config.json").is_file() else None
        return diffusers.AutoencoderKL.from_pretrained(str(p), subfolder=sub, local_files_only=True, torch_dtype=dtype).eval()
    sd = load_state_dict(p, allow_pickle=allow_pickle)
    from nodeloom.diffusion.flux2_vae import is_flux2_vae, load_flux2_vae
    from nodeloom.diffusion.qwen_vae import is_wan21_vae, load_wan21_vae

    if is_flux2_vae(sd):
        return load_flux2_vae(sd, p.name, dtype)
    if is_wan21_vae(sd):
        return load_wan21_vae(sd, p.name, dtype)
    if "decoder.conv_in.weight" in sd and "encoder.down_blocks.0.resnets.0.conv1.weight" in sd:
        raise ValidationError(f"`{p.name}` holds diffusers-layout VAE weights; put it in a folder with its config.json")
    return vae_from_state_dict(sd, family=family, dtype=dtype)


def vae_from_state_dict(sd: dict[str, Any], *, family: str = "sd1", dtype: Any = None) -> Any:
    """An ``AutoencoderKL`` from original-layout (LDM) VAE weights, sizes read from their shapes."""
    diffusers = require("diffusers", "diffusion")
    cfg = infer_vae_config(sd, family_defaults(family)["vae"])
    with tempfile.TemporaryDirectory(prefix="nodeloom-cfg-") as tmp:
        (Path(tmp) / "vae").mkdir()
        (Path(tmp) / "vae" / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
        vae = diffusers.AutoencoderKL.from_single_file(sd, config=tmp, subfolder="vae", local_files_only=True, torch_dtype=dtype)
    return vae.eval()
