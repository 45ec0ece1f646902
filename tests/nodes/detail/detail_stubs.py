"""Test-only source/sink nodes for running the detail pack through an engine."""

import numpy as np
import skimage.data
import torch

from nodeloom.core.registry import PackInfo
from nodeloom.core.types import ANY

__all__ = ["register_stubs", "two_patch_scene"]


def two_patch_scene(height=64, width=128):
    """A smooth synthetic image and a mask with two square regions (left and right)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([xx / width, yy / height, 0.5 + 0.0 * xx], axis=-1)
    mask = np.zeros((height, width), np.float32)
    mask[16:40, 12:36] = 1
    mask[16:40, 88:112] = 1
    return image.astype(np.float32), mask


class DetailTestPhoto:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"name": (["astronaut", "coffee", "blank", "two_patches"],)}}

    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "run"

    def run(self, name):
        if name == "two_patches":
            image, mask = two_patch_scene()
            return torch.from_numpy(image).unsqueeze(0), torch.from_numpy(mask).unsqueeze(0)
        arr = np.zeros((64, 64, 3), np.uint8) if name == "blank" else getattr(skimage.data, name)()[::2, ::2]
        image = torch.from_numpy(arr.astype(np.float32) / 255.0).unsqueeze(0)
        return image, torch.zeros(image.shape[:3])


class DetailTestSink:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (ANY,)}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, value):
        return {"ui": {"seen": [type(value).__name__]}}


def register_stubs(engine):
    """Add the stub nodes to ``engine``'s registry."""
    engine.registry.register_pack(
        PackInfo("detail_test", __name__), {"DetailTestPhoto": DetailTestPhoto, "DetailTestSink": DetailTestSink}
    )
