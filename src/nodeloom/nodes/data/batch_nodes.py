"""``BatchInput`` (an item's field as a graph value) and ``BatchScore`` (a score for the manifest).

``BatchInput`` reads the current item through :mod:`nodeloom.batch_items`;
``BatchScore`` reports its values as the ``batch_scores`` UI entry, which ``nodeloom batch``
copies into each item's manifest record.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch

from nodeloom.errors import NodeExecutionError, ValidationError
from nodeloom.node_api import IO, AnyInput, Combo, Node, NodeOutput, Output, Schema, String, services
from nodeloom.batch_items import item_store

__all__ = ["BatchInput", "BatchScore", "to_floats"]

_CAT = "utils/batch"
KINDS = ("image", "string", "int", "float")


def _scalar(value: Any, kind: str, field: str) -> Any:
    if isinstance(value, list):
        if len(value) != 1:
            raise ValidationError(f"`{field}` holds {len(value)} values; a {kind} field feeds one item per run")
        value = value[0]
    try:
        if kind == "string":
            return "" if value is None else str(value)
        if kind == "int":
            return int(float(value)) if isinstance(value, str) else int(value)
        return float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"`{field}` must be {'an' if kind == 'int' else 'a'} {kind}, got {value!r}") from None


class BatchInput(Node):
    """One field of the current batch item (an image batch, a CSV column, a seed...).

    `nodeloom batch` fills it for every run; run on its own, a non-image field yields
    `default`. The mask output marks real pixels when images were padded to one size.
    """

    SCHEMA = Schema(
        "BatchInput", display_name="Batch Input", category=_CAT,
        inputs=[
            String("field", "image", tooltip="The item field to read: image, name, path, a CSV/JSONL column, seed..."),
            Combo("kind", list(KINDS), default="image", tooltip="What the field holds; the output is converted to it."),
            String("item", "", tooltip="Set by `nodeloom batch` for each run (the current item's key); leave empty."),
            String("default", "", tooltip="The value when no batch item is bound (not for images)."),
        ],
        outputs=[Output(IO.ANY, "value", tooltip="The field's value (IMAGE [B,H,W,3] for images)."),
                 Output(IO.MASK, "mask", tooltip="1 on each image's own pixels, 0 on padding."),
                 Output(IO.STRING, "ids", tooltip="The ids of the items in this run, comma-separated.")],
    )  # fmt: skip

    @classmethod
    def execute(cls, field: str, kind: str, item: str = "", default: str = ""):
        if kind not in KINDS:
            raise ValidationError(f"`kind` must be one of {list(KINDS)}, got {kind!r}")
        entry = item_store(services()).get(item) if item else None
        if entry is None:
            if item:
                raise NodeExecutionError(f"`item` {item!r} is not a batch item of this engine (stale key)")
            if kind == "image":
                raise NodeExecutionError(f"BatchInput `{field}` has no image: run this workflow with `nodeloom batch`")
            return (_scalar(default, kind, field), torch.ones((1, 1, 1)), "")
        fields = entry["fields"]
        if field not in fields:
            raise ValidationError(f"the batch item has no field `{field}`; it has {sorted(fields)}")
        ids = ",".join(entry["ids"])
        if kind != "image":
            return (_scalar(fields[field], kind, field), torch.ones((1, 1, 1)), ids)
        image = fields[field]
        if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] != 3:
            raise ValidationError(f"`{field}` is not an image batch (got {type(image).__name__})")
        mask = entry["mask"]
        mask = torch.ones(image.shape[:3], dtype=torch.float32) if mask is None else _unit_float(mask)
        return (_unit_float(image), mask, ids)


def _unit_float(t: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (as batches travel from the loader) → float32 in 0..1; floats pass as they are."""
    if t.dtype == torch.uint8:
        return torch.div(t, 255.0)  # one pass: the division promotes to float32, values exactly x/255
    if t.dtype == torch.bool:
        return t.to(torch.float32)
    return t.to(torch.float32) if not t.is_floating_point() else t


def to_floats(value: Any) -> list[float]:
    """Scores as a flat list of floats: tensors, numbers, sequences, or a JSON list string.

    Raises:
        ValidationError: something that is not a number or a list of numbers.
    """
    if isinstance(value, torch.Tensor):
        return [float(v) for v in value.detach().reshape(-1).cpu().tolist()]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValidationError(f"`score` text must be a number or a JSON list, got {value[:40]!r}") from None
    if isinstance(value, bool):
        return [float(value)]
    if isinstance(value, (int, float)):
        return [float(value)]
    if hasattr(value, "tolist"):
        return to_floats(torch.as_tensor(value))
    if isinstance(value, (list, tuple)):
        out: list[float] = []
        for v in value:
            out.extend(to_floats(v))
        return out
    raise ValidationError(f"`score` must be a number, a list of numbers or SCORES, got {type(value).__name__}")


class BatchScore(Node):
    """Record a score per item: `nodeloom batch` writes it into the manifest under `name`."""

    SCHEMA = Schema(
        "BatchScore", display_name="Batch Score", category=_CAT,
        inputs=[AnyInput("score", tooltip="A FLOAT, INT, SCORES tensor or JSON list: one value per item of the batch."),
                String("name", "score", tooltip="The key of this score in the manifest.")],
        outputs=[], output_node=True,
    )  # fmt: skip

    @classmethod
    def execute(cls, score: Any, name: str = "score"):
        if not name.strip():
            raise ValidationError("`name` must not be empty")
        values = [v if math.isfinite(v) else None for v in to_floats(score)]
        return NodeOutput(ui={"batch_scores": [{"name": name, "values": values}]})


NODES = (BatchInput, BatchScore)
