"""The V3 socket types: widgets (``Boolean``, ``Int``, ``Float``, ``String``, ``Combo``...)
and the plain socket types (``Image``, ``Latent``, ``Model``... ``AnyType``).

Each widget input's ``as_dict()`` lists the options ComfyUI's ``/object_info`` shows for it
(unset options are left out). Declarations only: no engine state, no I/O.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import torch

from nodeloom.compat.comfy.api.internal import prune_dict
from nodeloom.compat.comfy.api.latest.io_base import (
    ComfyTypeI,
    ComfyTypeIO,
    FolderType,
    NumberDisplay,
    Output,
    RemoteComboOptions,
    RemoteOptions,
    UploadType,
    WidgetInput,
    comfytype,
)

__all__ = ["Boolean", "Combo", "Float", "Int", "MultiCombo", "PLAIN_TYPES", "String", "Webcam"]


@comfytype(io_type="BOOLEAN")
class Boolean(ComfyTypeIO):
    Type = bool

    class Input(WidgetInput):
        """A toggle; ``label_on`` / ``label_off`` name its two states."""

        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,  # noqa: A002
                     tooltip: str | None = None, lazy: bool | None = None, default: bool | None = None,
                     label_on: str | None = None, label_off: str | None = None,
                     socketless: bool | None = None, force_input: bool | None = None,
                     extra_dict: dict[str, Any] | None = None, raw_link: bool | None = None,
                     advanced: bool | None = None) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link, advanced)
            self.label_on, self.label_off = label_on, label_off

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | prune_dict({"label_on": self.label_on, "label_off": self.label_off})


@comfytype(io_type="INT")
class Int(ComfyTypeIO):
    Type = int

    class Input(WidgetInput):
        """An integer widget; ``control_after_generate`` adds the seed-style control."""

        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,  # noqa: A002
                     tooltip: str | None = None, lazy: bool | None = None, default: int | None = None,
                     min: int | None = None, max: int | None = None, step: int | None = None,  # noqa: A002
                     control_after_generate: bool | None = None, display_mode: NumberDisplay | None = None,
                     socketless: bool | None = None, force_input: bool | None = None,
                     extra_dict: dict[str, Any] | None = None, raw_link: bool | None = None,
                     advanced: bool | None = None) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link, advanced)
            self.min, self.max, self.step = min, max, step
            self.control_after_generate, self.display_mode = control_after_generate, display_mode

        def as_dict(self) -> dict[str, Any]:
            display = self.display_mode.value if self.display_mode else None
            return super().as_dict() | prune_dict({"min": self.min, "max": self.max, "step": self.step,
                                                   "control_after_generate": self.control_after_generate,
                                                   "display": display})


@comfytype(io_type="FLOAT")
class Float(ComfyTypeIO):
    Type = float

    class Input(WidgetInput):
        """A float widget; ``round`` is the display precision."""

        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,  # noqa: A002
                     tooltip: str | None = None, lazy: bool | None = None, default: float | None = None,
                     min: float | None = None, max: float | None = None, step: float | None = None,  # noqa: A002
                     round: float | None = None, display_mode: NumberDisplay | None = None,  # noqa: A002
                     gradient_stops: list[dict[str, Any]] | None = None,
                     socketless: bool | None = None, force_input: bool | None = None,
                     extra_dict: dict[str, Any] | None = None, raw_link: bool | None = None,
                     advanced: bool | None = None) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link, advanced)
            self.min, self.max, self.step, self.round, self.display_mode = min, max, step, round, display_mode
            self.gradient_stops = gradient_stops

        def as_dict(self) -> dict[str, Any]:
            display = self.display_mode.value if self.display_mode else None
            return super().as_dict() | prune_dict({"min": self.min, "max": self.max, "step": self.step,
                                                   "round": self.round, "display": display,
                                                   "gradient_stops": self.gradient_stops})


@comfytype(io_type="STRING")
class String(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        """A text widget; ``multiline`` for prompts."""

        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,  # noqa: A002
                     tooltip: str | None = None, lazy: bool | None = None, multiline: bool = False,
                     placeholder: str | None = None, default: str | None = None,
                     dynamic_prompts: bool | None = None, socketless: bool | None = None,
                     force_input: bool | None = None, extra_dict: dict[str, Any] | None = None, raw_link: bool | None = None,
                     advanced: bool | None = None) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input,
                             extra_dict, raw_link, advanced)
            self.multiline, self.placeholder, self.dynamic_prompts = multiline, placeholder, dynamic_prompts

        def as_dict(self) -> dict[str, Any]:
            return super().as_dict() | prune_dict({"multiline": self.multiline, "placeholder": self.placeholder,
                                                   "dynamicPrompts": self.dynamic_prompts})


@comfytype(io_type="COMBO")
class Combo(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        """A dropdown; ``options`` may be a list or an ``Enum`` class (its values are listed)."""

        def __init__(self, id: str, options: Any = None, display_name: str | None = None,  # noqa: A002
                     optional: bool = False, tooltip: str | None = None, lazy: bool | None = None,
                     default: Any = None, control_after_generate: bool | None = None,
                     upload: UploadType | None = None, image_folder: FolderType | None = None,
                     remote: RemoteOptions | None = None, remote_combo: RemoteComboOptions | None = None,
                     socketless: bool | None = None, extra_dict: dict[str, Any] | None = None, raw_link: bool | None = None,
                     advanced: bool | None = None) -> None:
            if remote is not None and remote_combo is not None:
                raise ValueError(f"Combo input `{id}`: pass either `remote` or `remote_combo`, not both")
            if options is not None and remote_combo is not None:
                raise ValueError(f"Combo input `{id}`: pass either `options` or `remote_combo`, not both")
            if isinstance(options, type) and issubclass(options, Enum):
                options = [member.value for member in options]
            if isinstance(default, Enum):
                default = default.value
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, None, extra_dict, raw_link, advanced)
            self.multiselect = False
            self.options, self.control_after_generate = options, control_after_generate
            self.upload, self.image_folder, self.remote = upload, image_folder, remote
            self.remote_combo = remote_combo

        def as_dict(self) -> dict[str, Any]:
            extra = {"multiselect": self.multiselect, "options": self.options,
                     "control_after_generate": self.control_after_generate,
                     "image_folder": self.image_folder.value if self.image_folder else None,
                     "remote": self.remote.as_dict() if self.remote else None,
                     "remote_combo": self.remote_combo.as_dict() if self.remote_combo else None}
            upload = {self.upload.value: True} if self.upload is not None else {}
            return super().as_dict() | prune_dict(extra) | upload

    class Output(Output):
        """A combo output: its type is the list of choices."""

        def __init__(self, id: str | None = None, display_name: str | None = None,  # noqa: A002
                     options: list[str] | None = None, tooltip: str | None = None,
                     is_output_list: bool = False) -> None:
            super().__init__(id, display_name, tooltip, is_output_list)
            self.options = options if options is not None else []

        @property
        def io_type(self) -> Any:
            return self.options


@comfytype(io_type="COMBO")
class MultiCombo(ComfyTypeI):
    Type = list[str]

    class Input(Combo.Input):
        """A dropdown that may select several values."""

        def __init__(self, id: str, options: list[str], display_name: str | None = None,  # noqa: A002
                     optional: bool = False, tooltip: str | None = None, lazy: bool | None = None,
                     default: list[str] | None = None, placeholder: str | None = None, chip: bool | None = None,
                     control_after_generate: bool | None = None, socketless: bool | None = None,
                     extra_dict: dict[str, Any] | None = None, raw_link: bool | None = None,
                     advanced: bool | None = None) -> None:
            super().__init__(id, options, display_name, optional, tooltip, lazy, default, control_after_generate,
                             socketless=socketless, extra_dict=extra_dict, raw_link=raw_link, advanced=advanced)
            self.multiselect = True
            self.placeholder, self.chip = placeholder, chip

        def as_dict(self) -> dict[str, Any]:
            # newer frontends read `multi_select` as an object of its settings; `multiselect` stays too
            return super().as_dict() | {"multi_select": prune_dict({"placeholder": self.placeholder, "chip": self.chip})}


@comfytype(io_type="WEBCAM")
class Webcam(ComfyTypeIO):
    Type = str

    class Input(WidgetInput):
        """A webcam capture widget (its value is the captured image's file name)."""

        def __init__(self, id: str, display_name: str | None = None, optional: bool = False,  # noqa: A002
                     tooltip: str | None = None, lazy: bool | None = None, default: str | None = None,
                     socketless: bool | None = None, extra_dict: dict[str, Any] | None = None, raw_link: bool | None = None,
                     advanced: bool | None = None) -> None:
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, None, extra_dict, raw_link, advanced)


#: class name -> (type string, value type) of the socket-only types ComfyUI's ``io`` declares
PLAIN_TYPES: dict[str, tuple[str, Any]] = {
    "Image": ("IMAGE", torch.Tensor), "WanCameraEmbedding": ("WAN_CAMERA_EMBEDDING", torch.Tensor),
    "Mask": ("MASK", torch.Tensor), "Latent": ("LATENT", dict), "Conditioning": ("CONDITIONING", list),
    "Sampler": ("SAMPLER", Any), "Sigmas": ("SIGMAS", torch.Tensor), "Noise": ("NOISE", torch.Tensor),
    "Guider": ("GUIDER", Any), "Clip": ("CLIP", Any), "ControlNet": ("CONTROL_NET", Any), "Vae": ("VAE", Any),
    "Model": ("MODEL", Any), "ClipVision": ("CLIP_VISION", Any), "ClipVisionOutput": ("CLIP_VISION_OUTPUT", Any),
    "StyleModel": ("STYLE_MODEL", Any), "Gligen": ("GLIGEN", Any), "UpscaleModel": ("UPSCALE_MODEL", Any),
    "Audio": ("AUDIO", dict), "Video": ("VIDEO", Any), "SVG": ("SVG", Any), "LoraModel": ("LORA_MODEL", dict),
    "LossMap": ("LOSS_MAP", dict), "Voxel": ("VOXEL", Any), "Mesh": ("MESH", Any), "Hooks": ("HOOKS", Any),
    "HookKeyframes": ("HOOK_KEYFRAMES", Any), "TimestepsRange": ("TIMESTEPS_RANGE", tuple),
    "LatentOperation": ("LATENT_OPERATION", Any), "FlowControl": ("FLOW_CONTROL", tuple),
    "Accumulation": ("ACCUMULATION", dict), "Load3DCamera": ("LOAD3D_CAMERA", dict), "Load3D": ("LOAD_3D", dict),
    "Load3DAnimation": ("LOAD_3D_ANIMATION", dict), "Photomaker": ("PHOTOMAKER", Any), "Point": ("POINT", Any),
    "FaceAnalysis": ("FACE_ANALYSIS", Any), "BBOX": ("BBOX", Any), "SEGS": ("SEGS", Any), "AnyType": ("*", Any),
    "MODEL_PATCH": ("MODEL_PATCH", Any), "AudioEncoder": ("AUDIO_ENCODER", Any),
    "AudioEncoderOutput": ("AUDIO_ENCODER_OUTPUT", Any), "Tracks": ("TRACKS", dict),
}


def _plain_type(name: str, io_type: str, value_type: Any) -> type[ComfyTypeIO]:
    cls = type(name, (ComfyTypeIO,), {"Type": value_type, "__module__": "comfy_api.latest._io",
                                      "__doc__": f"The `{io_type}` socket type."})
    return comfytype(io_type)(cls)


globals().update({name: _plain_type(name, io, t) for name, (io, t) in PLAIN_TYPES.items()})
__all__ += list(PLAIN_TYPES)
