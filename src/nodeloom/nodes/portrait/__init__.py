"""The portrait pack: face landmarks (ONNX, offline) as OpenPose keypoint frames, ComfyUI's
pose drawing and face-box nodes for pose ControlNets, landmark masks for the detailer, and
ComfyUI's style-model nodes (Flux Redux), IP-Adapter under the ComfyUI_IPAdapter_plus names and the
Flux IP-Adapter under x-flux-comfyui's names.
Registers like any third-party pack."""

from nodeloom.node_api import mappings
from nodeloom.nodes.portrait.ipadapter_embeds_nodes import (
    IPAdapterBatch,
    IPAdapterCombineEmbeds,
    IPAdapterEmbeds,
    IPAdapterEmbedsBatch,
    IPAdapterEncoder,
    IPAdapterTiled,
)
from nodeloom.nodes.portrait.ipadapter_params_nodes import (
    IPAdapterCombineParams,
    IPAdapterFromParams,
    IPAdapterRegionalConditioning,
)
from nodeloom.nodes.portrait.ipadapter_faceid_nodes import IPAdapterFaceID, IPAdapterInsightFaceLoader
from nodeloom.nodes.portrait.ipadapter_util_nodes import IPAdapterNoise, PrepImageForClipVision
from nodeloom.nodes.portrait.flux_ipadapter_nodes import ApplyAdvancedFluxIPAdapter, ApplyFluxIPAdapter, LoadFluxIPAdapter
from nodeloom.nodes.portrait.ipadapter_nodes import (
    IPAdapterAdvanced,
    IPAdapterModelLoader,
    IPAdapterSimple,
    IPAdapterStyleComposition,
    IPAdapterUnifiedLoader,
)
from nodeloom.nodes.portrait.landmark_nodes import FaceLandmarks, FaceLandmarksMask, SDPoseDrawKeypoints, SDPoseFaceBBoxes
from nodeloom.nodes.portrait.style_nodes import StyleModelApply, StyleModelLoader

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(
    FaceLandmarks, FaceLandmarksMask, SDPoseDrawKeypoints, SDPoseFaceBBoxes, StyleModelLoader, StyleModelApply,
    IPAdapterModelLoader, IPAdapterUnifiedLoader, IPAdapterSimple, IPAdapterAdvanced, IPAdapterStyleComposition,
    LoadFluxIPAdapter, ApplyFluxIPAdapter, ApplyAdvancedFluxIPAdapter,
    IPAdapterEncoder, IPAdapterCombineEmbeds, IPAdapterEmbeds, IPAdapterEmbedsBatch, IPAdapterBatch,
    PrepImageForClipVision, IPAdapterNoise, IPAdapterInsightFaceLoader, IPAdapterFaceID,
    IPAdapterTiled,
    IPAdapterRegionalConditioning, IPAdapterCombineParams, IPAdapterFromParams,
)
