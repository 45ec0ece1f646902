"""ComfyUI's split-file loaders: UNETLoader, CLIPLoader, DualCLIPLoader, TripleCLIPLoader,
QuadrupleCLIPLoader — a diffusion model from ``models/diffusion_models`` (or the older
``models/unet``) and text encoders from ``models/text_encoders`` (or ``models/clip``), with
ComfyUI's exact names, inputs, combo lists and categories. Loading is
:mod:`nodeloom.diffusion.split_models`; models are cached by the engine's model manager."""

from __future__ import annotations

from typing import Any

from nodeloom.diffusion.split_models import WEIGHT_DTYPES, load_diffusion_model, load_text_encoders, model_value
from nodeloom.node_api import IO, Combo, Node, Output, Schema, model_key, services
from nodeloom.nodes.diffusion._common import file_list

__all__ = ["CLIPLoader", "DualCLIPLoader", "QuadrupleCLIPLoader", "TripleCLIPLoader", "UNETLoader"]

#: CLIPLoader's ``type`` list, in ComfyUI's order
CLIP_TYPES = ["stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv", "pixart", "cosmos",
              "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2", "qwen_image", "hunyuan_image", "flux2"]
#: DualCLIPLoader's ``type`` list, in ComfyUI's order
DUAL_CLIP_TYPES = ["sdxl", "sd3", "flux", "hunyuan_video", "hidream", "hunyuan_image", "hunyuan_video_15"]
_DEVICES = ["default", "cpu"]
_DEVICE_TIP = "Where the text encoder runs: default (the engine's device) or cpu."


def _clip_value(names: list[str], clip_type: str, device: str = "default") -> Any:
    svc = services()
    paths = [svc.paths.get_full_path("text_encoders", n) for n in names]
    folders = svc.paths.model_folders("tokenizers")
    key = model_key(paths[0], "text-encoders", clip_type, *[str(p) for p in paths[1:]])
    clip = svc.models.load(key, lambda: load_text_encoders(paths, clip_type, folders))
    return clip.clone(cpu_only=True) if device == "cpu" else clip


def _clip_name(n: int = 0) -> Combo:
    return Combo(f"clip_name{n}" if n else "clip_name", file_list("text_encoders"),
                 tooltip="A text encoder file in models/text_encoders (or models/clip).")


class UNETLoader(Node):
    """Loads a diffusion model on its own (today's split-file releases: Z-Image, Flux, SD3.5, Qwen-Image, ...)."""

    SCHEMA = Schema(
        "UNETLoader", display_name="Load Diffusion Model", category="advanced/loaders",
        inputs=[Combo("unet_name", file_list("diffusion_models"),
                      tooltip="A diffusion model file in models/diffusion_models (or models/unet)."),
                Combo("weight_dtype", list(WEIGHT_DTYPES),
                      tooltip="default keeps the file's precision (an fp8 file stays fp8); the fp8 choices store the weights"
                              " in that format, each layer upcast while it computes.")],
        outputs=[Output(IO.MODEL, "MODEL")],
    )

    @classmethod
    def execute(cls, unet_name: str, weight_dtype: str) -> tuple[Any, ...]:
        svc = services()
        path = svc.paths.get_full_path("diffusion_models", unet_name)
        module, family = svc.models.load(model_key(path, "diffusion-model", weight_dtype),
                                         lambda: load_diffusion_model(path, weight_dtype))
        return (model_value(module, family, unet_name),)


class CLIPLoader(Node):
    """Load one text encoder. The file each `type` expects — stable_diffusion: CLIP-L;
stable_cascade: CLIP-G; sd3: any one of T5-XXL, CLIP-G, CLIP-L; stable_audio: T5-Base; mochi:
T5-XXL; cosmos: the older T5-XXL; lumina2: Gemma 2 2B; wan: UMT5-XXL; hidream: Llama 3.1 (best)
or T5; omnigen2: Qwen2.5-VL 3B."""

    SCHEMA = Schema(
        "CLIPLoader", display_name="Load CLIP", category="advanced/loaders",
        inputs=[_clip_name(),
                Combo("type", CLIP_TYPES, tooltip="The model family the text encoder serves (Z-Image: lumina2)."),
                Combo("device", _DEVICES, optional=True, advanced=True, tooltip=_DEVICE_TIP)],
        outputs=[Output(IO.CLIP, "CLIP")],
    )

    @classmethod
    def execute(cls, clip_name: str, type: str = "stable_diffusion", device: str = "default") -> tuple[Any, ...]:
        return (_clip_value([clip_name], type, device),)


class DualCLIPLoader(Node):
    """Load two text encoders. The pair each `type` expects — sdxl: CLIP-L and CLIP-G; sd3: two of
CLIP-L, CLIP-G and T5; flux: CLIP-L and T5; hidream: T5 and/or Llama (both is best);
hunyuan_image: Qwen2.5-VL 7B and ByT5-small."""

    SCHEMA = Schema(
        "DualCLIPLoader", display_name="DualCLIPLoader", category="advanced/loaders",
        inputs=[_clip_name(1), _clip_name(2),
                Combo("type", DUAL_CLIP_TYPES, tooltip="The model family the two text encoders serve."),
                Combo("device", _DEVICES, optional=True, advanced=True, tooltip=_DEVICE_TIP)],
        outputs=[Output(IO.CLIP, "CLIP")],
    )

    @classmethod
    def execute(cls, clip_name1: str, clip_name2: str, type: str, device: str = "default") -> tuple[Any, ...]:
        return (_clip_value([clip_name1, clip_name2], type, device),)


class TripleCLIPLoader(Node):
    """Load three text encoders: SD3's CLIP-L, CLIP-G and T5."""

    SCHEMA = Schema(
        "TripleCLIPLoader", display_name="TripleCLIPLoader", category="advanced/loaders",
        inputs=[_clip_name(1), _clip_name(2), _clip_name(3)],
        outputs=[Output(IO.CLIP, "CLIP")],
    )

    @classmethod
    def execute(cls, clip_name1: str, clip_name2: str, clip_name3: str) -> tuple[Any, ...]:
        return (_clip_value([clip_name1, clip_name2, clip_name3], "sd3"),)


class QuadrupleCLIPLoader(Node):
    """Load four text encoders: HiDream's long CLIP-L, long CLIP-G, T5-XXL and Llama 3.1 8B Instruct."""

    SCHEMA = Schema(
        "QuadrupleCLIPLoader", display_name="QuadrupleCLIPLoader", category="advanced/loaders",
        inputs=[_clip_name(1), _clip_name(2), _clip_name(3), _clip_name(4)],
        outputs=[Output(IO.CLIP, "CLIP")],
    )

    @classmethod
    def execute(cls, clip_name1: str, clip_name2: str, clip_name3: str, clip_name4: str) -> tuple[Any, ...]:
        return (_clip_value([clip_name1, clip_name2, clip_name3, clip_name4], "hidream"),)
