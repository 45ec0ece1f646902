"""Cost of running a node declared with ComfyUI's V3 API, against the same node as a V1 class.

The V3 pack is loaded from a temporary ``custom_nodes/`` folder, the V1 classes are
bench_engine's; each workload is a chain of N
integer "add one" nodes ending in an output node, run with the cache off, so every node runs
every time. The anchor is the V1 chain from the same run; the difference per node is what the
V3 view adds (schema-derived attributes, the per-call class copy holding ``hidden``, result
normalisation).

Run: python benchmarks/bench_v3_overhead.py [--nodes 500] [--repeat 9]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import best_time  # noqa: E402
from bench_engine import Inc, Sink  # noqa: E402 - the V1 anchor nodes

from nodeloom import Engine  # noqa: E402
from nodeloom.core.registry import PackInfo  # noqa: E402

PACKS = {
    "v3_bench": '''
from comfy_api.latest import ComfyExtension, io

class AddOne(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="BenchV3AddOne", inputs=[io.Int.Input("x")], outputs=[io.Int.Output()])

    @classmethod
    def execute(cls, x):
        return io.NodeOutput(x + 1)

class Ext(ComfyExtension):
    async def get_node_list(self):
        return [AddOne]

async def comfy_entrypoint():
    return Ext()
''',
}


def chain(class_type: str, n: int) -> dict[str, dict]:
    prompt = {"0": {"class_type": class_type, "inputs": {"x": 0}}}
    for i in range(1, n):
        prompt[str(i)] = {"class_type": class_type, "inputs": {"x": [str(i - 1), 0]}}
    prompt["sink"] = {"class_type": "BenchSink", "inputs": {"x": [str(n - 1), 0]}}
    return prompt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500, help="chain length (default 500)")
    parser.add_argument("--repeat", type=int, default=9, help="timed runs per workload; the best counts (default 9)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, source in PACKS.items():
            (Path(tmp) / "custom_nodes" / name).mkdir(parents=True)
            (Path(tmp) / "custom_nodes" / name / "__init__.py").write_text(source)
        with Engine(base_dir=Path(tmp) / "base", custom_nodes_dirs=[Path(tmp) / "custom_nodes"],
                    builtin_packs=False, cache="none") as engine:
            engine.registry.register_pack(PackInfo("v1_bench", "v1_bench"), {"BenchV1AddOne": Inc, "BenchSink": Sink})
            prompts = {kind: chain(f"Bench{kind}AddOne", args.nodes) for kind in ("V1", "V3")}
            for prompt in prompts.values():
                result = engine.run(prompt)
                assert result.status == "success" and result.outputs["sink"] == {"x": [args.nodes]}, result.errors
            times = {kind: float("inf") for kind in prompts}
            for _ in range(args.repeat):  # interleaved, so both see the same machine load
                for kind, prompt in prompts.items():
                    times[kind] = min(times[kind], best_time(lambda p=prompt: engine.run(p), repeat=1, warmup=0))
    per_node = (times["V3"] - times["V1"]) / args.nodes * 1e6
    print(f"{'workload':<28}{'V3 (ours)':>12}{'V1 (anchor)':>14}{'extra/node':>14}")
    print(f"{f'chain of {args.nodes} nodes':<28}{times['V3'] * 1e3:>10.1f}ms{times['V1'] * 1e3:>12.1f}ms{per_node:>11.1f}µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
