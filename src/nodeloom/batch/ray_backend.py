"""The Ray backend of ``nodeloom batch``: actors with warm engines; the journal stays on the driver.

Each actor builds one :class:`~nodeloom.engine.Engine` when it starts (models load once per
actor and stay cached across items), decodes the items of the loader batches it is sent with
the same dataset and collate function as the local backend, runs them through the same
:class:`~nodeloom.batch.worker.BatchWorker`, and returns the outcomes with the produced files'
bytes, so the driver can commit them exactly as it commits local results. At most two
batches are in flight per actor. ``--address`` joins a cluster (nodeloom must be installed
on its nodes); without it a local Ray is started for the run and shut down after it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nodeloom.batch.binding import BatchPlan
from nodeloom.batch.collate import get_collate
from nodeloom.batch.dataset import BatchDataset
from nodeloom.batch.journal import Journal
from nodeloom.batch.worker import BatchWorker, failed_outcome, read_files
from nodeloom.errors import NodeloomError, require

__all__ = ["BatchActor", "ray_batches"]

_IN_FLIGHT = 2

_JOIN_HINT = ("Check that the head node is running (`ray status --address ADDRESS`) and reachable. A cluster started "
              "with `ray start` uses token authentication: run with RAY_AUTH_MODE=token and the cluster's token in "
              "RAY_AUTH_TOKEN or ~/.ray/auth_token.")


class BatchActor:
    """Runs loader batches on a warm engine inside a Ray worker process.

    Args:
        engine_options: ``EngineConfig`` keyword arguments.
        plan: the prepared workflow.
        dataset: the batch's dataset (decoding happens in the actor).
        collate: the collate mode (``bucket`` or ``pad``).
    """

    def __init__(self, engine_options: dict[str, Any], plan: BatchPlan, dataset: BatchDataset, collate: str) -> None:
        from nodeloom.batch.runner import make_engine

        self.engine = make_engine(engine_options)
        self.staging = Path(tempfile.mkdtemp(prefix="nodeloom-batch-"))
        self.worker = BatchWorker(self.engine, plan, self.staging / "run")
        self.dataset = dataset
        self.collate = get_collate(collate)

    def run(self, chunk: list[int]) -> list[list[dict[str, Any]]]:
        """Decode, collate and run one loader batch; outcomes carry file bytes."""
        loaded = self.collate([self.dataset[i] for i in chunk])
        out = []
        if loaded["failed"]:
            out.append([failed_outcome(it["index"], it["id"], it["reason"]) for it in loaded["failed"]])
        for sub in loaded["batches"]:
            out.append(read_files(self.worker.run(sub)))
        return out

    def close(self) -> None:
        self.worker.close()
        self.engine.close()
        shutil.rmtree(self.staging, ignore_errors=True)


def _init(ray: Any, address: str | None, num_actors: int) -> bool:
    """Connect to (or start) Ray; True when this call started it."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError or its own classes
            raise NodeloomError(
                f"cannot join the Ray cluster at `--address {address}`: {str(exc).strip().splitlines()[0]}",
                details=_JOIN_HINT, type="ray_unavailable") from exc
        return True
    import nodeloom

    # local workers must import this very nodeloom (a source checkout may shadow an installed one)
    src = str(Path(nodeloom.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=max(2, num_actors), include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": {"PYTHONPATH": path, "RAY_USAGE_STATS_ENABLED": "0"}})
    return True


def ray_batches(options: Any, plan: BatchPlan, dataset: BatchDataset, chunks: list[list[int]],
                journal: Journal) -> Iterator[list[dict[str, Any]]]:
    """Run ``chunks`` on Ray actors; yields outcome lists as they finish (any order).

    Args:
        options: the :class:`~nodeloom.batch.runner.BatchOptions` (``num_workers`` actors,
            ``address``, ``engine``, ``collate``).
        plan: the prepared workflow.
        dataset: the items.
        chunks: loader batches (positions).
        journal: marks each batch ``running`` when it is sent.

    Raises:
        MissingDependencyError: Ray is not installed (``pip install 'nodeloom[ray]'``).
    """
    ray = require("ray", "ray")
    n = max(1, options.num_workers)
    started = _init(ray, options.address, n)
    actor_cls = ray.remote(num_cpus=1)(BatchActor)
    actors = [actor_cls.remote(options.engine, plan, dataset, options.collate) for _ in range(min(n, max(1, len(chunks))))]
    queue = deque(chunks)
    pending: dict[Any, int] = {}
    load = [0] * len(actors)
    try:
        while queue or pending:
            for a, actor in enumerate(actors):
                while queue and load[a] < _IN_FLIGHT:
                    chunk = queue.popleft()
                    journal.start(chunk)
                    pending[actor.run.remote(chunk)] = a
                    load[a] += 1
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                load[pending.pop(ref)] -= 1
                yield from ray.get(ref)
    finally:
        if not pending:  # a clean end: let actors drop their staging folders
            ray.get([actor.close.remote() for actor in actors], timeout=60)
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
