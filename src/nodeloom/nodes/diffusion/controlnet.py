"""ControlNet nodes: ControlNetLoader, ControlNetApplyAdvanced, the older ControlNetApply and the Canny preprocessor."""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.diffusion.controlnet import ControlNetModel, ControlSpec, load_controlnet
from nodeloom.node_api import IO, Combo, Conditioning, Custom, Float, Image, Node, Output, Schema, Vae, model_key, services
from nodeloom.nodes.diffusion._common import file_list
from nodeloom.ops.canny import canny_edges

__all__ = ["Canny", "ControlNetApply", "ControlNetApplyAdvanced", "ControlNetLoader"]


class ControlNetLoader(Node):
    """Loads a ControlNet from models/controlnet: an original single file (``control_model.*``), a diffusers
    folder, or diffusers weights beside their ``config.json``."""

    SCHEMA = Schema(
        "ControlNetLoader", display_name="Load ControlNet Model", category="loaders",
        inputs=[Combo("control_net_name", file_list("controlnet"), tooltip="The ControlNet to load.")],
        outputs=[Output(IO.CONTROL_NET, "CONTROL_NET")],
    )

    @classmethod
    def execute(cls, control_net_name: str) -> tuple[Any, ...]:
        svc = services()
        path = svc.paths.get_full_path("controlnet", control_net_name)
        net = svc.models.load(model_key(path, "controlnet"), lambda: load_controlnet(path))
        return (ControlNetModel(net),)


class ControlNetApplyAdvanced(Node):
    """Guides sampling with a ControlNet and a hint image, between start and end percent of the schedule."""

    SCHEMA = Schema(
        "ControlNetApplyAdvanced", display_name="Apply ControlNet", category="conditioning/controlnet",
        inputs=[Conditioning("positive", tooltip="Positive conditioning."),
                Conditioning("negative", tooltip="Negative conditioning."),
                Custom(IO.CONTROL_NET, "control_net", tooltip="The ControlNet."),
                Image("image", tooltip="The hint image (e.g. Canny edges)."),
                Float("strength", 1.0, min=0.0, max=10.0, step=0.01, tooltip="Residual scale (0 = off)."),
                Float("start_percent", 0.0, min=0.0, max=1.0, step=0.001, tooltip="Start of the active window."),
                Float("end_percent", 1.0, min=0.0, max=1.0, step=0.001, tooltip="End of the active window."),
                Vae("vae", optional=True, tooltip="Unused by diffusers ControlNets; accepted for compatibility.")],
        outputs=[Output(IO.CONDITIONING, "positive"), Output(IO.CONDITIONING, "negative")],
    )

    @classmethod
    def execute(cls, positive: list[Any], negative: list[Any], control_net: ControlNetModel, image: torch.Tensor,
                strength: float, start_percent: float, end_percent: float, vae: Any = None) -> tuple[Any, ...]:
        if strength == 0:
            return (positive, negative)
        specs: dict[int, ControlSpec] = {}
        out = []
        for cond in (positive, negative):
            items = []
            for item in cond:
                extra = dict(item[1])
                prev = extra.get("control")
                if id(prev) not in specs:
                    specs[id(prev)] = ControlSpec(control_net, image, float(strength), float(start_percent),
                                                  float(end_percent), prev)
                extra["control"] = specs[id(prev)]
                items.append([item[0], extra])
            out.append(items)
        return (out[0], out[1])


class ControlNetApply(Node):
    """The older ControlNet node: one conditioning; the sampler applies the same ControlNet to the
    negative prompt's pass as well (when the negative has none of its own)."""

    SCHEMA = Schema(
        "ControlNetApply", display_name="Apply ControlNet (OLD)", category="conditioning/controlnet", deprecated=True,
        inputs=[Conditioning("conditioning", tooltip="The conditioning to guide."),
                Custom(IO.CONTROL_NET, "control_net", tooltip="The ControlNet."),
                Image("image", tooltip="The hint image (e.g. Canny edges)."),
                Float("strength", 1.0, min=0.0, max=10.0, step=0.01, tooltip="Residual scale (0 = off).")],
        outputs=[Output(IO.CONDITIONING, "CONDITIONING")],
    )

    @classmethod
    def execute(cls, conditioning: list[Any], control_net: ControlNetModel, image: torch.Tensor,
                strength: float) -> tuple[Any, ...]:
        if strength == 0:
            return (conditioning,)
        out = []
        for item in conditioning:
            extra = dict(item[1])
            extra["control"] = ControlSpec(control_net, image, float(strength), 0.0, 1.0, extra.get("control"))
            extra["control_apply_to_uncond"] = True
            out.append([item[0], extra])
        return (out,)


class Canny(Node):
    """Canny edge detection (OpenCV), e.g. for a canny ControlNet hint."""

    SCHEMA = Schema(
        "Canny", display_name="Canny", category="image/preprocessors",
        inputs=[Image("image", tooltip="The image."),
                Float("low_threshold", 0.4, min=0.01, max=0.99, step=0.01, tooltip="Lower hysteresis threshold (0..1)."),
                Float("high_threshold", 0.8, min=0.01, max=0.99, step=0.01, tooltip="Upper hysteresis threshold (0..1).")],
        outputs=[Output(IO.IMAGE, "IMAGE")],
    )

    @classmethod
    def execute(cls, image: torch.Tensor, low_threshold: float, high_threshold: float) -> tuple[Any, ...]:
        return (canny_edges(image, low_threshold, high_threshold),)
