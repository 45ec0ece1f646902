"""ComfyUI_IPAdapter_plus's FaceID nodes: ``IPAdapterInsightFaceLoader`` (an InsightFace model
folder from models/insightface/models, run with onnxruntime) and ``IPAdapterFaceID`` (a FaceID
adapter steered by the reference face's identity embedding). Model code is in
``nodeloom.diffusion.insightface`` and ``nodeloom.diffusion.ip_adapter``."""

from __future__ import annotations

from typing import Any

from nodeloom.node_api import Combo, Custom, Float, Image, Node, Output, Schema, ValidationError, model_key, services
from nodeloom.nodes.portrait.ipadapter_nodes import SCALING, _common, _optional, _weight_types, _window

__all__ = ["IPAdapterFaceID", "IPAdapterInsightFaceLoader"]

INSIGHTFACE = "INSIGHTFACE"


class IPAdapterInsightFaceLoader(Node):
    """Load an InsightFace model folder (its SCRFD detector and ArcFace recognizer)."""

    SCHEMA = Schema(
        "IPAdapterInsightFaceLoader", display_name="IPAdapter InsightFace Loader", category="ipadapter/loaders",
        inputs=[Combo("provider", ["CPU", "CUDA", "ROCM"],
                      tooltip="The onnxruntime execution provider (CPU when the requested one is not installed)."),
                Combo("model_name", ["buffalo_l", "antelopev2"],
                      tooltip="The folder under models/insightface/models (as InsightFace's releases unpack).")],
        outputs=[Output(INSIGHTFACE, "INSIGHTFACE")],
    )

    @classmethod
    def execute(cls, provider: str = "CPU", model_name: str = "buffalo_l") -> tuple[Any, ...]:
        from nodeloom.diffusion.insightface import load_insightface

        svc = services()
        roots = [root / "models" / model_name for root in svc.paths.model_folders("insightface")]
        found = [r for r in roots if r.is_dir()]
        if not found:
            raise ValidationError(f"`model_name` {model_name!r}: no folder models/insightface/models/{model_name} "
                                  "(unpack InsightFace's release there)")
        folder = found[0]
        return (svc.models.load(model_key(folder, f"insightface-{provider}"), lambda: load_insightface(folder, provider)),)


class IPAdapterFaceID(Node):
    """Steer a model with the identity of the face in a reference image (FaceID adapters); also
    returns the aligned face crops."""

    SCHEMA = Schema(
        "IPAdapterFaceID", display_name="IPAdapter FaceID", category="ipadapter/faceid",
        inputs=[*_common(), Image("image", tooltip="The reference image(s); the best face of each is used."),
                Float("weight", 1.0, min=-1, max=3, step=0.05, tooltip="How strongly the face steers the result."),
                Float("weight_faceidv2", 1.0, min=-1, max=5.0, step=0.05,
                      tooltip="FaceID Plus v2 only: the weight of the identity shortcut."),
                Combo("weight_type", _weight_types, tooltip="How the weight spreads over the UNet's layers."),
                Combo("combine_embeds", ["concat", "add", "subtract", "average", "norm average"],
                      tooltip="How several reference faces are joined."),
                *_window(),
                Combo("embeds_scaling", SCALING, tooltip="What the weight scales: the values only, or keys and values."),
                *_optional(),
                Custom(INSIGHTFACE, "insightface", optional=True, tooltip="The face analysis model (required).")],
        outputs=[Output("MODEL", "MODEL"), Output("IMAGE", "face_image")],
    )

    @classmethod
    def execute(cls, model: Any, ipadapter: Any, image: Any, weight: float = 1.0, weight_faceidv2: float = 1.0,
                weight_type: str = "linear", combine_embeds: str = "concat", start_at: float = 0.0, end_at: float = 1.0,
                embeds_scaling: str = "V only", image_negative: Any = None, attn_mask: Any = None,
                clip_vision: Any = None, insightface: Any = None) -> tuple[Any, ...]:
        from nodeloom.diffusion.ip_adapter import apply_faceid
        from nodeloom.nodes.portrait.ipadapter_embeds_nodes import _adapter_only

        adapter, vision = _adapter_only(ipadapter, clip_vision)
        if insightface is None or not hasattr(insightface, "faces"):
            raise ValidationError("`insightface` is missing: FaceID adapters need IPAdapter InsightFace Loader's model")
        with services().models.device_lock:
            return apply_faceid(model, adapter, insightface, vision, image, weight_faceidv2=weight_faceidv2,
                                image_negative=image_negative, weight=weight, weight_type=weight_type,
                                combine_embeds=combine_embeds, start_at=start_at, end_at=end_at,
                                embeds_scaling=embeds_scaling, attn_mask=attn_mask)
