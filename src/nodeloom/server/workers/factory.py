"""Build the worker pool a :class:`ServerConfig` asks for (``workers``, ``ray_address``).

Workers' events are emitted on the serving engine's event bus, so everything that listens to
it (the WebSocket hub, the MCP job runner) works as with one in-process worker. Workers share
the serving engine's folders (input, output, temp, models, user) and options;
local workers get one GPU each when there are GPUs, else the CPU cores shared out between them
(``--worker-threads`` sets each worker's torch threads instead).
A worker sees only its GPU: its process starts with ``CUDA_VISIBLE_DEVICES`` set to that GPU's
id (from the serving process's own ``CUDA_VISIBLE_DEVICES`` when set, so ``3,5`` gives workers
on GPUs 3 and 5) and its engine uses ``cuda:0`` (untested on real GPUs here: none).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodeloom.server.workers.local import ProcessEngine
from nodeloom.server.workers.pool import WorkerPool, cpu_threads

if TYPE_CHECKING:
    from nodeloom.engine import Engine
    from nodeloom.server.config import ServerConfig
    from nodeloom.server.queue import PromptQueue

__all__ = ["engine_options", "gpu_ids", "make_pool"]


def engine_options(engine: Engine) -> dict[str, Any]:
    """``EngineConfig`` keyword arguments for a worker: the serving engine's, with its folders."""
    options = dataclasses.asdict(engine.config)
    paths = engine.paths
    for key in ("output_dir", "input_dir", "temp_dir", "user_dir"):
        options[key] = str(getattr(paths, key))
    return options


def _gpu_count() -> int:
    try:
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except ImportError:
        return 0


def gpu_ids() -> list[str]:
    """The ids of the GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them.

    The serving process's own ``CUDA_VISIBLE_DEVICES`` entries (indices or ``GPU-…`` UUIDs) when
    it is set, else ``0 … n-1``; only as many as CUDA reports (none without CUDA).
    """
    count = _gpu_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [str(i) for i in range(count)]
    return [v.strip() for v in visible.split(",") if v.strip()][:count]


def make_pool(engine: Engine, config: ServerConfig, queue: PromptQueue, hub: Any) -> WorkerPool:
    """The pool of ``config.workers`` workers (a count, ``auto`` or ``ray``)."""
    options = engine_options(engine)
    # workers' events go out on the serving engine's bus: the WebSocket hub and the MCP runner
    # hear them exactly as they hear a run in this process
    emit = engine.bus.emit
    journal_dir = Path(engine.paths.temp_dir) / "nodeloom-attempts"
    if config.workers == "ray":
        from nodeloom.server.workers.ray_workers import ray_engines

        engines: list[Any] = ray_engines(options, str(journal_dir), config.ray_address, config.ray_actors,
                                         engine.paths, emit, timeout=config.worker_timeout,
                                         threads=config.worker_threads)
    else:
        gpus = [] if engine.config.device == "cpu" else gpu_ids()
        count = config.workers if isinstance(config.workers, int) else (len(gpus) or max(1, cpu_threads(2)))
        engines = []
        for i in range(count):
            opts = dict(options)
            if gpus:  # the worker's process sees its one GPU as cuda:0
                opts["device"] = "cuda:0"
            threads = config.worker_threads or (0 if gpus else cpu_threads(count))
            engines.append(ProcessEngine(f"worker-{i + 1}", opts, str(journal_dir), threads, emit,
                                         cuda_devices=gpus[i % len(gpus)] if gpus else None,
                                         timeout=config.worker_timeout))
    return WorkerPool(engines, queue, hub, journal_dir=journal_dir, limits=config.limits)
