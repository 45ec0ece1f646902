"""The node thread pool: threads that exist only while there is work for them.

A thread that runs torch code keeps its own OpenMP thread team alive for as long as the thread
lives; a pool that keeps idle threads therefore leaves more OpenMP threads than cores, and
torch work on other threads (a sampler on the executing thread) slows down by up to 2× on a
small machine. Here a thread exits as soon as nothing is queued, taking its team with it;
starting a thread costs far less than any node worth running beside another. No I/O, no torch.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["TransientThreadPool"]


class TransientThreadPool(concurrent.futures.Executor):
    """An executor that starts up to ``max_workers`` threads and lets each one end when idle.

    Args:
        max_workers: the most threads running at once.
        thread_name_prefix: names of its threads (``prefix-<n>``).
    """

    def __init__(self, max_workers: int, thread_name_prefix: str = "pool") -> None:
        if max_workers < 1:
            raise ValueError(f"`max_workers` must be ≥ 1, got {max_workers}")
        self.max_workers = max_workers
        self._prefix = thread_name_prefix
        self._lock = threading.Lock()
        self._pending: deque[tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = deque()
        self._threads = 0
        self._started = 0
        self._shutdown = False

    @property
    def live_threads(self) -> int:
        """Threads alive now (0 once everything queued has run)."""
        return self._threads

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._pending.append((future, fn, args, kwargs))
            start = self._threads < self.max_workers
            if start:
                self._threads += 1
                self._started += 1
                name = f"{self._prefix}-{self._started}"
        if start:
            threading.Thread(target=self._work, name=name, daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._threads -= 1
                    return
                future, fn, args, kwargs = self._pending.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
                future.set_exception(exc)
                del exc
            else:
                future.set_result(result)
            del future, fn, args, kwargs

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new work; with ``cancel_futures``, cancel what has not started. Threads are
        daemons that end by themselves, so ``wait`` only waits for the queue to drain."""
        with self._lock:
            self._shutdown = True
            dropped = list(self._pending) if cancel_futures else []
            if cancel_futures:
                self._pending.clear()
        for future, *_ in dropped:
            future.cancel()
        if wait:
            concurrent.futures.wait([f for f, *_ in list(self._pending)])
