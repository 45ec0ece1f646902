"""MCP round-trip overhead: run_workflow through the SDK's in-memory client vs Engine.run.

Prints one row: the median wall time of a tiny no-model workflow (a 64×64 image saved as
PNG; the image source is cached after the first run, the saver runs every time) run through
the MCP server — validation, policy, job store, audit, thumbnail — next to the same workflow
run directly with ``Engine.run`` in the same process (the anchor), measured alternately.
Usage: ``python benchmarks/mcp_overhead.py [N]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anyio  # noqa: E402
from mcp import Client  # noqa: E402

from nodeloom import Engine  # noqa: E402
from nodeloom.mcp.server import NodeloomMCP  # noqa: E402
from tests.mcp.pack import image_workflow, register  # noqa: E402


def _measure(engine: Engine, app: NodeloomMCP, n: int) -> tuple[list[float], list[float]]:
    """Alternate direct and MCP runs (after one warm-up each) so both see the same machine load."""

    async def main() -> tuple[list[float], list[float]]:
        direct, through = [], []
        async with Client(app.server) as client:
            for i in range(n + 1):
                t0 = time.perf_counter()
                assert engine.run(image_workflow(64, 64, steps=1, prefix=f"direct{i}")).status == "success"
                t1 = time.perf_counter()
                r = await client.call_tool("run_workflow", {"workflow": image_workflow(64, 64, steps=1, prefix=f"mcp{i}"), "wait_seconds": 60})
                t2 = time.perf_counter()
                assert r.structured_content["status"] == "success" and len(r.structured_content["images"]) == 1
                if i:  # the first pair warms caches, imports and encoders up
                    direct.append(t1 - t0)
                    through.append(t2 - t1)
        return direct, through

    return anyio.run(main)


def main(n: int = 20) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(base_dir=tmp)
        register(engine)
        app = NodeloomMCP(engine)
        direct_s, through_s = _measure(engine, app, n)
        direct, through = statistics.median(direct_s), statistics.median(through_s)
        app.close()
        engine.close()
    print(f"{'figure':<34} {'ours (MCP, in-memory)':>22} {'anchor (Engine.run)':>20} {'overhead':>10}")
    print(f"{'tiny image workflow, median of ' + str(n):<34} {through * 1000:>19.1f} ms {direct * 1000:>17.1f} ms {(through - direct) * 1000:>7.1f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
