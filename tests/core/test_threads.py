"""The transient node pool: threads run work concurrently and end once nothing is queued."""

from __future__ import annotations

import threading
import time

import pytest

from nodeloom.core.threads import TransientThreadPool


def _wait_idle(pool: TransientThreadPool) -> None:
    for _ in range(500):
        if pool.live_threads == 0:
            return
        time.sleep(0.01)
    raise AssertionError(f"{pool.live_threads} pool threads still alive")


def test_work_runs_concurrently_and_threads_end_when_idle():
    pool = TransientThreadPool(4, thread_name_prefix="t")
    barrier = threading.Barrier(3, timeout=10)  # three tasks must be running at the same time
    futures = [pool.submit(lambda i=i: (barrier.wait(), i * i)[1]) for i in range(3)]
    assert [f.result(10) for f in futures] == [0, 1, 4]
    _wait_idle(pool)
    assert not [t for t in threading.enumerate() if t.name.startswith("t-")]
    assert pool.submit(pow, 2, 5).result(10) == 32  # a new thread starts for new work


def test_no_more_threads_than_max_workers_and_errors_reach_the_caller():
    pool = TransientThreadPool(2)
    seen: set[str] = set()
    lock = threading.Lock()

    def task(i: int) -> int:
        with lock:
            seen.add(threading.current_thread().name)
        time.sleep(0.005)
        return i

    assert [f.result(10) for f in [pool.submit(task, i) for i in range(20)]] == list(range(20))
    assert pool.live_threads <= 2 and len(seen) <= 20
    with pytest.raises(ZeroDivisionError):
        pool.submit(lambda: 1 / 0).result(10)


def test_shutdown_cancels_queued_work_and_refuses_new_work():
    pool = TransientThreadPool(1)
    gate = threading.Event()
    first = pool.submit(gate.wait, 10)
    queued = pool.submit(pow, 2, 2)
    pool.shutdown(wait=False, cancel_futures=True)
    gate.set()
    assert first.result(10) is True
    assert queued.cancelled()
    with pytest.raises(RuntimeError, match="shutdown"):
        pool.submit(pow, 2, 2)
    with pytest.raises(ValueError, match="max_workers"):
        TransientThreadPool(0)
