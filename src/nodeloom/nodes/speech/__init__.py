"""The speech pack: Whisper speech-to-text, timed segments and SRT/WebVTT subtitles, and audio
timing for storyboards (a shot per sentence or per N beats, cuts snapped to beats).
Registers like any third-party pack; torch and transformers load inside node calls."""

from nodeloom.node_api import mappings
from nodeloom.nodes.speech.sync_nodes import AudioBeats, AudioStoryboard, SubtitlesBurnIn
from nodeloom.nodes.speech.whisper_nodes import SaveSubtitles, SubtitlesFromText, WhisperLoader, WhisperTranscribe

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(
    WhisperLoader, WhisperTranscribe, SubtitlesFromText, SaveSubtitles, AudioBeats, AudioStoryboard, SubtitlesBurnIn,
)
