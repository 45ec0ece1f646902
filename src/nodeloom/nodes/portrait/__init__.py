"""The portrait pack: face landmarks (ONNX, offline) as OpenPose keypoint frames, ComfyUI's
pose drawing and face-box nodes for pose ControlNets, and landmark masks for the detailer.
Registers like any third-party pack."""

from nodeloom.node_api import mappings
from nodeloom.nodes.portrait.landmark_nodes import FaceLandmarks, FaceLandmarksMask, SDPoseDrawKeypoints, SDPoseFaceBBoxes

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(
    FaceLandmarks, FaceLandmarksMask, SDPoseDrawKeypoints, SDPoseFaceBBoxes,
)
