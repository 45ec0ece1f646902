"""Lotus-D: a Stable Diffusion 2 UNet fine-tuned to map an image's latent to a dense prediction
(depth, normals) in one step, loaded by UNETLoader.

Files: ComfyUI's ``lotus-depth-d-v1-1.safetensors`` — the original LDM UNet layout (``input_blocks``,
``middle_block``, ``output_blocks``), with or without ``model.diffusion_model.``, whose class
embedding ``label_emb.0`` takes 4 inputs (ComfyUI's LotusD: ``adm_in_channels`` 4). Sizes are read
from shapes (:func:`nodeloom.diffusion.detect.infer_unet_config`, SD 2.x conventions) and the
module is diffusers' ``UNet2DConditionModel`` with a ``projection`` class embedding. The task
embedding (sin and cos of ``[1, 0]``: "predict", not "reconstruct") is held by the module as a
buffer and given as ``class_labels`` on every call, as ComfyUI's ``Lotus`` model gives it as ``y``.

Sampling is the UNet path of :mod:`nodeloom.diffusion.sampling` (no flow adapter) on SD's discrete
schedule with ComfyUI's IMG_TO_IMG reading: the latent goes in unscaled and the output is the
clean estimate. Imports no node, engine or adapter.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from nodeloom.diffusion.families import Family
from nodeloom.diffusion.schedules import ModelSampling
from nodeloom.errors import require

__all__ = ["FAMILY", "TASK_INPUTS", "lotus_unet_config", "task_embedding"]

#: inputs of the class embedding: sin and cos of the 2-value task switch
TASK_INPUTS = 4
_SIGNATURE = ("input_blocks.0.0.weight", "out.2.weight", "label_emb.0.0.weight with 4 inputs")
_LDM_PREFIX = "model.diffusion_model."


def _matches(shapes: dict[str, tuple[int, ...]]) -> bool:
    label = shapes.get("label_emb.0.0.weight")
    return "input_blocks.0.0.weight" in shapes and "out.2.weight" in shapes and label is not None \
        and len(label) == 2 and label[1] == TASK_INPUTS


def task_embedding() -> Any:
    """Lotus's task switch for dense prediction, ``[1, 4]``: ``[sin 1, sin 0, cos 1, cos 0]``."""
    torch = require("torch", "diffusion")
    switch = torch.tensor([1.0, 0.0])
    return torch.cat([switch.sin(), switch.cos()])[None]


def lotus_unet_config(sd: dict[str, Any]) -> dict[str, Any]:
    """The ``UNet2DConditionModel`` config of a Lotus-D file's weights (prefix-free LDM keys)."""
    from nodeloom.diffusion.detect import family_defaults, infer_unet_config

    cfg = infer_unet_config(sd, family_defaults("sd2")["unet"], "sd2", prefix="")
    cfg.update(class_embed_type="projection", projection_class_embeddings_input_dim=TASK_INPUTS)
    return cfg


def _with_task_labels(module: Any) -> Any:
    """Give the UNet Lotus's task embedding as ``class_labels`` whenever a caller passes none."""
    module.register_buffer("lotus_task_embedding", task_embedding(), persistent=False)

    def fill(mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if kwargs.get("class_labels") is None:
            sample = args[0] if args else kwargs["sample"]
            labels = mod.lotus_task_embedding.to(sample.device, sample.dtype)
            kwargs["class_labels"] = labels.expand(sample.shape[0], -1)
        return args, kwargs

    module.register_forward_pre_hook(fill, with_kwargs=True)
    return module


def _load(sd: dict[str, Any], dtype: Any) -> Any:
    diffusers = require("diffusers", "diffusion")
    cfg = lotus_unet_config(sd)
    with tempfile.TemporaryDirectory(prefix="nodeloom-cfg-") as tmp:
        (Path(tmp) / "unet").mkdir()
        (Path(tmp) / "unet" / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
        model = diffusers.UNet2DConditionModel.from_single_file(
            {_LDM_PREFIX + k: v for k, v in sd.items()}, config=tmp, subfolder="unet", local_files_only=True,
            torch_dtype=dtype)
    return _with_task_labels(model.eval())


FAMILY = Family(
    name="lotus_d", title="Lotus-D (SD 2 UNet, dense prediction)", matches=_matches, load=_load, adapter=None,
    sampling=lambda module: ModelSampling(prediction_type="img_to_img"),
    latent_scale=0.18215, latent_shift=0.0, latent_channels=4, signature=_SIGNATURE,
)
