"""The video pack: ComfyUI's core VIDEO nodes, video I/O (VideoHelperSuite-compatible), camera moves, storyboards,
drift metrics and drift fixes, films assembled from shots, Wan-Move motion tracks, Wan Dancer keyframe
segments and SCAIL-2 identity masks. Registers like any third-party pack."""

from nodeloom.node_api import mappings
from nodeloom.nodes.video.camera_nodes import (
    CameraBezierPath,
    CameraCombine,
    CameraMovePlot,
    CameraSchedule,
    RenderCameraMove,
    SemanticCamera,
)
from nodeloom.nodes.video.comfy_video import (
    CreateVideo,
    GetVideoComponents,
    LoadVideoFile,
    SaveAnimatedPNG,
    SaveAnimatedWEBP,
    SaveVideo,
    VideoSlice,
)
from nodeloom.nodes.video.drift_nodes import ColorAnchor, Deflicker, DriftMetrics, FlowSmooth
from nodeloom.nodes.video.film_nodes import FilmAssemble, FrameSmoother, StoryboardShots
from nodeloom.nodes.video.io_nodes import LoadSkimageSample, LoadVideo, LoadVideoPath, VideoCombine, VideoInfo
from nodeloom.nodes.video.storyboard_nodes import Storyboard, StoryboardCamera, StoryboardContactSheet, StoryboardFromJSON
from nodeloom.nodes.video.dance_keyframes import WanDancerPadKeyframesList
from nodeloom.nodes.video.scail_masks import SCAIL2ColoredMask
from nodeloom.nodes.video.wan_tracks import (
    GenerateTracks,
    WanMoveConcatTrack,
    WanMoveTracksFromCoords,
    WanMoveVisualizeTracks,
)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(
    LoadVideo,
    LoadVideoPath,
    VideoCombine,
    VideoInfo,
    LoadSkimageSample,
    CameraSchedule,
    SemanticCamera,
    CameraBezierPath,
    CameraCombine,
    RenderCameraMove,
    CameraMovePlot,
    Storyboard,
    StoryboardFromJSON,
    StoryboardContactSheet,
    StoryboardCamera,
    StoryboardShots,
    DriftMetrics,
    ColorAnchor,
    Deflicker,
    FlowSmooth,
    FrameSmoother,
    FilmAssemble,
    LoadVideoFile,
    SaveVideo,
    CreateVideo,
    GetVideoComponents,
    VideoSlice,
    SaveAnimatedWEBP,
    SaveAnimatedPNG,
    WanMoveTracksFromCoords,
    GenerateTracks,
    WanMoveConcatTrack,
    WanMoveVisualizeTracks,
    WanDancerPadKeyframesList,
    SCAIL2ColoredMask,
)
