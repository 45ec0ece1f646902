import torch

from nodeloom.models.manager import ModelManager


def test_prepare_on_cpu_keeps_float32_and_tracks_the_module():
    mgr = ModelManager(device="cpu")
    lin = torch.nn.Linear(4, 4).half()
    assert mgr.prepare(lin) is lin and lin.weight.dtype == torch.float32
    assert mgr.offload() == 1 and mgr.offload() == 0


def test_host_memory_pressure_evicts_least_recently_used():
    mgr = ModelManager(device="cpu", min_free_host_bytes=1 << 62)  # always "short of memory"
    mgr.load(("a",), lambda: torch.nn.Linear(2, 2))
    mgr.load(("b",), lambda: torch.nn.Linear(2, 2))
    assert [m.key for m in mgr.loaded()] == [("b",)]


def test_budget_eviction_and_free():
    mgr = ModelManager(device="cpu", budget_bytes=100)
    for key in ("a", "b", "c"):
        mgr.load((key,), lambda: torch.nn.Linear(4, 4))  # 80 bytes each
    assert [m.key for m in mgr.loaded()] == [("c",)]
    assert mgr.free() == 1 and mgr.loaded() == []
