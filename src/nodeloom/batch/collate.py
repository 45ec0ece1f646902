"""Collate decoded items into real batches for the workflow.

A loader batch is a list of item dicts from :class:`~nodeloom.batch.dataset.BatchDataset`.
:func:`bucket_collate` splits it into sub-batches of equal image size (so an IMAGE input gets
a genuine ``[B,H,W,3]`` tensor); :func:`pad_collate` keeps one batch and pads smaller images
with zeros, handing a MASK of the valid pixels. Items without an image run one per batch
(their fields become constants of the workflow). Failed items pass through untouched.
Runs inside DataLoader workers; plain dicts and tensors only, so results pickle and pin.
Pixels stay uint8 (a quarter of float32's bytes to hand between processes); inside a worker
the batch tensor is allocated in shared memory at once, so handing it over copies nothing.
``BatchInput`` turns them into the float32 0..1 IMAGE the graph expects.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


import torch
from torch.utils.data import get_worker_info

from nodeloom.errors import ValidationError

__all__ = ["COLLATE_MODES", "bucket_collate", "get_collate", "pad_collate"]


def _sub_batch(items: list[dict[str, Any]], image: torch.Tensor | None, mask: torch.Tensor | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in items[0]["fields"]:
        if name != "image":
            fields[name] = [it["fields"].get(name) for it in items]
    if image is not None:
        fields["image"] = image
    return {
        "key": f"b{items[0]['index']}x{len(items)}",
        "indices": [it["index"] for it in items],
        "ids": [it["id"] for it in items],
        "fields": fields,
        "mask": mask,
    }


def _empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A zeroed tensor; in a DataLoader worker its storage is shared memory from the start.

    A tensor in ordinary memory would be copied into shared memory when the worker hands it
    to the main process; allocating it there avoids that copy (as PyTorch's default collate does).
    """
    if get_worker_info() is None:
        return torch.zeros(shape, dtype=dtype)
    numel = math.prod(shape)
    storage = torch.UntypedStorage._new_shared(numel * torch.empty((), dtype=dtype).element_size())
    return torch.empty(0, dtype=dtype).set_(storage, 0, shape).zero_()


def _stack(pixels: list[torch.Tensor]) -> torch.Tensor:
    """uint8 ``[H,W,3]`` images → one uint8 ``[B,H,W,3]`` tensor, written once."""
    out = _empty((len(pixels), *pixels[0].shape), torch.uint8)
    for k, px in enumerate(pixels):
        out[k].copy_(px)
    return out


def _split(batch: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    ok = [it for it in batch if it["ok"]]
    failed = [it for it in batch if not it["ok"]]
    with_image = [it for it in ok if "image" in it["fields"]]
    without = [it for it in ok if "image" not in it["fields"]]
    return with_image, without, failed


def bucket_collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Group items by image size; each group becomes one sub-batch.

    Args:
        batch: item dicts (``ok`` ones carry ``fields``; images uint8 ``[H,W,3]``).

    Returns:
        ``{"batches": [sub-batch, ...], "failed": [item, ...]}``; a sub-batch is
        ``{"key", "indices", "ids", "fields", "mask": None}`` with ``fields["image"]`` a
        uint8 ``[B,H,W,3]`` tensor and every other field a list (one value per item).
        Groups keep the order of their first item; items keep their order inside a group.
    """
    with_image, without, failed = _split(batch)
    groups: dict[tuple[int, ...], list[dict[str, Any]]] = {}
    for it in with_image:
        groups.setdefault(tuple(it["fields"]["image"].shape), []).append(it)
    subs = [_sub_batch(g, _stack([it["fields"]["image"] for it in g]), None) for g in groups.values()]
    subs += [_sub_batch([it], None, None) for it in without]
    subs.sort(key=lambda s: s["indices"][0])
    return {"batches": subs, "failed": failed}


def pad_collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Pad every image to the largest height and width (zeros at the bottom/right).

    Returns:
        Like :func:`bucket_collate`, with one sub-batch for all images whose ``mask`` is a
        bool ``[B,H,W]`` tensor: true on each item's own pixels, false on padding.
    """
    with_image, without, failed = _split(batch)
    subs = [_sub_batch([it], None, None) for it in without]
    if with_image:
        h = max(int(it["fields"]["image"].shape[0]) for it in with_image)
        w = max(int(it["fields"]["image"].shape[1]) for it in with_image)
        image = _empty((len(with_image), h, w, 3), torch.uint8)
        mask = _empty((len(with_image), h, w), torch.bool)
        for k, it in enumerate(with_image):
            px = it["fields"]["image"]
            image[k, : px.shape[0], : px.shape[1]].copy_(px)
            mask[k, : px.shape[0], : px.shape[1]] = True
        subs.append(_sub_batch(with_image, image, mask))
    subs.sort(key=lambda s: s["indices"][0])
    return {"batches": subs, "failed": failed}


COLLATE_MODES: dict[str, Callable[[list[dict[str, Any]]], dict[str, Any]]] = {
    "bucket": bucket_collate,
    "pad": pad_collate,
}


def get_collate(mode: str) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    """The collate function named ``mode`` (``bucket`` or ``pad``).

    Raises:
        ValidationError: an unknown mode.
    """
    if mode not in COLLATE_MODES:
        raise ValidationError(f"`collate` must be one of {sorted(COLLATE_MODES)}, got {mode!r}")
    return COLLATE_MODES[mode]
