"""Video I/O nodes with VideoHelperSuite's class names, inputs and defaults, plus a sample loader.

``VHS_LoadVideo`` / ``VHS_LoadVideoPath`` decode a file into an IMAGE batch,
``VHS_VideoCombine`` writes frames as GIF/WebP/MP4/WebM/MKV/MOV and shows the result in
history like images, ``VHS_VideoInfo`` unpacks the loader's info. ``LoadSkimageSample``
gives a real photo without any file (scikit-image, the ``samples`` extra).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from nodeloom.errors import require
from nodeloom.node_api import (
    IO,
    Boolean,
    Combo,
    Custom,
    Float,
    Hidden,
    Image,
    Int,
    Node,
    NodeOutput,
    Output,
    ProgressBar,
    Schema,
    String,
    ValidationError,
    atomic_target,
    safe_join,
    services,
    write_atomic,
)
from nodeloom.nodes.video._common import AUDIO, to_frames, to_image
from nodeloom.nodes.video.media_files import VIDEO_EXTENSIONS, claim_files, input_files, workflow_tags
from nodeloom.ops.video_io import VIDEO_FORMATS, to_pingpong, write_animated_image, write_video
from nodeloom.ops.video_read import read_audio, read_video

__all__ = ["LoadSkimageSample", "LoadVideo", "LoadVideoPath", "VideoCombine", "VideoInfo"]

FORMATS = ["image/gif", "image/webp", *VIDEO_FORMATS]
PIX_FMTS = sorted({p for f in VIDEO_FORMATS.values() for p in f.pix_fmts})
VHS_CATEGORY = "Video Helper Suite 🎥🅥🅗🅢"
BIGMAX = 2**53 - 1


def _input_videos() -> list[str]:
    return input_files(VIDEO_EXTENSIONS)


def _selection_inputs() -> list[Any]:
    return [
        Float("force_rate", 0, min=0, max=60, step=1, tooltip="Resample to this many frames/s (0 keeps the video's rate)."),
        Int("custom_width", 0, min=0, max=16384, tooltip="Resize to this width (0 keeps it; with height 0 the aspect is kept)."),
        Int("custom_height", 0, min=0, max=16384, tooltip="Resize to this height (0 keeps it; with width 0 the aspect is kept)."),
        Int("frame_load_cap", 0, min=0, max=BIGMAX, tooltip="Load at most this many frames (0 = all)."),
        Int("skip_first_frames", 0, min=0, max=BIGMAX, tooltip="Drop this many frames first (after force_rate)."),
        Int("select_every_nth", 1, min=1, max=BIGMAX, tooltip="Keep every n-th frame after skipping."),
    ]


_LOAD_OUTPUTS = [
    Output(IO.IMAGE, "IMAGE", tooltip="The frames."),
    Output(IO.INT, "frame_count", tooltip="Number of frames loaded."),
    Output(AUDIO, "audio", tooltip="The audio track (None when the file has none)."),
    Output("VHS_VIDEOINFO", "video_info", tooltip="Source and loaded fps, frame count, duration and size."),
]


def _load(path: Path, force_rate: float, custom_width: int, custom_height: int, frame_load_cap: int,
          skip_first_frames: int, select_every_nth: int) -> tuple[Any, ...]:
    frames, info = read_video(path, force_rate=force_rate, custom_width=custom_width, custom_height=custom_height,
                              frame_load_cap=frame_load_cap, skip_first_frames=skip_first_frames,
                              select_every_nth=select_every_nth)
    step = 1.0 / (force_rate or info["source_fps"])
    audio = read_audio(path, skip_first_frames * step, info["loaded_duration"] * select_every_nth if frame_load_cap else 0.0)
    if audio is not None:
        import torch

        audio = {"waveform": torch.from_numpy(audio["waveform"]), "sample_rate": audio["sample_rate"]}
    return to_image(frames), len(frames), audio, info


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class LoadVideo(Node):
    """Load a video from the input folder as frames (VideoHelperSuite's Load Video (Upload))."""

    SCHEMA = Schema(
        "VHS_LoadVideo",
        display_name="Load Video (Upload) 🎥🅥🅗🅢",
        category=VHS_CATEGORY,
        inputs=[Combo("video", _input_videos, tooltip="A video file in the input folder.", video_upload=True),
                *_selection_inputs()],
        outputs=_LOAD_OUTPUTS,
    )

    @classmethod
    def _path(cls, video: str) -> Path:
        return safe_join(services().paths.input_dir, video)

    @classmethod
    def fingerprint_inputs(cls, video: str, **_: Any) -> str:
        path = cls._path(video)
        return _file_hash(path) if path.is_file() else video

    @classmethod
    def validate_inputs(cls, video: str) -> bool | str:
        if not cls._path(video).is_file():
            return f"Invalid video file: {video}"
        return True

    @classmethod
    def execute(cls, video: str, force_rate: float = 0, custom_width: int = 0, custom_height: int = 0,
                frame_load_cap: int = 0, skip_first_frames: int = 0, select_every_nth: int = 1) -> tuple[Any, ...]:
        return _load(cls._path(video), force_rate, custom_width, custom_height, frame_load_cap,
                     skip_first_frames, select_every_nth)


class LoadVideoPath(Node):
    """Load a video from a path (relative paths start in the input folder).

    Paths outside the input, output and temp folders are refused unless the engine
    setting ``allow_external_paths`` is on.
    """

    SCHEMA = Schema(
        "VHS_LoadVideoPath",
        display_name="Load Video (Path) 🎥🅥🅗🅢",
        category=VHS_CATEGORY,
        inputs=[String("video", "", tooltip="Path of the video file."), *_selection_inputs()],
        outputs=_LOAD_OUTPUTS,
    )

    @classmethod
    def _path(cls, video: str) -> Path:
        svc = services()
        raw = Path(video.strip().strip('"'))
        path = (raw if raw.is_absolute() else svc.paths.input_dir / raw).resolve()
        roots = [svc.paths.input_dir, svc.paths.output_dir, svc.paths.temp_dir]
        if not svc.settings.get("allow_external_paths", False) and not any(path.is_relative_to(r) for r in roots):
            raise ValidationError(f"`video` path `{video}` is outside the input/output/temp folders; "
                                  "set the engine setting `allow_external_paths` to load it")
        return path

    @classmethod
    def fingerprint_inputs(cls, video: str, **_: Any) -> str:
        try:
            path = cls._path(video)
        except ValidationError:
            return video
        return f"{path}:{path.stat().st_mtime_ns}" if path.is_file() else video

    @classmethod
    def execute(cls, video: str, force_rate: float = 0, custom_width: int = 0, custom_height: int = 0,
                frame_load_cap: int = 0, skip_first_frames: int = 0, select_every_nth: int = 1) -> tuple[Any, ...]:
        if not video.strip():
            raise ValidationError("`video` path is empty")
        return _load(cls._path(video), force_rate, custom_width, custom_height, frame_load_cap,
                     skip_first_frames, select_every_nth)


_INFO_KEYS = ("fps", "frame_count", "duration", "width", "height")
_INFO_TYPES = (IO.FLOAT, IO.INT, IO.FLOAT, IO.INT, IO.INT)


class VideoInfo(Node):
    """Unpack a loader's video info into numbers (source, then loaded)."""

    SCHEMA = Schema(
        "VHS_VideoInfo",
        display_name="Video Info 🎥🅥🅗🅢",
        category=VHS_CATEGORY,
        inputs=[Custom("VHS_VIDEOINFO", "video_info", tooltip="The loader's video_info output.")],
        outputs=[Output(t, f"{side}_{k}", tooltip=f"{k.replace('_', ' ')} of the {side} video")
                 for side in ("source", "loaded") for k, t in zip(_INFO_KEYS, _INFO_TYPES)],
    )

    @classmethod
    def execute(cls, video_info: dict[str, Any]) -> tuple[Any, ...]:
        try:
            return tuple(video_info[f"{side}_{k}"] for side in ("source", "loaded") for k in _INFO_KEYS)
        except (KeyError, TypeError):
            raise ValidationError("`video_info` must come from a video loader") from None


class VideoCombine(Node):
    """Write frames as an animated image or a video, shown in history like images.

    Formats follow VideoHelperSuite: ``image/gif`` (one shared palette, fast),
    ``image/webp``, ``video/h264-mp4`` (crf 19), ``video/h265-mp4`` (crf 22),
    ``video/webm`` (VP9, crf 20), ``video/ffv1-mkv`` (lossless), ``video/ProRes``.
    A first-frame PNG with the workflow is saved next to it when ``save_metadata`` is on.
    """

    SCHEMA = Schema(
        "VHS_VideoCombine",
        display_name="Video Combine 🎥🅥🅗🅢",
        category=VHS_CATEGORY,
        inputs=[
            Image("images", tooltip="The frames to write."),
            Float("frame_rate", 8, min=1, step=1, tooltip="Frames per second."),
            Int("loop_count", 0, min=0, max=100, tooltip="GIF/WebP: 0 loops forever; videos: play this many extra times."),
            String("filename_prefix", "AnimateDiff", tooltip="File name prefix; may contain a subfolder `sub/name`."),
            Combo("format", FORMATS, default="image/gif", tooltip="Output format."),
            Boolean("pingpong", False, tooltip="Play forward then backward."),
            # optional (default on) so workflows from older VideoHelperSuite versions, which
            # called it `save_image`, still validate
            Boolean("save_output", True, optional=True, tooltip="Save to the output folder (off: the temp folder)."),
            Custom(AUDIO, "audio", optional=True, tooltip="Audio to mux into video formats."),
            Int("crf", 19, min=0, max=100, optional=True, tooltip="Video quality, lower is better (default per format)."),
            Combo("pix_fmt", PIX_FMTS, default="yuv420p", optional=True, tooltip="Pixel format (must suit the format)."),
            Boolean("save_metadata", True, optional=True, tooltip="Store the workflow in the file and a first-frame PNG."),
            Boolean("lossless", True, optional=True, tooltip="WebP: lossless encoding."),
            Boolean("trim_to_audio", False, optional=True, tooltip="Cut the video to the audio's length."),
        ],
        outputs=[Output("VHS_FILENAMES", "Filenames", tooltip="(saved, [paths]) of the files written.")],
        hidden={"prompt": Hidden.prompt, "extra_pnginfo": Hidden.extra_pnginfo, "unique_id": Hidden.unique_id},
        output_node=True,
    )

    @classmethod
    def execute(cls, images: Any, frame_rate: float, loop_count: int, filename_prefix: str = "AnimateDiff",
                format: str = "image/gif", pingpong: bool = False, save_output: bool = True,  # noqa: A002
                audio: dict[str, Any] | None = None, crf: int | None = None, pix_fmt: str | None = None,
                save_metadata: bool = True, lossless: bool = True, trim_to_audio: bool = False,
                prompt: Any = None, extra_pnginfo: Any = None, unique_id: Any = None) -> NodeOutput:
        if format not in FORMATS:
            raise ValidationError(f"`format` must be one of {FORMATS}, got `{format}`")
        frames = to_frames(images)
        if pingpong:
            frames = to_pingpong(frames)
        paths = services().paths
        kind = "output" if save_output else "temp"
        folder, name, counter, subfolder = paths.get_save_path(filename_prefix, frames.shape[2], frames.shape[1], kind=kind)
        meta = workflow_tags(prompt, extra_pnginfo) if save_metadata else {}
        ext = format.split("/")[1] if format.startswith("image/") else VIDEO_FORMATS[format].extension
        written, counter = claim_files(folder, name, counter, ["png", ext] if save_metadata else [ext])
        target = written[-1]
        try:  # each file is written under a temporary name, then renamed over its claimed name
            if save_metadata:
                _save_png(frames[0], written[0], meta)
            pbar = ProgressBar(len(frames))
            with atomic_target(target) as tmp:
                if format.startswith("image/"):
                    write_animated_image(frames, tmp, fps=frame_rate, kind=ext, loop_count=loop_count, lossless=lossless)
                    pbar.update_absolute(len(frames))
                else:
                    data = np.concatenate([frames] * (loop_count + 1)) if loop_count else frames
                    write_video(data, tmp, fps=frame_rate, format=format, crf=crf,
                                pix_fmt=pix_fmt if pix_fmt in VIDEO_FORMATS[format].pix_fmts else None,
                                metadata={"comment": json.dumps(meta)} if meta else None, audio=audio,
                                trim_to_audio=trim_to_audio,
                                on_frame=lambda i: pbar.update_absolute(min(i + 1, len(frames))))
        except BaseException:  # no empty placeholder is left behind (a full disk, an encoder error)
            for path in written:
                if path.exists() and path.stat().st_size == 0:
                    path.unlink()
            raise
        preview = {"filename": target.name, "subfolder": subfolder, "type": kind, "format": format,
                   "frame_rate": frame_rate, "workflow": written[0].name if save_metadata else None}
        shown = {k: preview[k] for k in ("filename", "subfolder", "type", "format", "frame_rate")}
        ui = {"gifs": [preview], "images": [shown], "animated": [True]}
        return NodeOutput((save_output, [str(p) for p in written]), ui=ui)


def _save_png(frame: np.ndarray, path: Path, meta: dict[str, Any]) -> None:
    info = PngInfo()
    for key, value in meta.items():
        info.add_text(key, json.dumps(value))
    rgb = np.clip(frame[..., :3] * 255 + 0.5, 0, 255).astype(np.uint8)
    write_atomic(path, lambda fh: PILImage.fromarray(rgb).save(fh, format="PNG", pnginfo=info, compress_level=4))


SKIMAGE_SAMPLES = ["astronaut", "coffee", "chelsea", "camera", "rocket", "coins", "moon", "immunohistochemistry",
                   "hubble_deep_field", "colorwheel", "logo", "brick", "grass", "gravel", "page", "text", "clock",
                   "cell", "retina", "cat"]


class LoadSkimageSample(Node):
    """Load one of scikit-image's bundled sample photos (no file needed).

    Needs scikit-image (``pip install 'nodeloom[samples]'``). Grey images become RGB;
    transparent ones are composited on white.
    """

    SCHEMA = Schema(
        "LoadSkimageSample",
        display_name="Load Sample Image (scikit-image)",
        category="image/samples",
        inputs=[Combo("name", SKIMAGE_SAMPLES, default="astronaut", tooltip="Which bundled sample to load.")],
        outputs=[Output(IO.IMAGE, "IMAGE", tooltip="The sample as a 1-image batch.")],
    )

    @classmethod
    def execute(cls, name: str = "astronaut") -> tuple[Any]:
        if name not in SKIMAGE_SAMPLES:
            raise ValidationError(f"`name` must be one of {SKIMAGE_SAMPLES}, got `{name}`")
        data = require("skimage.data", "samples")
        arr = np.asarray(getattr(data, name)())
        img = arr.astype(np.float32) / (255.0 if arr.dtype == np.uint8 else max(float(arr.max()), 1.0))
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        if img.shape[2] == 4:
            img = img[..., :3] * img[..., 3:] + (1.0 - img[..., 3:])
        return (to_image(img),)
