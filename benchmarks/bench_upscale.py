"""Tiled model upscaling: nodeloom's ImageUpscaleWithModel path vs the untiled model call, same run.

A random SRVGGNetCompact x4 (spandrel, float32, CPU) upscales one random image. Rows: the anchor
(spandrel's model called on the whole image, no tiles — the floor tiling can only add to),
nodeloom's ``upscale_image`` with ComfyUI's 512/32 tiles, and — when ``COMFY_SRC`` names a
ComfyUI checkout — ComfyUI's own ``comfy.utils.tiled_scale`` on the same model and tiles (its
result must equal ours to 1e-5). Goal: nodeloom ≤ 1.1x ComfyUI's tiled time.

    PYTHONPATH=src python benchmarks/bench_upscale.py [--size 1024x768] [--nf 16] [--convs 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time  # noqa: E402

from nodeloom.diffusion.upscale import load_upscale_model, upscale_image  # noqa: E402
from nodeloom.ops.tiled_scale import tile_count  # noqa: E402
from nodeloom.testing.tiny_upscale import srvgg_compact  # noqa: E402


def _comfy_tiled(model, image):
    """ComfyUI's node body minus device moves, from a checkout named by COMFY_SRC (or None)."""
    src = os.environ.get("COMFY_SRC")
    if not src:
        return None
    sys.path.insert(0, src)
    import comfy.utils

    pixels = image.movedim(-1, -3)
    return lambda: torch.clamp(comfy.utils.tiled_scale(pixels, model, tile_x=512, tile_y=512, overlap=32,
                                                       upscale_amount=model.scale).movedim(-3, -1), 0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1024x768", help="WIDTHxHEIGHT of the input")
    parser.add_argument("--nf", type=int, default=16, help="feature channels of the model")
    parser.add_argument("--convs", type=int, default=4, help="body convolutions of the model")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "compact.pth"
        torch.save(srvgg_compact(4, nf=args.nf, num_conv=args.convs), path)
        model = load_upscale_model(path)
    image = torch.rand(1, h, w, 3)
    ours = lambda: upscale_image(model, image, "cpu", lambda *_: None)  # noqa: E731
    whole = lambda: torch.clamp(model(image.movedim(-1, 1)).movedim(1, -1), 0, 1)  # noqa: E731
    comfy = _comfy_tiled(model, image)
    with torch.inference_mode():
        if comfy is not None:
            diff = float((ours() - comfy()).abs().max())
            assert diff < 1e-5, f"nodeloom and ComfyUI tiles disagree by {diff}"
        rows = [("model on the whole image (anchor)", best_time(whole, repeat=3))]
        rows.append((f"nodeloom upscale_image ({tile_count(h, w, 512, 32)} tiles)", best_time(ours, repeat=3)))
        if comfy is not None:
            rows.append(("ComfyUI comfy.utils.tiled_scale", best_time(comfy, repeat=3)))
    print(f"SRVGGNetCompact x4 (nf={args.nf}, {args.convs} convs), {w}x{h} -> {4 * w}x{4 * h}, float32, "
          f"{torch.get_num_threads()} CPU threads")
    print(f"{'implementation':40} {'time s':>8} {'ratio to anchor':>16}")
    for name, t in rows:
        print(f"{name:40} {t:8.3f} {t / rows[0][1]:15.2f}x")
    if comfy is None:
        print("(ComfyUI row not run: set COMFY_SRC to a ComfyUI checkout)")


if __name__ == "__main__":
    main()
