"""Many workers on one queue: ``nodeloom serve --workers N`` and ``--workers ray``.

The serving process keeps the durable queue, history, WebSocket clients and files; each
worker (a local process, or a Ray actor) holds a warm engine and runs one prompt at a time.
:class:`WorkerPool` gives every worker a head-side :class:`nodeloom.server.worker.Worker`
thread whose engine is a proxy of the remote one, so queueing, storing results and
announcing outcomes are the single-worker code paths.
"""

from nodeloom.server.workers.pool import WorkerPool, parse_workers

__all__ = ["WorkerPool", "parse_workers"]
