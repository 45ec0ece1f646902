"""Audio sync nodes: beats and onsets from AUDIO, a storyboard timed by the audio (a shot per
sentence or per N beats, cuts snapped to beats), and subtitles burned into frames. The work
is in ``ops.onsets``, ``ops.audio_timing`` and ``ops.subtitle_render``."""

from __future__ import annotations

from typing import Any

import torch

from nodeloom.node_api import IO, Boolean, Combo, Custom, Float, Image, Int, Node, Output, Schema, String, ValidationError
from nodeloom.nodes.speech.whisper_nodes import AUDIO, CATEGORY, SEGMENTS, check_segments
from nodeloom.nodes.video._common import to_frames, to_image
from nodeloom.nodes.video.storyboard_nodes import storyboard_outputs, storyboard_values
from nodeloom.ops.audio_timing import beat_cuts, board_from_cuts, parse_times, sentence_cuts, snap_cuts
from nodeloom.ops.onsets import detect_beats, detect_onsets
from nodeloom.ops.subtitle_render import burn_subtitles
from nodeloom.ops.video_value import check_audio

__all__ = ["AudioBeats", "AudioStoryboard", "SubtitlesBurnIn"]


def _mono(audio: dict[str, Any]) -> tuple[Any, int, float]:
    wave = audio["waveform"][0].to(torch.float32).mean(dim=0).numpy()
    rate = int(audio["sample_rate"])
    return wave, rate, wave.size / rate


def _times_text(times: list[float]) -> str:
    return ", ".join(f"{t:.3f}" for t in times)


class AudioBeats(Node):
    """Find where sounds start (onsets) or a steady beat grid (beats, with the tempo) in audio.
    The times feed Audio Storyboard's `beats` (cuts on beats)."""

    SCHEMA = Schema(
        "AudioBeats", display_name="Audio Beats / Onsets", category=CATEGORY,
        inputs=[Custom(AUDIO, "audio", tooltip="The audio (channels are mixed; the first clip of a batch)."),
                Combo("method", ["onsets", "beats"], tooltip="onsets: every new sound; beats: a steady grid at the detected tempo."),
                Float("threshold", 0.3, min=0.0, max=1.0, step=0.05,
                      tooltip="Onsets: the least strength kept, as a fraction of the strongest."),
                Float("min_gap", 0.1, min=0.01, max=10.0, step=0.01, tooltip="Onsets: the shortest time between two, in seconds.")],
        outputs=[Output(IO.STRING, "times", tooltip="The times in seconds, comma-separated."),
                 Output(IO.FLOAT, "tempo", tooltip="Beats per minute (beats only; 0 for onsets)."),
                 Output(IO.INT, "count", tooltip="How many times were found.")],
    )

    @classmethod
    def execute(cls, audio: Any, method: str = "onsets", threshold: float = 0.3, min_gap: float = 0.1) -> tuple[Any, ...]:
        wave, rate, _ = _mono(check_audio(audio))
        if method == "beats":
            times, bpm = detect_beats(wave, rate)
        else:
            times, bpm = detect_onsets(wave, rate, threshold=threshold, min_gap=min_gap), 0.0
        return _times_text(times), float(bpm), len(times)


class AudioStoryboard(Node):
    """A storyboard timed by audio: one shot per sentence of the transcript, or one per N beats.
    Cuts land on frames of the film's clock (lengths never drift from the audio) and, with
    `snap_to_beats`, on the nearest beat. Shot sizes, angles and moves come from each shot's
    text by the Storyboard rules; the outputs match Storyboard's."""

    SCHEMA = Schema(
        "AudioStoryboard", display_name="Audio Storyboard (Audio → Shots)", category=CATEGORY,
        inputs=[
            Custom(AUDIO, "audio", tooltip="The soundtrack; its length is the film's."),
            Combo("mode", ["sentence", "beats"], tooltip="sentence: a shot per transcript segment; beats: a shot per N beats."),
            Float("fps", 24.0, min=1.0, max=240.0, tooltip="The film's frame rate."),
            Int("beats_per_shot", 4, min=1, max=64, tooltip="beats mode: beats in each shot."),
            Boolean("snap_to_beats", True, tooltip="sentence mode: move each cut to the nearest beat within `snap_window`."),
            Float("snap_window", 0.25, min=0.0, max=5.0, step=0.05, tooltip="Farthest a cut may move to a beat, in seconds."),
            String("style", "", tooltip="Appended to every prompt (e.g. `cinematic, 35mm film`)."),
            Int("columns", 3, min=1, max=12, tooltip="Panels per row on the contact sheet."),
            Custom(SEGMENTS, "segments", optional=True, tooltip="The transcript (Whisper Transcribe); needed in sentence mode."),
            String("beats", "", optional=True, tooltip="Beat times in seconds (Audio Beats); empty: onsets found in the audio."),
            String("script", "", optional=True, multiline=True,
                   tooltip="beats mode: one line per shot for the prompts (lines repeat; empty: the transcript's words)."),
        ],
        outputs=[*storyboard_outputs(), Output(IO.STRING, "cut_times", tooltip="Where the cuts fall, in seconds.")],
    )

    @classmethod
    def execute(cls, audio: Any, mode: str = "sentence", fps: float = 24.0, beats_per_shot: int = 4,
                snap_to_beats: bool = True, snap_window: float = 0.25, style: str = "", columns: int = 3,
                segments: Any = None, beats: str = "", script: str = "") -> tuple[Any, ...]:
        wave, rate, duration = _mono(check_audio(audio))
        beat_times = parse_times(beats) if (beats or "").strip() else None
        if beat_times is None and (mode == "beats" or snap_to_beats):
            beat_times = detect_onsets(wave, rate)
        if mode == "sentence":
            if segments is None:
                raise ValidationError("`segments` is required in sentence mode (connect Whisper Transcribe)")
            cuts, texts = sentence_cuts(check_segments(segments), duration)
            if snap_to_beats:
                cuts = snap_cuts(cuts, beat_times or [], snap_window)
        else:
            cuts = beat_cuts(beat_times or [], beats_per_shot, duration)
            texts = _beat_texts(len(cuts) + 1, [0.0, *cuts], script,
                                check_segments(segments) if segments is not None else [])
        board = board_from_cuts(cuts, duration, texts, fps=fps, style=style)
        starts = board.shot_starts()
        return (*storyboard_values(board, columns), _times_text([s / fps for s in starts[1:]]))


def _beat_texts(count: int, starts: list[float], script: str, segments: list[Any]) -> list[str]:
    """Prompts for beat-timed shots: script lines in turn, else the words spoken in each shot."""
    lines = [ln.strip() for ln in (script or "").splitlines() if ln.strip()]
    if lines:
        return [lines[i % len(lines)] for i in range(count)]
    ends = [*starts[1:], float("inf")]
    return [" ".join(s.text for s in segments if a <= s.start < b) for a, b in zip(starts, ends)]


class SubtitlesBurnIn(Node):
    """Draw subtitles onto frames: each frame shows the segment spoken at its time."""

    SCHEMA = Schema(
        "SubtitlesBurnIn", display_name="Burn In Subtitles", category=CATEGORY,
        inputs=[Image("images", tooltip="The frames (a film from Film Assemble's input, or any batch)."),
                Custom(SEGMENTS, "segments", tooltip="Timed segments (Whisper Transcribe or Subtitles From Text)."),
                Float("fps", 24.0, min=1.0, max=240.0, tooltip="Frame rate of `images`."),
                Int("font_size", 0, min=0, max=512, tooltip="Text height in pixels (0: a twentieth of the frame height)."),
                Combo("position", ["bottom", "top"], tooltip="Where the text sits."),
                Float("start_time", 0.0, min=0.0, max=1e6, step=0.01, tooltip="Time of the first frame, in seconds.")],
        outputs=[Output(IO.IMAGE, "IMAGE", tooltip="The frames with subtitles.")],
    )

    @classmethod
    def execute(cls, images: Any, segments: Any, fps: float = 24.0, font_size: int = 0, position: str = "bottom",
                start_time: float = 0.0) -> tuple[Any, ...]:
        frames = burn_subtitles(to_frames(images), check_segments(segments), fps, font_size=font_size,
                                position=position, start_time=start_time)
        return (to_image(frames),)
