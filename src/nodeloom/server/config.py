"""Server settings (what the ``serve`` flags set), kept apart from the engine's settings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from nodeloom.limits import RunLimits

__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_MAX_PIXELS", "DEFAULT_WORKER_TIMEOUT", "ServerConfig", "default_limits",
           "default_max_memory"]

#: largest image a prompt may create or load by default: 8192 × 8192
DEFAULT_MAX_PIXELS = 8192 * 8192
#: largest batch by default (the maximum of ComfyUI's batch widgets)
DEFAULT_MAX_BATCH = 4096
#: ``--worker-timeout`` by default: seconds a running prompt may go without any sign of progress
#: (generous: a model load or a long decode without progress ticks must not count as a hang)
DEFAULT_WORKER_TIMEOUT = 600.0


def default_max_memory() -> int:
    """Half of this machine's RAM (0, no limit, where the platform cannot tell)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)
    except (ValueError, OSError, AttributeError):
        return 0


def default_limits() -> RunLimits:
    """The limits a server applies unless told otherwise."""
    return RunLimits(max_pixels=DEFAULT_MAX_PIXELS, max_batch=DEFAULT_MAX_BATCH, max_memory=default_max_memory())


@dataclass
class ServerConfig:
    """How the server listens, authenticates and stores its queue.

    Attributes:
        hosts: addresses to bind (``127.0.0.1`` by default; ``--listen`` sets them).
        port: TCP port.
        token: required access token, or None (see :mod:`nodeloom.server.security`).
        insecure: allow a non-loopback bind without a token.
        allowed_hosts: extra host names accepted in ``Host``/``Origin`` headers.
        max_upload_size: largest request body in bytes (uploads, userdata).
        db_path: the SQLite queue/history file; default ``<user dir>/nodeloom_queue.sqlite3``.
        max_attempts: crashes tolerated while one prompt runs before it is marked failed.
        history_limit: finished prompts kept in history.
        multi_user: honour the ``comfy-user`` header (ComfyUI's ``--multi-user``).
        limits: per-prompt resource limits (``--max-pixels``, ``--max-batch``, ``--max-memory``);
            ``max_pixels`` also bounds images decoded by ``/view?preview`` and ``/upload/mask``.
        workers: run prompts in worker processes instead of the serving process: a count,
            ``"auto"`` (one per GPU, else the CPU cores shared out), ``"ray"`` (Ray actors), or
            None (one worker thread in this process).
        ray_address: the Ray cluster of ``workers="ray"`` (None: a local Ray).
        ray_actors: how many Ray actors (0: one per GPU of the cluster, else one per 2 CPUs).
        worker_timeout: with ``workers``: seconds a running prompt may go without any sign of
            progress (an event, see :mod:`nodeloom.server.workers.common`) before its worker
            counts as hung, is killed and restarted (0: never).
        worker_threads: with ``workers``: torch CPU threads of each worker (0: the CPU cores
            shared out between CPU workers, torch's default on GPU workers).
    """

    hosts: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    port: int = 8188
    token: str | None = None
    insecure: bool = False
    allowed_hosts: list[str] = field(default_factory=list)
    max_upload_size: int = 100 * 1024 * 1024
    db_path: Path | None = None
    max_attempts: int = 3
    history_limit: int = 10000
    multi_user: bool = False
    limits: RunLimits = field(default_factory=default_limits)
    workers: int | str | None = None
    ray_address: str | None = None
    ray_actors: int = 0
    worker_timeout: float = DEFAULT_WORKER_TIMEOUT
    worker_threads: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"`port` must be in 0..65535, got {self.port}")
        if self.max_upload_size < 1:
            raise ValueError(f"`max_upload_size` must be ≥ 1 byte, got {self.max_upload_size}")
        if not (self.worker_timeout >= 0 and self.worker_timeout != float("inf")):
            raise ValueError("`worker_timeout` (--worker-timeout) must be a number of seconds ≥ 0 (0: never), "
                             f"got {self.worker_timeout}")
        if self.worker_threads < 0:
            raise ValueError("`worker_threads` (--worker-threads) must be ≥ 0 (0: the cores shared out), "
                             f"got {self.worker_threads}")
        if self.max_attempts < 1:
            raise ValueError(f"`max_attempts` must be ≥ 1, got {self.max_attempts}")
