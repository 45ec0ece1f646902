"""VIDEO values: decoding a clip into components, and saving a loaded MP4, ours vs plain PyAV.

* decode: ``VideoFromFile.get_components()`` (frames and audio) vs an anchor that decodes the
  same file the plain way — every frame to RGB with PyAV, stacked and scaled to float in numpy,
  then the audio track — so the ratio is our overhead over PyAV itself.
* save: ``SaveVideo``'s path for a file that is already H.264 MP4 (packets copied, tags added)
  vs decoding and re-encoding it with H.264 through PyAV.

Both sides run on the same file in the same run (best of 3). A 4-second 24-fps clip with a
stereo 44.1 kHz track at 256² and 512².

Run: ``PYTHONPATH=src python benchmarks/bench_video_value.py``
"""

from __future__ import annotations

import math
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_time  # noqa: E402

from nodeloom.ops.video_value import VideoComponents, VideoFromComponents, VideoFromFile  # noqa: E402


def _clip(side: int, frames: int = 96) -> VideoFromComponents:
    y, x = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    still = torch.stack([x, y, 1 - x], -1)
    images = torch.stack([torch.roll(still, k * 2, dims=1) for k in range(frames)])
    t = torch.arange(int(44100 * frames / 24)) / 44100
    audio = {"waveform": (0.3 * torch.sin(2 * math.pi * 440 * t)).repeat(2, 1)[None], "sample_rate": 44100}
    return VideoFromComponents(VideoComponents(images, Fraction(24), audio))


def _anchor_decode(path: Path) -> tuple[torch.Tensor, np.ndarray]:
    with av.open(str(path)) as c:
        frames = torch.from_numpy(np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
                                  .astype(np.float32) / 255.0)
        c.seek(0)
        audio = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
    return frames, audio


def _anchor_reencode(src: Path, dst: Path) -> None:
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream("h264", rate=24)
        stream.width, stream.height, stream.pix_fmt = inp.streams.video[0].width, inp.streams.video[0].height, "yuv420p"
        for frame in inp.decode(video=0):
            out.mux(stream.encode(frame.reformat(format="yuv420p")))
        out.mux(stream.encode(None))


def main() -> None:
    print(f"{'size':>8} {'step':>7} {'ours s':>8} {'PyAV s':>8} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for side in (256, 512):
            src = Path(tmp, f"clip{side}.mp4")
            _clip(side).save_to(src)
            video = VideoFromFile(src)
            ours = best_time(video.get_components, repeat=3)
            anchor = best_time(lambda: _anchor_decode(src), repeat=3)
            print(f"{side}x{side:<4} {'decode':>7} {ours:8.3f} {anchor:8.3f} {anchor / ours:6.2f}")
            ours = best_time(lambda: video.save_to(Path(tmp, "copy.mp4"), metadata={"prompt": {}}), repeat=3)
            anchor = best_time(lambda: _anchor_reencode(src, Path(tmp, "again.mp4")), repeat=3)
            print(f"{side}x{side:<4} {'save':>7} {ours:8.3f} {anchor:8.3f} {anchor / ours:6.2f}")


if __name__ == "__main__":
    main()
