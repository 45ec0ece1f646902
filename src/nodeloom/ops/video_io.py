"""Writing frame arrays as videos and animated images.

Owns encoding to H.264/H.265 MP4, VP9 WebM, FFV1 MKV and ProRes MOV through PyAV (the
``video`` extra), with optional audio, and to GIF/WebP through Pillow. GIFs are
quantised to one shared palette first, so encoding is a fast LZW pass. Frames are float
``[N,H,W,C]`` arrays in 0..1; no torch, no nodes. Reading lives in ``ops.video_read``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nodeloom.errors import ValidationError, require

__all__ = [
    "VIDEO_FORMATS",
    "VideoFormat",
    "to_pingpong",
    "to_uint8",
    "write_animated_image",
    "write_video",
]


@dataclass(frozen=True)
class VideoFormat:
    """One output format (VideoHelperSuite's names: ``video/h264-mp4`` ...)."""

    codec: str
    extension: str
    pix_fmts: tuple[str, ...]
    crf: int | None
    audio_codec: str | None
    options: Mapping[str, str] = field(default_factory=dict)


VIDEO_FORMATS: dict[str, VideoFormat] = {
    "video/h264-mp4": VideoFormat("libx264", "mp4", ("yuv420p", "yuv420p10le"), 19, "aac", {"movflags": "+faststart"}),
    "video/h265-mp4": VideoFormat("libx265", "mp4", ("yuv420p10le", "yuv420p"), 22, "aac",
                                  {"preset": "medium", "x265-params": "log-level=quiet", "tag": "hvc1"}),
    "video/webm": VideoFormat("libvpx-vp9", "webm", ("yuv420p", "yuva420p"), 20, "libopus", {"b": "0"}),
    "video/ffv1-mkv": VideoFormat("ffv1", "mkv", ("bgr0", "rgb48le"), None, "flac", {"level": "3"}),
    "video/ProRes": VideoFormat("prores_ks", "mov", ("yuv422p10le", "yuv444p10le"), None, "aac", {"profile": "3"}),
}


def _av() -> Any:
    return require("av", "video")


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float frames in 0..1 → uint8 (rounded, clipped)."""
    return np.clip(np.asarray(frames, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def to_pingpong(frames: np.ndarray) -> np.ndarray:
    """Frames forward then backward without repeating the ends: 0 1 2 3 2 1."""
    return np.concatenate([frames, frames[-2:0:-1]]) if len(frames) > 2 else frames


def _check_frames(frames: np.ndarray) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[0] < 1 or arr.shape[3] not in (1, 3, 4):
        raise ValidationError(f"`images` must be frames [N,H,W,C] with C in 1/3/4 and N ≥ 1, got shape {arr.shape}")
    if arr.shape[3] == 1:
        arr = np.repeat(arr, 3, axis=3)
    return arr


def write_video(
    frames: np.ndarray,
    path: str | Path,
    *,
    fps: float,
    format: str = "video/h264-mp4",  # noqa: A002 - VideoHelperSuite's input name
    crf: int | None = None,
    pix_fmt: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    audio: Mapping[str, Any] | None = None,
    trim_to_audio: bool = False,
    on_frame: Callable[[int], None] | None = None,
) -> Path:
    """Encode frames with PyAV.

    Odd widths/heights are padded by one replicated row/column for 4:2:0 formats.

    Args:
        frames: float ``[N,H,W,C]`` in 0..1 (or uint8).
        path: the file to write (its extension should match the format).
        fps: frame rate (> 0).
        format: a key of :data:`VIDEO_FORMATS`.
        crf: quality (lower is better); default the format's.
        pix_fmt: one of the format's pixel formats; default its first.
        metadata: container tags, e.g. ``{"comment": json}``.
        audio: ComfyUI AUDIO ``{"waveform": [B,C,T], "sample_rate": int}`` to mux.
        trim_to_audio: cut the video to the audio's length instead of the reverse.
        on_frame: called with the index of each encoded frame.

    Returns:
        The written path.
    """
    av = _av()
    spec, pix = _check_format(format, fps, pix_fmt)
    data = _prepare_frames(frames, pix, fps, audio if trim_to_audio else None)
    has_alpha = data.shape[3] == 4
    path = Path(path)
    # MP4/MOV drop tags they have no atom for unless told to keep them (workflow JSON, prompt)
    muxer = {"movflags": "faststart+use_metadata_tags"} if spec.extension in ("mp4", "mov") else {}
    with av.open(str(path), "w", options=muxer) as container:
        for k, v in (metadata or {}).items():
            container.metadata[k] = v if isinstance(v, str) else json.dumps(v)
        stream = _video_stream(container, spec, pix, crf, fps, data.shape[2], data.shape[1])
        audio_stream = _add_audio(container, spec, audio) if audio is not None else None
        src_fmt = "rgba" if has_alpha else "rgb24"
        for i, frame in enumerate(data):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=src_fmt)
            for packet in stream.encode(vf):
                container.mux(packet)
            if on_frame is not None:
                on_frame(i)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            _encode_audio(container, audio_stream, audio, len(data) / fps)
    return path


def _check_format(format: str, fps: float, pix_fmt: str | None) -> tuple[VideoFormat, str]:  # noqa: A002
    if format not in VIDEO_FORMATS:
        raise ValidationError(f"`format` must be one of {sorted(VIDEO_FORMATS)}, got `{format}`")
    if fps <= 0:
        raise ValidationError(f"`frame_rate` must be > 0, got {fps}")
    spec = VIDEO_FORMATS[format]
    pix = pix_fmt or spec.pix_fmts[0]
    if pix not in spec.pix_fmts:
        raise ValidationError(f"`pix_fmt` for {format} must be one of {list(spec.pix_fmts)}, got `{pix}`")
    return spec, pix


def _prepare_frames(frames: np.ndarray, pix: str, fps: float, trim_audio: Mapping[str, Any] | None) -> np.ndarray:
    """uint8 RGB(A) frames, cut to the audio's length when asked, even-sized for 4:2:0."""
    data = _check_frames(frames)
    data = data if data.dtype == np.uint8 else to_uint8(data)
    if trim_audio is not None:
        wave, rate = _audio_array(trim_audio)
        data = data[: max(1, int(round(wave.shape[1] / rate * fps)))]
    if pix.startswith("yuv4") and "420" in pix:
        data = _pad_even(data)
    return data if pix.startswith("yuva") and data.shape[3] == 4 else data[..., :3]


def _video_stream(container: Any, spec: VideoFormat, pix: str, crf: int | None, fps: float, width: int, height: int) -> Any:
    options = {k: v for k, v in spec.options.items() if k != "tag"}
    if spec.crf is not None:
        options["crf"] = str(spec.crf if crf is None else int(crf))
    stream = container.add_stream(spec.codec, rate=Fraction(fps).limit_denominator(1001), options=options)
    stream.width, stream.height, stream.pix_fmt = width, height, pix
    if "tag" in spec.options:
        stream.codec_context.codec_tag = spec.options["tag"]
    return stream


def _pad_even(data: np.ndarray) -> np.ndarray:
    _, h, w, _ = data.shape
    if h % 2 == 0 and w % 2 == 0:
        return data
    return np.pad(data, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _audio_array(audio: Mapping[str, Any]) -> tuple[np.ndarray, int]:
    try:
        wave = audio["waveform"]
        rate = int(audio["sample_rate"])
    except (KeyError, TypeError):
        raise ValidationError("`audio` must be an AUDIO dict with `waveform` [B,C,T] and `sample_rate`") from None
    arr = np.asarray(wave.detach().cpu().numpy() if hasattr(wave, "detach") else wave, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[0]
    if arr.ndim != 2 or rate <= 0:
        raise ValidationError(f"`audio` waveform must be [B,C,T] with a positive rate, got shape {arr.shape}, rate {rate}")
    return arr, rate


def _add_audio(container: Any, spec: VideoFormat, audio: Mapping[str, Any]) -> Any:
    wave, rate = _audio_array(audio)
    if spec.audio_codec is None:
        raise ValidationError("this format cannot carry audio")
    if spec.audio_codec == "libopus":
        rate = 48000
    stream = container.add_stream(spec.audio_codec, rate=rate)
    stream.layout = "mono" if wave.shape[0] == 1 else "stereo"
    return stream


def _encode_audio(container: Any, stream: Any, audio: Mapping[str, Any], duration: float) -> None:
    av = _av()
    wave, rate = _audio_array(audio)
    wave = wave[:2] if wave.shape[0] >= 2 else wave[:1]
    wave = wave[:, : int(round(duration * rate))]
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave), format="fltp", layout=stream.layout.name)
    frame.sample_rate = rate
    resampler = av.AudioResampler(format=stream.format.name, layout=stream.layout.name, rate=stream.rate)
    chunks = list(resampler.resample(frame)) + list(resampler.resample(None))
    for chunk in chunks:
        for packet in stream.encode(chunk):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def write_animated_image(
    frames: np.ndarray,
    path: str | Path,
    *,
    fps: float,
    kind: str = "gif",
    loop_count: int = 0,
    lossless: bool = True,
    quality: int = 90,
    colors: int = 256,
    dither: bool = False,
) -> Path:
    """Write an animated GIF or WebP with Pillow.

    GIF frames are quantised together to one palette (from a sample of frames) before
    encoding, which is much faster than per-frame palettes and avoids palette flicker.

    Args:
        frames: float ``[N,H,W,C]`` in 0..1.
        path: output file.
        fps: frame rate (> 0); frame durations are rounded to milliseconds.
        kind: ``gif`` or ``webp``.
        loop_count: 0 loops forever, n plays n extra times.
        lossless / quality: WebP options.
        colors: GIF palette size (2..256).
        dither: Floyd–Steinberg dithering for GIF (slower, smoother gradients).

    Returns:
        The written path.
    """
    if fps <= 0:
        raise ValidationError(f"`frame_rate` must be > 0, got {fps}")
    if not 2 <= colors <= 256:
        raise ValidationError(f"`colors` must be within 2..256, got {colors}")
    data = _check_frames(frames)
    data = data if data.dtype == np.uint8 else to_uint8(data)
    duration = max(int(round(1000.0 / fps)), 1)
    path = Path(path)
    if kind == "gif":
        images = _quantise_shared(data[..., :3], colors, dither)
        images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=loop_count,
                       disposal=2, optimize=False)
    elif kind == "webp":
        mode = "RGBA" if data.shape[3] == 4 else "RGB"
        images = [Image.fromarray(f if mode == "RGBA" else f[..., :3], mode) for f in data]
        images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=loop_count,
                       lossless=lossless, quality=quality, method=0 if lossless else 4)
    else:
        raise ValidationError(f"animated image kind must be `gif` or `webp`, got `{kind}`")
    return path


def _quantise_shared(frames: np.ndarray, colors: int, dither: bool) -> list[Image.Image]:
    n = len(frames)
    pick = np.linspace(0, n - 1, min(n, 8)).round().astype(int)
    sample = np.concatenate([frames[i][::2, ::2] for i in pick], axis=0)
    palette = Image.fromarray(np.ascontiguousarray(sample)).quantize(colors, method=Image.Quantize.MEDIANCUT)
    mode = Image.Dither.FLOYDSTEINBERG if dither else Image.Dither.NONE
    return [Image.fromarray(f).quantize(palette=palette, dither=mode) for f in frames]
