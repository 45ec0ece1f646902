"""How many CPU threads torch's kernels may use on the calling OS thread.

torch's CPU kernels run on GNU OpenMP: every OS thread that runs a parallel torch op gets its
own team of OpenMP threads, kept until that thread ends. Once a process holds more team
threads than cores, libgomp stops letting idle team threads spin between parallel regions and
each of a sampler's many small ops then pays a sleep/wake-up, up to 2× slower on a small
machine (``benchmarks/bench_torch_threads.py --mechanism``). The engine therefore gives a node
that runs alone every core on the executing thread, and a node that runs beside others a share
of the cores (``cores ÷ nodes running``, at least one); with one thread a node's thread makes no
team at all, so on a small machine parallel branches never add teams beside the executing one.

The "every core" figure is read once, when the first engine of the process starts (a worker
process sets its share of the machine before that); torch's ``set_num_threads`` also sets the
default that threads started later begin with, so the executing thread sets its own count again
whenever a pool thread changed it.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["full_threads", "remember_full_threads", "set_full_threads", "use_threads"]

_full: int | None = None
_lock = threading.Lock()


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


def remember_full_threads() -> int | None:
    """Record torch's intra-op thread count for a thread that runs alone (first call wins).

    Returns:
        the recorded count, or None when torch is not installed.
    """
    global _full
    torch = _torch()
    if torch is None:
        return None
    with _lock:
        if _full is None:
            _full = max(1, int(torch.get_num_threads()))
    return _full


def set_full_threads(count: int) -> None:
    """Set torch's threads on the calling thread and make ``count`` the "every core" figure
    (for code that changes the process's share of the machine after an engine started, such as
    a batch run that leaves cores to its decoding workers).

    Raises:
        ValueError: ``count`` < 1.
    """
    global _full
    if count < 1:
        raise ValueError(f"`count` must be ≥ 1, got {count}")
    torch = _torch()
    with _lock:
        _full = count
    if torch is not None:
        torch.set_num_threads(count)


def full_threads() -> int | None:
    """The count recorded by :func:`remember_full_threads` (None before, or without torch)."""
    return _full


def use_threads(running: int, *, alone_thread: bool) -> int | None:
    """Set the calling thread's torch intra-op threads for a node about to run.

    Args:
        running: nodes of the run executing at this moment, this one included (≥ 1).
        alone_thread: True on the executing thread (the node runs alone there), False on a
            node pool thread.

    Returns:
        the count now in force on this thread, or None when torch or the record is missing.
    """
    full = _full
    torch = _torch() if full is not None else None
    if torch is None or full is None:
        return None
    if running < 1:
        raise ValueError(f"`running` must be ≥ 1, got {running}")
    want = full if alone_thread else max(1, full // running)
    # torch.get_num_threads() first: a thread's first call sets it from the process default
    if torch.get_num_threads() != want:
        torch.set_num_threads(want)
    return want
