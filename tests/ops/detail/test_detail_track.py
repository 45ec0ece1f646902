"""Video tracks: IoU linking, smoothing, seeds."""

import pytest

from nodeloom.errors import ValidationError
from nodeloom.ops.detail.track import link_tracks, smooth_track, track_seed


def _moving_faces(n=12):
    frames = []
    for f in range(n):
        a = (10 + 3 * f, 20, 50 + 3 * f, 60)  # moving right
        b = (200, 150 - 2 * f, 240, 190 - 2 * f)  # moving up
        dets = [(b, 0.8, "face"), (a, 0.9, "face")] if f % 2 else [(a, 0.9, "face"), (b, 0.8, "face")]
        if f == 5:
            dets = [dets[0]] if dets[0][0] == a else [dets[1]]  # face b missed for one frame
        frames.append(dets)
    return frames


def test_tracks_keep_one_id_per_face():
    tracks = link_tracks(_moving_faces())
    assert len(tracks) == 2
    a, b = tracks
    assert sorted(a.boxes) == list(range(12))
    assert sorted(b.boxes) == [f for f in range(12) if f != 5]
    assert all(box[1] == 20 for box in a.boxes.values())
    assert all(box[0] == 200 for box in b.boxes.values())
    assert 5 in b.smoothed  # the gap is filled


def test_new_face_gets_new_id_and_gap_limit():
    frames = [[((0, 0, 10, 10), 0.9, "face")], [], [], [], [((0, 0, 10, 10), 0.9, "face")]]
    assert len(link_tracks(frames, max_gap=1)) == 2
    assert len(link_tracks(frames, max_gap=3)) == 1
    hands = [[((0, 0, 10, 10), 0.9, "face")], [((0, 0, 10, 10), 0.9, "hand")]]
    assert len(link_tracks(hands)) == 2


def test_smoothing_reduces_jitter():
    jitter = {f: (100 + (4 if f % 2 else -4), 100, 140 + (4 if f % 2 else -4), 140) for f in range(10)}
    smooth = smooth_track(jitter, window=5)
    raw_span = max(b[0] for b in jitter.values()) - min(b[0] for b in jitter.values())
    mid_span = max(smooth[f][0] for f in range(2, 8)) - min(smooth[f][0] for f in range(2, 8))
    assert mid_span < raw_span / 3


def test_track_seed_and_validation():
    assert track_seed(1, 0) == track_seed(1, 0) != track_seed(1, 1)
    with pytest.raises(ValidationError, match="iou_threshold"):
        link_tracks([], iou_threshold=0)


def test_real_face_keeps_its_track_while_moving():
    import numpy as np
    import skimage.data

    from nodeloom.ops.detail.detect import HaarFaceDetector

    det = HaarFaceDetector()
    photo = skimage.data.astronaut()[::2, ::2]
    frames = []
    for f in range(4):
        frame = np.roll(photo, shift=(2 * f, 5 * f), axis=(0, 1))
        frames.append([(d.bbox, d.confidence, d.label) for d in det.detect_raw(frame) if d.confidence >= 0.3])
    tracks = link_tracks(frames)
    assert len(tracks) == 1 and sorted(tracks[0].boxes) == [0, 1, 2, 3]
    xs = [tracks[0].smoothed[f][0] for f in range(4)]
    assert xs == sorted(xs)  # the smoothed box follows the motion
