"""Which items a batch run visits, in what order, and how they group into loader batches.

:class:`ItemSampler` is a ``torch.utils.data.Sampler``: sequential, shuffled with a seed, and
shard ``i`` of ``n`` the way ``DistributedSampler`` splits (the shuffled order is the same on
every shard, shard ``i`` takes positions ``i, i+n, ...``) except that nothing is padded, so
the shards cover the set exactly once. No decoding, engine or journal here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch
from torch.utils.data import Sampler

from nodeloom.errors import ValidationError

__all__ = ["ItemSampler", "chunk_indices", "parse_shard"]


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → ``(i, n)`` with ``0 ≤ i < n``.

    Raises:
        ValidationError: any other form.
    """
    i, sep, n = text.partition("/")
    if not sep or not i.isdigit() or not n.isdigit() or int(n) < 1 or int(i) >= int(n):
        raise ValidationError(f"`--shard` must be i/n with 0 ≤ i < n (e.g. 0/4), got {text!r}")
    return int(i), int(n)


class ItemSampler(Sampler[int]):
    """Yield dataset positions: all, or one shard; in order or shuffled with a seed.

    Args:
        size: number of items in the dataset.
        shuffle: permute with ``torch.Generator().manual_seed(seed)`` (same on all shards).
        seed: the permutation seed.
        shard: ``(i, n)``: keep positions ``i, i+n, i+2n, ...`` of the (shuffled) order.
        allowed: when given, skip positions outside it (done items on resume), after the
            shard split so that shards stay stable across resumes.

    Raises:
        ValidationError: a negative size or a bad shard.
    """

    def __init__(
        self,
        size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        shard: tuple[int, int] = (0, 1),
        allowed: Iterable[int] | None = None,
    ) -> None:
        if size < 0:
            raise ValidationError(f"`size` must be ≥ 0, got {size}")
        i, n = shard
        if n < 1 or not 0 <= i < n:
            raise ValidationError(f"`shard` must be (i, n) with 0 ≤ i < n, got {shard}")
        self.size, self.shuffle, self.seed, self.shard = size, shuffle, seed, (i, n)
        self.allowed = None if allowed is None else frozenset(allowed)

    def order(self) -> list[int]:
        """Every position this sampler yields, in order."""
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed)
            base = torch.randperm(self.size, generator=gen).tolist()
        else:
            base = list(range(self.size))
        i, n = self.shard
        mine = base[i::n]
        return mine if self.allowed is None else [p for p in mine if p in self.allowed]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order())

    def __len__(self) -> int:
        return len(self.order())


def chunk_indices(order: Sequence[int], batch_size: int) -> list[list[int]]:
    """Split an order into consecutive loader batches of at most ``batch_size`` positions.

    Raises:
        ValidationError: ``batch_size`` < 1.
    """
    if batch_size < 1:
        raise ValidationError(f"`batch_size` must be ≥ 1, got {batch_size}")
    return [list(order[k : k + batch_size]) for k in range(0, len(order), batch_size)]
