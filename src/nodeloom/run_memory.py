"""Peak memory of one run: the process's resident set and, on CUDA, torch's allocations.

The CPU figure is the kernel's high-water mark of the process's resident set (``VmHWM`` in
``/proc/self/status``), reset at the start of a run by writing ``5`` to
``/proc/self/clear_refs`` (Linux ≥ 4.0); where that is refused or there is no ``/proc``, it is
``ru_maxrss``, the peak since the process started, and ``cpu_peak_scope`` says ``"process"``
instead of ``"run"``. Both cover the whole process, so another engine running in the same
process at the same time counts too. The CUDA figure is ``torch.cuda.max_memory_allocated``
since the run began (untested here: no GPU).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

__all__ = ["MemoryWatch"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _maxrss_bytes() -> int | None:
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS reports bytes, Linux KiB


def _cuda() -> Any:
    torch = sys.modules.get("torch")  # a run that never imported torch used no CUDA memory
    try:
        return torch.cuda if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized() else None
    except Exception:  # noqa: BLE001 - a broken CUDA set-up means no CUDA figure, not a failed run
        return None


class MemoryWatch:
    """Start before a run, :meth:`read` after it: ``{"cpu_rss_start", "cpu_rss_peak",
    "cpu_peak_scope", "cuda_max_allocated"}`` in bytes (None where unknown)."""

    def __init__(self) -> None:
        self.scope = "run" if self._reset_hwm() else "process"
        rss = _status_kib("VmRSS")
        self.start_rss = rss * 1024 if rss is not None else None
        cuda = _cuda()
        if cuda is not None:
            cuda.reset_peak_memory_stats()

    @staticmethod
    def _reset_hwm() -> bool:
        try:
            _CLEAR_REFS.write_text("5")
        except OSError:
            return False
        return True

    def read(self) -> dict[str, Any]:
        hwm = _status_kib("VmHWM") if self.scope == "run" else None
        peak = hwm * 1024 if hwm is not None else _maxrss_bytes()
        cuda = _cuda()
        return {
            "cpu_rss_start": self.start_rss,
            "cpu_rss_peak": peak,
            "cpu_peak_scope": self.scope if hwm is not None else "process",
            "cuda_max_allocated": int(cuda.max_memory_allocated()) if cuda is not None else None,
        }
