"""Films from shots: splitting, colour anchoring across cuts, cuts and cross-fades, the film's drift report."""

import numpy as np
import pytest

from nodeloom.errors import ValidationError
from nodeloom.ops.film import (
    assemble_shots,
    cross_shot_jumps,
    film_report,
    parse_shot_lengths,
    parse_transitions,
    smooth_shots,
    split_shots,
)


def _scene(n: int, cast: tuple[float, float, float], seed: int = 0) -> np.ndarray:
    """A textured scene panning right by a pixel per frame, under a colour cast."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:48, 0:96].astype(np.float32)
    base = np.stack([0.5 + 0.3 * np.sin(x / 7), 0.5 + 0.3 * np.cos(y / 5), 0.4 + 0.2 * np.sin((x + y) / 9)], -1)
    base += rng.normal(0, 0.02, base.shape).astype(np.float32)
    frames = np.stack([np.roll(base, k, axis=1)[:, :64] for k in range(n)])
    return np.clip(frames * np.asarray(cast, np.float32), 0, 1).astype(np.float32)


CLIPS = [_scene(10, (1.0, 1.0, 1.0)), _scene(8, (1.25, 1.0, 0.75), 1), _scene(12, (0.8, 0.95, 1.25), 2)]


def test_colour_anchoring_lowers_the_cross_shot_jump():
    before = cross_shot_jumps(CLIPS)
    smoothed, notes = smooth_shots(CLIPS)
    after = cross_shot_jumps(smoothed)
    assert min(before) > 5 and all(a < 0.2 * b for a, b in zip(after, before)), (before, after)
    assert notes[1]["jump_before"] == pytest.approx(before[0], abs=1e-3) and notes[1]["jump_after"] < 1.0
    # the shot keeps its own motion: the same pan, frame to frame
    moved = np.abs(np.diff(smoothed[2], axis=0)).mean()
    assert moved == pytest.approx(np.abs(np.diff(CLIPS[2], axis=0)).mean(), rel=0.35)
    untouched, _ = smooth_shots(CLIPS, anchor_strength=0.0)
    assert all(np.array_equal(a, b) for a, b in zip(untouched, CLIPS))


def test_deflicker_and_flow_smoothing_stay_within_shots():
    flashy = [c.copy() for c in CLIPS]
    flashy[1][4] = np.clip(flashy[1][4] * 1.3, 0, 1)
    smoothed, _ = smooth_shots(flashy, anchor_strength=0.0, deflicker_size=5, flow_alpha=0.5)
    luma = lambda f: f.mean(axis=(1, 2, 3))  # noqa: E731
    jump = lambda f: np.abs(luma(f)[4] - (luma(f)[3] + luma(f)[5]) / 2)  # noqa: E731
    assert jump(smoothed[1]) < 0.3 * jump(flashy[1])
    alone, _ = smooth_shots([flashy[1]], anchor_strength=0.0, deflicker_size=5, flow_alpha=0.5)
    assert np.array_equal(alone[0], smoothed[1])  # nothing crosses a cut


def test_cuts_and_cross_fades():
    film, starts = assemble_shots(CLIPS, [0, 4])
    assert len(film) == 10 + 8 + 12 - 4 and starts == [0, 10, 14]
    assert np.array_equal(film[:10], CLIPS[0]) and np.array_equal(film[10:14], CLIPS[1][:4])
    w = np.arange(1, 5, dtype=np.float32)[:, None, None, None] / 5
    assert np.allclose(film[14:18], CLIPS[1][4:] * (1 - w) + CLIPS[2][:4] * w, atol=1e-6)
    assert np.array_equal(film[18:], CLIPS[2][4:])
    assert parse_transitions("cut, fade 4", 2) == [0, 4]
    assert parse_transitions("dissolve 6, 3", 2) == [6, 3] and parse_transitions("", 2, 5) == [5, 5]
    with pytest.raises(ValidationError, match="one item per boundary"):
        parse_transitions("cut", 2)
    with pytest.raises(ValidationError, match="transition `wipe`"):
        parse_transitions("cut, wipe", 2)
    with pytest.raises(ValidationError, match="longer than a shot"):
        assemble_shots(CLIPS, [0, 9])
    with pytest.raises(ValidationError, match="shot 2 is"):
        assemble_shots([CLIPS[0], CLIPS[1][:, :20]], [0])


def test_shot_lengths():
    assert parse_shot_lengths("10, 8 12") == [10, 8, 12]
    assert [len(c) for c in split_shots(np.concatenate(CLIPS), [10, 8, 12])] == [10, 8, 12]
    with pytest.raises(ValidationError, match="add up to 20 frames but there are 30"):
        split_shots(np.concatenate(CLIPS), [10, 10])
    with pytest.raises(ValidationError, match="whole numbers"):
        parse_shot_lengths("10, x")
    with pytest.raises(ValidationError, match="at least 1 frame"):
        parse_shot_lengths("10, 0")


def test_film_report_restarts_curves_at_cuts_and_flags_in_film_frames():
    clips = [c.copy() for c in CLIPS]
    clips[2][5:7] = np.clip(clips[2][5:7] * 1.25, 0, 1)  # a flash in the third shot
    report = film_report(clips, [0, 10, 18], max_side=0)
    assert report["frames"] == 30 and report["shot_starts"] == [0, 10, 18]
    assert len(report["curves"]["luma_jump"]) == 30
    flags = report["flagged"]["luma_jump"]
    assert flags and all(f["shot"] == 3 and 18 + 5 <= f["peak_frame"] <= 18 + 6 for f in flags)
    # the cuts are not counted as drift: curves restart at 0 there; only the flash is flagged
    assert report["curves"]["warping_error"][10] == 0 and report["curves"]["warping_error"][18] == 0
    assert all(f["shot"] == 3 and 22 <= f["peak_frame"] <= 25 for f in report["flagged"]["warping_error"])
    assert report["cross_shot_delta_e"] == cross_shot_jumps(clips)
    assert report["summary"]["max_cross_shot_delta_e"] == max(report["cross_shot_delta_e"])
