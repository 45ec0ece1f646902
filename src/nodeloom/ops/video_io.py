"""Reading and writing videos and animated images from frame arrays.

Owns decoding with frame selection (force a frame rate, skip, every n-th, cap, resize —
VideoHelperSuite's loading options), and encoding to H.264/H.265 MP4, VP9 WebM, FFV1
MKV, ProRes MOV through PyAV (the ``video`` extra) and to GIF/WebP through Pillow.
GIFs are quantised to one shared palette first, so encoding is a fast LZW pass.
Frames are float ``[N,H,W,C]`` arrays in 0..1; no torch, no nodes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
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
    "read_audio",
    "read_video",
    "target_size",
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
    if format not in VIDEO_FORMATS:
        raise ValidationError(f"`format` must be one of {sorted(VIDEO_FORMATS)}, got `{format}`")
    if fps <= 0:
        raise ValidationError(f"`frame_rate` must be > 0, got {fps}")
    spec = VIDEO_FORMATS[format]
    pix = pix_fmt or spec.pix_fmts[0]
    if pix not in spec.pix_fmts:
        raise ValidationError(f"`pix_fmt` for {format} must be one of {list(spec.pix_fmts)}, got `{pix}`")
    data = _check_frames(frames)
    data = data if data.dtype == np.uint8 else to_uint8(data)
    if audio is not None and trim_to_audio:
        wave, rate = _audio_array(audio)
        data = data[: max(1, int(round(wave.shape[1] / rate * fps)))]
    if pix.startswith("yuv4") and "420" in pix:
        data = _pad_even(data)
    has_alpha = pix.startswith("yuva") and data.shape[3] == 4
    data = data if has_alpha else data[..., :3]
    rate = Fraction(fps).limit_denominator(1001)
    path = Path(path)
    with av.open(str(path), "w") as container:
        for k, v in (metadata or {}).items():
            container.metadata[k] = v if isinstance(v, str) else json.dumps(v)
        options = {k: v for k, v in spec.options.items() if k != "tag"}
        if spec.crf is not None:
            options["crf"] = str(spec.crf if crf is None else int(crf))
        stream = container.add_stream(spec.codec, rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = data.shape[2], data.shape[1], pix
        if "tag" in spec.options:
            stream.codec_context.codec_tag = spec.options["tag"]
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


# --------------------------------------------------------------------------- reading


def target_size(width: int, height: int, custom_width: int, custom_height: int, multiple: int = 1) -> tuple[int, int]:
    """VideoHelperSuite's sizing: 0 keeps the source; one given keeps the aspect ratio."""
    w, h = float(width), float(height)
    if custom_width and custom_height:
        w, h = custom_width, custom_height
    elif custom_width:
        w, h = custom_width, h * custom_width / w
    elif custom_height:
        w, h = w * custom_height / h, custom_height
    return max(int(w / multiple + 0.5) * multiple, multiple), max(int(h / multiple + 0.5) * multiple, multiple)


def _select(decoded: Iterator[Any], fps: float, force_rate: float, skip: int, nth: int, cap: int) -> Iterator[Any]:
    """Sample-and-hold frames at the forced rate, then skip / every n-th / cap."""
    step = 1.0 / force_rate if force_rate else 1.0 / fps
    base = 1.0 / fps
    offset = step
    seen = kept = 0
    for frame in decoded:
        while offset >= step - 1e-9:
            offset -= step
            seen += 1
            if seen <= skip or (seen - skip - 1) % nth:
                continue
            yield frame
            kept += 1
            if cap and kept >= cap:
                return
        offset += base


def read_video(
    path: str | Path,
    *,
    force_rate: float = 0.0,
    custom_width: int = 0,
    custom_height: int = 0,
    frame_load_cap: int = 0,
    skip_first_frames: int = 0,
    select_every_nth: int = 1,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode a video (or animated GIF/WebP) into float frames with VideoHelperSuite's options.

    Args:
        path: the file.
        force_rate: resample to this many frames/s by time (0 keeps the source rate).
        custom_width / custom_height: resize (0 = keep; one given keeps the aspect ratio,
            both given crop the centre to their aspect ratio).
        frame_load_cap: keep at most this many frames (0 = all).
        skip_first_frames: drop this many frames first (after ``force_rate``).
        select_every_nth: keep every n-th frame after skipping.

    Returns:
        ``(frames float32 [N,H,W,3], info)`` where info has VideoHelperSuite's
        ``source_*`` and ``loaded_*`` keys.

    Raises:
        ValidationError: a missing/undecodable file, bad options, or no frames left.
    """
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"video file `{path.name}` does not exist")
    for name, val, lo in (("force_rate", force_rate, 0), ("frame_load_cap", frame_load_cap, 0),
                          ("skip_first_frames", skip_first_frames, 0), ("select_every_nth", select_every_nth, 1),
                          ("custom_width", custom_width, 0), ("custom_height", custom_height, 0)):
        if val < lo:
            raise ValidationError(f"`{name}` must be ≥ {lo}, got {val}")
    opener = _open_pillow if path.suffix.lower() == ".webp" else _open_av
    with opener(path) as (decoded, fps, src_w, src_h, total):
        out_w, out_h = target_size(src_w, src_h, custom_width, custom_height)
        frames = [_convert(f, out_w, out_h) for f in
                  _select(decoded, fps, force_rate, skip_first_frames, select_every_nth, frame_load_cap)]
    if not frames:
        raise ValidationError(f"no frames were loaded from `{path.name}` with these options")
    loaded_fps = (force_rate or fps) / select_every_nth
    total = total or len(frames)
    info = {
        "source_fps": fps, "source_frame_count": total, "source_duration": total / fps,
        "source_width": src_w, "source_height": src_h,
        "loaded_fps": loaded_fps, "loaded_frame_count": len(frames),
        "loaded_duration": len(frames) / loaded_fps, "loaded_width": out_w, "loaded_height": out_h,
    }
    return np.stack(frames).astype(np.float32) / 255.0, info


@contextlib.contextmanager
def _open_av(path: Path) -> Iterator[tuple[Iterator[np.ndarray], float, int, int, int]]:
    av = _av()
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise ValidationError(f"cannot open video `{path.name}`: {exc}") from None
    with container:
        if not container.streams.video:
            raise ValidationError(f"`{path.name}` has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 24)
        total = stream.frames
        if not total and (stream.duration or container.duration):
            seconds = float(stream.duration * stream.time_base) if stream.duration else container.duration / 1e6
            total = int(round(seconds * fps))
        frames = (f.to_ndarray(format="rgb24") for f in container.decode(stream))
        yield frames, fps, stream.codec_context.width, stream.codec_context.height, total


@contextlib.contextmanager
def _open_pillow(path: Path) -> Iterator[tuple[Iterator[np.ndarray], float, int, int, int]]:
    """Animated WebP (FFmpeg's WebP decoder reads only still images)."""
    try:
        img = Image.open(path)
    except OSError as exc:
        raise ValidationError(f"cannot open `{path.name}`: {exc}") from None
    with img:
        img.load()  # frame timing is known once the first frame is read
        duration = img.info.get("duration") or 1000 / 24
        total = getattr(img, "n_frames", 1)

        def frames() -> Iterator[np.ndarray]:
            for i in range(total):
                img.seek(i)
                yield np.asarray(img.convert("RGB"))

        yield frames(), 1000.0 / duration, img.width, img.height, total


def _convert(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if (w, h) == (width, height):
        return rgb
    # crop the centre to the target aspect ratio, then resize with Lanczos
    ratio = width / height
    if w / h > ratio:
        cw = int(round(h * ratio))
        rgb = rgb[:, (w - cw) // 2 : (w - cw) // 2 + cw]
    elif w / h < ratio:
        ch = int(round(w / ratio))
        rgb = rgb[(h - ch) // 2 : (h - ch) // 2 + ch]
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS))


def read_audio(path: str | Path, start: float = 0.0, duration: float = 0.0) -> dict[str, Any] | None:
    """The first audio stream as ComfyUI AUDIO, or None when the file has none.

    Args:
        path: the media file.
        start: seconds to skip.
        duration: seconds to keep (0 = to the end).

    Returns:
        ``{"waveform": float32 [1,C,T] numpy, "sample_rate": int}`` or None.
    """
    av = _av()
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise ValidationError(f"cannot open `{Path(path).name}`: {exc}") from None
    with container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        layout = "mono" if stream.codec_context.channels == 1 else "stereo"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        chunks = [r.to_ndarray() for f in container.decode(stream) for r in resampler.resample(f)]
        chunks += [r.to_ndarray() for r in resampler.resample(None)]
    if not chunks:
        return None
    wave = np.concatenate(chunks, axis=1)
    first = int(round(start * rate))
    last = wave.shape[1] if duration <= 0 else first + int(round(duration * rate))
    return {"waveform": wave[None, :, first:last], "sample_rate": int(rate)}
