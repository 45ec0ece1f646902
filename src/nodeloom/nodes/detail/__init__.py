"""Detail pack: face/hand detailer (ADetailer / Impact Pack FaceDetailer style).

Detect → filter/sort/transform SEGS → re-draw each region at a higher resolution → paste back
with a feathered, colour-matched mask; plus a video variant with tracks. Algorithms live in
:mod:`nodeloom.ops.detail`.
"""

from nodeloom.node_api import mappings
from nodeloom.nodes.detail.detailer_nodes import FaceDetailer, SEGSDetail, SEGSPaste
from nodeloom.nodes.detail.detectors import (
    BboxDetectorSEGS,
    MaskDetectorProvider,
    MaskToSEGS,
    OpenCVFaceDetectorProvider,
    UltralyticsDetectorProvider,
)
from nodeloom.nodes.detail.segs_nodes import (
    SEGSFilter,
    SEGSMaskTransform,
    SEGSOrder,
    SEGSPreviewBoxes,
    SEGSProcess,
    SEGSSetLabel,
    SEGSToMaskBatch,
    SegsToCombinedMask,
)
from nodeloom.nodes.detail.video import DetailVideoFrames

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(
    OpenCVFaceDetectorProvider,
    UltralyticsDetectorProvider,
    MaskDetectorProvider,
    BboxDetectorSEGS,
    MaskToSEGS,
    SEGSFilter,
    SEGSOrder,
    SEGSMaskTransform,
    SEGSProcess,
    SEGSSetLabel,
    SegsToCombinedMask,
    SEGSToMaskBatch,
    SEGSPreviewBoxes,
    SEGSDetail,
    SEGSPaste,
    FaceDetailer,
    DetailVideoFrames,
)
