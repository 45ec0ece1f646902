"""A tiny image pack for the MCP tests: a solid-colour image with progress ticks, and a PNG saver."""

from __future__ import annotations

import time

import numpy as np
import torch
from PIL import Image as PILImage

from nodeloom.core.registry import PackInfo
from nodeloom.node_api import IO, Float, Image, Int, Node, NodeOutput, Output, ProgressBar, Schema, String, mappings, services


class TinySolidImage(Node):
    """A solid-colour image, built in `steps` progress ticks of `delay` seconds each."""

    SCHEMA = Schema(
        node_id="TinySolidImage",
        category="test/image",
        inputs=[
            Int("width", 16, min=1, max=16384, tooltip="Width in pixels."),
            Int("height", 16, min=1, max=16384, tooltip="Height in pixels."),
            Float("red", 0.5, min=0.0, max=1.0, tooltip="Red level."),
            Int("steps", 4, min=1, max=1000, tooltip="Progress ticks."),
            Float("delay", 0.0, min=0.0, max=10.0, tooltip="Seconds per tick."),
        ],
        outputs=[Output(IO.IMAGE, "IMAGE")],
    )

    @classmethod
    def execute(cls, width, height, red, steps, delay):
        pbar = ProgressBar(steps)
        for i in range(steps):
            if delay:
                time.sleep(delay)
            pbar.update_absolute(i + 1, steps)
        img = torch.zeros((1, height, width, 3), dtype=torch.float32)
        img[..., 0] = red
        img[..., 2] = torch.linspace(0, 1, width)
        return (img,)


class TinySaveImage(Node):
    """Save images as PNG files in the output folder."""

    SCHEMA = Schema(
        node_id="TinySaveImage",
        category="test/image",
        output_node=True,
        inputs=[Image("images", tooltip="Images to save."), String("filename_prefix", "tiny", tooltip="File name prefix.")],
        outputs=[],
    )

    @classmethod
    def execute(cls, images, filename_prefix):
        paths = services().paths
        folder, name, counter, subfolder = paths.get_save_path(filename_prefix, images.shape[2], images.shape[1])
        refs = []
        for i, img in enumerate(images):
            arr = (img.numpy() * 255).round().astype(np.uint8)
            fname = f"{name}_{counter + i:05}_.png"
            PILImage.fromarray(arr).save(folder / fname)
            refs.append({"filename": fname, "subfolder": subfolder, "type": "output"})
        return NodeOutput(ui={"images": refs})


class TinySaveVideo(Node):
    """Write a (fake) MP4 and report it the way video savers do: under both `gifs` and `images`."""

    SCHEMA = Schema(
        node_id="TinySaveVideo", category="test/video", output_node=True,
        inputs=[Image("images", tooltip="Frames."), String("filename_prefix", "clip", tooltip="File name prefix.")], outputs=[],
    )

    @classmethod
    def execute(cls, images, filename_prefix):
        folder, name, counter, subfolder = services().paths.get_save_path(filename_prefix)
        fname = f"{name}_{counter:05}.mp4"
        (folder / fname).write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(images.shape[0]))
        ref = {"filename": fname, "subfolder": subfolder, "type": "output"}
        return NodeOutput(ui={"gifs": [{**ref, "format": "video/h264-mp4"}], "images": [ref], "animated": [True]})


class TinyInt(Node):
    """An integer constant."""

    SCHEMA = Schema(node_id="TinyInt", category="test/utils", inputs=[Int("value", 0, tooltip="The value.")], outputs=[Output(IO.INT, "INT")])

    @classmethod
    def execute(cls, value):
        return (value,)


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(TinySolidImage, TinySaveImage, TinySaveVideo, TinyInt)


def register(engine) -> None:
    """Register this pack on ``engine``."""
    engine.registry.register_pack(PackInfo("mcp_test_pack", __name__), NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS)


def image_workflow(width: int = 16, height: int = 16, steps: int = 4, delay: float = 0.0, prefix: str = "tiny") -> dict:
    """An API-format workflow: TinySolidImage -> TinySaveImage."""
    return {
        "1": {"class_type": "TinySolidImage", "inputs": {"width": width, "height": height, "red": 0.8, "steps": steps, "delay": delay}},
        "2": {"class_type": "TinySaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}, "_meta": {"title": "Save"}},
    }
