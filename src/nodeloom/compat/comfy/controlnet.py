"""``comfy.controlnet``: loading a ControlNet file for packs, as the ``ControlNetLoader`` node does.

``load_controlnet(path)`` returns the same ``CONTROL_NET`` value as the node (a diffusers
ControlNet, cached by file in the running engine's model manager), so packs that load ControlNets
by path and then apply them with ``ControlNetApply`` / ``ControlNetApplyAdvanced`` get nodeloom's
behaviour. Building one from a state dict (``load_controlnet_state_dict``) is refused.
"""

from __future__ import annotations

import os
from typing import Any

from nodeloom.core.context import current_services
from nodeloom.diffusion.controlnet import ControlNetModel
from nodeloom.diffusion.controlnet import load_controlnet as _load_file
from nodeloom.diffusion.models import DiffusionModel
from nodeloom.node_api import model_key

__all__ = ["ControlNet", "load_controlnet", "load_controlnet_state_dict"]

ControlNet = ControlNetModel


def load_controlnet(ckpt_path: str | os.PathLike[str], model: DiffusionModel | None = None,
                    model_options: dict[str, Any] | None = None) -> ControlNetModel:
    """The CONTROL_NET value of a ControlNet file (``model`` is accepted for compatibility)."""
    path = os.fspath(ckpt_path)
    services = current_services(required=False)
    if services is None:
        return ControlNetModel(_load_file(path))
    return ControlNetModel(services.models.load(model_key(path, "controlnet"), lambda: _load_file(path)))


def load_controlnet_state_dict(state_dict: dict[str, Any], model: Any = None, model_options: Any = None) -> Any:
    """Refused: nodeloom builds ControlNets from files.

    Raises:
        NotImplementedError: always, naming the file-based call.
    """
    raise NotImplementedError("`comfy.controlnet.load_controlnet_state_dict`: nodeloom builds ControlNets from files; "
                              "call `comfy.controlnet.load_controlnet(path)` or use the ControlNetLoader node")
