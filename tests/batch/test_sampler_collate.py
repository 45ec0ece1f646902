"""Sampler (sequential, shuffled, shards) and collate (bucketing by size, padding with a mask)."""

from __future__ import annotations

import pytest
import torch

from nodeloom.batch.collate import bucket_collate, get_collate, pad_collate
from nodeloom.batch.sampler import ItemSampler, chunk_indices, parse_shard
from nodeloom.errors import ValidationError


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("n", [1, 3, 4])
def test_shards_cover_the_set_exactly_once(shuffle, n):
    size = 23
    shards = [ItemSampler(size, shuffle=shuffle, seed=7, shard=(i, n)).order() for i in range(n)]
    every = [p for s in shards for p in s]
    assert sorted(every) == list(range(size))  # each position once: no padding, no gap
    assert max(len(s) for s in shards) - min(len(s) for s in shards) <= 1


def test_shuffle_is_seeded_and_sequential_is_ordered():
    a = ItemSampler(50, shuffle=True, seed=1).order()
    assert a == ItemSampler(50, shuffle=True, seed=1).order()
    assert a != ItemSampler(50, shuffle=True, seed=2).order() and sorted(a) == list(range(50))
    assert list(ItemSampler(5)) == [0, 1, 2, 3, 4] and len(ItemSampler(5)) == 5


def test_allowed_filters_after_the_shard_split():
    full = ItemSampler(10, shard=(1, 3)).order()
    assert full == [1, 4, 7]
    assert ItemSampler(10, shard=(1, 3), allowed={4, 5, 7}).order() == [4, 7]


def test_bad_shard_and_batch_size():
    assert parse_shard("2/5") == (2, 5)
    for text in ("5/5", "1", "a/b", "0/0"):
        with pytest.raises(ValidationError, match="--shard"):
            parse_shard(text)
    with pytest.raises(ValidationError, match="batch_size"):
        chunk_indices([1, 2], 0)
    assert chunk_indices([5, 6, 7], 2) == [[5, 6], [7]]


def _item(index, h, w, value=0):
    return {"index": index, "id": f"i{index}", "ok": True,
            "fields": {"image": torch.full((h, w, 3), value, dtype=torch.uint8), "name": f"n{index}", "index": index}}


def test_bucketing_collate_groups_sizes():
    batch = [_item(0, 8, 8), _item(1, 4, 6), _item(2, 8, 8, 255), _item(3, 4, 6),
             {"index": 4, "id": "bad", "ok": False, "reason": "broken"}]
    out = bucket_collate(batch)
    assert [s["indices"] for s in out["batches"]] == [[0, 2], [1, 3]]
    first, second = out["batches"]
    assert tuple(first["fields"]["image"].shape) == (2, 8, 8, 3) and first["fields"]["image"].dtype == torch.uint8
    assert int(first["fields"]["image"][1].max()) == 255 and int(first["fields"]["image"][0].max()) == 0
    assert tuple(second["fields"]["image"].shape) == (2, 4, 6, 3)
    assert first["fields"]["name"] == ["n0", "n2"] and first["mask"] is None
    assert first["key"] != second["key"]
    assert [f["id"] for f in out["failed"]] == ["bad"]


def test_pad_collate_pads_with_a_mask():
    out = pad_collate([_item(0, 8, 8, 255), _item(1, 4, 6, 255)])
    (sub,) = out["batches"]
    assert tuple(sub["fields"]["image"].shape) == (2, 8, 8, 3)
    mask = sub["mask"]
    assert mask.dtype == torch.bool and int(mask[0].sum()) == 64 and int(mask[1].sum()) == 24
    assert int(sub["fields"]["image"][1, 5:, :].sum()) == 0 and int(sub["fields"]["image"][1, :4, :6].min()) == 255


def test_items_without_images_run_one_per_batch():
    rows = [{"index": i, "id": f"r{i}", "ok": True, "fields": {"prompt": f"p{i}", "index": i}} for i in range(3)]
    out = get_collate("bucket")(rows)
    assert [s["fields"]["prompt"] for s in out["batches"]] == [["p0"], ["p1"], ["p2"]]
    with pytest.raises(ValidationError, match="collate"):
        get_collate("stack")


class _Items(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        return _item(index, 8, 8, 60 * index)


@pytest.mark.parametrize("collate", ["bucket", "pad"])
def test_worker_batches_arrive_in_shared_memory_as_uint8(collate):
    loader = torch.utils.data.DataLoader(_Items(), batch_sampler=[[0, 1], [2, 3]], num_workers=1,
                                         collate_fn=get_collate(collate))
    firsts = []
    for loaded in loader:
        (sub,) = loaded["batches"]
        image = sub["fields"]["image"]
        # allocated in shared memory inside the worker: handing it over copied nothing
        assert image.dtype == torch.uint8 and image.is_shared()
        if collate == "pad":
            assert sub["mask"].dtype == torch.bool and bool(sub["mask"].all())
        firsts += [int(image[k, 0, 0, 0]) for k in range(2)]
    assert firsts == [0, 60, 120, 180]
