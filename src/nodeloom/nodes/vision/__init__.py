"""The vision pack: upscale models and CLIP-vision image encoders, with ComfyUI's node names.

``UpscaleModelLoader`` / ``ImageUpscaleWithModel`` run ESRGAN-family files (and every other
single-image architecture spandrel knows) tiled as ComfyUI does; ``CLIPVisionLoader`` /
``CLIPVisionEncode`` load OpenAI/OpenCLIP CLIP and SigLIP vision towers into transformers models
and encode images into ComfyUI's ``CLIP_VISION_OUTPUT``. Model code lives in
:mod:`nodeloom.diffusion.upscale` and :mod:`nodeloom.diffusion.clip_vision`. Heavy imports
(torch, spandrel, transformers) happen inside node calls, so the pack registers without them.
"""

from nodeloom.node_api import mappings
from nodeloom.nodes.vision.clip_vision import CLIPVisionEncode, CLIPVisionLoader
from nodeloom.nodes.vision.upscale import ImageUpscaleWithModel, UpscaleModelLoader

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(
    UpscaleModelLoader, ImageUpscaleWithModel, CLIPVisionLoader, CLIPVisionEncode,
)
