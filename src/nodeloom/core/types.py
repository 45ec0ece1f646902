"""Socket type names and the type-matching rule of the ComfyUI dialect.

Type names are plain strings ("IMAGE", "INT", "A,B" unions). A *plain* ``"*"`` matches only
``"*"``; "match anything" works through :class:`AnyType`, a ``str`` subclass whose ``__ne__``
says "never different" (ComfyUI's IO.ANY does the same). No I/O.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ANY", "IO", "AnyType", "hidden_kind", "types_match"]


class AnyType(str):
    """A type string that matches every other type (``__ne__`` is always False)."""

    def __ne__(self, other: object) -> bool:  # noqa: D105 - the matching trick itself
        # Only ``!=`` is overridden, as ComfyUI's IO.ANY does: ``ANY == "INT"`` stays False,
        # so literal coercion never mistakes an any-typed input for an INT.
        return False


ANY = AnyType("*")


class IO:
    """Well-known socket type names."""

    ANY = ANY
    IMAGE = "IMAGE"
    MASK = "MASK"
    LATENT = "LATENT"
    CONDITIONING = "CONDITIONING"
    MODEL = "MODEL"
    CLIP = "CLIP"
    VAE = "VAE"
    CONTROL_NET = "CONTROL_NET"
    AUDIO = "AUDIO"
    INT = "INT"
    FLOAT = "FLOAT"
    STRING = "STRING"
    BOOLEAN = "BOOLEAN"
    COMBO = "COMBO"
    SEGS = "SEGS"
    VIDEO = "VIDEO"
    JSON = "JSON"
    LLM = "LLM"


def _type_set(t: Any) -> set[str] | None:
    if isinstance(t, str) and not isinstance(t, AnyType):
        return {p.strip() for p in t.split(",")}
    return None


def types_match(received: Any, expected: Any) -> bool:
    """Whether an output of type ``received`` may feed an input of type ``expected``.

    Follows ComfyUI: equal strings match; comma unions match when the sets intersect; an
    object overriding ``__ne__`` (AnyType) decides for itself; combos (lists) accept
    "COMBO" or any string output (``STRING`` wired into a combo is checked by value later).
    """
    if isinstance(expected, list) or (isinstance(expected, str) and str.__eq__(expected, "COMBO")):
        return received in ("COMBO", "STRING") or isinstance(received, list) or not (received != "COMBO")
    if not (received != expected):
        return True
    r, e = _type_set(received), _type_set(expected)
    if r is not None and e is not None:
        return bool(r & e)
    return False


def hidden_kind(declared: Any) -> Any:
    """The kind of a hidden input ("UNIQUE_ID", "PROMPT"...), also when declared as a 1-tuple.

    V1 classes declare ``"hidden": {"uid": "UNIQUE_ID"}``; ComfyUI's V3 view (and some
    packs) write ``("UNIQUE_ID",)``.
    """
    if isinstance(declared, (tuple, list)) and declared:
        return declared[0]
    return declared
