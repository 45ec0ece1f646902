"""Cache policies: byte-bounded LRU eviction, item bound, signatures."""

from __future__ import annotations

import numpy as np

from nodeloom import Engine
from nodeloom.core.cache import CacheEntry, LRUCache, nbytes_of
from nodeloom.core.registry import PackInfo


def test_nbytes_counts_tensors_and_arrays():
    import torch

    t = torch.zeros(10, 10, dtype=torch.float32)
    a = np.zeros(100, dtype=np.float64)
    assert nbytes_of([[t], [a]]) == 400 + 800
    assert nbytes_of([[t, t]]) == 400  # shared storage counted once
    assert nbytes_of({"samples": t, "noise_mask": None}) == 400


def test_lru_evicts_least_recent_when_over_byte_budget():
    cache = LRUCache(max_bytes=3500)
    for key in "abc":
        cache.put(key, CacheEntry([[np.zeros(1000, dtype=np.uint8)]], None))
    cache.get("a")  # a becomes most recent
    cache.put("d", CacheEntry([[np.zeros(1000, dtype=np.uint8)]], None))
    assert cache.get("b") is None
    assert all(cache.get(k) is not None for k in "acd")
    assert cache.total_bytes == 3000 and cache.evictions == 1


def test_lru_item_bound():
    cache = LRUCache(max_bytes=None, max_items=2)
    for key in "abc":
        cache.put(key, CacheEntry([[1]], None))
    assert len(cache) == 2 and cache.get("a") is None


class MakeArray:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT",)}}

    RETURN_TYPES = ("ARRAY",)
    FUNCTION = "run"
    runs = 0

    def run(self, seed):
        MakeArray.runs += 1
        return (np.full(1_000_000, seed, dtype=np.uint8),)


class Keep:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("ARRAY",)}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, x):
        return {"ui": {"sum": [int(x[0])]}}


def test_engine_lru_bytes_bound_evicts_old_results(tmp_path):
    eng = Engine(base_dir=tmp_path, builtin_packs=False, cache="lru", cache_bytes=2_500_000)
    eng.registry.register_pack(PackInfo("arr", "arr"), {"MakeArray": MakeArray, "Keep": Keep})
    MakeArray.runs = 0

    def prompt(seed):
        return {"1": {"class_type": "MakeArray", "inputs": {"seed": seed}}, "2": {"class_type": "Keep", "inputs": {"x": ["1", 0]}}}

    for seed in (1, 2, 1):
        eng.run(prompt(seed))
    assert MakeArray.runs == 2  # seed 1 still cached (2 MB fit)
    for seed in (3, 4, 1):
        eng.run(prompt(seed))
    assert MakeArray.runs == 5  # seed 1 evicted after 3 and 4 filled the budget
    assert eng.cache.total_bytes <= 2_500_000
    eng.close()
