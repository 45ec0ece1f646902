"""Torch's CPU threads per node thread: every core for a node running alone on the executing
thread, a share of them for nodes running beside each other on pool threads, and nothing but
the calling thread in a sequential engine."""

from __future__ import annotations

import threading

import pytest

torch = pytest.importorskip("torch")

from nodeloom import Engine  # noqa: E402
from nodeloom.core.registry import PackInfo  # noqa: E402
from nodeloom.ops import torch_threads  # noqa: E402

SEEN: dict[str, tuple[int, str]] = {}
BARRIER: list[threading.Barrier] = []


class _Probe:
    """Records the torch threads and the OS thread it ran with; waits for its sibling when asked."""

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "test"

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 - ComfyUI's name
        return {"required": {"tag": ("STRING", {}), "meet": ("BOOLEAN", {}), "after": ("INT", {})}}

    def run(self, tag: str, meet: bool, after: int):
        if meet:
            BARRIER[0].wait()  # both branches are running at this moment
        torch.ones(4096).mul_(2).sum()  # a parallel torch op on this thread
        SEEN[tag] = (torch.get_num_threads(), threading.current_thread().name)
        return (after + 1,)


class _Out:
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "test"

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"a": ("INT", {}), "b": ("INT", {})}}

    def run(self, a: int, b: int):
        return {"ui": {"sum": [a + b]}}


def _engine(tmp_path, **kw) -> Engine:
    eng = Engine(base_dir=tmp_path, builtin_packs=False, **kw)
    eng.registry.register_pack(PackInfo("probe", __name__), {"Probe": _Probe, "ProbeOut": _Out})
    return eng


def _graph(meet: bool) -> dict:
    def probe(tag: str, after):
        together = meet and tag in ("a", "b")  # only the two branches wait for each other
        return {"class_type": "Probe", "inputs": {"tag": tag, "meet": together, "after": after}}

    return {"first": probe("first", 0),
            "a": probe("a", ["first", 0]), "b": probe("b", ["first", 0]),
            "last": probe("last", ["a", 0]),
            "out": {"class_type": "ProbeOut", "inputs": {"a": ["last", 0], "b": ["b", 0]}}}


@pytest.fixture
def full():
    before = torch.get_num_threads()
    full = torch_threads.remember_full_threads()
    assert full is not None
    yield full
    torch.set_num_threads(before)


def test_branches_share_the_cores_and_a_lone_node_gets_them_all(tmp_path, full):
    SEEN.clear()
    BARRIER[:] = [threading.Barrier(2, timeout=20)]
    with _engine(tmp_path) as eng:
        assert eng.run(_graph(meet=True)).ok
    share = max(1, full // 2)
    assert SEEN["a"][0] == share and SEEN["b"][0] == share
    assert SEEN["a"][1].startswith("nodeloom-node") and SEEN["b"][1].startswith("nodeloom-node")
    # the branches' pool threads changed torch's default; the executing thread sets its own back
    me = threading.current_thread().name
    for tag in ("first", "last"):
        threads, name = SEEN[tag]
        if name == me:  # the usual placement of a lone node: the executing thread, every core
            assert threads == full, tag
        else:  # handed to a pool thread (seen once inside a whole-suite run): that thread's share
            assert name.startswith("nodeloom-node") and 1 <= threads <= full, SEEN[tag]


def test_a_sequential_engine_runs_every_node_on_the_calling_thread(tmp_path, full):
    SEEN.clear()
    with _engine(tmp_path, sequential=True) as eng:
        assert eng.run(_graph(meet=False)).ok
    me = threading.current_thread().name
    assert {tag: seen for tag, seen in SEEN.items()} == {t: (full, me) for t in ("first", "a", "b", "last")}


def test_use_threads_refuses_a_count_below_one(full):
    with pytest.raises(ValueError, match="running"):
        torch_threads.use_threads(0, alone_thread=False)
    assert torch_threads.use_threads(10**6, alone_thread=False) == 1
    assert torch_threads.use_threads(1, alone_thread=True) == full


def test_a_lowered_share_of_the_machine_is_kept_on_the_executing_thread(tmp_path, full):
    """A batch run that leaves cores to its decoding workers lowers the figure for every node."""
    SEEN.clear()
    torch_threads.set_full_threads(1)
    try:
        with _engine(tmp_path, sequential=True) as eng:
            assert eng.run(_graph(meet=False)).ok
        assert {seen[0] for seen in SEEN.values()} == {1}
        with pytest.raises(ValueError, match="count"):
            torch_threads.set_full_threads(0)
    finally:
        torch_threads.set_full_threads(full)
