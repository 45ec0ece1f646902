"""What the serving process and its worker processes share: the wire format of a run, the
model keys used for scheduling, and the per-attempt journal of written files.

A run goes to a worker as a plain dict; events come back as ``("event", type, data,
prompt_id, client_id, preview)`` tuples and the outcome as ``("result", dict)`` or
``("error", dict)``. While a run is in flight the worker also reports a heartbeat every
:data:`HEARTBEAT_S` seconds: how long its engine has gone without a sign of progress (an event:
a node starting or finishing, a progress tick, a preview). The serving process declares the
worker hung (:class:`WorkerHung`) once that quiet time, or the silence of the heartbeat itself,
exceeds ``--worker-timeout``. Every file a worker writes through the atomic-write helpers is listed in
``<journal dir>/<prompt_id>.paths`` before it appears; the serving process removes the listed
files when the worker dies mid-prompt (so the re-run writes them once) and drops the journal
once the result is stored.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from nodeloom.errors import NodeloomError, ValidationError

__all__ = ["HEARTBEAT_S", "MODEL_SUFFIXES", "QuietClock", "WorkerHung", "WorkerLost", "discard_attempt",
           "journal_path", "model_keys", "raise_remote", "run_payload"]

#: file endings of model files; a ``*_name`` input with one of them names a model a worker loads
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx")


class WorkerLost(BaseException):
    """The worker running a prompt died (process killed, actor lost); the prompt is re-queued.

    A ``BaseException`` so that the engine boundary of :class:`Worker`, which records every
    ``Exception`` as the prompt's failure, lets it through to the pool.
    """


class WorkerHung(WorkerLost):
    """The worker running a prompt showed no progress for ``--worker-timeout`` seconds; it has
    been killed when this is raised."""


#: seconds between two heartbeats of a worker running a prompt
HEARTBEAT_S = 1.0


class QuietClock:
    """The serving process's view of how long a worker's running prompt has shown no progress.

    ``start()`` when a run is sent, ``progress()`` on every event of the run, ``beat(quiet)``
    on every heartbeat (the worker's own count of quiet seconds); ``quiet()`` is the time since
    the last sign of progress as best known here, so it grows both when the worker beats
    without progress and when the heartbeat itself stops (a frozen process).
    """

    def __init__(self) -> None:
        self._since = time.monotonic()

    def progress(self) -> None:
        self._since = time.monotonic()

    def beat(self, quiet: float) -> None:
        self._since = time.monotonic() - max(0.0, float(quiet))

    def quiet(self) -> float:
        return time.monotonic() - self._since

    def hung(self, timeout: float) -> bool:
        return timeout > 0 and self.quiet() > timeout

    start = progress  # a run was sent: the quiet time counts from now


def model_keys(prompt: dict[str, Any]) -> frozenset[str]:
    """The model files a prompt loads: ``input=value`` for every ``*_name`` input naming one."""
    keys = set()
    for node in prompt.values():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict):
            continue
        for name, value in inputs.items():
            if name.endswith("_name") and isinstance(value, str) and value.lower().endswith(MODEL_SUFFIXES):
                keys.add(f"{name}={value}")
    return frozenset(keys)


def run_payload(prompt: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """The dict a worker receives for one run (``Engine.run``'s arguments)."""
    return {"prompt": prompt, **kwargs}


def raise_remote(error: dict[str, Any]) -> None:
    """Raise in the serving process the failure a worker reported for a run."""
    payload = dict(error)
    if payload.pop("validation", False):
        raise ValidationError(payload.get("message", "invalid prompt"), details=payload.get("details", ""),
                              extra_info=payload.get("extra_info"), type=payload.get("type", "invalid_prompt"),
                              node_errors=payload.get("node_errors"))
    name = str(payload.get("exception_type") or "WorkerError")
    cls = type(name if name.isidentifier() else "WorkerError", (NodeloomError,), {})
    raise cls(payload.get("message") or name, details=payload.get("details", ""))


def journal_path(journal_dir: Path, prompt_id: str) -> Path:
    return Path(journal_dir) / f"{prompt_id}.paths"


def discard_attempt(journal_dir: Path, prompt_id: str) -> int:
    """Remove the files a dead attempt of ``prompt_id`` wrote, and its journal; returns how many."""
    journal = journal_path(journal_dir, prompt_id)
    try:
        lines = journal.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return 0
    removed = 0
    for line in dict.fromkeys(lines):
        if line and os.path.isfile(line):
            os.unlink(line)
            removed += 1
    journal.unlink(missing_ok=True)
    return removed
