"""Face landmarks per 512² image: the FaceLandmarks path (detector + ONNX landmarks + OpenPose
frame + hull mask) vs the offline face detector alone (the anchor), same run.

The landmark model is the tiny synthetic test model unless ``--model`` names a real 68-point
ONNX file, so by default the difference is the pipeline's own overhead.

    PYTHONPATH=src python benchmarks/bench_face_landmarks.py [--model face68.onnx] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time  # noqa: E402

from nodeloom.ops.detail.detect import HaarFaceDetector  # noqa: E402
from nodeloom.ops.face_landmarks import LandmarkModel, face_hull_mask, pose_frame  # noqa: E402
from nodeloom.testing.tiny_landmarks import build_tiny_landmark_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = LandmarkModel(args.model or build_tiny_landmark_model(Path(tmp) / "tiny.onnx"))
        rgb8 = data.astronaut()
        rgb = rgb8.astype(np.float32) / 255.0
        detector = HaarFaceDetector()

        def full() -> None:
            frame = pose_frame(rgb, [d.bbox for d in detector.detect_raw(rgb8)], model)
            face_hull_mask(frame, 8)

        anchor = best_time(lambda: detector.detect_raw(rgb8), repeat=args.repeat)
        ours = best_time(full, repeat=args.repeat)
    print(f"512x512 astronaut, landmark model {Path(args.model).name if args.model else 'tiny synthetic'}")
    print(f"anchor (face detector alone): {anchor * 1000:.1f} ms")
    print(f"ours   (FaceLandmarks path):  {ours * 1000:.1f} ms | overhead {100 * (ours - anchor) / anchor:+.1f} %")


if __name__ == "__main__":
    main()
