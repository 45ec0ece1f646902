"""ContextWindowsManual on tiny LTX-Video weights through KSampler: a clip of several windows is
denoised window by window (each transformer call sees one window's frames), a window covering the
whole clip gives the plain run, every fuse method runs, an image-to-video clip keeps its first
frame, and guide frames (LTXVAddGuide) join every window with their positions moved to it."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import torch

from nodeloom.diffusion.families import ltxv
from nodeloom.diffusion.sampling import CondEntry, ModelCall
from nodeloom.testing.tiny_ltx import LTXV_T2V_WORKFLOW, build_tiny_ltxv
from tests.nodes.diffusion.family_helpers import engine_for, input_photo, run_ok

#: 41 video frames: 6 latent frames of 2×2 tokens
_LENGTH = 41


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    build_tiny_ltxv(root)
    return root


@pytest.fixture
def frames_seen(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The latent frames of every transformer call (read where the adapter packs its latent into
    tokens; a noise mask's per-token times, one channel, are packed too and left out)."""
    seen: list[int] = []
    pack = ltxv.pack

    def recording(x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > 1:
            seen.append(x.shape[2])
        return pack(x)

    monkeypatch.setattr(ltxv, "pack", recording)
    return seen


def _graph(windows: dict | None, start: str = "70", guide: bool = False) -> dict:
    prompt = copy.deepcopy(LTXV_T2V_WORKFLOW)
    for key in ("71", "73", "78", "79", "8"):
        del prompt[key]
    prompt["70"]["inputs"]["length"] = _LENGTH
    model = ["44", 0]
    if windows is not None:
        prompt["90"] = {"class_type": "ContextWindowsManual", "inputs": {
            "model": ["44", 0], "context_length": 3, "context_overlap": 1, "context_schedule": "standard_static",
            "context_stride": 1, "closed_loop": False, "fuse_method": "pyramid", "dim": 2, **windows}}
        model = ["90", 0]
    positive, negative, latent = ["69", 0], ["69", 1], [start, 0]
    if guide:
        prompt["81"] = {"class_type": "LoadImage", "inputs": {"image": "photo.png"}}
        prompt["82"] = {"class_type": "LTXVAddGuide", "inputs": {
            "positive": ["69", 0], "negative": ["69", 1], "vae": ["44", 2], "latent": [start, 0],
            "image": ["81", 0], "frame_idx": 24, "strength": 1.0}}
        positive, negative, latent = ["82", 0], ["82", 1], ["82", 2]
    prompt["72"] = {"class_type": "KSampler", "inputs": {
        "model": model, "seed": 3, "steps": 3, "cfg": 3.0, "sampler_name": "euler", "scheduler": "simple",
        "positive": positive, "negative": negative, "latent_image": latent, "denoise": 1.0}}
    prompt["99"] = {"class_type": "PreviewAny", "inputs": {"source": ["72", 0]}}
    return prompt


def _run(models: Path, base: Path, prompt: dict) -> torch.Tensor:
    base.mkdir(parents=True)
    input_photo(base, "photo.png", 64)
    with engine_for(base, models) as engine:
        out = run_ok(engine, prompt).value("72")["samples"]
    shutil.rmtree(base, ignore_errors=True)
    return out


def test_a_long_clip_runs_in_windows_and_a_whole_clip_window_is_the_plain_run(
        models: Path, tmp_path: Path, frames_seen: list[int]) -> None:
    plain = _run(models, tmp_path / "plain", _graph(None))
    assert frames_seen == [6] * 3  # one batched (positive + negative) call per step
    frames_seen.clear()
    whole = _run(models, tmp_path / "whole", _graph({"context_length": 6}))
    assert (whole - plain).abs().max().item() <= 1e-5
    frames_seen.clear()
    windowed = _run(models, tmp_path / "windowed", _graph({}))
    assert frames_seen == [3] * 9  # windows [0,1,2], [2,3,4], [3,4,5] at each of 3 steps
    assert windowed.shape == plain.shape == (1, 128, 6, 2, 2)
    assert torch.isfinite(windowed).all()
    assert (windowed - plain).abs().max().item() > 1e-3  # the windows see less of the clip


@pytest.mark.parametrize(("fuse", "schedule"), [
    *[(fuse, "standard_static") for fuse in ("pyramid", "relative", "flat", "overlap-linear")],
    *[("pyramid", schedule) for schedule in ("standard_uniform", "looped_uniform", "batched")]])
def test_every_fuse_method_and_schedule_runs(models: Path, tmp_path: Path, fuse: str, schedule: str) -> None:
    out = _run(models, tmp_path / "run", _graph({"fuse_method": fuse, "context_schedule": schedule}))
    assert out.shape == (1, 128, 6, 2, 2) and torch.isfinite(out).all()


def test_image_to_video_keeps_its_first_frame_in_windows(models: Path, tmp_path: Path, frames_seen: list[int]) -> None:
    prompt = _graph({}, start="77")
    prompt["80"] = {"class_type": "LoadImage", "inputs": {"image": "photo.png"}}
    prompt["77"] = {"class_type": "LTXVImgToVideoInplace", "inputs": {
        "vae": ["44", 2], "image": ["80", 0], "latent": ["70", 0], "strength": 1.0, "bypass": False}}
    base = tmp_path / "i2v"
    base.mkdir()
    input_photo(base, "photo.png", 64)
    with engine_for(base, models) as engine:
        result = run_ok(engine, prompt)
    placed, out = result.value("77")["samples"], result.value("72")["samples"]
    assert (out[:, :, 0] - placed[:, :, 0]).abs().max().item() == 0
    assert (out[:, :, 1:] - placed[:, :, 1:]).abs().max().item() > 1e-2
    assert frames_seen == [3] * 9  # 3 windows at each of 3 steps


def test_guide_frames_join_every_window(models: Path, tmp_path: Path, frames_seen: list[int]) -> None:
    out = _run(models, tmp_path / "guide", _graph({}, guide=True))
    assert out.shape == (1, 128, 7, 2, 2) and torch.isfinite(out).all()  # the guide's frame is appended
    assert frames_seen == [4] * 9  # each window's 3 frames and the guide frame
    plain = _run(models, tmp_path / "plain", _graph(None, guide=True))
    whole = _run(models, tmp_path / "whole", _graph({"context_length": 6}, guide=True))
    assert (whole - plain).abs().max().item() <= 1e-5  # the guide frame is not counted as a clip frame
    assert (out - plain).abs().max().item() > 1e-3


def test_guide_positions_move_with_the_window() -> None:
    idxs = torch.tensor([[[8.0] * 4, [0, 0, 32, 32], [0, 32, 0, 32]]])
    group = ModelCall(entries=[CondEntry(torch.zeros(1, 1, 4), {"keyframe_idxs": idxs}, (64, 64), 1.0)],
                      context=torch.zeros(1, 1, 4), added=None)
    x = torch.zeros(1, 128, 7, 2, 2)
    tail, same = ltxv._window_guides(group, x, 0)
    assert tail == 1 and same is group
    _, moved = ltxv._window_guides(group, x, 2)
    assert moved.entries[0].extra["keyframe_idxs"][0, 0].tolist() == [-8.0] * 4
    assert moved.entries[0].extra["keyframe_idxs"][0, 1:].equal(idxs[0, 1:])
    assert group.entries[0].extra["keyframe_idxs"].equal(idxs)  # the call's own conditioning is unchanged
    with pytest.raises(Exception, match="keyframe_idxs"):
        ltxv._window_guides(group, torch.zeros(1, 128, 7, 3, 3), 1)


def test_a_joint_audio_video_model_is_refused_by_name() -> None:
    from nodeloom.diffusion.models import DiffusionModel
    from nodeloom.errors import ValidationError
    from nodeloom.nodes.diffusion.context_window_nodes import ContextWindowsManual

    model = DiffusionModel(unet=None, family="ltx2", sampling=None, latent_scale=1.0, adapter=lambda *a, **k: None)
    with pytest.raises(ValidationError, match=r"`model` is LTX-2, whose joint audio-video latent"):
        ContextWindowsManual.execute(model, 3, 1, "standard_static", 1, False, "pyramid", 2)
