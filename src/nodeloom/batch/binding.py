"""How batch items enter a workflow: ``--bind NODE.INPUT=FIELD`` and ``--score NODE[.SLOT]``.

An image field is bound by inserting a ``BatchInput`` node (id ``batch.<field>``) and linking
``NODE.INPUT`` to it; a scalar field (a CSV column, a seed, the item name) is written as the
constant ``NODE.INPUT`` of each run. ``BatchInput`` nodes already in the workflow are fed
by their ``field``. ``--score`` inserts a ``BatchScore`` node reading ``NODE``'s output
``SLOT`` unless NODE is a ``BatchScore`` itself. Values reach ``BatchInput`` through
:mod:`nodeloom.batch_items`. Pure prompt edits; no engine calls.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from nodeloom.errors import ValidationError

__all__ = ["BatchPlan", "Bind", "parse_bind", "plan_workflow"]

INPUT_NODE, SCORE_NODE = "BatchInput", "BatchScore"


@dataclass(frozen=True)
class Bind:
    """One ``--bind NODE.INPUT=FIELD``."""

    node: str
    input: str
    field: str


def parse_bind(text: str) -> Bind:
    """Parse ``NODE.INPUT=FIELD`` (NODE: a node id or a ``_meta.title``).

    Raises:
        ValidationError: the text has another shape.
    """
    target, sep, name = text.partition("=")
    node, dot, inp = target.rpartition(".")
    if not sep or not dot or not node or not inp or not name.strip():
        raise ValidationError(f"`--bind {text}` must look like NODE.INPUT=FIELD (e.g. 5.image=image)")
    return Bind(node, inp, name.strip())


def _resolve(prompt: dict[str, Any], node: str, option: str) -> str:
    if node in prompt:
        return node
    matches = [nid for nid, n in prompt.items() if (n.get("_meta") or {}).get("title") == node]
    if len(matches) != 1:
        reason = "matches several nodes" if matches else "is neither a node id nor a node title"
        raise ValidationError(f"`{option}`: `{node}` {reason} in this workflow")
    return matches[0]


@dataclass
class BatchPlan:
    """The workflow prepared for batch runs.

    Attributes:
        prompt: the API prompt with inserted ``BatchInput``/``BatchScore`` nodes.
        scalar_binds: ``(node, input, field)`` constants written per run.
        fields: item fields the plan reads.
        score_name: the ``BatchScore`` name ranked by Top-K (None without ``--score``).
    """

    prompt: dict[str, Any]
    scalar_binds: list[tuple[str, str, str]] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)
    score_name: str | None = None

    def input_nodes(self) -> list[str]:
        return [nid for nid, n in self.prompt.items() if n.get("class_type") == INPUT_NODE]

    def prompt_for(self, sub_batch: dict[str, Any]) -> dict[str, Any]:
        """The prompt of one run: item key into every ``BatchInput``, scalar fields as constants.

        Raises:
            ValidationError: a scalar field bound while the run holds several items, or a
                field the items lack.
        """
        prompt = copy.deepcopy(self.prompt)
        fields = sub_batch["fields"]
        for nid in self.input_nodes():
            prompt[nid]["inputs"]["item"] = sub_batch["key"]
        for node, inp, name in self.scalar_binds:
            if name not in fields:
                raise ValidationError(f"`--bind {node}.{inp}={name}`: the item has no field `{name}` (it has {sorted(fields)})")
            values = fields[name]
            if len(values) != 1:
                raise ValidationError(f"`--bind {node}.{inp}={name}`: a non-image field needs one item per run "
                                      f"(use --batch-size 1), this run holds {len(values)}")
            prompt[node]["inputs"][inp] = values[0]
        return prompt


def _score_node(prompt: dict[str, Any], spec: str, slot_names: Callable[[str], list[str]]) -> str:
    node, dot, slot_text = spec.partition(".")
    if node not in prompt and dot:  # a title may contain dots: try the whole text first
        try:
            node, slot_text = _resolve(prompt, spec, f"--score {spec}"), ""
        except ValidationError:
            node = _resolve(prompt, node, f"--score {spec}")
    else:
        node = _resolve(prompt, node, f"--score {spec}")
    if prompt[node].get("class_type") == SCORE_NODE:
        return str(prompt[node]["inputs"].get("name", "score"))
    names = slot_names(prompt[node].get("class_type", ""))
    if not slot_text:
        slot = 0
    elif slot_text.isdigit():
        slot = int(slot_text)
    elif slot_text in names:
        slot = names.index(slot_text)
    else:
        raise ValidationError(f"`--score {spec}`: node {node} has no output `{slot_text}` (outputs: {names})")
    if names and slot >= len(names):
        raise ValidationError(f"`--score {spec}`: node {node} has {len(names)} output(s), slot {slot} is out of range")
    prompt["batch.score"] = {"class_type": SCORE_NODE, "inputs": {"score": [node, slot], "name": "score"},
                             "_meta": {"title": f"score of {node}.{slot}"}}
    return "score"


def plan_workflow(
    prompt: dict[str, Any],
    binds: Iterable[Bind],
    *,
    image_fields: Iterable[str] = ("image",),
    score: str | None = None,
    slot_names: Callable[[str], list[str]] = lambda class_type: [],
) -> BatchPlan:
    """Insert the batch nodes and record scalar binds.

    Args:
        prompt: an API prompt (not modified).
        binds: the ``--bind`` options.
        image_fields: fields that hold images (bound through ``BatchInput``).
        score: the ``--score NODE[.SLOT]`` option (SLOT: index or output name).
        slot_names: ``class_type → output names``, to resolve named slots.

    Returns:
        The plan.

    Raises:
        ValidationError: an unknown node or output, or a node bound twice on one input.
    """
    out = copy.deepcopy(prompt)
    plan = BatchPlan(out)
    images = set(image_fields)
    seen: set[tuple[str, str]] = set()
    for bind in binds:
        node = _resolve(out, bind.node, f"--bind {bind.node}.{bind.input}={bind.field}")
        if (node, bind.input) in seen:
            raise ValidationError(f"`--bind`: input `{bind.input}` of node {node} is bound twice")
        seen.add((node, bind.input))
        plan.fields.add(bind.field)
        if bind.field in images:
            nid = f"batch.{bind.field}"
            out.setdefault(nid, {"class_type": INPUT_NODE, "_meta": {"title": f"batch {bind.field}"},
                                 "inputs": {"field": bind.field, "kind": "image", "item": "", "default": ""}})
            out[node].setdefault("inputs", {})[bind.input] = [nid, 0]
        else:
            out[node].setdefault("inputs", {})
            plan.scalar_binds.append((node, bind.input, bind.field))
    for nid in plan.input_nodes():
        plan.fields.add(str(out[nid]["inputs"].get("field", "image")))
    if score is not None:
        plan.score_name = _score_node(out, score, slot_names)
    return plan
