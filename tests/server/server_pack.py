"""A tiny ComfyUI-style (V1) node pack for the server tests: cheap, no models.

``SolidImage`` makes an image, ``SaveTestImage`` writes it as PNG to the output folder,
``SlowSteps`` reports progress with previews (and so can be interrupted), ``FailingNode``
raises, ``NanReport`` shows non-finite numbers in its ``ui``. Registered on a real :class:`nodeloom.Engine` by :func:`add_to`.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from PIL import Image

from nodeloom.core.registry import PackInfo
from nodeloom.node_api import ProgressBar, services


class SolidImage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"size": ("INT", {"default": 8, "min": 1, "max": 256}),
                             "value": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "test"

    def run(self, size, value):
        return (torch.full((1, size, size, 3), float(value)),)


class SaveTestImage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "test"})}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "test"

    def run(self, images, filename_prefix):
        folder, name, counter, subfolder = services().paths.get_save_path(filename_prefix)
        results = []
        for i, img in enumerate(images):
            file = f"{name}_{counter + i:05}_.png"
            Image.fromarray((img.numpy() * 255).round().astype(np.uint8)).save(folder / file)
            results.append({"filename": file, "subfolder": subfolder, "type": "output"})
        return {"ui": {"images": results}}


class SlowSteps:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"steps": ("INT", {"default": 5, "min": 1, "max": 10000}),
                             "seconds": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 600.0}),
                             "seed": ("INT", {"default": 0, "min": 0, "max": 2**31})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "test"

    def run(self, steps, seconds, seed):
        pbar = ProgressBar(steps)
        img = torch.full((1, 8, 8, 3), (seed % 7) / 7.0)
        for i in range(steps):
            time.sleep(seconds / steps)
            pbar.update_absolute(i + 1, steps, preview=img)
        return {"ui": {"text": [f"{steps} steps"]}, "result": (img,)}


class FailingNode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"message": ("STRING", {"default": "boom"})}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "test"

    def run(self, message):
        raise RuntimeError(message)


class NanReport:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "test"

    def run(self):
        return {"ui": {"values": [float("nan"), 1.5, float("-inf")]}}


NODE_CLASS_MAPPINGS = {c.__name__: c for c in (SolidImage, SaveTestImage, SlowSteps, FailingNode, NanReport)}
NODE_DISPLAY_NAME_MAPPINGS = {"SaveTestImage": "Save Test Image"}


def add_to(engine) -> None:
    """Register this pack on ``engine``."""
    engine.registry.register_pack(PackInfo("server_test_pack", __name__), NODE_CLASS_MAPPINGS,
                                  NODE_DISPLAY_NAME_MAPPINGS)


def save_prompt(prefix: str = "test", value: float = 0.5, size: int = 8) -> dict:
    """A two-node prompt that writes one PNG."""
    return {"1": {"class_type": "SolidImage", "inputs": {"size": size, "value": value}},
            "2": {"class_type": "SaveTestImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}}


def slow_prompt(steps: int = 5, seconds: float = 0.5, seed: int = 0) -> dict:
    return {"1": {"class_type": "SlowSteps", "inputs": {"steps": steps, "seconds": seconds, "seed": seed}}}
