"""The executor: runs a validated prompt by data dependency, concurrently where it can.

Owns the run loop and the per-node step: lazy inputs via ``check_lazy_status``, list
mapping, ``ExecutionBlocker``, node expansion, output caching by signature, interruption
and branch-isolated failures. Ready sync nodes run at the same time on a thread pool
(accelerator users serialised by a device lock); async nodes overlap on the run's event
loop. A lone ready node runs on the executing thread itself; pool threads end when idle
(``threads.py``). What stands alone lives beside it: the execution list (``execution_list.py``),
signatures and caches (``cache.py``), return-value handling (``results.py``). It runs
past 400 lines because the loop and the node step share one run state and read best
side by side. No I/O and no torch: the engine passes hooks for inference mode, previews
and memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from nodeloom.core.cache import CacheEntry, OutputCache, SignatureBuilder, nbytes_of, never_equal
from nodeloom.core.context import InterruptFlag, NodeContext, node_context
from nodeloom.core.events import Event, Preview, timestamp_ms
from nodeloom.core.execution_list import ExecutionList
from nodeloom.core.graph import DynamicPrompt, NodeTypes
from nodeloom.core.graph_builder import ExecutionBlocker, is_link, prefix_scope
from nodeloom.core.results import map_results, merge_outputs, resolve_subgraph_outputs
from nodeloom.core.threads import TransientThreadPool
from nodeloom.core.types import hidden_kind
from nodeloom.errors import Interrupted

__all__ = ["ExecutionHooks", "ExecutionReport", "Executor", "NodeFailure", "NodeRun", "Outcome"]


class Outcome(Enum):
    """How one step of a node ended when it did not fail (a failure is a :class:`NodeFailure`)."""

    SUCCESS = "success"  #: outputs stored (computed, cached or shared with an identical node)
    PENDING = "pending"  #: needs more: lazy inputs to evaluate, or the nodes its expansion added


@dataclass(frozen=True)
class NodeFailure:
    """Why a node step failed, in the terms of ComfyUI's ``execution_error`` message.

    Attributes:
        node_id: the real (not ephemeral) id of the node to blame.
        node_type: its class_type.
        exception_message / exception_type / traceback: what was raised.
        current_inputs: the node's inputs when it raised (formatted for the wire).
        interrupted: the run was interrupted (reported as ``execution_interrupted``).
    """

    node_id: str
    node_type: str | None = None
    exception_message: str = ""
    exception_type: str = ""
    traceback: list[str] = field(default_factory=list)
    current_inputs: dict[str, list[Any]] | list[Any] = field(default_factory=dict)
    interrupted: bool = False


@dataclass
class NodeRun:
    """Per-node metrics of one run."""

    cached: bool = False
    wall_s: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    peak_mem: int | None = None
    calls: int = 0

    def to_dict(self) -> dict[str, Any]:
        bw = (self.bytes_in + self.bytes_out) / self.wall_s / 1e9 if self.wall_s > 0 else None
        return {
            "cached": self.cached,
            "wall_s": self.wall_s,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "bandwidth_gbps": bw,
            "peak_mem": self.peak_mem,
            "calls": self.calls,
        }


@dataclass
class ExecutionReport:
    """What a run produced."""

    prompt_id: str
    status: str = "success"
    outputs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    messages: list[list[Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    node_runs: dict[str, NodeRun] = field(default_factory=dict)
    values: dict[str, list[list[Any]]] = field(default_factory=dict)
    wall_s: float = 0.0


@dataclass
class ExecutionHooks:
    """What the engine plugs into the I/O-free executor.

    Attributes:
        call_context: context manager around every node call (e.g. ``torch.inference_mode``).
        device_lock_for: the lock a node class must hold (accelerator users), or None.
        make_preview: turns a node's preview value into a :class:`Preview` (or None).
        peak_memory: ``(reset: bool) -> bytes | None`` peak device memory since the last reset.
        services: the engine's services, put in each :class:`NodeContext`.
        share_threads: ``(running, alone)`` called on the thread about to run a sync node, with
            the nodes running now and whether it runs alone on the executing thread (the
            engine sets torch's CPU threads for that thread from it).
    """

    call_context: Callable[[], Any] = contextlib.nullcontext
    device_lock_for: Callable[[type], Any] = lambda cls: None
    make_preview: Callable[[Any], Preview | None] = lambda value: None
    peak_memory: Callable[[bool], int | None] = lambda reset: None
    services: Any = None
    share_threads: Callable[[int, bool], Any] = lambda running, alone: None


class _DuplicateNode(Exception):
    """An expansion added a node id the prompt already has."""


class Executor:
    """Runs prompts for one engine.

    Args:
        lookup: class_type -> node class.
        cache: the output cache policy.
        hooks: engine hooks.
        max_workers: threads for sync nodes (None: 2 × CPUs, at least 4).
        sequential: run one node at a time (ComfyUI's behaviour).
    """

    def __init__(
        self,
        lookup: Callable[[str], type | None],
        cache: OutputCache,
        hooks: ExecutionHooks | None = None,
        *,
        max_workers: int | None = None,
        sequential: bool = False,
    ) -> None:
        import os

        self.lookup = lookup
        self.cache = cache
        self.hooks = hooks or ExecutionHooks()
        self.sequential = sequential
        self.max_workers = max_workers or max(4, 2 * (os.cpu_count() or 2))
        # threads end when idle: none keeps an OpenMP team alive beside the executing thread
        self._pool = TransientThreadPool(self.max_workers, thread_name_prefix="nodeloom-node")
        self.objects: dict[tuple[str, str], Any] = {}
        self.interrupt_flag = InterruptFlag()
        self._run_lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def offload(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Run ``fn(*args)`` on the node thread pool from the run's event loop."""
        return asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def execute(
        self,
        prompt: dict[str, Any],
        outputs_to_execute: list[str],
        *,
        prompt_id: str,
        extra_data: dict[str, Any] | None = None,
        emit: Callable[[Event], None] | None = None,
        client_id: str | None = None,
        keep_values: bool = True,
        check_output: Callable[[str, type, list[list[Any]]], None] | None = None,
    ) -> ExecutionReport:
        """Run ``prompt`` (already validated) for the given output nodes; blocking.

        ``check_output(node_id, cls, outputs)``, when given, sees what each node produced
        before anything uses it; raising fails that node (resource limits).
        """
        with self._run_lock:
            self.interrupt_flag.clear()
            run = _Run(self, prompt, outputs_to_execute, prompt_id, extra_data or {}, emit, client_id, keep_values)
            run.check_output = check_output
            with self.hooks.call_context():
                try:
                    asyncio.get_running_loop()
                except RuntimeError:
                    asyncio.run(run.main())
                else:
                    with concurrent.futures.ThreadPoolExecutor(1) as helper:
                        helper.submit(asyncio.run, run.main()).result()
            return run.report

    def interrupt(self) -> None:
        self.interrupt_flag.set()


class _Run:
    """State of one run (one prompt)."""

    def __init__(
        self,
        ex: Executor,
        prompt: dict[str, Any],
        outputs_to_execute: list[str],
        prompt_id: str,
        extra_data: dict[str, Any],
        emit: Callable[[Event], None] | None,
        client_id: str | None,
        keep_values: bool,
    ) -> None:
        self.ex = ex
        self.dp = DynamicPrompt(prompt)
        self.types = NodeTypes(ex.lookup)
        self.targets = list(outputs_to_execute)
        self.prompt_id = prompt_id
        self.extra_data = extra_data
        self._emit = emit
        self.client_id = client_id
        self.keep_values = keep_values
        self.report = ExecutionReport(prompt_id)
        self._is_changed: dict[str, Any] = {}
        self.sigs = SignatureBuilder(self.dp, self.types, self._is_changed_value)
        self.outputs: dict[str, list[list[Any]]] = {}
        self.ui: dict[str, dict[str, Any]] = {}
        self.ui_sent: set[str] = set()  # nodes whose ``executed`` event went out this run
        self.xl = ExecutionList(self.dp, self.types, self.is_available)
        self.running: dict[asyncio.Task[Any], str] = {}
        self.executed: set[str] = set()
        self.failed: set[str] = set()
        self.pending_subgraph: dict[str, list[tuple[bool, Any]]] = {}
        self.progress: dict[str, dict[str, Any]] = {}
        self.progress_running: dict[str, dict[str, Any]] = {}
        self.inflight: dict[str, asyncio.Future[None]] = {}
        #: the inputs of each node while its function runs (an error report shows them)
        self.current_inputs: dict[str, dict[str, list[Any]]] = {}
        self.interrupted = False
        self.check_output: Callable[[str, type, list[list[Any]]], None] | None = None

    # ------------------------------------------------------------------ events
    def emit(self, type_: str, data: dict[str, Any], *, message: bool = False, preview: Preview | None = None) -> None:
        if message:
            data = {**data, "timestamp": timestamp_ms()}
            self.report.messages.append([type_, data])
        if self._emit is not None:
            self._emit(Event(type_, data, self.prompt_id, self.client_id, preview))

    def _ids(self, nid: str) -> dict[str, Any]:
        return {
            "display_node_id": self.dp.get_display_node_id(nid),
            "parent_node_id": self.dp.get_parent_node_id(nid),
            "real_node_id": self.dp.get_real_node_id(nid),
        }

    def _progress_state(self, nid: str, state: str, value: float = 0.0, max_: float = 1.0) -> None:
        # each entry is a new dict, never changed afterwards: messages share entries safely
        entry = {"value": value, "max": max_, "state": state, "node_id": nid, "prompt_id": self.prompt_id, **self._ids(nid)}
        self.progress[nid] = entry
        if state == "running":
            self.progress_running[nid] = entry
        else:
            self.progress_running.pop(nid, None)
        if self._emit is None:
            return
        if len(self.progress) > 200:  # keep payloads linear on huge graphs: running nodes and this one
            nodes = {**self.progress_running, nid: entry}
        else:
            nodes = dict(self.progress)
        self.emit("progress_state", {"prompt_id": self.prompt_id, "nodes": nodes})

    def on_progress(self, nid: str, value: float, total: float, preview: Any) -> None:
        self.emit("progress", {"value": value, "max": total, "prompt_id": self.prompt_id, "node": nid})
        self._progress_state(nid, "running", value, total)
        if preview is not None and self._emit is not None:
            pv = self.ex.hooks.make_preview(preview)
            if pv is not None:
                pv.metadata = {"node_id": nid, "prompt_id": self.prompt_id, **self._ids(nid)}
                self.emit("preview", dict(pv.metadata), preview=pv)

    # ------------------------------------------------------------------ signatures
    def _is_changed_value(self, nid: str) -> Any:
        if nid in self._is_changed:
            return self._is_changed[nid]
        node = self.dp.get_node(nid)
        cls = self.types.cls(node["class_type"])
        value: Any
        try:
            kwargs = {
                k: (None if is_link(v) else v)
                for k, v in (node.get("inputs") or {}).items()
                if self.types.info(node["class_type"], k, node.get("inputs"))[1] is not None
            }
            kwargs.update(self._hidden(nid, node["class_type"]))
            value = cls.IS_CHANGED(**kwargs)  # type: ignore[union-attr]
            if inspect.isawaitable(value):
                value = _await_sync(value)
            if isinstance(value, float) and value != value:
                value = never_equal()
        except Exception:  # noqa: BLE001 - ComfyUI: an IS_CHANGED failure means "always re-run"
            value = never_equal()
        self._is_changed[nid] = value
        return value

    def _cached_entry(self, nid: str) -> CacheEntry | None:
        return self.ex.cache.get(self.sigs.signature(nid))

    def is_available(self, nid: str) -> bool:
        """Output of ``nid`` is known this run (computed, or found in the cache)."""
        if nid in self.outputs:
            return True
        if nid in self.failed:
            return False
        entry = self._cached_entry(nid)
        if entry is None:
            return False
        self.outputs[nid] = entry.outputs
        if entry.ui is not None:
            self.ui[nid] = {"meta": self._meta(nid), "output": entry.ui}
        self.report.node_runs[nid] = NodeRun(cached=True)
        return True

    # ------------------------------------------------------------------ main loop
    async def main(self) -> None:
        """Run to the end; the outcome is ``self.report`` (the coroutine returns nothing, so no
        event-loop machinery ever touches the outputs)."""
        t0 = time.perf_counter()
        self.ex.cache.begin_run()
        self.emit("execution_start", {"prompt_id": self.prompt_id}, message=True)
        cached = [nid for nid in self.dp.original_prompt if self._probe_cached(nid)]
        self.emit("execution_cached", {"nodes": cached, "prompt_id": self.prompt_id}, message=True)
        for out in self.targets:
            self.xl.add_node(out)
        await self._loop()
        self._finish()
        self.report.wall_s = time.perf_counter() - t0

    def _probe_cached(self, nid: str) -> bool:
        try:
            return self.types.cls(self.dp.get_node(nid)["class_type"]) is not None and self.is_available(nid)
        except Exception:  # noqa: BLE001 - a broken node is reported when it runs
            return False

    async def _loop(self) -> None:
        limit = 1 if self.ex.sequential else self.ex.max_workers + 64
        xl = self.xl
        while xl.pending or self.running:
            if len(xl.ready) == 1 and not self.running and not self.interrupted:
                # a lone ready node (long chains): await it directly, no task bookkeeping
                nid = xl.ready.pop()
                xl.running.add(nid)
                outcome = await self._execute_guarded(nid)
                xl.running.discard(nid)
                self._settle(nid, outcome)
                continue
            while xl.ready and len(self.running) < limit and not self.interrupted:
                nid = xl.pick(self._rank)
                if nid not in xl.pending:
                    continue
                task = asyncio.ensure_future(self._execute_guarded(nid))
                self.running[task] = nid
                xl.running.add(nid)
            if not self.running:
                if xl.pending and not self.interrupted:
                    self._fail_cycle()
                    continue
                break
            done, _ = await asyncio.wait(list(self.running), return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                nid = self.running.pop(task)
                xl.running.discard(nid)
                self._settle(nid, task.result())

    def _rank(self, nid: str) -> int:
        """Output and async nodes first (results show sooner; async work starts earlier)."""
        ct = self.dp.get_node(nid)["class_type"]
        cls = self.types.cls(ct)
        return 0 if self.types.is_output(ct) or (cls is not None and _is_async(cls)) else 1

    def _settle(self, nid: str, outcome: Outcome | NodeFailure) -> None:
        if outcome is Outcome.SUCCESS:
            self.xl.complete(nid)
            return
        if outcome is Outcome.PENDING:
            self.xl.requeue(nid)
            return
        failure = outcome
        if not failure.interrupted:
            self._report_error(failure)
        elif not self.interrupted:
            self.interrupted = True
            self.ex.interrupt_flag.set()
            data = {
                "prompt_id": self.prompt_id,
                "node_id": failure.node_id,
                "node_type": failure.node_type,
                "executed": sorted(self.executed),
            }
            self.emit("execution_interrupted", data, message=True)
        self.failed.update(self.xl.drop_downstream(nid))

    def _report_error(self, failure: NodeFailure) -> None:
        real = failure.node_id
        node_type = self.dp.get_node(real)["class_type"] if self.dp.has_node(real) else failure.node_type
        data = {
            "prompt_id": self.prompt_id,
            "node_id": real,
            "node_type": node_type,
            "executed": sorted(self.executed),
            "exception_message": failure.exception_message,
            "exception_type": failure.exception_type,
            "traceback": failure.traceback,
            "current_inputs": failure.current_inputs,
            "current_outputs": sorted(self.outputs),
        }
        self.report.errors.append(dict(data))
        self.emit("execution_error", data, message=True)

    def _fail_cycle(self) -> None:
        cycle = self.xl.nodes_in_cycle() or list(self.xl.pending)
        blamed = cycle[0]
        for nid in cycle:
            display = self.dp.get_display_node_id(nid)
            if display != nid:
                blamed = display
                break
        self._report_error(NodeFailure(blamed, exception_message="Dependency cycle detected",
                                       exception_type="graph.DependencyCycleError", current_inputs=[]))
        for nid in list(cycle):
            self.failed.update(self.xl.drop_downstream(nid))

    def _resend_intermediate_ui(self) -> None:
        """Nodes with ``HAS_INTERMEDIATE_OUTPUT`` that this run did not reach show their cached UI.

        Such a node (an image crop or painter widget) is no execution root, so a run whose
        outputs do not need it leaves it alone; its last result still belongs on the canvas.
        """
        for nid in self.dp.all_node_ids():
            if nid in self.ui_sent or nid in self.executed or nid in self.failed:
                continue
            class_type = self.dp.get_node(nid).get("class_type")
            # a prompt run with validation skipped may hold nodes no class can be told for
            cls = self.types.cls(class_type) if isinstance(class_type, str) else None
            if not getattr(cls, "HAS_INTERMEDIATE_OUTPUT", False):
                continue
            if nid not in self.ui:
                entry = self._cached_entry(nid)
                if entry is None or entry.ui is None:
                    continue
                self.ui[nid] = {"meta": self._meta(nid), "output": entry.ui}
            self._executed_event(nid, self.ui[nid]["output"])

    def _finish(self) -> None:
        if not self.interrupted and not self.report.errors:
            self._resend_intermediate_ui()
        for nid, info in self.ui.items():
            self.report.outputs[nid] = info["output"]
            self.report.meta[nid] = info["meta"]
        if self.interrupted:
            self.report.status = "interrupted"
        elif self.report.errors:
            self.report.status = "error"
        else:
            self.report.status = "success"
            self.emit("execution_success", {"prompt_id": self.prompt_id}, message=True)
        if self.keep_values:
            self.report.values = self.outputs
        self.ex.cache.end_run()
        keep = set(self.dp.all_node_ids())
        for key in [k for k in self.ex.objects if k[0] not in keep]:
            del self.ex.objects[key]
        # The end-of-prompt marker (``executing`` with node None) belongs to the adapter: the
        # server sends it only after the history entry is stored, as ComfyUI clients expect.

    # ------------------------------------------------------------------ one node
    async def _execute_guarded(self, nid: str) -> Outcome | NodeFailure:
        node = self.dp.get_node(nid)
        class_type = node["class_type"]
        try:
            return await self._execute(nid, node, class_type)
        except Interrupted:
            return NodeFailure(self.dp.get_real_node_id(nid), class_type, interrupted=True)
        except Exception as exc:  # noqa: BLE001 - the one boundary where node errors are caught
            return NodeFailure(
                self.dp.get_real_node_id(nid),
                class_type,
                exception_message=f"{exc}",
                exception_type=_full_type_name(type(exc)),
                traceback=traceback.format_tb(exc.__traceback__),
                current_inputs=_format_inputs(self.current_inputs.get(nid)),
            )
        finally:
            self.current_inputs.pop(nid, None)

    def _meta(self, nid: str) -> dict[str, Any]:
        return {
            "node_id": nid,
            "display_node": self.dp.get_display_node_id(nid),
            "parent_node": self.dp.get_parent_node_id(nid),
            "real_node_id": self.dp.get_real_node_id(nid),
        }

    def _executed_event(self, nid: str, ui: dict[str, Any] | None) -> None:
        data = {"node": nid, "display_node": self.dp.get_display_node_id(nid), "output": ui, "prompt_id": self.prompt_id}
        self.ui_sent.add(nid)
        self.emit("executed", data)

    async def _execute(self, nid: str, node: dict[str, Any], class_type: str) -> Outcome:
        cls = self.types.cls(class_type)
        if cls is None:
            raise KeyError(f"node type `{class_type}` is not registered")
        if self.is_available(nid):
            if nid in self.ui:
                self._executed_event(nid, self.ui[nid]["output"])
            self._progress_state(nid, "finished")
            return Outcome.SUCCESS
        if nid in self.pending_subgraph:
            results = resolve_subgraph_outputs(self.pending_subgraph.pop(nid), self.outputs)
            self._store(nid, merge_outputs(results, cls), None, cls)
            return Outcome.SUCCESS
        sig = self.sigs.signature(nid)
        twin = self.inflight.get(sig)
        if twin is not None:  # an identical node is running: share its result
            await twin
            if self.is_available(nid):
                if nid in self.ui:
                    self._executed_event(nid, self.ui[nid]["output"])
                self._progress_state(nid, "finished")
                return Outcome.SUCCESS
        done = asyncio.get_running_loop().create_future()
        self.inflight[sig] = done
        try:
            return await self._compute(nid, node, class_type, cls)
        finally:
            if self.inflight.get(sig) is done:
                del self.inflight[sig]
            done.set_result(None)

    async def _compute(self, nid: str, node: dict[str, Any], class_type: str, cls: type) -> Outcome:
        self.ex.interrupt_flag.check()
        inputs, missing = self._input_data(nid, node, class_type)
        self.emit("executing", {"node": nid, "display_node": self.dp.get_display_node_id(nid), "prompt_id": self.prompt_id})
        self._progress_state(nid, "running")
        obj = self.ex.objects.get((nid, class_type))
        if obj is None:
            obj = cls()
            self.ex.objects[(nid, class_type)] = obj
        if getattr(obj, "check_lazy_status", None) is not None:
            needed = await self._map(nid, cls, obj, inputs, "check_lazy_status", track=False)
            names = {n for r in needed if isinstance(r, list) for n in r}
            required = [n for n in names if isinstance(n, str) and (n not in inputs or n in missing)]
            if required:
                for name in required:
                    self._make_input_strong_link(nid, name)
                return Outcome.PENDING
        run = NodeRun(bytes_in=nbytes_of(inputs))
        self.ex.hooks.peak_memory(True)
        t0 = time.perf_counter()
        self.current_inputs[nid] = inputs
        returns = await self._map(nid, cls, obj, inputs, cls.FUNCTION, track=True)
        run.wall_s = time.perf_counter() - t0
        run.peak_mem = self.ex.hooks.peak_memory(False)
        run.calls = max(1, len(returns))
        output, ui, subgraphs = map_results(returns, cls)
        if self.check_output is not None:
            self.check_output(self.dp.get_real_node_id(nid), cls, output)
        if ui:
            self.ui[nid] = {"meta": self._meta(nid), "output": ui}
            self._executed_event(nid, ui)
        self.report.node_runs[nid] = run
        if subgraphs is not None:
            self._expand(nid, subgraphs)
            return Outcome.PENDING
        run.bytes_out = nbytes_of(output)
        self._store(nid, output, ui or None, cls)
        return Outcome.SUCCESS

    def _store(self, nid: str, output: list[list[Any]], ui: dict[str, Any] | None, cls: type) -> None:
        self.outputs[nid] = output
        self.executed.add(nid)
        if ui is None and nid in self.ui:
            ui = self.ui[nid]["output"]
        self.ex.cache.put(self.sigs.signature(nid), CacheEntry(output, ui))
        self._progress_state(nid, "finished")

    def _make_input_strong_link(self, nid: str, name: str) -> None:
        inputs = self.dp.get_node(nid)["inputs"]
        if name not in inputs:
            raise KeyError(f"node `{nid}` says it needs input `{name}`, but there is no input to that node at all")
        value = inputs[name]
        if not is_link(value):
            raise ValueError(f"node `{nid}` says it needs input `{name}`, but that value is a constant")
        self.xl.add_strong_link(value[0], int(value[1]), nid)

    def _hidden(self, nid: str, class_type: str) -> dict[str, Any]:
        declared = self.types.input_types(class_type)
        hidden = declared.get("hidden") or {}
        out: dict[str, Any] = {}
        for name, kind in ((n, hidden_kind(k)) for n, k in hidden.items()):
            if name in (declared.get("required") or {}) or name in (declared.get("optional") or {}):
                continue  # a real input of that name wins over a hidden value
            if kind == "PROMPT":
                out[name] = self.dp.get_original_prompt()
            elif kind == "DYNPROMPT":
                out[name] = self.dp
            elif kind == "EXTRA_PNGINFO":
                out[name] = self.extra_data.get("extra_pnginfo")
            elif kind == "UNIQUE_ID":
                out[name] = nid
            elif kind == "AUTH_TOKEN_COMFY_ORG":
                out[name] = self.extra_data.get("auth_token_comfy_org")
            elif kind == "API_KEY_COMFY_ORG":
                out[name] = self.extra_data.get("api_key_comfy_org")
            elif kind == "COMFY_USAGE_SOURCE":
                out[name] = self.extra_data.get("comfy_usage_source")
        return out

    def _input_data(self, nid: str, node: dict[str, Any], class_type: str) -> tuple[dict[str, list[Any]], set[str]]:
        data: dict[str, list[Any]] = {}
        missing: set[str] = set()
        # a node that accepts all inputs also gets the constants its declaration does not name
        accept_all = bool(getattr(self.types.cls(class_type), "ACCEPT_ALL_INPUTS", False))
        for name, value in (node.get("inputs") or {}).items():
            _, section, opts = self.types.info(class_type, name, node.get("inputs"))
            if is_link(value) and not opts.get("rawLink", False):
                out = self.outputs.get(value[0])
                slot = int(value[1])
                if out is None or slot >= len(out):
                    missing.add(name)
                    data[name] = [None]
                    continue
                data[name] = out[slot]
            elif section is not None or accept_all:
                data[name] = [value]
        for name, value in self._hidden(nid, class_type).items():
            data[name] = [value]
        return data, missing

    def _without_absent_hidden(self, nid: str, fn: Any, inputs: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """INPUT_IS_LIST nodes get no ``[None]`` for a hidden input nobody gave (``extra_pnginfo``
        of an API run): the parameter's own default applies, as pack code expects."""
        hidden = self.types.input_types(self.dp.get_node(nid)["class_type"]).get("hidden") or {}
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            return inputs
        absent = {
            name for name in hidden
            if inputs.get(name) == [None] and name in params and params[name].default is not inspect.Parameter.empty
        }
        return {k: v for k, v in inputs.items() if k not in absent} if absent else inputs

    async def _map(self, nid: str, cls: type, obj: Any, inputs: dict[str, list[Any]], func: str, *, track: bool) -> list[Any]:
        """Call ``obj.func`` over the input lists (ComfyUI's list semantics)."""
        fn = getattr(obj, func)
        input_is_list = getattr(cls, "INPUT_IS_LIST", False)
        if input_is_list:
            calls = [(0, self._without_absent_hidden(nid, fn, inputs))]
        else:
            n = max((len(v) for v in inputs.values()), default=0)
            calls = [(i, {k: v[i if len(v) > i else -1] for k, v in inputs.items()}) for i in range(n)] if n else [(0, {})]
        ctx = NodeContext(
            node_id=nid,
            prompt_id=self.prompt_id,
            interrupt=self.ex.interrupt_flag,
            display_node_id=self.dp.get_display_node_id(nid),
            real_node_id=self.dp.get_real_node_id(nid),
            parent_node_id=self.dp.get_parent_node_id(nid),
            class_type=self.dp.get_node(nid)["class_type"],
            services=self.ex.hooks.services,
            progress_sink=self.on_progress,
        )
        blocked: dict[int, Any] = {}
        todo: list[tuple[int, dict[str, Any]]] = []
        for index, kwargs in calls:
            block = _find_blocker(kwargs, input_is_list)
            if block is not None:
                blocked[index] = self._on_block(nid, block) if track else block
            else:
                todo.append((index, kwargs))
        results: dict[int, Any] = dict(blocked)
        if inspect.iscoroutinefunction(fn):
            results.update(await self._map_async(nid, fn, ctx, todo))
        elif todo and (self.ex.sequential or (len(self.running) <= 1 and not self.xl.ready)):
            # nothing else can run meanwhile: skip the thread hop (keeps long chains cheap, and
            # torch work on the one thread that already has its OpenMP team)
            results.update(self._map_sync(nid, cls, fn, ctx, todo, 1, True))
        elif todo:
            results.update(await self.ex.offload(self._map_sync, nid, cls, fn, ctx, todo, max(1, len(self.running)), False))
        return [results[i] for i, _ in calls]

    def _on_block(self, nid: str, block: ExecutionBlocker) -> ExecutionBlocker:
        if block.message is None:
            return block
        data = {
            "prompt_id": self.prompt_id,
            "node_id": nid,
            "node_type": self.dp.get_node(nid)["class_type"],
            "executed": sorted(self.executed),
            "exception_message": f"Execution Blocked: {block.message}",
            "exception_type": "ExecutionBlocked",
            "traceback": [],
            "current_inputs": [],
            "current_outputs": [],
        }
        self.emit("execution_error", data, message=True)
        return ExecutionBlocker(None)

    def _map_sync(self, nid: str, cls: type, fn: Any, ctx: NodeContext, todo: list[tuple[int, dict[str, Any]]],
                  running: int, alone: bool) -> dict[int, Any]:
        """Call a sync node over ``todo``: ``alone`` on the executing thread, else on a pool
        thread, handed over while ``running`` nodes ran."""
        from nodeloom.core.context import activate_services

        self.ex.hooks.share_threads(running, alone)
        lock = self.ex.hooks.device_lock_for(cls)
        out: dict[int, Any] = {}
        with contextlib.ExitStack() as stack:
            stack.enter_context(activate_services(self.ex.hooks.services))
            stack.enter_context(node_context(ctx))
            stack.enter_context(self.ex.hooks.call_context())
            if lock is not None:
                stack.enter_context(lock)
            for index, kwargs in todo:
                self.ex.interrupt_flag.check()
                with prefix_scope(nid, index):
                    out[index] = fn(**kwargs)
        return out

    async def _map_async(self, nid: str, fn: Any, ctx: NodeContext, todo: list[tuple[int, dict[str, Any]]]) -> dict[int, Any]:
        async def call(index: int, kwargs: dict[str, Any]) -> Any:
            with node_context(ctx), prefix_scope(nid, index):
                return await fn(**kwargs)

        self.ex.interrupt_flag.check()
        tasks = [asyncio.ensure_future(call(i, kw)) for i, kw in todo]
        try:
            values = await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            raise
        return {i: v for (i, _), v in zip(todo, values)}

    def _expand(self, nid: str, subgraphs: list[tuple[dict[str, Any] | None, Any]]) -> None:
        new_ids: list[str] = []
        new_outputs: list[str] = []
        links: list[tuple[str, int]] = []
        cached: list[tuple[bool, Any]] = []
        for graph, results in subgraphs:
            if graph is None:
                cached.append((False, results))
                continue
            for new_id in graph:
                if self.dp.has_node(new_id):
                    raise _DuplicateNode(
                        f"Attempt to add duplicate node {new_id}. Ensure node ids are unique and deterministic or use GraphBuilder."
                    )
            for new_id, info in graph.items():
                display = info.get("override_display_id", nid)
                self.dp.add_ephemeral_node(new_id, info, nid, display)
                new_ids.append(new_id)
                if self.types.is_output(info["class_type"]):
                    new_outputs.append(new_id)
            for r in results or ():
                if is_link(r):
                    links.append((r[0], int(r[1])))
            cached.append((True, results))
        for new_id in new_outputs:
            self.xl.add_node(new_id)
        for src, slot in links:
            self.xl.add_strong_link(src, slot, nid)
        self.pending_subgraph[nid] = cached


def _find_blocker(kwargs: dict[str, Any], input_is_list: bool) -> ExecutionBlocker | None:
    for value in kwargs.values():
        if input_is_list and isinstance(value, list):
            for item in value:
                if isinstance(item, ExecutionBlocker):
                    return item
        if isinstance(value, ExecutionBlocker):
            return value
    return None


def _is_async(cls: type) -> bool:
    fn = getattr(cls, getattr(cls, "FUNCTION", ""), None)
    return fn is not None and inspect.iscoroutinefunction(fn)


def _await_sync(awaitable: Any) -> Any:
    async def wrap() -> Any:
        return await awaitable

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, wrap()).result()


def _full_type_name(klass: type) -> str:
    module = klass.__module__
    return klass.__qualname__ if module == "builtins" else f"{module}.{klass.__qualname__}"


def _format_inputs(inputs: dict[str, list[Any]] | None) -> dict[str, list[Any]]:
    def fmt(x: Any) -> Any:
        if x is None or isinstance(x, (int, float, bool, str)):
            return x
        return str(x)[:200]

    return {k: [fmt(x) for x in v] for k, v in (inputs or {}).items()}
