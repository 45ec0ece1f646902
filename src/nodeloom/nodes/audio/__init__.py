"""The audio pack: ComfyUI's core AUDIO nodes (load, save, preview, trim, concat, merge...).
Registers like any third-party pack."""

from nodeloom.node_api import mappings
from nodeloom.nodes.audio.audio_nodes import (
    AudioAdjustVolume,
    AudioConcat,
    AudioMerge,
    EmptyAudio,
    LoadAudio,
    RecordAudio,
    PreviewAudio,
    SaveAudio,
    SaveAudioAdvanced,
    SaveAudioMP3,
    SaveAudioOpus,
    SplitAudioChannels,
    TrimAudioDuration,
)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(
    LoadAudio, RecordAudio, SaveAudio, SaveAudioMP3, SaveAudioOpus, PreviewAudio, TrimAudioDuration, AudioConcat, AudioMerge,
    SplitAudioChannels, AudioAdjustVolume, EmptyAudio,
)
NODE_CLASS_MAPPINGS["SaveAudioAdvanced"] = SaveAudioAdvanced
NODE_DISPLAY_NAME_MAPPINGS["SaveAudioAdvanced"] = "Save Audio (Advanced)"
