"""The built-in utils pack: ComfyUI's model-free core utility nodes that the official
templates use (switch, math, number and text nodes, image size/batch/scale/stitch nodes,
mask and compare previews, crop to a mask's subject, colour transfer, detection boxes and the
box canvas, blend and pad, latent joins and cuts, latent operations, lists and loops, the
painter / crop / curve / histogram widget nodes, the camera-angle prompt, the GLSL shader,
model-free empty latents of audio, image and 3D families, SeedVR2 pre/post-processing, Marigold / MoGe geometry read-outs, the
Ideogram JSON prompt, the FLUX 3 / MOSS-Image layout prompts and the TripoSplat subject crop), with ComfyUI's names, inputs, defaults and
outputs.

Registered exactly like a third-party pack, through ``NODE_CLASS_MAPPINGS``.
"""

from nodeloom.node_api import mappings
from nodeloom.nodes.utils.bboxes import DrawBBoxes
from nodeloom.nodes.utils.box_canvas import CreateBoundingBoxes
from nodeloom.nodes.utils.camera_angle import CameraAngle
from nodeloom.nodes.utils.camera_info import CreateCameraInfo
from nodeloom.nodes.utils.canvas import CurveEditor, ImageCropV2, ImageHistogram, Painter
from nodeloom.nodes.utils.compose import ImageBlend, ImageBlur, ResizeAndPadImage
from nodeloom.nodes.utils.format import ColorToRGBInt, ConvertArrayToString, ConvertDictionaryToString, StringFormat
from nodeloom.nodes.utils.glsl import GLSLShader
from nodeloom.nodes.utils.images import (
    BatchImagesNode,
    GetImageSize,
    ImageFromBatch,
    ImageScaleToMaxDimension,
    ImageScaleToTotalPixels,
    ImageStitch,
    JoinImageWithAlpha,
    RepeatImageBatch,
    ResolutionSelector,
)
from nodeloom.nodes.utils.latent_operations import (
    LatentApplyOperation,
    LatentApplyOperationCFG,
    LatentOperationBlend,
    LatentOperationSharpen,
    LatentOperationTonemapReinhard,
)
from nodeloom.nodes.utils.latents import LatentConcat, LatentCut, LatentCutToBatch, TrimVideoLatent
from nodeloom.nodes.utils.lists import CreateList, GetItemFromList
from nodeloom.nodes.utils.loops import EndLoop, LoopAppend, LoopIteration, LoopUnroll, StartLoop
from nodeloom.nodes.utils.logic import (
    ComfyMathExpression,
    ComfyNumberConvert,
    ComfySwitchNode,
    CustomCombo,
    PreviewAny,
    SeedNode,
)
from nodeloom.nodes.utils.previews import ImageCompare, MaskPreview
from nodeloom.nodes.utils.resize import ResizeImageMaskNode
from nodeloom.nodes.utils.save_advanced import SaveImageAdvanced
from nodeloom.nodes.utils.string_ops import (
    CaseConverter,
    RegexMatch,
    StringCompare,
    StringContains,
    StringLength,
    StringSubstring,
    StringTrim,
)
from nodeloom.nodes.utils.strings import JsonExtractString, RegexExtract, RegexReplace, StringConcatenate, StringReplace
from nodeloom.nodes.utils.subject import ColorTransfer, ImageCropToMask
from nodeloom.nodes.utils.empty_latents import (
    EmptyAceStep15LatentAudio,
    EmptyAceStepLatentAudio,
    EmptyChromaRadianceLatentImage,
    EmptyHiDreamO1LatentImage,
    EmptyLatentAudio,
    EmptyMiniMaxMusic3LatentAudio,
    EmptyQwenImageLayeredLatentImage,
    EmptyYuE2LatentAudio,
)
from nodeloom.nodes.utils.empty_latents import EmptyLatentHunyuan3Dv2, EmptyTrellis2LatentStructure
from nodeloom.nodes.utils.geometry import MarigoldV2PostProcess, MoGeGeometryToFOV
from nodeloom.nodes.utils.geometry_render import DA3Render, MoGePointMapToMesh, MoGeRender
from nodeloom.nodes.utils.ideogram_prompt import BuildJsonPromptIdeogram
from nodeloom.nodes.utils.layout_prompt import Flux3LayoutPrompt, MOSSImageLayoutPrompt
from nodeloom.nodes.utils.seedvr2 import SeedVR2PostProcessing, SeedVR2Preprocess
from nodeloom.nodes.utils.splat_prep import TripoSplatPreprocessImage

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(
    ComfySwitchNode,
    ComfyMathExpression,
    ComfyNumberConvert,
    CustomCombo,
    SeedNode,
    PreviewAny,
    GetImageSize,
    ImageFromBatch,
    RepeatImageBatch,
    BatchImagesNode,
    ImageScaleToTotalPixels,
    ImageScaleToMaxDimension,
    ImageStitch,
    JoinImageWithAlpha,
    ResolutionSelector,
    MaskPreview,
    ImageCompare,
    StringConcatenate,
    StringReplace,
    RegexExtract,
    RegexReplace,
    JsonExtractString,
    StringSubstring,
    StringLength,
    CaseConverter,
    StringTrim,
    StringContains,
    StringCompare,
    RegexMatch,
    StringFormat,
    ColorToRGBInt,
    ConvertArrayToString,
    ConvertDictionaryToString,
    ImageBlend,
    ImageBlur,
    ResizeAndPadImage,
    ResizeImageMaskNode,
    SaveImageAdvanced,
    LatentConcat,
    StartLoop,
    EndLoop,
    LoopUnroll,
    LoopIteration,
    LoopAppend,
    Painter,
    ImageCropV2,
    ImageHistogram,
    CurveEditor,
    LatentApplyOperation,
    LatentApplyOperationCFG,
    LatentOperationTonemapReinhard,
    LatentOperationSharpen,
    LatentOperationBlend,
    LatentCut,
    LatentCutToBatch,
    TrimVideoLatent,
    CreateList,
    GetItemFromList,
    ImageCropToMask,
    ColorTransfer,
    DrawBBoxes,
    CreateBoundingBoxes,
    CameraAngle,
    GLSLShader,
    EmptyLatentAudio,
    EmptyAceStepLatentAudio,
    EmptyAceStep15LatentAudio,
    EmptyYuE2LatentAudio,
    EmptyMiniMaxMusic3LatentAudio,
    EmptyHiDreamO1LatentImage,
    EmptyChromaRadianceLatentImage,
    EmptyQwenImageLayeredLatentImage,
    SeedVR2Preprocess,
    SeedVR2PostProcessing,
    MarigoldV2PostProcess,
    MoGeGeometryToFOV,
    MoGeRender,
    MoGePointMapToMesh,
    DA3Render,
    BuildJsonPromptIdeogram,
    Flux3LayoutPrompt,
    MOSSImageLayoutPrompt,
    TripoSplatPreprocessImage,
    CreateCameraInfo,
    EmptyLatentHunyuan3Dv2,
    EmptyTrellis2LatentStructure,
)
