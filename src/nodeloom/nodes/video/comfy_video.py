"""ComfyUI's core VIDEO nodes with its class names, inputs, defaults and outputs.

``LoadVideo`` (a lazy VIDEO from the input folder), ``CreateVideo`` (IMAGE + fps + AUDIO →
VIDEO), ``GetVideoComponents`` (VIDEO → IMAGE, AUDIO, fps), ``Video Slice``, ``SaveVideo``
(MP4/H.264 with the workflow in its tags), and the animated-image savers
``SaveAnimatedWEBP`` / ``SaveAnimatedPNG``. The VIDEO values live in ``ops.video_value``;
VideoHelperSuite's nodes convert through IMAGE/AUDIO (``GetVideoComponents`` →
``VHS_VideoCombine``, ``VHS_LoadVideo`` → ``CreateVideo``).
"""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

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
    Schema,
    String,
    ValidationError,
    services,
)
from nodeloom.nodes.video._common import AUDIO, to_frames
from nodeloom.nodes.video.media_files import VIDEO_EXTENSIONS, InputFileChecks, claim_files, input_files, resolve_input, workflow_tags
from nodeloom.ops.video_io import to_uint8
from nodeloom.ops.video_value import (
    VIDEO_CODECS,
    VIDEO_CONTAINERS,
    VideoComponents,
    VideoFromComponents,
    VideoFromFile,
    VideoInput,
)

__all__ = ["CreateVideo", "GetVideoComponents", "LoadVideoFile", "SaveAnimatedPNG", "SaveAnimatedWEBP", "SaveVideo",
           "VideoSlice"]

VIDEO = IO.VIDEO
CATEGORY = "image/video"
_HIDDEN = {"prompt": Hidden.prompt, "extra_pnginfo": Hidden.extra_pnginfo}


def _video(value: Any, name: str = "video") -> VideoInput:
    if not isinstance(value, VideoInput):
        raise ValidationError(f"`{name}` must be a VIDEO (from LoadVideo or CreateVideo), got {type(value).__name__}")
    return value


class LoadVideoFile(InputFileChecks, Node):
    """Load a video from the input folder as a VIDEO; frames are decoded only when a node asks for them."""

    FILE_KIND = "video"

    SCHEMA = Schema(
        "LoadVideo",
        display_name="Load Video",
        category=CATEGORY,
        inputs=[Combo("file", lambda: input_files(VIDEO_EXTENSIONS), video_upload=True,
                      tooltip="A video file in the input folder (upload one to add it).")],
        outputs=[Output(VIDEO, "VIDEO", tooltip="The video: frames, frame rate and audio, read lazily.")],
    )

    @classmethod
    def execute(cls, file: str) -> tuple[Any]:
        video = VideoFromFile(resolve_input(file))
        video.get_dimensions()  # probe now: a file that is not a video fails here, naming the file
        return (video,)


class CreateVideo(Node):
    """Make a VIDEO from frames, a frame rate and an optional audio track."""

    SCHEMA = Schema(
        "CreateVideo",
        display_name="Create Video",
        category=CATEGORY,
        description="Make a video from frames, a frame rate and an optional audio track.",
        inputs=[
            Image("images", tooltip="The frames of the video, in order."),
            Float("fps", 30.0, min=1.0, max=120.0, step=1.0, tooltip="Frames per second."),
            Custom(AUDIO, "audio", optional=True, tooltip="An audio track to mux into the video."),
        ],
        outputs=[Output(VIDEO, "VIDEO", tooltip="The frames, frame rate and audio as one VIDEO.")],
    )

    @classmethod
    def execute(cls, images: Any, fps: float, audio: dict[str, Any] | None = None) -> tuple[Any]:
        to_frames(images)  # shape check with a clear message
        rate = Fraction(fps).limit_denominator(1001)
        return (VideoFromComponents(VideoComponents(images=images, frame_rate=rate, audio=audio)),)


class GetVideoComponents(Node):
    """Split a video into its frames, its audio track and its frame rate."""

    SCHEMA = Schema(
        "GetVideoComponents",
        display_name="Get Video Components",
        category=CATEGORY,
        description="Split a video into its frames, its audio track and its frame rate.",
        inputs=[Custom(VIDEO, "video", tooltip="The video to take apart.")],
        outputs=[
            Output(IO.IMAGE, "images", tooltip="The frames [N,H,W,3]."),
            Output(AUDIO, "audio", tooltip="The audio track (None when the video has none)."),
            Output(IO.FLOAT, "fps", tooltip="Frames per second."),
        ],
    )

    @classmethod
    def execute(cls, video: Any) -> tuple[Any, ...]:
        parts = _video(video).get_components()
        return parts.images, parts.audio, float(parts.frame_rate)


class VideoSlice(Node):
    """Cut a part out of a video by start time and duration (audio is cut alike)."""

    SCHEMA = Schema(
        "Video Slice",
        display_name="Video Slice",
        category=CATEGORY,
        inputs=[
            Custom(VIDEO, "video", tooltip="The video to slice."),
            Float("start_time", 0.0, min=-1e5, max=1e5, step=0.001,
                  tooltip="Start time in seconds (negative: counted from the end)."),
            Float("duration", 0.0, min=0.0, step=0.001, tooltip="Duration in seconds, 0 for the rest of the video."),
            Boolean("strict_duration", False,
                    tooltip="Fail when the video is shorter than asked (off: keep what there is)."),
        ],
        outputs=[Output(VIDEO, "VIDEO", tooltip="The slice.")],
    )

    @classmethod
    def execute(cls, video: Any, start_time: float = 0.0, duration: float = 0.0,
                strict_duration: bool = False) -> tuple[Any]:
        return (_video(video).as_trimmed(start_time, duration, strict_duration),)


class SaveVideo(Node):
    """Write the video into the output folder."""

    SCHEMA = Schema(
        "SaveVideo",
        display_name="Save Video",
        category=CATEGORY,
        description="Write the video into the output folder.",
        inputs=[
            Custom(VIDEO, "video", tooltip="The video to save."),
            String("filename_prefix", "video/ComfyUI",
                   tooltip="The prefix for the file to save; may contain a subfolder and %width%/%height%."),
            Combo("format", VIDEO_CONTAINERS, default="auto", tooltip="The container format of the saved file."),
            Combo("codec", VIDEO_CODECS, default="auto", tooltip="The video codec to encode with."),
        ],
        outputs=[],
        hidden=_HIDDEN,
        output_node=True,
    )

    @classmethod
    def execute(cls, video: Any, filename_prefix: str = "video/ComfyUI", format: str = "auto",  # noqa: A002
                codec: str = "auto", prompt: Any = None, extra_pnginfo: Any = None) -> NodeOutput:
        video = _video(video)
        width, height = video.get_dimensions()
        folder, name, counter, subfolder = services().paths.get_save_path(filename_prefix, width, height)
        (target,), _ = claim_files(folder, name, counter, ["mp4"], suffix="_")
        try:
            video.save_to(target, format=format, codec=codec, metadata=workflow_tags(prompt, extra_pnginfo) or None)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return NodeOutput(ui={"images": [{"filename": target.name, "subfolder": subfolder, "type": "output"}],
                              "animated": [True]})


def _pil_frames(images: Any) -> list[PILImage.Image]:
    return [PILImage.fromarray(f) for f in to_uint8(to_frames(images))]


def _saved(path: Any, subfolder: str) -> dict[str, Any]:
    return {"filename": path.name, "subfolder": subfolder, "type": "output"}


class SaveAnimatedWEBP(Node):
    """Save frames as one animated WebP in the output folder, with the workflow in its EXIF."""

    METHODS = {"default": 4, "fastest": 0, "slowest": 6}
    SCHEMA = Schema(
        "SaveAnimatedWEBP",
        display_name="SaveAnimatedWEBP",
        category="image/animation",
        inputs=[
            Image("images", tooltip="The frames."),
            String("filename_prefix", "ComfyUI", tooltip="File name prefix; may contain a subfolder."),
            Float("fps", 6.0, min=0.01, max=1000.0, step=0.01, tooltip="Frames per second."),
            Boolean("lossless", True, tooltip="Lossless encoding."),
            Int("quality", 80, min=0, max=100, tooltip="Quality for lossy encoding (effort for lossless)."),
            Combo("method", list(METHODS), tooltip="Encoder speed: fastest, default or slowest (smallest)."),
        ],
        outputs=[],
        hidden=_HIDDEN,
        output_node=True,
    )

    @classmethod
    def execute(cls, images: Any, filename_prefix: str = "ComfyUI", fps: float = 6.0, lossless: bool = True,
                quality: int = 80, method: str = "default", prompt: Any = None, extra_pnginfo: Any = None) -> NodeOutput:
        if method not in cls.METHODS:
            raise ValidationError(f"`method` must be one of {list(cls.METHODS)}, got `{method}`")
        frames = _pil_frames(images)
        exif = frames[0].getexif()
        if prompt is not None:
            exif[0x0110] = "prompt:" + json.dumps(prompt)  # the Model tag, where ComfyUI keeps it
        for i, (key, value) in enumerate((extra_pnginfo or {}).items()):
            exif[0x010F - i] = f"{key}:{json.dumps(value)}"  # Make tag, then downwards
        folder, name, counter, subfolder = services().paths.get_save_path(filename_prefix, frames[0].width, frames[0].height)
        (target,), _ = claim_files(folder, name, counter, ["webp"], suffix="_")
        frames[0].save(target, save_all=True, append_images=frames[1:], duration=int(1000.0 / fps), exif=exif,
                       lossless=lossless, quality=quality, method=cls.METHODS[method])
        return NodeOutput(ui={"images": [_saved(target, subfolder)], "animated": [len(frames) != 1]})


class SaveAnimatedPNG(Node):
    """Save frames as one animated PNG (APNG) in the output folder, with the workflow in `comf` chunks."""

    SCHEMA = Schema(
        "SaveAnimatedPNG",
        display_name="SaveAnimatedPNG",
        category="image/animation",
        inputs=[
            Image("images", tooltip="The frames."),
            String("filename_prefix", "ComfyUI", tooltip="File name prefix; may contain a subfolder."),
            Float("fps", 6.0, min=0.01, max=1000.0, step=0.01, tooltip="Frames per second."),
            Int("compress_level", 4, min=0, max=9, tooltip="zlib compression, 0 (none, fast) to 9 (smallest)."),
        ],
        outputs=[],
        hidden=_HIDDEN,
        output_node=True,
    )

    @classmethod
    def execute(cls, images: Any, filename_prefix: str = "ComfyUI", fps: float = 6.0, compress_level: int = 4,
                prompt: Any = None, extra_pnginfo: Any = None) -> NodeOutput:
        frames = _pil_frames(images)
        info = PngInfo()
        for key, value in workflow_tags(prompt, extra_pnginfo).items():
            info.add(b"comf", key.encode("latin-1") + b"\0" + json.dumps(value).encode("latin-1"), after_idat=True)
        folder, name, counter, subfolder = services().paths.get_save_path(filename_prefix, frames[0].width, frames[0].height)
        (target,), _ = claim_files(folder, name, counter, ["png"], suffix="_")
        frames[0].save(target, pnginfo=info, compress_level=compress_level, save_all=True,
                       duration=int(1000.0 / fps), append_images=frames[1:])
        return NodeOutput(ui={"images": [_saved(target, subfolder)], "animated": [True]})

