"""Peak memory per run, per model family: what ``RunResult.memory`` reports for each template.

Each family's template workflow (tiny random weights saved as ComfyUI's files) runs in its own
fresh process, twice: a cold run (loaders read the files) and a warm run with a new seed
(loaders and prompt encodings from the cache). Printed per run: the resident set at the start,
its peak during the run (``/proc/self/status`` VmHWM, reset per run) and, on CUDA,
``torch.cuda.max_memory_allocated``. The anchor is the size of the family's model files on
disk: a cold run that holds each weight once needs about that much on top of the start.

Printed on the 2-core development machine (CPU, load 11; sd3 was cut off by a time limit):

    family       files run    RSS start   RSS peak  peak-start  CUDA peak
    sd1          11.7M cold      451.6M     519.1M       67.5M          -  (run)
    sd1          11.7M warm      519.1M     519.1M        0.0M          -  (run)
    z_image       4.8M cold      452.2M     475.4M       23.1M          -  (run)
    z_image       4.8M warm      475.4M     475.9M        0.6M          -  (run)
    flux         10.6M cold      452.8M     503.8M       51.0M          -  (run)
    flux         10.6M warm      503.8M     503.8M        0.0M          -  (run)

    python benchmarks/bench_memory_families.py [--families sd1,z_image,flux,sd3] [--size 64] [--steps 4]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import load_note  # noqa: E402

MIB = 2**20


def _workflow(family: str, models: Path, size: int, steps: int) -> tuple[dict[str, Any], str]:
    """The family's template prompt on tiny weights built into ``models``, and its sampler's id."""
    if family == "sd1":
        from nodeloom.testing.tiny_sd import DEFAULT_API_WORKFLOW, build_tiny_checkpoint

        prompt = copy.deepcopy(DEFAULT_API_WORKFLOW)
        prompt["4"]["inputs"]["ckpt_name"] = build_tiny_checkpoint(models, "sd1")
        prompt["5"]["inputs"].update(width=size, height=size)
        prompt["3"]["inputs"]["steps"] = steps
        return prompt, "3"
    from bench_families_overhead import _flux, _sd3, _zimage

    if family == "z_image":
        prompt, sampler, _ = _zimage(models, size, steps)
    elif family in ("flux", "sd3"):
        prompt, sampler, _ = (_flux if family == "flux" else _sd3)(models, size, steps, None)
    else:
        raise SystemExit(f"--families: unknown family {family!r}; expected sd1, z_image, flux or sd3")
    return prompt, sampler


def child(family: str, size: int, steps: int) -> dict[str, Any]:
    from nodeloom import Engine

    root = Path(tempfile.mkdtemp(prefix=f"nl-mem-{family}-"))
    prompt, sampler = _workflow(family, root / "models", size, steps)
    disk = sum(f.stat().st_size for f in (root / "models").rglob("*") if f.is_file())
    out: dict[str, Any] = {"disk": disk}
    with Engine(base_dir=root / "engine", models_dir=root / "models", load_custom_nodes=False) as engine:
        for name, seed in (("cold", 1), ("warm", 2)):
            prompt[sampler]["inputs"]["seed"] = seed
            result = engine.run(prompt)
            if not result.ok:
                raise RuntimeError(f"{family}: {result.errors}")
            out[name] = result.memory
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default="sd1,z_image,flux,sd3")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.size, args.steps)))
        return 0
    print(f"tiny families, {args.size}², {args.steps} steps; {load_note()}")
    print(f"{'family':<8} {'files':>9} {'run':<5} {'RSS start':>10} {'RSS peak':>10} {'peak-start':>11} {'CUDA peak':>10}")
    for family in args.families.split(","):
        cmd = [sys.executable, __file__, "--child", family, "--size", str(args.size), "--steps", str(args.steps)]
        data = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        for run in ("cold", "warm"):
            m = data[run]
            cuda = "-" if m["cuda_max_allocated"] is None else f"{m['cuda_max_allocated'] / MIB:.1f}"
            print(f"{family:<8} {data['disk'] / MIB:8.1f}M {run:<5} {m['cpu_rss_start'] / MIB:9.1f}M "
                  f"{m['cpu_rss_peak'] / MIB:9.1f}M {(m['cpu_rss_peak'] - m['cpu_rss_start']) / MIB:10.1f}M {cuda:>10}"
                  f"  ({m['cpu_peak_scope']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
