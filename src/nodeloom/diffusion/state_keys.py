"""Reading sizes off a state dict's key names, shared by the model-file loaders."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["indexed_count"]


def indexed_count(keys: Iterable[str], pattern: str) -> int:
    """How many numbered groups ``pattern`` names: one more than the largest index its first group
    matches at the start of a key (``r"blocks\\.(\\d+)\\."`` over ``blocks.0.*``…``blocks.7.*`` → 8),
    0 when no key matches."""
    found = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0
