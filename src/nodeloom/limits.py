"""Per-run resource limits: image size, batch size and memory of what a prompt creates.

A :class:`RunLimits` is checked twice: before a run, from the prompt's constants
(:meth:`RunLimits.check_prompt` estimates every IMAGE/MASK/LATENT a node will create from
sizes, batch sizes and scale factors along the links), and after each node, on the tensors it
produced (:meth:`RunLimits.output_check`), so an image made inside the graph (upscale, then
downscale) is refused at the node that made it. The server, MCP and the library all pass the
same object to ``Engine.run``. A shared leaf: imports neither torch nor core internals.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from nodeloom.errors import ValidationError

__all__ = ["LIMITS_EXTRA_KEY", "LimitError", "RunLimits", "estimate_prompt", "limit_named_in"]

#: ``extra_data`` key through which a queued prompt carries stricter limits of its own (the
#: MCP policy's, for agent jobs in a server's queue); they can only tighten the server's.
LIMITS_EXTRA_KEY = "nodeloom_limits"

#: bytes per pixel and batch item of each limited type (float32: IMAGE 3 channels, MASK 1,
#: LATENT 16 channels at 1/64 of the pixels)
_BYTES_PER_PIXEL = {"IMAGE": 12.0, "MASK": 4.0, "LATENT": 1.0}
#: constants that set a node's batch size, and those that multiply its input's
_BATCH_SET = ("batch_size", "length", "frames", "num_frames")
_BATCH_MUL = ("amount", "multiply_by")
#: constants that scale the input's width and height
_SCALES = ("scale_by", "upscale_by", "scale_factor", "upscale_factor")


class LimitError(ValidationError):
    """A prompt would create, or a node created, more than the run's limits allow.

    Its message always ends with the limit's name in backticks and parentheses, e.g.
    ``(`max_pixels`)``: a node error keeps only the message, and :func:`limit_named_in` reads it.
    """

    type = "limit_exceeded"


def limit_named_in(error: Mapping[str, Any]) -> str | None:
    """The limit (``max_pixels``, ``max_batch``, ``max_memory``) a node error or an error
    payload reports as exceeded, or None for any other error."""
    kind = str(error.get("exception_type") or error.get("type") or "")
    if not (kind.endswith("LimitError") or kind == LimitError.type):
        return None
    match = re.search(r"\(`(max_[a-z_]+)`\)$", str(error.get("exception_message") or error.get("message") or ""))
    return match.group(1) if match else None


@dataclass(frozen=True)
class RunLimits:
    """Limits of one run; ``0`` disables a limit.

    Attributes:
        max_pixels: largest ``width × height`` of one image, mask or latent (in pixels).
        max_batch: largest batch of one image, mask or latent.
        max_memory: bytes all images, masks and latents of a run may hold together.
    """

    max_pixels: int = 0
    max_batch: int = 0
    max_memory: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValidationError(f"`{f.name}` must be an integer ≥ 0 (0 = no limit), got {value!r}",
                                      type="invalid_limits")

    @property
    def active(self) -> bool:
        return bool(self.max_pixels or self.max_batch or self.max_memory)

    def to_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RunLimits:
        """Limits from a mapping of the attribute names (unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError(f"unknown limit(s) {unknown}; known: {sorted(known)}", type="invalid_limits")
        return cls(**{k: data[k] for k in known if k in data})

    def tightened(self, other: RunLimits | None) -> RunLimits:
        """The stricter of two limits, field by field (``0`` counts as no limit)."""
        if other is None:
            return self

        def pick(a: int, b: int) -> int:
            return min(a, b) if a and b else a or b

        return RunLimits(*(pick(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)))

    def for_extra_data(self, extra_data: Mapping[str, Any]) -> RunLimits:
        """These limits tightened by those a prompt carries under :data:`LIMITS_EXTRA_KEY`.

        Raises:
            ValidationError: the carried limits are not a mapping of known, valid limits.
        """
        carried = extra_data.get(LIMITS_EXTRA_KEY)
        if carried is None:
            return self
        if not isinstance(carried, Mapping):
            raise ValidationError(f"`extra_data.{LIMITS_EXTRA_KEY}` must be an object of limits", type="invalid_limits")
        return self.tightened(RunLimits.from_mapping(carried))

    # ------------------------------------------------------------------ before the run
    def check_prompt(self, prompt: Mapping[str, Any], lookup: Callable[[str], type | None]) -> None:
        """Refuse a prompt whose constants already exceed the limits.

        Args:
            prompt: API-format prompt ``{node_id: {"class_type", "inputs"}}``.
            lookup: ``class_type`` -> node class (for its ``RETURN_TYPES``).

        Raises:
            LimitError: naming the node and what it would create.
        """
        if not self.active:
            return
        total = 0.0
        for node_id, est in estimate_prompt(prompt, lookup).items():
            where = f"node `{node_id}` ({est.class_type})"
            self._check(where, est.pixels, est.batch, "would create")
            total += est.bytes
        if self.max_memory and total > self.max_memory:
            raise LimitError(
                f"the prompt's images, masks and latents would need about {_gib(total)}; "
                f"at most {_gib(self.max_memory)} is allowed (`max_memory`)",
                extra_info={"estimated_bytes": int(total), "max_memory": self.max_memory})

    def _check(self, where: str, pixels: float, batch: float, verb: str) -> None:
        if self.max_pixels and pixels > self.max_pixels:
            raise LimitError(f"{where} {verb} images of {int(pixels)} pixels; at most {self.max_pixels} are "
                             "allowed (`max_pixels`)", extra_info={"pixels": int(pixels), "max_pixels": self.max_pixels})
        if self.max_batch and batch > self.max_batch:
            raise LimitError(f"{where} {verb} a batch of {int(batch)}; at most {self.max_batch} is allowed "
                             "(`max_batch`)", extra_info={"batch": int(batch), "max_batch": self.max_batch})

    # ------------------------------------------------------------------ after each node
    def output_check(self) -> Callable[[str, type, list[list[Any]]], None]:
        """A checker for one run: ``check(node_id, node_class, outputs)`` after each node.

        ``outputs`` is the executor's per-slot list of values. The checker keeps the bytes
        of every IMAGE/MASK/LATENT seen so far in the run against ``max_memory``.

        Raises (from the checker):
            LimitError: a value exceeds a limit; the node fails and its output is dropped.
        """
        held = [0]

        def check(node_id: str, cls: type, outputs: list[list[Any]]) -> None:
            types = tuple(getattr(cls, "RETURN_TYPES", ()))
            where = f"node `{node_id}` ({getattr(cls, '__name__', '?')})"
            for slot, values in enumerate(outputs):
                kind = types[slot] if slot < len(types) else None
                for value in values if isinstance(values, list) else [values]:
                    pixels, batch, nbytes = _measure(kind, value)
                    self._check(where, pixels, batch, "created")
                    held[0] += nbytes
            if self.max_memory and held[0] > self.max_memory:
                raise LimitError(f"{where} brought the run's images, masks and latents to {_gib(held[0])}; "
                                 f"at most {_gib(self.max_memory)} is allowed (`max_memory`)",
                                 extra_info={"bytes": held[0], "max_memory": self.max_memory})

        return check


@dataclass
class _Estimate:
    class_type: str
    pixels: float = 0.0
    batch: float = 0.0
    bytes: float = 0.0
    creates: bool = False  # outputs an IMAGE, MASK or LATENT


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _size_pixels(inputs: Mapping[str, Any]) -> float | None:
    """Largest ``*width × *height`` pair of constants (``width``/``height``, ``target_width``...)."""
    best = None
    for name, value in inputs.items():
        if not name.endswith("width"):
            continue
        w, h = _number(value), _number(inputs.get(name[: -len("width")] + "height"))
        if w is not None and h is not None:
            best = max(best or 0.0, w * h)
    return best


def _links(inputs: dict[str, Any]) -> list[str]:
    return [str(v[0]) for v in inputs.values() if type(v) is list and len(v) == 2 and type(v[1]) is int]


def _node_estimate(class_type: str, inputs: dict[str, Any], ups: list[_Estimate], per_item: float) -> _Estimate:
    """One node's estimate from its constants and its inputs' estimates (``per_item``: bytes
    per pixel of what it creates, 0 when it creates no image, mask or latent)."""
    up_pixels = up_batch = 0.0
    for u in ups:
        up_pixels = u.pixels if u.pixels > up_pixels else up_pixels
        up_batch = u.batch if u.batch > up_batch else up_batch
    pixels = _size_pixels(inputs)
    if pixels is None:
        pixels = up_pixels
        scales = [s for s in (_number(inputs[k]) for k in _SCALES if k in inputs) if s is not None]
        if scales:
            pixels *= max(scales) ** 2
    batch = up_batch
    for key in _BATCH_SET:
        n = _number(inputs[key]) if key in inputs else None
        if n is not None:
            batch = n
    for key in _BATCH_MUL:
        n = _number(inputs[key]) if key in inputs else None
        if n is not None:
            batch = max(batch, 1.0) * n
    return _Estimate(class_type, pixels, batch, pixels * max(batch, 1.0) * per_item, per_item > 0)


def estimate_prompt(prompt: Mapping[str, Any], lookup: Callable[[str], type | None]) -> dict[str, _Estimate]:
    """Per node: the pixels per image, the batch and the bytes of the images, masks and latents
    it will create, propagated along the links from the prompt's constants (upper bounds where
    the graph is ambiguous). Nodes that create none of these are left out."""
    done: dict[str, _Estimate] = {}
    per_item: dict[str, float] = {}
    links_of: dict[str, list[str]] = {}
    for start in prompt:
        stack, entered = [str(start)], set()
        while stack:  # iterative depth-first walk: a 10,000-node chain must not recurse
            nid = stack[-1]
            node = prompt.get(nid)
            if nid in done or not isinstance(node, dict):
                stack.pop()
                continue
            inputs = node.get("inputs")
            inputs = inputs if isinstance(inputs, dict) else {}
            if nid not in links_of:
                links_of[nid] = _links(inputs)
            todo = [u for u in links_of[nid] if u not in done and u in prompt and u not in entered]
            if todo and nid not in entered:
                entered.add(nid)
                stack.extend(todo)
                continue
            stack.pop()
            class_type = str(node.get("class_type", ""))
            if class_type not in per_item:
                returns = getattr(lookup(class_type), "RETURN_TYPES", ())
                # str.__str__: a pack's "any type" str subclass may be unhashable (ComfyUI-Logic's)
                per_item[class_type] = sum(_BYTES_PER_PIXEL.get(str.__str__(t), 0.0) for t in returns if isinstance(t, str))
            ups = [done[u] for u in links_of[nid] if u in done]
            done[nid] = _node_estimate(class_type, inputs, ups, per_item[class_type])
    return {nid: e for nid, e in done.items() if e.creates}


def _measure(kind: Any, value: Any) -> tuple[float, float, int]:
    """``(pixels per item, batch, bytes)`` of one output value of type ``kind``."""
    if kind == "LATENT" and isinstance(value, Mapping):
        samples = value.get("samples")
        shape = tuple(getattr(samples, "shape", ()))
        if len(shape) >= 4:  # [B, C, (T,) h, w]: pixels of the decoded image
            return float(shape[-1] * shape[-2] * 64), float(shape[0]), _nbytes(samples)
        return 0.0, 0.0, 0
    shape = tuple(getattr(value, "shape", ()))
    if kind == "IMAGE" and len(shape) == 4:
        return float(shape[1] * shape[2]), float(shape[0]), _nbytes(value)
    if kind == "MASK" and len(shape) in (2, 3):
        batch = shape[0] if len(shape) == 3 else 1
        return float(shape[-1] * shape[-2]), float(batch), _nbytes(value)
    return 0.0, 0.0, 0


def _nbytes(tensor: Any) -> int:
    numel = getattr(tensor, "numel", None)
    size = getattr(tensor, "element_size", None)
    if callable(numel) and callable(size):
        return int(numel()) * int(size())
    return int(getattr(tensor, "nbytes", 0) or 0)


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
