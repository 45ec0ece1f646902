"""The execution list: which nodes still have to run and which of them may run now.

A topological dissolve of the running graph with ComfyUI's "strong link" rule: a node is
blocked by each linked source whose output is not available yet (lazy inputs only once the
node asks for them). Nodes that become unblocked enter ``ready``; a failed node takes its
waiting descendants with it. No I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from nodeloom.core.graph import DynamicPrompt, NodeTypes
from nodeloom.core.graph_builder import is_link

__all__ = ["ExecutionList"]


class ExecutionList:
    """Pending nodes, their blockers, and the ready set.

    Args:
        prompt: the running graph.
        types: the run's node-type view (lazy flags).
        is_available: whether a node's outputs are known (computed or cached).
    """

    def __init__(self, prompt: DynamicPrompt, types: NodeTypes, is_available: Callable[[str], bool]) -> None:
        self.prompt = prompt
        self.types = types
        self.is_available = is_available
        self.pending: dict[str, bool] = {}
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, dict[str, set[int]]] = {}
        self.ready: list[str] = []
        self.running: set[str] = set()

    def _mark_ready(self, nid: str) -> None:
        if self.block_count.get(nid) == 0 and nid in self.pending and nid not in self.ready and nid not in self.running:
            self.ready.append(nid)

    def add_node(self, root: str, include_lazy: bool = False, subgraph: set[str] | None = None) -> None:
        """Add ``root`` and every non-lazy ancestor whose output is not available."""
        stack = [root]
        links: list[tuple[str, int, str]] = []
        while stack:
            nid = stack.pop()
            if nid in self.pending:
                continue
            self.pending[nid] = True
            self.block_count[nid] = 0
            self.blocking[nid] = {}
            node = self.prompt.get_node(nid)
            for name, value in (node.get("inputs") or {}).items():
                if not is_link(value):
                    continue
                src, slot = value[0], int(value[1])
                if (subgraph is not None and src not in subgraph) or not self.prompt.has_node(src):
                    continue
                lazy = self.types.is_lazy(node["class_type"], name, node.get("inputs"))
                if (include_lazy or not lazy) and not self.is_available(src):
                    stack.append(src)
                    links.append((src, slot, nid))
        for src, slot, dst in links:
            self.add_strong_link(src, slot, dst)
        self._mark_ready(root)
        for src, _, _ in links:
            self._mark_ready(src)

    def add_strong_link(self, src: str, slot: int, dst: str) -> None:
        """Make ``dst`` wait for ``src`` (adding ``src`` when it is not pending yet)."""
        if self.is_available(src):
            return
        if src not in self.pending:
            self.add_node(src)
        if dst not in self.blocking[src]:
            self.blocking[src][dst] = set()
            self.block_count[dst] += 1
            if dst in self.ready:
                self.ready.remove(dst)
        self.blocking[src][dst].add(slot)

    def complete(self, nid: str) -> None:
        """``nid`` produced its outputs: unblock what waited on it."""
        del self.pending[nid]
        for dst in self.blocking.pop(nid, {}):
            self.block_count[dst] -= 1
            if self.block_count[dst] == 0 and dst in self.pending:
                self.ready.append(dst)

    def requeue(self, nid: str) -> None:
        """``nid`` returned pending (new dependencies): ready again once they are done."""
        self._mark_ready(nid)

    def drop_downstream(self, nid: str) -> list[str]:
        """Remove ``nid`` and everything waiting on it; returns the removed ids."""
        removed = []
        stack = [nid]
        while stack:
            cur = stack.pop()
            if cur not in self.pending:
                continue
            del self.pending[cur]
            removed.append(cur)
            if cur in self.ready:
                self.ready.remove(cur)
            stack.extend(self.blocking.pop(cur, {}))
        return removed

    def pick(self, rank: Callable[[str], int]) -> str:
        """Take the ready node of lowest rank (first come among equals)."""
        best = min(range(len(self.ready)), key=lambda i: rank(self.ready[i]))
        return self.ready.pop(best)

    def nodes_in_cycle(self) -> list[str]:
        """Pending nodes left once every node that could eventually run is peeled away."""
        blocked_by: dict[str, set[str]] = {nid: set() for nid in self.pending}
        for src, dsts in self.blocking.items():
            for dst in dsts:
                if dst in blocked_by and src in self.pending:
                    blocked_by[dst].add(src)
        changed = True
        while changed:
            free = [n for n, deps in blocked_by.items() if not deps]
            changed = bool(free)
            for n in free:
                del blocked_by[n]
                for deps in blocked_by.values():
                    deps.discard(n)
        return list(blocked_by)
