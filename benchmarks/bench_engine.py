"""Engine overhead benchmarks (issue: core engine).

Prints, from one run:
  * per-node scheduling overhead on 1k- and 10k-node trivial chains and wide graphs,
    against the anchor of calling the same node functions in a plain Python loop;
  * time to re-submit an unchanged 1k-node graph (fully cached) vs its first run;
  * two independent GIL-releasing CPU branches (SHA-256 over 64 MB each), concurrent vs
    ``sequential=True`` (goal: >= 1.7x on 2 cores).

Each figure is the best of a few runs (the machine is shared and noisy).

Run: python benchmarks/bench_engine.py [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from nodeloom import Engine  # noqa: E402
from nodeloom.core.registry import PackInfo  # noqa: E402


class Seed:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",)}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value):
        return (value,)


class Inc:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT",)}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, x):
        return (x + 1,)


class Sink:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT",)}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, x):
        return {"ui": {"x": [x]}}


class Hash:
    """SHA-256 over a large buffer: hashlib releases the GIL, so threads run in parallel."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT",), "mb": ("INT",)}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    DATA = bytes(64 * 2**20)

    def run(self, x, mb):
        h = hashlib.sha256()
        view = memoryview(self.DATA)
        for _ in range(mb // 64):
            h.update(view)
        return (x + h.digest()[0],)


NODES = {"Seed": Seed, "Inc": Inc, "Sink": Sink, "Hash": Hash}


def engine(base: str, **kw) -> Engine:
    eng = Engine(base_dir=base, builtin_packs=False, **kw)
    eng.registry.register_pack(PackInfo("bench", "bench"), NODES)
    return eng


def chain(n: int) -> dict:
    p = {"0": {"class_type": "Seed", "inputs": {"value": 0}}}
    for i in range(1, n):
        p[str(i)] = {"class_type": "Inc", "inputs": {"x": [str(i - 1), 0]}}
    p["sink"] = {"class_type": "Sink", "inputs": {"x": [str(n - 1), 0]}}
    return p


def wide(n: int) -> dict:
    p = {"0": {"class_type": "Seed", "inputs": {"value": 0}}}
    for i in range(1, n):
        p[str(i)] = {"class_type": "Inc", "inputs": {"x": ["0", 0]}}
        if i % 50 == 0:
            p[f"s{i}"] = {"class_type": "Sink", "inputs": {"x": [str(i), 0]}}
    return p


def direct_chain(n: int) -> float:
    t0 = time.perf_counter()
    x = Seed().run(0)[0]
    inc = Inc()
    for _ in range(1, n):
        x = inc.run(x)[0]
    Sink().run(x)
    return time.perf_counter() - t0


def timed_run(eng: Engine, prompt: dict) -> float:
    t0 = time.perf_counter()
    result = eng.run(prompt)
    assert result.status == "success", result.errors
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1k graphs only")
    args = ap.parse_args()
    sizes = [1000] if args.quick else [1000, 10000]
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'benchmark':44s} {'ours':>12s} {'anchor':>12s}  note")
        for n in sizes:
            for shape, build in (("chain", chain), ("wide", wide)):
                eng = engine(tmp, cache="none")
                timed_run(eng, chain(10))  # warm-up: imports, thread pool
                prompt = build(n)
                t = min(timed_run(eng, prompt) for _ in range(3 if n <= 1000 else 2))
                anchor = direct_chain(n)
                per_node = t / len(prompt) * 1e6
                print(f"{f'{shape} {n} nodes: per-node overhead':44s} {per_node:10.1f}us {anchor / n * 1e6:10.2f}us  anchor = plain Python loop calling the node functions")
                eng.close()
        eng = engine(tmp, cache="classic")
        prompt = chain(1000)
        first = timed_run(eng, prompt)
        again = min(timed_run(eng, prompt) for _ in range(3))
        print(f"{'re-submit unchanged 1k chain (all cached)':44s} {again * 1e3:10.1f}ms {first * 1e3:10.1f}ms  anchor = first run of the same graph")
        eng.close()
        hash_prompt = {
            "0": {"class_type": "Seed", "inputs": {"value": 0}},
            "a": {"class_type": "Hash", "inputs": {"x": ["0", 0], "mb": 512}},
            "b": {"class_type": "Hash", "inputs": {"x": ["0", 0], "mb": 576}},
            "sa": {"class_type": "Sink", "inputs": {"x": ["a", 0]}},
            "sb": {"class_type": "Sink", "inputs": {"x": ["b", 0]}},
        }
        times = {}
        for sequential in (True, False):
            eng = engine(tmp, cache="none", sequential=sequential)
            timed_run(eng, hash_prompt)
            times[sequential] = min(timed_run(eng, hash_prompt) for _ in range(3))
            eng.close()
        speedup = times[True] / times[False]
        print(f"{'2 GIL-releasing branches: concurrent':44s} {times[False]:10.3f}s  {times[True]:10.3f}s  anchor = sequential=True; speed-up {speedup:.2f}x (goal >= 1.7x on 2 cores)")


if __name__ == "__main__":
    main()
