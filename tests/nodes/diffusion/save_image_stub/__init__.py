"""A stand-in SaveImage for branches where the core pack (which owns SaveImage) is absent."""

import numpy as np
from PIL import Image


class SaveImage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "ComfyUI"})}}

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "image"

    def save(self, images, filename_prefix="ComfyUI"):
        from nodeloom.node_api import services

        paths = services().paths
        folder, name, counter, sub = paths.get_save_path(filename_prefix, images.shape[2], images.shape[1])
        results = []
        for i, img in enumerate(images):
            file = f"{name}_{counter + i:05}_.png"
            Image.fromarray(np.clip(img.numpy() * 255.0 + 0.5, 0, 255).astype(np.uint8)).save(folder / file)
            results.append({"filename": file, "subfolder": sub, "type": "output"})
        return {"ui": {"images": results}}


NODE_CLASS_MAPPINGS = {"SaveImage": SaveImage}
