"""VIDEO values: frames, frame rate and audio kept together, lazily where they come from a file.

Owns :class:`VideoComponents` and the VIDEO value classes that ComfyUI's core video nodes
and the packs written for them pass around — :class:`VideoFromFile` (decodes nothing until
asked; probes size and duration from the container) and :class:`VideoFromComponents`
(tensors already in memory) — with the methods packs call on them: ``get_components``,
``get_dimensions``, ``get_duration``, ``get_frame_count``, ``get_frame_rate``,
``get_container_format``, ``get_stream_source``, ``save_to`` and ``as_trimmed`` — and the
``VideoContainer`` / ``VideoCodec`` choices, so ComfyUI's ``comfy_api`` video names can map here.
Decoding and encoding go through ``ops.video_read`` / ``ops.video_io`` (PyAV, the
``video`` extra). No nodes, no engine.
"""

from __future__ import annotations

import io
import math
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from nodeloom.errors import ValidationError, require
from nodeloom.ops.video_io import write_video
from nodeloom.ops.video_read import read_audio, read_video

__all__ = [
    "VIDEO_CODECS",
    "VIDEO_CONTAINERS",
    "VideoCodec",
    "VideoComponents",
    "VideoContainer",
    "VideoFromComponents",
    "VideoFromFile",
    "VideoInput",
    "check_audio",
]

class VideoContainer(str, Enum):
    """Container choices of ``SaveVideo`` (ComfyUI's names; ``auto`` keeps or picks MP4)."""

    AUTO = "auto"
    MP4 = "mp4"

    @classmethod
    def as_input(cls) -> list[str]:
        return [m.value for m in cls]

    @classmethod
    def get_extension(cls, value: str) -> str:
        """The file extension for a container choice."""
        return "mp4" if cls(value) in (cls.AUTO, cls.MP4) else ""


class VideoCodec(str, Enum):
    """Codec choices of ``SaveVideo``."""

    AUTO = "auto"
    H264 = "h264"

    @classmethod
    def as_input(cls) -> list[str]:
        return [m.value for m in cls]


VIDEO_CONTAINERS = VideoContainer.as_input()
VIDEO_CODECS = VideoCodec.as_input()


def check_audio(audio: Any, name: str = "audio") -> dict[str, Any]:
    """An AUDIO value ``{"waveform": float [B,C,T], "sample_rate": int}`` checked, waveform as a tensor.

    Raises:
        ValidationError: not a dict with a 3-D waveform and a positive integer rate.
    """
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise ValidationError(f"`{name}` must be an AUDIO dict with `waveform` [B,C,T] and `sample_rate`, "
                              f"got {type(audio).__name__}")
    wave = audio["waveform"]
    wave = wave if isinstance(wave, torch.Tensor) else torch.as_tensor(np.asarray(wave, dtype=np.float32))
    rate = audio["sample_rate"]
    if wave.ndim != 3 or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise ValidationError(f"`{name}` must have a waveform [B,C,T] and a positive integer sample_rate, "
                              f"got shape {tuple(wave.shape)} and rate {rate!r}")
    return {"waveform": wave, "sample_rate": int(rate)}


@dataclass
class VideoComponents:
    """The parts of a video: IMAGE frames ``[N,H,W,3]``, a frame rate, AUDIO or None, container tags."""

    images: torch.Tensor
    frame_rate: Fraction
    audio: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class VideoInput(ABC):
    """A VIDEO value. Subclasses give the components and a way to save; the rest has defaults."""

    @abstractmethod
    def get_components(self) -> VideoComponents:
        """Decode (if needed) and return frames, frame rate and audio."""

    @abstractmethod
    def save_to(self, path: str | Path | IO[bytes], format: str = "auto", codec: str = "auto",  # noqa: A002
                metadata: dict[str, Any] | None = None) -> None:
        """Write the video as MP4/H.264 (``format``/``codec`` ``auto`` keep what a file already is)."""

    def get_stream_source(self) -> str | io.BytesIO:
        """A path or an in-memory MP4 that PyAV can open."""
        buffer = io.BytesIO()
        self.save_to(buffer)
        buffer.seek(0)
        return buffer

    def get_dimensions(self) -> tuple[int, int]:
        """``(width, height)``."""
        images = self.get_components().images
        return int(images.shape[2]), int(images.shape[1])

    def get_frame_rate(self) -> Fraction:
        return self.get_components().frame_rate

    def get_frame_count(self) -> int:
        return int(self.get_components().images.shape[0])

    def get_duration(self) -> float:
        """Seconds: frame count / frame rate."""
        return float(self.get_frame_count() / self.get_frame_rate())

    def get_container_format(self) -> str:
        return "mp4"

    def as_trimmed(self, start_time: float = 0.0, duration: float = 0.0, strict_duration: bool = False) -> VideoInput:
        """The part from ``start_time`` (negative: from the end) lasting ``duration`` s (0: to the end).

        Raises:
            ValidationError: the start lies outside the video, or (strict) the clip is shorter
                than asked.
        """
        comp = self.get_components()
        first, count = _slice_frames(comp.images.shape[0], float(comp.frame_rate), start_time, duration, strict_duration)
        audio = None
        if comp.audio is not None:
            rate = comp.audio["sample_rate"]
            a0 = int(round(first / float(comp.frame_rate) * rate))
            a1 = int(round((first + count) / float(comp.frame_rate) * rate))
            audio = {"waveform": comp.audio["waveform"][..., a0:a1], "sample_rate": rate}
        return VideoFromComponents(VideoComponents(comp.images[first:first + count], comp.frame_rate, audio))


def _slice_frames(total: int, fps: float, start: float, duration: float, strict: bool) -> tuple[int, int]:
    length = total / fps
    begin = length + start if start < 0 else start
    if begin < 0 or begin >= length - 1e-9:
        raise ValidationError(f"`start_time` {start} s lies outside the video ({length:.3f} s long)")
    first = int(math.floor(begin * fps + 1e-6))
    if duration < 0:
        raise ValidationError(f"`duration` must be ≥ 0 seconds, got {duration}")
    want = total - first if duration == 0 else max(1, int(round(duration * fps)))
    if strict and first + want > total:
        raise ValidationError(f"`duration` {duration} s from {begin:.3f} s runs past the end of the video "
                              f"({length:.3f} s); turn `strict_duration` off to keep what there is")
    return first, min(want, total - first)


class VideoFromComponents(VideoInput):
    """A VIDEO built from IMAGE frames, a frame rate and optional AUDIO (nothing is copied)."""

    def __init__(self, components: VideoComponents) -> None:
        images = components.images
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] not in (3, 4):
            shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
            raise ValidationError(f"`images` must be an IMAGE batch [N,H,W,3], got {shape}")
        if images.shape[0] == 0:
            raise ValidationError("`images` is empty: a video needs at least one frame")
        if not components.frame_rate > 0:
            raise ValidationError(f"`fps` must be > 0, got {components.frame_rate}")
        if components.audio is not None:
            components.audio = check_audio(components.audio)
        self._components = components

    def get_components(self) -> VideoComponents:
        c = self._components
        return VideoComponents(c.images, c.frame_rate, c.audio, dict(c.metadata) if c.metadata else None)

    def save_to(self, path: str | Path | IO[bytes], format: str = "auto", codec: str = "auto",  # noqa: A002
                metadata: dict[str, Any] | None = None) -> None:
        _check_choice("format", format, VIDEO_CONTAINERS)
        _check_choice("codec", codec, VIDEO_CODECS)
        c = self._components
        frames = c.images[..., :3].detach().to("cpu", torch.float32).numpy()
        _write_to(path, lambda target: write_video(frames, target, fps=float(c.frame_rate), format="video/h264-mp4",
                                                   metadata=_tags(metadata), audio=c.audio))


class VideoFromFile(VideoInput):
    """A VIDEO backed by a file (or bytes): probes cheaply, decodes only in ``get_components``."""

    def __init__(self, file: str | Path | io.BytesIO) -> None:
        self._file = file if isinstance(file, io.BytesIO) else Path(file)

    def __repr__(self) -> str:
        return f"VideoFromFile({self._file.name if isinstance(self._file, Path) else '<bytes>'})"

    def _source(self) -> str | io.BytesIO:
        if isinstance(self._file, io.BytesIO):
            self._file.seek(0)
            return self._file
        return str(self._file)

    def _probe(self) -> dict[str, Any]:
        av = require("av", "video")
        try:
            with av.open(self._source()) as container:
                if not container.streams.video:
                    raise ValidationError(f"`{self._name()}` has no video stream")
                stream = container.streams.video[0]
                rate = Fraction(stream.average_rate or stream.guessed_rate or 24)
                seconds = container.duration / 1e6 if container.duration else None
                frames = stream.frames or (int(round(seconds * rate)) if seconds else 0)
                return {"width": stream.codec_context.width, "height": stream.codec_context.height, "rate": rate,
                        "frames": frames, "seconds": seconds, "format": container.format.name,
                        "codec": stream.codec_context.name, "has_audio": bool(container.streams.audio)}
        except av.error.FFmpegError as exc:
            raise ValidationError(f"`{self._name()}` is not a video PyAV can read: {exc}") from None

    def _name(self) -> str:
        return self._file.name if isinstance(self._file, Path) else "video bytes"

    def get_stream_source(self) -> str | io.BytesIO:
        return self._source()

    def get_dimensions(self) -> tuple[int, int]:
        p = self._probe()
        return int(p["width"]), int(p["height"])

    def get_frame_rate(self) -> Fraction:
        return Fraction(self._probe()["rate"])

    def get_frame_count(self) -> int:
        p = self._probe()
        return int(p["frames"]) if p["frames"] else super().get_frame_count()

    def get_duration(self) -> float:
        p = self._probe()
        if p["seconds"]:
            return float(p["seconds"])
        return super().get_duration()

    def get_container_format(self) -> str:
        return str(self._probe()["format"])

    def get_components(self) -> VideoComponents:
        with _as_path(self._file) as path:
            probe = self._probe()
            frames, _ = read_video(path)
            audio = read_audio(path)
        if audio is not None:
            audio = {"waveform": torch.from_numpy(np.ascontiguousarray(audio["waveform"])), "sample_rate": audio["sample_rate"]}
        return VideoComponents(torch.from_numpy(frames), probe["rate"], audio)

    def save_to(self, path: str | Path | IO[bytes], format: str = "auto", codec: str = "auto",  # noqa: A002
                metadata: dict[str, Any] | None = None) -> None:
        _check_choice("format", format, VIDEO_CONTAINERS)
        _check_choice("codec", codec, VIDEO_CODECS)
        probe = self._probe()
        if "mp4" in probe["format"].split(",") and probe["codec"] == "h264":
            _write_to(path, lambda target: _remux(self._source(), target, metadata))
        else:
            VideoFromComponents(self.get_components()).save_to(path, format, codec, metadata)


def _check_choice(name: str, value: str, choices: list[str]) -> None:
    if str(getattr(value, "value", value)) not in choices:
        raise ValidationError(f"`{name}` must be one of {choices}, got `{value}`")


def _tags(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    return dict(metadata) if metadata else None


def _write_to(dest: str | Path | IO[bytes], write: Any) -> None:
    """Run ``write(path)`` on a real file; a file object receives the bytes afterwards."""
    if isinstance(dest, (str, Path)):
        write(Path(dest))
        return
    with tempfile.TemporaryDirectory(prefix="nodeloom-video-") as tmp:
        target = Path(tmp) / "video.mp4"
        write(target)
        with open(target, "rb") as f:
            shutil.copyfileobj(f, dest)


def _remux(source: str | io.BytesIO, target: Path, metadata: dict[str, Any] | None) -> None:
    """Copy the streams packet by packet (no re-encoding), adding ``metadata`` tags."""
    import json

    av = require("av", "video")
    with av.open(source) as src, av.open(str(target), "w", options={"movflags": "use_metadata_tags"}) as out:
        for key, value in src.metadata.items():
            out.metadata[key] = value
        for key, value in (metadata or {}).items():
            out.metadata[key] = value if isinstance(value, str) else json.dumps(value)
        streams = {s: out.add_stream_from_template(s) for s in src.streams if s.type in ("video", "audio")}
        for packet in src.demux(*streams):
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream]
            out.mux(packet)


class _as_path:
    """A context giving a filesystem path for a file or for in-memory bytes (a temporary copy)."""

    def __init__(self, file: Path | io.BytesIO) -> None:
        self._file = file
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> Path:
        if isinstance(self._file, Path):
            if not self._file.is_file():
                raise ValidationError(f"video file `{self._file.name}` does not exist")
            return self._file
        self._tmp = tempfile.TemporaryDirectory(prefix="nodeloom-video-")
        path = Path(self._tmp.name) / "video.mp4"
        self._file.seek(0)
        path.write_bytes(self._file.read())
        return path

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
