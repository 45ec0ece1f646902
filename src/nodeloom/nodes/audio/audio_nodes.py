"""ComfyUI's core AUDIO nodes with its class names, inputs, defaults and outputs.

Load (any media file's audio track, ``audio_upload`` widget; ``RecordAudio`` loads the file the
frontend's recorder widget uploaded), save as FLAC / MP3 / Opus
(``SaveAudioAdvanced`` picks the format), preview, trim, concatenate, merge, split, adjust the
volume and make silence. AUDIO is ``{"waveform": float32 [B,C,T], "sample_rate": int}``;
the waveform work is in ``ops.audio``.
"""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.node_api import (
    Combo,
    Custom,
    Float,
    Hidden,
    Int,
    Node,
    NodeOutput,
    Output,
    Schema,
    String,
    ValidationError,
    services,
)
from nodeloom.nodes.video.media_files import (
    AUDIO_EXTENSIONS,
    VIDEO_EXTENSIONS,
    InputFileChecks,
    claim_files,
    input_files,
    resolve_input,
    workflow_tags,
)
from nodeloom.ops.audio import QUALITIES, concat_audio, load_audio, merge_audio, save_audio, trim_audio
from nodeloom.ops.video_value import check_audio

__all__ = ["AudioAdjustVolume", "AudioConcat", "AudioMerge", "EmptyAudio", "LoadAudio", "PreviewAudio", "RecordAudio",
           "SaveAudio",
           "SaveAudioAdvanced", "SaveAudioMP3", "SaveAudioOpus", "SplitAudioChannels", "TrimAudioDuration"]

AUDIO = "AUDIO"
_HIDDEN = {"prompt": Hidden.prompt, "extra_pnginfo": Hidden.extra_pnginfo}
_PREFIX_TIP = "The prefix for the file to save; may contain a subfolder."


def _audio_in(name: str = "audio", tip: str = "The audio.") -> Custom:
    return Custom(AUDIO, name, tooltip=tip)


def _save_all(audio: Any, prefix: str, fmt: str, quality: str, prompt: Any, extra: Any,
              kind: str = "output") -> list[dict[str, Any]]:
    """Write every batch item as ``{prefix}_{counter:05}_.{fmt}``; the UI entries of the files."""
    audio = check_audio(audio)
    folder, name, counter, subfolder = services().paths.get_save_path(prefix, kind=kind,
                                                                      count=audio["waveform"].shape[0])
    tags = workflow_tags(prompt, extra)
    results = []
    for index in range(audio["waveform"].shape[0]):
        (target,), counter = claim_files(folder, name.replace("%batch_num%", str(index)), counter, [fmt], suffix="_")
        try:
            save_audio(audio, target, fmt, quality, tags, index=index)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        results.append({"filename": target.name, "subfolder": subfolder, "type": kind})
        counter += 1
    return results


class LoadAudio(InputFileChecks, Node):
    """Load the audio track of a file in the input folder (audio or video files)."""

    FILE_KIND = "audio"

    SCHEMA = Schema(
        "LoadAudio",
        display_name="Load Audio",
        category="audio",
        inputs=[Combo("audio", lambda: input_files(AUDIO_EXTENSIONS + VIDEO_EXTENSIONS), audio_upload=True,
                      tooltip="An audio or video file in the input folder (upload one to add it).")],
        outputs=[Output(AUDIO, "AUDIO", tooltip="The waveform [1,C,T] and its sample rate.")],
    )

    @classmethod
    def execute(cls, audio: str) -> tuple[Any]:
        return (load_audio(resolve_input(audio)),)


class RecordAudio(InputFileChecks, Node):
    """Load what the frontend's recorder widget captured (it uploads the recording to the input
    folder and sends its name, e.g. ``audio/recording-1.wav [input]``)."""

    FILE_KIND = "audio"

    SCHEMA = Schema(
        "RecordAudio", display_name="Record Audio", category="audio",
        inputs=[Custom("AUDIO_RECORD", "audio", tooltip="The recording (the recorder widget fills this in).")],
        outputs=[Output(AUDIO, "AUDIO", tooltip="The waveform [1,C,T] and its sample rate.")],
    )

    @classmethod
    def execute(cls, audio: str) -> tuple[Any]:
        if not isinstance(audio, str) or not audio.strip():
            raise ValidationError("`audio` must name a recorded file in the input folder, got nothing; record or "
                                  "upload audio in the node first")
        return (load_audio(resolve_input(audio)),)


def _saver(node_id: str, display: str, fmt: str, qualities: list[str] | None, default: str = "") -> type[Node]:
    """A Save Audio node for one format (ComfyUI's SaveAudio / SaveAudioMP3 / SaveAudioOpus)."""
    inputs: list[Any] = [_audio_in(tip="The audio to save."),
                         String("filename_prefix", "audio/ComfyUI", tooltip=_PREFIX_TIP)]
    if qualities:
        inputs.append(Combo("quality", qualities, default=default, tooltip=f"{fmt.upper()} encoding quality."))

    def execute(cls: type, audio: Any, filename_prefix: str = "audio/ComfyUI", quality: str = default,
                prompt: Any = None, extra_pnginfo: Any = None) -> NodeOutput:
        return NodeOutput(ui={"audio": _save_all(audio, filename_prefix, fmt, quality, prompt, extra_pnginfo)})

    schema = Schema(node_id, display_name=display, category="audio", inputs=inputs, outputs=[], hidden=_HIDDEN,
                    output_node=True, description=f"Save audio as {fmt.upper()} files in the output folder.")
    return type(node_id, (Node,), {"SCHEMA": schema, "execute": classmethod(execute), "__module__": __name__,
                                   "__doc__": f"Save audio as {fmt.upper()} files in the output folder."})


SaveAudio = _saver("SaveAudio", "Save Audio (FLAC)", "flac", None)
SaveAudioMP3 = _saver("SaveAudioMP3", "Save Audio (MP3)", "mp3", QUALITIES["mp3"], "V0")
SaveAudioOpus = _saver("SaveAudioOpus", "Save Audio (Opus)", "opus", QUALITIES["opus"], "128k")


class SaveAudioAdvanced:
    """Save audio as FLAC, MP3 or Opus (the quality input applies to the chosen lossy format); passes the audio on."""

    FORMATS = ["flac", "mp3", "opus"]
    RETURN_TYPES = (AUDIO,)
    RETURN_NAMES = ("audio",)
    OUTPUT_TOOLTIPS = ("The input audio, unchanged.",)
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "audio"
    DESCRIPTION = "Write the incoming audio to a file in the output folder."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        qualities = list(dict.fromkeys(QUALITIES["mp3"] + QUALITIES["opus"]))
        return {
            "required": {
                "audio": (AUDIO, {"tooltip": "The audio to save."}),
                "filename_prefix": ("STRING", {"default": "audio/ComfyUI", "tooltip": _PREFIX_TIP}),
                "format": (cls.FORMATS, {"default": "flac", "tooltip": "The file format to save the audio in."}),
            },
            # ComfyUI names the per-format sub-widget of its dynamic combo `format.quality`
            "optional": {"format.quality": (qualities, {"default": "V0",
                                                        "tooltip": "MP3: V0 / 128k / 320k; Opus: 64k to 320k."})},
            "hidden": dict(_HIDDEN),
        }

    def save(self, audio: Any, filename_prefix: str = "audio/ComfyUI", format: str = "flac",  # noqa: A002
             prompt: Any = None, extra_pnginfo: Any = None, **rest: Any) -> dict[str, Any]:
        if format not in self.FORMATS:
            raise ValidationError(f"`format` must be one of {self.FORMATS}, got `{format}`")
        quality = rest.get("format.quality", "") if format != "flac" else ""
        if quality and quality not in QUALITIES[format]:
            raise ValidationError(f"`format.quality` for {format} must be one of {QUALITIES[format]}, got `{quality}`")
        quality = quality or {"mp3": "V0", "opus": "128k"}.get(format, "")
        files = _save_all(audio, filename_prefix, format, quality, prompt, extra_pnginfo)
        return {"ui": {"audio": files}, "result": (audio,)}


class PreviewAudio(Node):
    """Play the audio in the frontend (a FLAC file in the temp folder)."""

    SCHEMA = Schema("PreviewAudio", display_name="Preview Audio", category="audio",
                    inputs=[_audio_in(tip="The audio to play.")], outputs=[], hidden=_HIDDEN, output_node=True)

    @classmethod
    def execute(cls, audio: Any, prompt: Any = None, extra_pnginfo: Any = None) -> NodeOutput:
        return NodeOutput(ui={"audio": _save_all(audio, "ComfyUI_temp_audio", "flac", "", prompt, extra_pnginfo,
                                                 kind="temp")})


class TrimAudioDuration(Node):
    """Keep only a stretch of the clip, from start_index for duration seconds."""

    SCHEMA = Schema(
        "TrimAudioDuration", display_name="Trim Audio Duration", category="audio",
        description="Keep only a stretch of the clip, from start_index for duration seconds.",
        inputs=[_audio_in(),
                Float("start_index", 0.0, min=-0xFFFFFFFFFFFFFFFF, max=0xFFFFFFFFFFFFFFFF, step=0.01,
                      tooltip="Where the kept part begins, in seconds (fractions allowed); a negative value counts back from the end."),
                Float("duration", 60.0, min=0.0, step=0.01, tooltip="Duration in seconds")],
        outputs=[Output(AUDIO, "AUDIO", tooltip="The trimmed audio.")],
    )

    @classmethod
    def execute(cls, audio: Any, start_index: float = 0.0, duration: float = 60.0) -> tuple[Any]:
        return (trim_audio(audio, start_index, duration),)


class AudioConcat(Node):
    """Join two audio clips end to end, audio2 after or before audio1."""

    SCHEMA = Schema(
        "AudioConcat", display_name="Audio Concat", category="audio",
        description="Join two audio clips end to end, audio2 after or before audio1.",
        inputs=[_audio_in("audio1", "The first audio."), _audio_in("audio2", "The second audio."),
                Combo("direction", ["after", "before"], default="after",
                      tooltip="Put audio2 after audio1 or before it.")],
        outputs=[Output(AUDIO, "AUDIO", tooltip="Both, one after the other (stereo).")],
    )

    @classmethod
    def execute(cls, audio1: Any, audio2: Any, direction: str = "after") -> tuple[Any]:
        if direction not in ("after", "before"):
            raise ValidationError(f"`direction` must be `after` or `before`, got `{direction}`")
        return (concat_audio(audio1, audio2) if direction == "after" else concat_audio(audio2, audio1),)


class AudioMerge(Node):
    """Mix two audio clips into one by combining their samples."""

    SCHEMA = Schema(
        "AudioMerge", display_name="Audio Merge", category="audio",
        description="Mix two audio clips into one by combining their samples.",
        inputs=[_audio_in("audio1", "The base audio (sets the length)."),
                _audio_in("audio2", "The audio laid over it (cut or padded to audio1's length)."),
                Combo("merge_method", ["add", "mean", "subtract", "multiply"],
                      tooltip="How the two waveforms are combined.")],
        outputs=[Output(AUDIO, "AUDIO", tooltip="The mix, normalised when it peaks above 1.")],
    )

    @classmethod
    def execute(cls, audio1: Any, audio2: Any, merge_method: str = "add") -> tuple[Any]:
        return (merge_audio(audio1, audio2, merge_method),)


class SplitAudioChannels(Node):
    """Split a stereo clip into its left and right channels."""

    SCHEMA = Schema(
        "SplitAudioChannels", display_name="Split Audio Channels", category="audio",
        description="Split a stereo clip into its left and right channels.",
        inputs=[_audio_in(tip="Stereo audio.")],
        outputs=[Output(AUDIO, "left", tooltip="The left channel."), Output(AUDIO, "right", tooltip="The right channel.")],
    )

    @classmethod
    def execute(cls, audio: Any) -> tuple[Any, Any]:
        audio = check_audio(audio)
        wave, rate = audio["waveform"], audio["sample_rate"]
        if wave.shape[1] != 2:
            raise ValidationError(f"`audio` must be stereo to split, it has {wave.shape[1]} channel(s)")
        return {"waveform": wave[:, 0:1], "sample_rate": rate}, {"waveform": wave[:, 1:2], "sample_rate": rate}


class AudioAdjustVolume(Node):
    """Change the loudness by a number of decibels."""

    SCHEMA = Schema(
        "AudioAdjustVolume", display_name="Audio Adjust Volume", category="audio",
        inputs=[_audio_in(),
                Int("volume", 1, min=-100, max=100,
                    tooltip="Gain in decibels: 0 leaves the level as is, +6 roughly doubles it, -6 roughly halves it.")],
        outputs=[Output(AUDIO, "AUDIO", tooltip="The louder or quieter audio.")],
    )

    @classmethod
    def execute(cls, audio: Any, volume: int = 1) -> tuple[Any]:
        audio = check_audio(audio)
        if volume == 0:
            return (audio,)
        return ({"waveform": audio["waveform"] * 10 ** (volume / 20), "sample_rate": audio["sample_rate"]},)


class EmptyAudio(Node):
    """Make a silent clip."""

    SCHEMA = Schema(
        "EmptyAudio", display_name="Empty Audio", category="audio",
        inputs=[Float("duration", 60.0, min=0.0, max=0xFFFFFFFFFFFFFFFF, step=0.01,
                      tooltip="Length of the silent clip, in seconds."),
                Int("sample_rate", 44100, tooltip="Samples per second of the silent clip."),
                Int("channels", 2, min=1, max=2, tooltip="How many channels the clip has: 1 mono, 2 stereo.")],
        outputs=[Output(AUDIO, "AUDIO", tooltip="Silence.")],
    )

    @classmethod
    def execute(cls, duration: float = 60.0, sample_rate: int = 44100, channels: int = 2) -> tuple[Any]:
        if sample_rate <= 0:
            raise ValidationError(f"`sample_rate` must be > 0, got {sample_rate}")
        samples = int(round(duration * sample_rate))
        return ({"waveform": torch.zeros((1, channels, samples), dtype=torch.float32), "sample_rate": sample_rate},)
