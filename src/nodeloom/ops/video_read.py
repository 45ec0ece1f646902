"""Reading videos and animated images into frame arrays.

Owns decoding with VideoHelperSuite's loading options — force a frame rate (sample and
hold by time), skip, keep every n-th, cap, resize with centre crop — through PyAV (the
``video`` extra), animated WebP through Pillow, and reading the audio track as ComfyUI
AUDIO. Frames come out as float ``[N,H,W,3]`` arrays in 0..1; no torch, no nodes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nodeloom.errors import ValidationError, require

__all__ = ["read_audio", "read_video", "target_size"]


def _av() -> Any:
    return require("av", "video")


def _open_container(path: Path) -> Any:
    av = _av()
    try:
        return av.open(str(path))
    except av.error.FFmpegError as exc:
        raise ValidationError(f"cannot open `{path.name}`: {exc}") from None


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
    with _open_container(path) as container:
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
    with _open_container(Path(path)) as container:
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
