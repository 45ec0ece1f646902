"""Writing and reading videos and animated images, and VideoHelperSuite's frame selection."""

import numpy as np
import pytest

from nodeloom.errors import ValidationError
from nodeloom.ops.video_io import VIDEO_FORMATS, to_pingpong, write_animated_image, write_video
from nodeloom.ops.video_read import read_audio, read_video, target_size


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    base = rng.random((1, 8, 12, 3)).repeat(6, axis=1).repeat(6, axis=2).astype(np.float32)  # 48×72 blocks
    # each frame has a different brightness so frames can be told apart after decoding
    return np.concatenate([np.clip(base * 0.5 + i / 24, 0, 1) for i in range(12)])


@pytest.mark.parametrize("fmt", list(VIDEO_FORMATS))
def test_every_video_format_round_trips(tmp_path, frames, fmt):
    path = tmp_path / f"clip.{VIDEO_FORMATS[fmt].extension}"
    write_video(frames, path, fps=12, format=fmt, metadata={"comment": {"prompt": 1}})
    out, info = read_video(path)
    assert out.shape == frames.shape
    assert info["loaded_frame_count"] == 12 and info["source_fps"] == pytest.approx(12.0)
    assert np.abs(out - frames).mean() < 0.05  # 4:2:0 chroma on 6-px colour blocks
    means = out.mean(axis=(1, 2, 3))
    assert np.all(np.diff(means) > 0)  # frame order survives


def test_odd_sizes_are_padded_for_420(tmp_path, frames):
    path = write_video(frames[:, :47, :71], tmp_path / "odd.mp4", fps=8)
    out, info = read_video(path)
    assert (info["source_width"], info["source_height"]) == (72, 48)
    assert np.abs(out[:, :47, :71] - frames[:, :47, :71]).mean() < 0.03


@pytest.mark.parametrize("kind", ["gif", "webp"])
def test_animated_images_round_trip(tmp_path, frames, kind):
    path = write_animated_image(frames, tmp_path / f"anim.{kind}", fps=10, kind=kind)
    out, info = read_video(path)
    assert out.shape == frames.shape
    assert info["source_fps"] == pytest.approx(10.0)
    assert np.abs(out - frames).mean() < 0.03


def test_gif_uses_one_shared_palette(tmp_path, frames):
    from PIL import Image

    path = write_animated_image(frames, tmp_path / "p.gif", fps=10, kind="gif", colors=64)
    with Image.open(path) as im:
        palette = {tuple(c) for c in np.asarray(im.getpalette()).reshape(-1, 3)}
        assert len(palette) <= 64
        used = set()
        for i in range(im.n_frames):
            im.seek(i)
            used |= {tuple(c) for c in np.asarray(im.convert("RGB")).reshape(-1, 3)}
        assert im.n_frames == len(frames)
    assert used <= palette  # every frame drew from the first frame's palette


def test_frame_selection_follows_videohelpersuite(tmp_path, frames):
    path = write_video(frames, tmp_path / "sel.mkv", fps=12, format="video/ffv1-mkv")
    all_frames, _ = read_video(path)
    out, info = read_video(path, skip_first_frames=2, select_every_nth=3, frame_load_cap=3)
    assert np.array_equal(out, all_frames[[2, 5, 8]])
    assert info["loaded_fps"] == pytest.approx(4.0)
    half, info = read_video(path, force_rate=6)
    assert np.array_equal(half, all_frames[::2])
    double, _ = read_video(path, force_rate=24, frame_load_cap=6)
    # VideoHelperSuite's timing: the first frame is emitted at t=0, later ones when due
    assert np.array_equal(double, all_frames[[0, 1, 1, 2, 2, 3]])
    small, info = read_video(path, custom_width=36)
    assert small.shape[1:3] == (24, 36) and info["loaded_width"] == 36


def test_sizes_and_pingpong():
    assert target_size(640, 480, 0, 0) == (640, 480)
    assert target_size(640, 480, 320, 0) == (320, 240)
    assert target_size(640, 480, 0, 120) == (160, 120)
    assert target_size(640, 480, 100, 100) == (100, 100)
    assert to_pingpong(np.arange(4)).tolist() == [0, 1, 2, 3, 2, 1]


def test_audio_is_muxed_and_read_back(tmp_path, frames):
    wave = np.sin(np.linspace(0, 800, 44100, dtype=np.float32))[None, None].repeat(2, axis=1)  # 2 s
    path = write_video(frames, tmp_path / "a.mp4", fps=12, audio={"waveform": wave, "sample_rate": 22050})
    audio = read_audio(path)
    assert audio is not None and audio["sample_rate"] == 22050
    assert audio["waveform"].shape[:2] == (1, 2)
    assert audio["waveform"].shape[2] == pytest.approx(22050, rel=0.1)  # cut to the 1 s of video
    assert read_audio(write_video(frames, tmp_path / "b.mp4", fps=12)) is None


def test_bad_inputs_are_named(tmp_path, frames):
    with pytest.raises(ValidationError, match="`format` must be one of"):
        write_video(frames, tmp_path / "x.avi", fps=8, format="video/avi")
    with pytest.raises(ValidationError, match="`pix_fmt`"):
        write_video(frames, tmp_path / "x.mp4", fps=8, pix_fmt="rgb24")
    with pytest.raises(ValidationError, match="`frame_rate` must be > 0"):
        write_animated_image(frames, tmp_path / "x.gif", fps=0)
    with pytest.raises(ValidationError, match="does not exist"):
        read_video(tmp_path / "missing.mp4")
    with pytest.raises(ValidationError, match="`select_every_nth` must be ≥ 1"):
        read_video(write_video(frames, tmp_path / "y.mp4", fps=8), select_every_nth=0)
    with pytest.raises(ValidationError, match="images"):
        write_video(frames[0], tmp_path / "z.mp4", fps=8)
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    with pytest.raises(ValidationError, match="cannot open `junk.mp4`"):
        read_video(tmp_path / "junk.mp4")
