"""Seam colour matching: ΔE across the feather ring after pasting a tinted re-draw, ours (Lab
mean/std matched in the ring) vs the anchor (ADetailer / Impact Pack: a plain Gaussian-feathered
paste, no matching). Same crops, same masks, same run.

Cases: the astronaut's face box re-drawn with a colour cast of growing strength (the pixels are
the photo's own plus the cast, so only the seam differs). Lower ΔE = less visible square.
Run: ``PYTHONPATH=src python benchmarks/detail_seam_match.py``
"""

from __future__ import annotations

import numpy as np
import skimage.data

from nodeloom.ops.detail.blend import feather_mask, match_seam_colors, paste_crop, seam_step

REGION = (147, 52, 302, 207)  # the face box (177, 82, 95, 95) with 30 px around it
CASTS = {"slight warm": (0.04, 0.0, -0.03), "grey wash": (-0.08, -0.08, -0.08), "strong tint": (0.12, -0.06, 0.10)}


def main() -> None:
    image = skimage.data.astronaut().astype(np.float32) / 255.0
    x1, y1, x2, y2 = REGION
    crop = image[y1:y2, x1:x2]
    mask = np.zeros(crop.shape[:2], np.float32)
    mask[30:-30, 30:-30] = 1.0
    alpha = feather_mask(mask, 4.0)
    print(f"{'cast':<14} {'ours ΔE':>9} {'anchor ΔE':>10}")
    for name, cast in CASTS.items():
        redrawn = np.clip(crop + np.array(cast, np.float32), 0, 1)
        anchor = paste_crop(image, redrawn, alpha, REGION)[y1:y2, x1:x2]
        ours = paste_crop(image, match_seam_colors(redrawn, crop, alpha), alpha, REGION)[y1:y2, x1:x2]
        base = seam_step(crop, alpha)  # the photo's own step across the same ring

        def added(img: np.ndarray) -> float:
            return float(np.linalg.norm(seam_step(img, alpha) - base))

        print(f"{name:<14} {added(ours):>9.2f} {added(anchor):>10.2f}")
    print("(ΔE76 of the Lab step across the ring that the paste adds to the unedited photo's own step)")


if __name__ == "__main__":
    main()
