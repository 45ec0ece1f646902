"""CLIPVisionLoader and CLIPVisionEncode: image encoders for IP-Adapter, unCLIP, Redux, Wan and kin."""

from __future__ import annotations

from typing import Any

from nodeloom.node_api import Combo, Custom, Image, Node, Output, Schema, services
from nodeloom.nodes.vision._common import file_list, load_model_file

__all__ = ["CLIPVisionEncode", "CLIPVisionLoader"]

CLIP_VISION = "CLIP_VISION"


class CLIPVisionLoader(Node):
    """Loads a CLIP-vision image encoder (OpenAI ViT-L/14, OpenCLIP ViT-H/14 or bigG, SigLIP) from models/clip_vision."""

    SCHEMA = Schema(
        "CLIPVisionLoader", display_name="Load CLIP Vision", category="loaders",
        inputs=[Combo("clip_name", file_list("clip_vision"),
                      tooltip="The CLIP-vision file (.safetensors or .pth) in models/clip_vision.")],
        outputs=[Output(CLIP_VISION, "CLIP_VISION")],
    )

    @classmethod
    def execute(cls, clip_name: str) -> tuple[Any, ...]:
        from nodeloom.diffusion.clip_vision import load_clip_vision

        manager = services().models
        return (load_model_file("clip_vision", clip_name, "clip-vision", lambda p: load_clip_vision(p, manager=manager)),)


class CLIPVisionEncode(Node):
    """Encodes images with a CLIP-vision model into embeddings (for unCLIP, IP-Adapter, style and reference nodes)."""

    SCHEMA = Schema(
        "CLIPVisionEncode", display_name="CLIP Vision Encode", category="conditioning",
        inputs=[Custom(CLIP_VISION, "clip_vision", tooltip="The model from Load CLIP Vision."),
                Image("image", tooltip="The images to encode."),
                Combo("crop", ["center", "none"],
                      tooltip="center: scale the short side to the model's size and crop the middle; none: squash the whole image to a square.")],
        outputs=[Output("CLIP_VISION_OUTPUT", "CLIP_VISION_OUTPUT")],
    )

    @classmethod
    def execute(cls, clip_vision: Any, image: Any, crop: str) -> tuple[Any, ...]:
        manager = services().models
        with manager.device_lock:
            return (clip_vision.encode_image(image, crop=crop == "center"),)
