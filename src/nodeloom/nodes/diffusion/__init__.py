"""The diffusion pack: Stable Diffusion 1.x/2.x/SDXL nodes with ComfyUI's names, inputs and defaults.

Checkpoint/VAE/LoRA/ControlNet loaders, CLIP text encoding, KSampler(Advanced) and the custom
sampling family (SamplerCustom(Advanced), samplers, schedulers, sigmas, noise, guiders), latent
and VAE nodes (incl. batch, transform and compositing), conditioning average/concat/zero-out, regional (area/mask) conditioning, conditioning saved to and loaded from files,
inpainting and ControlNet. Model code comes from diffusers/transformers; loading,
sampling and memory live in :mod:`nodeloom.diffusion`. Heavy imports stay inside node calls
where an optional extra is involved, so the pack registers without them.
"""

from nodeloom.node_api import mappings
from nodeloom.nodes.diffusion.video_latent_nodes import (
    NormalizeVideoLatentStart,
    ReplaceVideoLatentFrames,
    SeedVR2TemporalChunk,
    SeedVR2TemporalMerge,
)
from nodeloom.nodes.diffusion.area_conditioning import (
    ConditioningSetArea,
    ConditioningSetAreaPercentage,
    ConditioningSetAreaPercentageVideo,
    ConditioningSetAreaStrength,
    ConditioningSetMask,
)
from nodeloom.nodes.diffusion.conditioning import (
    CLIPTextEncode,
    CLIPTextEncodeSDXL,
    ConditioningAverage,
    ConditioningCombine,
    ConditioningConcat,
    ConditioningSetTimestepRange,
    ConditioningZeroOut,
)
from nodeloom.nodes.diffusion.controlnet import Canny, ControlNetApply, ControlNetApplyAdvanced, ControlNetLoader
from nodeloom.nodes.diffusion.custom_sampling import (
    AddNoise,
    BasicGuider,
    BasicScheduler,
    BetaSamplingScheduler,
    CFGGuider,
    DisableNoise,
    ExponentialScheduler,
    ExtendIntermediateSigmas,
    FlipSigmas,
    KarrasScheduler,
    KSamplerSelect,
    LaplaceScheduler,
    PolyexponentialScheduler,
    RandomNoise,
    SamplerCustom,
    SamplerCustomAdvanced,
    SamplerDPMPP_2M_SDE,
    SamplerDPMPP_2S_Ancestral,
    SamplerDPMPP_3M_SDE,
    SamplerDPMPP_SDE,
    SamplerEulerAncestral,
    SamplerEulerAncestralCFGPP,
    SamplerLMS,
    SamplingPercentToSigma,
    SDTurboScheduler,
    SetFirstSigma,
    SplitSigmas,
    SplitSigmasDenoise,
    VPScheduler,
)
from nodeloom.nodes.diffusion.discrete_sampling import ModelSamplingDiscrete
from nodeloom.nodes.diffusion.perp_neg import PerpNegGuider
from nodeloom.nodes.diffusion.edit_models import (
    FluxKontextImageScale,
    FluxKontextMultiReferenceLatentMethod,
    FluxKVCache,
    HiDreamO1ReferenceImages,
    ReferenceLatent,
    ReferenceMultiLatent,
)
from nodeloom.nodes.diffusion.align_your_steps import AlignYourStepsScheduler
from nodeloom.nodes.diffusion.cfg_nodes import APG, TCFG, CFGOverride, CFGZeroStar, Mahiro, RenormCFG, RescaleCFG
from nodeloom.nodes.diffusion.guidance import CFGNorm, DifferentialDiffusion
from nodeloom.nodes.diffusion.hunyuan_video15_nodes import EmptyHunyuanVideo15Latent, HunyuanVideo15ImageToVideo
from nodeloom.nodes.diffusion.qwen_edit import TextEncodeQwenImageEdit, TextEncodeQwenImageEditPlus
from nodeloom.nodes.diffusion.latent import EmptyLatentImage, LatentUpscale, LatentUpscaleBy, SetLatentNoiseMask
from nodeloom.nodes.diffusion.flux_text import CLIPTextEncodeFlux
from nodeloom.nodes.diffusion.hidream_text import CLIPTextEncodeHiDream
from nodeloom.nodes.diffusion.model_patch_nodes import ModelPatchLoader, QwenImageDiffsynthControlnet
from nodeloom.nodes.diffusion.latent_ops import (
    LatentBatch,
    LatentBlend,
    LatentComposite,
    LatentCrop,
    LatentFlip,
    LatentFromBatch,
    LatentRotate,
    RepeatLatentBatch,
)
from nodeloom.nodes.diffusion.loaders import CheckpointLoaderSimple, CLIPSetLastLayer, DiffusersLoader, VAELoader
from nodeloom.nodes.diffusion.lora import LoraLoader, LoraLoaderModelOnly
from nodeloom.nodes.diffusion.lotus_nodes import LotusConditioning
from nodeloom.nodes.diffusion.ltx2_audio_nodes import LTXVAudioVAEDecode, LTXVAudioVAELoader, LTXVEmptyLatentAudio
from nodeloom.nodes.diffusion.ltx2_nodes import LTXAVTextEncoderLoader, LTXVConcatAVLatent, LTXVSeparateAVLatent
from nodeloom.nodes.diffusion.ltx2_nodes import LTXVDualCFGGuider
from nodeloom.nodes.diffusion.ltx_guides import GetICLoRAParameters, LTXVAddGuide, LTXVCropGuides
from nodeloom.nodes.diffusion.ltx_nodes import (
    EmptyLTXVLatentVideo,
    LTXVConditioning,
    LTXVImgToVideo,
    LTXVImgToVideoInplace,
    LTXVPreprocess,
    LTXVScheduler,
    ModelSamplingLTXV,
)
from nodeloom.nodes.diffusion.ltx_upsampler import LatentUpscaleModelLoader, LTXVLatentUpsampler
from nodeloom.nodes.diffusion.model_sampling import (
    EmptySD3LatentImage,
    FluxGuidance,
    ModelSamplingAuraFlow,
    ModelSamplingFlux,
    ModelSamplingSD3,
)
from nodeloom.nodes.diffusion.extra_samplers import (SamplerDPMAdaptative, SamplerER_SDE, SamplerEulerCFGpp,
                                                     SamplerLCMUpscale, SamplerSASolver, SamplerSEEDS2)
from nodeloom.nodes.diffusion.freeu import FreeU, FreeU_V2
from nodeloom.nodes.diffusion.rope_nodes import ScaleROPE
from nodeloom.nodes.diffusion.attention_multiply_nodes import (
    UNetCrossAttentionMultiply,
    UNetSelfAttentionMultiply,
    UNetTemporalAttentionMultiply,
)
from nodeloom.nodes.diffusion.attention_multiply_nodes import CLIPAttentionMultiply
from nodeloom.nodes.diffusion.sampling import KSampler, KSamplerAdvanced
from nodeloom.nodes.diffusion.skip_layer import SkipLayerGuidanceDiT, SkipLayerGuidanceDiTSimple
from nodeloom.nodes.diffusion.guided_sampling import DualModelGuider, Ideogram4Scheduler, SamplerLCM
from nodeloom.nodes.diffusion.model_tweaks import (
    EasyCache,
    HiDreamO1PatchSeamSmoothing,
    MiniMaxH3SigmaShift,
    ModelAttentionBackend,
    ModelNoiseScale,
    TemporalScoreRescaling,
    VideoLinearCFGGuidance,
)
from nodeloom.nodes.diffusion.split_loaders import (
    CLIPLoader,
    DualCLIPLoader,
    QuadrupleCLIPLoader,
    TripleCLIPLoader,
    UNETLoader,
)
from nodeloom.nodes.diffusion.t5_options import T5TokenizerOptions
from nodeloom.nodes.diffusion.template_sampling import (
    DualCFGGuider,
    EmptyFlux2LatentImage,
    Flux2Scheduler,
    InstructPixToPixConditioning,
    ManualSigmas,
)
from nodeloom.nodes.diffusion.vae import (
    InpaintModelConditioning,
    VAEDecode,
    VAEDecodeTiled,
    VAEEncode,
    VAEEncodeForInpaint,
    VAEEncodeTiled,
)
from nodeloom.nodes.diffusion.context_window_nodes import ContextWindowsManual, WanContextWindowsManual
from nodeloom.nodes.diffusion.wan_camera_nodes import CameraToWanEmbedding, WanCameraEmbedding, WanCameraImageToVideo
from nodeloom.nodes.diffusion.wan22_nodes import Wan22FunControlToVideo, Wan22ImageToVideoLatent, WanFunControlToVideo
from nodeloom.nodes.diffusion.wan_nodes import (
    EmptyHunyuanLatentVideo,
    WanFirstLastFrameToVideo,
    WanFunInpaintToVideo,
    WanImageToVideo,
    WanVaceToVideo,
)
from nodeloom.nodes.diffusion.conditioning_files import ConditioningLoader, SaveConditioning
from nodeloom.nodes.diffusion.custom_sampling import VOIDSampler, VOIDWarpedNoiseSource
from nodeloom.nodes.diffusion.vision_conditioning import (
    Hunyuan3Dv2Conditioning,
    Hunyuan3Dv2ConditioningMultiView,
    PiDConditioning,
    unCLIPConditioning,
)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(
    CheckpointLoaderSimple, DiffusersLoader, VAELoader, CLIPSetLastLayer, LoraLoader, LoraLoaderModelOnly,
    CLIPTextEncode, CLIPTextEncodeSDXL, ConditioningCombine, ConditioningAverage, ConditioningConcat, ConditioningZeroOut,
    ConditioningSetTimestepRange,
    ConditioningSetArea, ConditioningSetAreaPercentage, ConditioningSetAreaPercentageVideo, ConditioningSetAreaStrength,
    ConditioningSetMask,
    EmptyLatentImage, LatentUpscale, LatentUpscaleBy, SetLatentNoiseMask,
    LatentFromBatch, RepeatLatentBatch, LatentBatch, LatentComposite, LatentBlend, LatentRotate, LatentFlip, LatentCrop,
    KSampler, KSamplerAdvanced,
    SamplerCustom, SamplerCustomAdvanced, KSamplerSelect, BasicScheduler, KarrasScheduler, ExponentialScheduler,
    SamplerEulerAncestral, SamplerEulerAncestralCFGPP, SamplerDPMPP_2S_Ancestral, SamplerDPMPP_SDE, SamplerDPMPP_2M_SDE,
    SamplerDPMPP_3M_SDE, SamplerLMS,
    SamplerER_SDE, SamplerSASolver, SamplerSEEDS2, SamplerEulerCFGpp, SamplerDPMAdaptative, SamplerLCMUpscale, ScaleROPE, FreeU, FreeU_V2,
    PolyexponentialScheduler, LaplaceScheduler, SDTurboScheduler, BetaSamplingScheduler, VPScheduler,
    SplitSigmas, SplitSigmasDenoise, FlipSigmas, SetFirstSigma, ExtendIntermediateSigmas, SamplingPercentToSigma, RandomNoise, DisableNoise, AddNoise, CFGGuider, BasicGuider,
    VAEDecode, VAEDecodeTiled, VAEEncode, VAEEncodeTiled, VAEEncodeForInpaint, InpaintModelConditioning,
    ControlNetLoader, ControlNetApplyAdvanced, ControlNetApply, Canny,
    UNETLoader, CLIPLoader, DualCLIPLoader, TripleCLIPLoader, QuadrupleCLIPLoader,
    ModelSamplingSD3, ModelSamplingAuraFlow, ModelSamplingFlux, EmptySD3LatentImage, FluxGuidance,
    ReferenceLatent, FluxKontextImageScale, FluxKontextMultiReferenceLatentMethod, FluxKVCache,
    HiDreamO1ReferenceImages, CFGNorm,
    ReferenceMultiLatent,
    CFGZeroStar, RescaleCFG, CFGOverride, Mahiro, TCFG, APG, ModelSamplingDiscrete, PerpNegGuider,
    AlignYourStepsScheduler, RenormCFG,
    DifferentialDiffusion, ManualSigmas, Flux2Scheduler, EmptyFlux2LatentImage, DualCFGGuider,
    InstructPixToPixConditioning, SkipLayerGuidanceDiTSimple,
    EmptyLTXVLatentVideo, LTXVConditioning, LTXVScheduler, ModelSamplingLTXV, LTXVPreprocess,
    LTXVImgToVideoInplace, LTXVAudioVAELoader, LTXVEmptyLatentAudio, LTXVAudioVAEDecode, LatentUpscaleModelLoader,
    LTXVLatentUpsampler,
    LTXVImgToVideo, LTXVAddGuide, LTXVCropGuides,
    GetICLoRAParameters,
    LTXAVTextEncoderLoader, LTXVConcatAVLatent, LTXVSeparateAVLatent,
    CLIPTextEncodeFlux, T5TokenizerOptions,
    CLIPTextEncodeHiDream,
    ModelPatchLoader, QwenImageDiffsynthControlnet,
    TextEncodeQwenImageEdit, TextEncodeQwenImageEditPlus,
    EmptyHunyuanLatentVideo, WanImageToVideo, WanFirstLastFrameToVideo, WanFunInpaintToVideo, WanVaceToVideo,
    EmptyHunyuanVideo15Latent, HunyuanVideo15ImageToVideo,
    Wan22ImageToVideoLatent, Wan22FunControlToVideo, WanFunControlToVideo, WanCameraEmbedding, WanCameraImageToVideo,
    CameraToWanEmbedding,
    ContextWindowsManual, WanContextWindowsManual,
    ConditioningLoader, SaveConditioning,
    LotusConditioning,
    ReplaceVideoLatentFrames, NormalizeVideoLatentStart, SeedVR2TemporalChunk, SeedVR2TemporalMerge,
    SkipLayerGuidanceDiT, SamplerLCM, Ideogram4Scheduler, DualModelGuider, EasyCache, ModelNoiseScale,
    TemporalScoreRescaling, VideoLinearCFGGuidance, MiniMaxH3SigmaShift, ModelAttentionBackend,
    HiDreamO1PatchSeamSmoothing,
    UNetSelfAttentionMultiply, UNetCrossAttentionMultiply, UNetTemporalAttentionMultiply,
    LTXVDualCFGGuider, CLIPAttentionMultiply,
    unCLIPConditioning, PiDConditioning, VOIDWarpedNoiseSource, VOIDSampler, Hunyuan3Dv2Conditioning, Hunyuan3Dv2ConditioningMultiView,
)
