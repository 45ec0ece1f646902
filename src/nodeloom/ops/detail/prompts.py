"""Per-segment prompt routing (``[SEP]``, ``[SKIP]``, ``[PROMPT]``) and order-independent seeds.

Routing follows ADetailer: the text is split on ``[SEP]``; segment *i* takes part
``min(i, parts - 1)``; an empty part means "the main prompt"; ``[PROMPT]`` inside a part is
replaced by the main prompt; a part that is only ``[SKIP]`` leaves that segment untouched.
Pure Python.
"""

from __future__ import annotations

import hashlib
import re

from nodeloom.ops.detail.segs import Box

__all__ = ["SKIP", "box_seed", "route_prompt", "split_prompts"]

SKIP = None
_SEP = re.compile(r"\s*\[SEP\]\s*")
_SKIP = re.compile(r"^\s*\[SKIP\]\s*$")


def split_prompts(text: str) -> list[str]:
    """The ``[SEP]``-separated parts of ``text`` (at least one, maybe empty)."""
    return _SEP.split(text or "")


def route_prompt(text: str, index: int, main: str = "") -> str | None:
    """The prompt of segment ``index``.

    Args:
        text: the per-segment prompt text with optional ``[SEP]``/``[SKIP]``/``[PROMPT]``.
        index: the segment's position (0-based) in processing order.
        main: the main prompt (used for empty parts and ``[PROMPT]``).

    Returns:
        The routed prompt, or ``None`` when the segment is to be skipped. An empty string
        means "no prompt of its own: use the main conditioning".
    """
    parts = split_prompts(text)
    part = parts[min(index, len(parts) - 1)]
    if _SKIP.match(part):
        return SKIP
    if not part.strip():
        return main
    return part.replace("[PROMPT]", main).strip()


def box_seed(seed: int, bbox: Box, quantum: int = 8) -> int:
    """A seed derived from ``seed`` and the box centre, so it does not depend on list order.

    Args:
        seed: the base seed.
        bbox: ``(x1, y1, x2, y2)``.
        quantum: the centre is snapped to this grid so a box that moves by a pixel or two
            keeps its seed.

    Returns:
        A seed in ``[0, 2**63)``.
    """
    q = max(1, int(quantum))
    cx = int(round((bbox[0] + bbox[2]) / 2.0 / q))
    cy = int(round((bbox[1] + bbox[3]) / 2.0 / q))
    digest = hashlib.blake2b(f"{int(seed)}:{cx}:{cy}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & ((1 << 63) - 1)
