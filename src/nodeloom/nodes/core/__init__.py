"""The built-in core pack: image load/save/preview, basic image operations and primitives.

Registered exactly like a third-party pack, through ``NODE_CLASS_MAPPINGS``.
"""

from nodeloom.node_api import mappings
from nodeloom.nodes.core.image_io import LoadImage, PreviewImage, SaveImage
from nodeloom.nodes.core.image_ops import (
    EmptyImage,
    ImageBatch,
    ImageCrop,
    ImageInvert,
    ImagePadForOutpaint,
    ImageScale,
    ImageScaleBy,
    RebatchImages,
)
from nodeloom.nodes.core.primitives import (
    PrimitiveBoolean,
    PrimitiveFloat,
    PrimitiveInt,
    PrimitiveString,
    PrimitiveStringMultiline,
)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(
    LoadImage,
    SaveImage,
    PreviewImage,
    ImageScale,
    ImageScaleBy,
    ImageInvert,
    ImageBatch,
    RebatchImages,
    EmptyImage,
    ImageCrop,
    ImagePadForOutpaint,
    PrimitiveInt,
    PrimitiveFloat,
    PrimitiveString,
    PrimitiveStringMultiline,
    PrimitiveBoolean,
)
