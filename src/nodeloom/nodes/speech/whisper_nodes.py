"""Speech-to-text nodes: load a Whisper folder, transcribe AUDIO into text and timed segments,
write the segments as SRT / WebVTT files. Model code is in ``nodeloom.speech.whisper``; the
timed-text formats are in ``ops.subtitles``."""

from __future__ import annotations

import json
from typing import Any

from nodeloom.node_api import (IO, Boolean, Combo, Custom, Float, Int, Node, NodeOutput, Output, ProgressBar, Schema, String,
                               ValidationError, model_key, services, write_atomic)
from nodeloom.nodes.video.media_files import claim_files
from nodeloom.ops.subtitles import Segment, parse_subtitles, segments_to_json, sentence_segments, to_srt, to_vtt
from nodeloom.ops.video_value import check_audio

__all__ = ["SaveSubtitles", "SubtitlesFromText", "WhisperLoader", "WhisperTranscribe"]

WHISPER = "WHISPER"
SEGMENTS = "SPEECH_SEGMENTS"
AUDIO = "AUDIO"
CATEGORY = "audio/speech"
LANGUAGES = ["auto", "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it",
             "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur", "hr"]


def _folders() -> list[str]:
    svc = services(required=False)
    return svc.paths.get_filename_list("speech") if svc is not None else []


def check_segments(value: Any, name: str = "segments") -> list[Segment]:
    """A SPEECH_SEGMENTS value, or a clear error naming the input."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(s, Segment) for s in value):
        raise ValidationError(f"`{name}` must be speech segments (from Whisper Transcribe or Subtitles From Text), "
                              f"got {type(value).__name__}")
    return list(value)


class WhisperLoader(Node):
    """Load a Whisper speech-recognition model: a transformers Whisper folder under models/speech
    (config, weights, tokenizer, preprocessor and generation configs), read with no network."""

    SCHEMA = Schema(
        "WhisperLoader", display_name="Load Whisper", category=CATEGORY,
        inputs=[Combo("model_name", _folders, tooltip="A transformers Whisper folder in models/speech.")],
        outputs=[Output(WHISPER, "WHISPER", tooltip="The loaded Whisper model.")],
    )

    @classmethod
    def execute(cls, model_name: str) -> tuple[Any, ...]:
        from nodeloom.speech.whisper import load_whisper

        svc = services()
        path = svc.paths.get_full_path("speech", model_name)
        return (svc.models.load(model_key(path, "whisper"), lambda: load_whisper(path, svc.models.device)),)


class WhisperTranscribe(Node):
    """Turn speech into text with timed segments. Long audio is cut into windows of at most
    `chunk_seconds` at quiet points; segment times stay in order and inside the audio across
    windows. `translate` gives English text from any language the model knows."""

    SCHEMA = Schema(
        "WhisperTranscribe", display_name="Whisper Transcribe (Speech → Text)", category=CATEGORY,
        inputs=[
            Custom(WHISPER, "whisper", tooltip="The model from Load Whisper."),
            Custom(AUDIO, "audio", tooltip="The speech (Load Audio, or a video's audio); channels are mixed to mono."),
            Combo("language", LANGUAGES, default="auto", tooltip="The spoken language (auto: the model detects it)."),
            Combo("task", ["transcribe", "translate"], default="transcribe",
                  tooltip="transcribe: text in the spoken language; translate: English text."),
            Float("chunk_seconds", 30.0, min=1.0, max=30.0, step=0.5,
                  tooltip="Longest window the model sees at once (Whisper's limit is 30 s)."),
            Boolean("sentences", True, tooltip="Regroup the segments into one per sentence."),
            Int("max_new_tokens", 224, min=8, max=444, tooltip="Most tokens generated per window."),
        ],
        outputs=[
            Output(IO.STRING, "text", tooltip="The whole transcript."),
            Output(SEGMENTS, "segments", tooltip="Timed segments (seconds from the start of the audio)."),
            Output(IO.STRING, "srt", tooltip="The segments as SubRip (.srt) text."),
            Output(IO.STRING, "vtt", tooltip="The segments as WebVTT (.vtt) text."),
            Output(IO.STRING, "json", tooltip="Segments and run facts (duration, windows, real-time factor) as JSON."),
        ],
    )

    @classmethod
    def execute(cls, whisper: Any, audio: Any, language: str = "auto", task: str = "transcribe",
                chunk_seconds: float = 30.0, sentences: bool = True, max_new_tokens: int = 224) -> tuple[Any, ...]:
        from nodeloom.speech.whisper import WhisperModel, transcribe

        if not isinstance(whisper, WhisperModel):
            raise ValidationError(f"`whisper` must come from Load Whisper, got {type(whisper).__name__}")
        audio = check_audio(audio)
        bar = ProgressBar(1)
        manager = services().models
        with manager.device_lock:
            segments, facts = transcribe(whisper, audio, language=language, task=task, chunk_seconds=chunk_seconds,
                                         max_new_tokens=max_new_tokens,
                                         progress=lambda i, n: bar.update_absolute(i, n))
        if sentences:
            segments = sentence_segments(segments)
        text = " ".join(s.text for s in segments)
        report = json.loads(segments_to_json(segments)) | facts
        return text, segments, to_srt(segments), to_vtt(segments), json.dumps(report, ensure_ascii=False)


class SubtitlesFromText(Node):
    """Read SRT or WebVTT text (typed, or from another node) into timed segments."""

    SCHEMA = Schema(
        "SubtitlesFromText", display_name="Subtitles From Text", category=CATEGORY,
        inputs=[String("subtitles", "", multiline=True, tooltip="SubRip or WebVTT text.")],
        outputs=[Output(SEGMENTS, "segments", tooltip="The cues as timed segments.")],
    )

    @classmethod
    def execute(cls, subtitles: str) -> tuple[Any, ...]:
        return (parse_subtitles(subtitles),)


class SaveSubtitles(Node):
    """Write timed segments as a subtitle file (.srt or .vtt) in the output folder."""

    SCHEMA = Schema(
        "SaveSubtitles", display_name="Save Subtitles", category=CATEGORY, output_node=True,
        inputs=[Custom(SEGMENTS, "segments", tooltip="Timed segments."),
                String("filename_prefix", "subtitles/nodeloom", tooltip="Prefix of the file; may contain a subfolder."),
                Combo("format", ["srt", "vtt"], tooltip="SubRip (.srt) or WebVTT (.vtt).")],
        outputs=[Output(IO.STRING, "path", tooltip="The written file, relative to the output folder.")],
    )

    @classmethod
    def execute(cls, segments: Any, filename_prefix: str = "subtitles/nodeloom", format: str = "srt") -> Any:
        segs = check_segments(segments)
        text = to_srt(segs) if format == "srt" else to_vtt(segs)
        folder, name, counter, subfolder = services().paths.get_save_path(filename_prefix)
        (target,), _ = claim_files(folder, name, counter, [format], suffix="_")
        write_atomic(target, text.encode("utf-8"))
        rel = f"{subfolder}/{target.name}" if subfolder else target.name
        entry = {"filename": target.name, "subfolder": subfolder, "type": "output"}
        return NodeOutput(rel, ui={"text": [text], "subtitles": [entry]})
