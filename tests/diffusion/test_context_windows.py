"""Context windows: the schedules' windows, the fuse weights, and the blending of per-window model
calls (a frame-local model gives the same result windowed; overlaps are weighted averages)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nodeloom.diffusion.context_windows import ContextWindows, fuse_weights, window_schedule, windowed_adapter


@dataclasses.dataclass(frozen=True)
class _Entry:
    extra: dict


@dataclasses.dataclass(frozen=True)
class _Group:
    entries: list


def test_static_and_batched_windows():
    static = ContextWindows(4, 1, "standard_static")
    assert window_schedule(10, static) == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert window_schedule(11, static)[-1] == [7, 8, 9, 10]
    assert window_schedule(10, ContextWindows(4, 1, "batched")) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert window_schedule(3, static) == [[0, 1, 2]]


@pytest.mark.parametrize("schedule", ["standard_uniform", "looped_uniform"])
@pytest.mark.parametrize("step", [0, 1, 2, 5])
def test_uniform_windows_cover_every_frame(schedule, step):
    cw = ContextWindows(4, 1, schedule, stride=2)
    windows = window_schedule(12, cw, step)
    assert set().union(*map(set, windows)) == set(range(12))
    assert all(len(w) == 4 for w in windows)
    if schedule == "standard_uniform":  # no window wraps around the clip's end
        assert all(w == sorted(w) for w in windows)


def test_uniform_phase_moves_with_the_step():
    cw = ContextWindows(4, 1, "looped_uniform")
    assert window_schedule(12, cw, 0) != window_schedule(12, cw, 1)


def test_fuse_weights():
    cw = ContextWindows(5, 2, fuse="pyramid")
    assert fuse_weights([0, 1, 2, 3, 4], 10, cw).tolist() == [1, 2, 3, 2, 1]
    assert fuse_weights([0, 1, 2, 3], 10, cw).tolist() == [1, 2, 2, 1]
    assert fuse_weights([0, 1, 2], 10, dataclasses.replace(cw, fuse="flat")).tolist() == [1, 1, 1]
    rel = fuse_weights([2, 3, 4, 5, 6], 10, dataclasses.replace(cw, fuse="relative")).tolist()
    assert rel == pytest.approx([1e-2, 1 - 1 / 2.005, 1, 1 - 1 / 2.005, 1e-2])
    lin = fuse_weights([3, 4, 5, 6, 7], 10, dataclasses.replace(cw, fuse="overlap-linear"))
    assert lin[0] < 1e-30 and lin[2] == 1 and lin[-1] < 1e-30


@pytest.mark.parametrize("schedule", ["standard_static", "standard_uniform", "looped_uniform", "batched"])
def test_a_frame_local_model_is_unchanged_by_windows(schedule):
    x = torch.randn(2, 3, 11, 4, 4)

    def inner(module, x, sigma, group):
        return x * 2 + sigma

    windowed = windowed_adapter(inner, ContextWindows(4, 2, schedule, stride=2))
    assert torch.allclose(windowed(None, x, torch.tensor(0.5), _Group([])), inner(None, x, 0.5, None), atol=1e-6)


def test_overlaps_are_weighted_averages_and_conditioning_is_sliced():
    """Each window answers its first frame index everywhere; the per-frame conditioning each call
    sees is cut to the window's frames."""
    seen = []

    def inner(module, x, sigma, group):
        seen.append(group.entries[0].extra["concat_mask"][0, 0, :, 0, 0].tolist())
        return torch.full_like(x, float(seen[-1][0]))

    mask = torch.arange(6, dtype=torch.float32).view(1, 1, 6, 1, 1).expand(1, 4, 6, 2, 2)
    group = _Group([_Entry({"concat_mask": mask, "other": 1})])
    out = windowed_adapter(inner, ContextWindows(4, 2, "standard_static"))(None, torch.zeros(1, 2, 6, 2, 2),
                                                                           torch.tensor(1.0), group)
    assert seen == [[0, 1, 2, 3], [2, 3, 4, 5]]
    # frames 2 and 3: window 0 weights 2, 1 (pyramid), window 1 weights 1, 2
    assert out[0, 0, :, 0, 0].tolist() == pytest.approx([0, 0, (0 * 2 + 2 * 1) / 3, (0 * 1 + 2 * 2) / 3, 2, 2])


def test_a_video_familys_noise_mask_is_cut_to_each_window():
    """LTX-Video's and the Wan 2.2 5B's adapters take the latent's noise mask (per-token times): each
    window's call sees the mask of its own frames."""
    seen = []

    def inner(module, x, sigma, group, mask=None):
        seen.append(mask[0, 0, :, 0, 0].tolist())
        return torch.zeros_like(x)

    mask = torch.arange(6, dtype=torch.float32).view(1, 1, 6, 1, 1)
    windowed_adapter(inner, ContextWindows(4, 2, "standard_static"))(None, torch.zeros(1, 2, 6, 2, 2),
                                                                     torch.tensor(1.0), _Group([]), mask=mask)
    assert seen == [[0, 1, 2, 3], [2, 3, 4, 5]]
def test_the_noise_mask_is_sliced_and_guide_frames_join_every_window():
    """A family's trailing guide frames go with every window (positions placed by the window's
    start), the ``mask=`` the adapter gets is cut to the same frames, and a frame-local model is
    still unchanged by the windows."""
    calls = []

    def inner(module, x, sigma, group, mask=None):
        calls.append((mask[0, 0, :, 0, 0].tolist(), group.entries[0].extra["start"]))
        return x * 3 * mask

    def guides(group, x, start):
        entries = [dataclasses.replace(e, extra={**e.extra, "start": start}) for e in group.entries]
        return 1, dataclasses.replace(group, entries=entries)

    x = torch.randn(1, 2, 7, 2, 2)
    mask = torch.arange(7, dtype=torch.float32).view(1, 1, 7, 1, 1)
    windowed = windowed_adapter(inner, ContextWindows(3, 1, "standard_static"), guides)
    out = windowed(None, x, torch.tensor(1.0), _Group([_Entry({"start": None})]), mask=mask)
    assert calls == [([0, 1, 2, 6], 0), ([2, 3, 4, 6], 2), ([3, 4, 5, 6], 3)]
    assert torch.allclose(out, x * 3 * mask, atol=1e-6)
