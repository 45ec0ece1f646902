"""Workflows shipped inside the package (the quick start's default needs no model weights);
:mod:`nodeloom.workflows.files` reads workflow files for every adapter."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["default_workflow"]


def default_workflow() -> dict[str, Any]:
    """The embedded default API workflow: the astronaut photo, its face found offline and
    boxed, and a 2 s camera zoom over it written as an MP4 — no model weights needed."""
    return json.loads(resources.files(__package__).joinpath("default.json").read_text(encoding="utf-8"))
