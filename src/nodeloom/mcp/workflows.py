"""Workflow handling for the MCP tools: format detection, UI→API conversion, overrides, lint.

Accepts API-format prompts (``{id: {class_type, inputs}}``, optionally wrapped in
``{"prompt": ...}``) and UI-format workflows (``{"nodes": [...], "links": [...]}``) through
``nodeloom.core.workflow_ui.to_api`` when that converter is installed. The lint pass adds
what an agent needs to fix a graph: closest-match suggestions (difflib) for unknown node
types and input names. Example workflows are found in ``examples/workflows`` above the
installed package and in folders the policy names. No MCP SDK import here.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import nodeloom
from nodeloom.errors import ValidationError, WorkflowFormatError
from nodeloom.paths import safe_join

__all__ = [
    "apply_overrides",
    "detect_format",
    "example_dirs",
    "lint_prompt",
    "list_examples",
    "load_example",
    "parse_overrides",
    "suggest",
    "to_api",
]


def detect_format(obj: Any) -> str:
    """``"api"`` or ``"ui"``.

    Raises:
        WorkflowFormatError: the object is neither.
    """
    if isinstance(obj, Mapping):
        if isinstance(obj.get("nodes"), list):
            return "ui"
        if isinstance(obj.get("prompt"), Mapping) and "class_type" not in obj:
            return "api"
        if obj and all(isinstance(v, Mapping) and "class_type" in v for v in obj.values()):
            return "api"
    raise WorkflowFormatError(
        "the workflow is neither API format ({node_id: {class_type, inputs}}) nor UI format ({nodes: [...], links: [...]})",
        details=f"got {type(obj).__name__}" + (f" with keys {sorted(obj)[:8]}" if isinstance(obj, Mapping) else ""),
    )


def to_api(
    obj: Any, input_types: Callable[[str], dict[str, Any] | None], display_name: Callable[[str], str] | None = None
) -> tuple[dict[str, Any], str]:
    """Convert any accepted workflow to an API-format prompt.

    Args:
        obj: the workflow (API or UI format).
        input_types: ``class_type -> INPUT_TYPES() dict`` (None for unknown types); the UI
            converter reads widget order from it.
        display_name: ``class_type -> title`` for nodes the user did not rename.

    Returns:
        ``(prompt, format)`` where format is the detected input format.

    Raises:
        WorkflowFormatError: not a workflow, a broken UI graph, or UI format without the
            converter installed.
    """
    fmt = detect_format(obj)
    if fmt == "api":
        prompt = obj["prompt"] if isinstance(obj.get("prompt"), Mapping) and "class_type" not in obj else obj
        return json.loads(json.dumps(prompt)), fmt
    try:
        from nodeloom.core.workflow_ui import to_api as ui_to_api
    except ImportError as exc:
        raise WorkflowFormatError(
            "UI-format workflows need the UI converter `nodeloom.core.workflow_ui`, which this installation lacks; "
            "give the workflow in API format (in ComfyUI: Workflow → Export (API))",
            details=str(exc),
        ) from exc
    return ui_to_api(obj, input_types, display_name), fmt


def suggest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Closest matches of ``name`` among ``candidates`` (case-insensitive difflib)."""
    pool = list(candidates)
    lowered = {c.lower(): c for c in pool}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[h] for h in hits]


def _declared_inputs(entry: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    for section in ("required", "optional", "hidden"):
        names.extend((entry.get("input") or {}).get(section, {}) or {})
    return names


def lint_prompt(prompt: Mapping[str, Any], object_info: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per-node problems the engine's validation does not name: unknown types and input names.

    Returns:
        ``{node_id: [error dict]}`` with ``extra_info["suggestions"]`` lists.
    """
    problems: dict[str, list[dict[str, Any]]] = {}
    for node_id, node in prompt.items():
        if not isinstance(node, Mapping):
            continue
        class_type = node.get("class_type")
        if not isinstance(class_type, str):
            continue
        entry = object_info.get(class_type)
        if entry is None:
            hints = suggest(class_type, object_info)
            problems.setdefault(str(node_id), []).append(_error(
                "unknown_node_type", f"node type `{class_type}` does not exist", hints, class_type=class_type,
            ))
            continue
        declared = _declared_inputs(entry)
        for name in (node.get("inputs") or {}) if isinstance(node.get("inputs"), Mapping) else {}:
            if name not in declared:
                hints = suggest(name, declared)
                problems.setdefault(str(node_id), []).append(_error(
                    "unknown_input", f"`{class_type}` has no input `{name}`", hints, input_name=name, class_type=class_type,
                ))
    return problems


def _error(type_: str, message: str, hints: list[str], **extra: Any) -> dict[str, Any]:
    details = f"did you mean {', '.join(f'`{h}`' for h in hints)}?" if hints else "no close match"
    return {"type": type_, "message": message, "details": details, "extra_info": {**extra, "suggestions": hints}}


def parse_overrides(overrides: Mapping[str, Any] | Iterable[str]) -> dict[str, Any]:
    """``{"node.input": value}`` from a mapping, or from ``"node.input=value"`` strings (value: JSON, else text).

    Raises:
        ValidationError: a string without ``=``.
    """
    if isinstance(overrides, Mapping):
        return dict(overrides)
    out: dict[str, Any] = {}
    for text in overrides:
        key, sep, raw = str(text).partition("=")
        if not sep:
            raise ValidationError(f"override `{text}` must look like `node.input=value` (e.g. `3.seed=42`)", type="invalid_override")
        try:
            out[key.strip()] = json.loads(raw)
        except ValueError:
            out[key.strip()] = raw
    return out


def apply_overrides(prompt: Mapping[str, Any], overrides: Mapping[str, Any] | Iterable[str], object_info: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``prompt`` with overrides applied (see :func:`parse_overrides` for their forms).

    ``node`` is a node id or a unique ``_meta.title``; ``input`` must be an input the node
    has or its class declares.

    Raises:
        ValidationError: a malformed override, an unknown node or input (with suggestions).
    """
    overrides = parse_overrides(overrides)
    out = json.loads(json.dumps(prompt))
    titles: dict[str, list[str]] = {}
    for nid, node in out.items():
        title = ((node.get("_meta") or {}).get("title")) if isinstance(node, dict) else None
        if isinstance(title, str):
            titles.setdefault(title, []).append(nid)
    for key, value in overrides.items():
        node_ref, sep, name = str(key).rpartition(".")
        if not sep or not node_ref or not name:
            raise ValidationError(f"override `{key}` must look like `node.input` (a node id or title, a dot, an input name)", type="invalid_override")
        nid = node_ref if node_ref in out else None
        if nid is None and len(titles.get(node_ref, [])) == 1:
            nid = titles[node_ref][0]
        if nid is None:
            hints = suggest(node_ref, list(out) + list(titles))
            raise ValidationError(
                f"override `{key}`: no node with id or unique title `{node_ref}`" + (f"; did you mean {hints}?" if hints else ""),
                type="invalid_override", extra_info={"suggestions": hints},
            )
        node = out[nid]
        inputs = node.setdefault("inputs", {})
        declared = _declared_inputs(object_info.get(node.get("class_type"), {}))
        if name not in inputs and name not in declared:
            hints = suggest(name, list(inputs) + declared)
            raise ValidationError(
                f"override `{key}`: node `{nid}` ({node.get('class_type')}) has no input `{name}`" + (f"; did you mean {hints}?" if hints else ""),
                type="invalid_override", extra_info={"suggestions": hints},
            )
        inputs[name] = value
    return out


# ---------------------------------------------------------------------- examples


def example_dirs(extra: Iterable[str | Path] = (), base: Path | None = None) -> list[Path]:
    """``examples/workflows`` above the installed package (source checkouts), then ``extra``.

    Relative ``extra`` folders are taken relative to ``base`` (the engine's base folder).
    """
    dirs: list[Path] = []
    here = Path(nodeloom.__file__).resolve().parent
    for parent in here.parents:
        candidate = parent / "examples" / "workflows"
        if candidate.is_dir():
            dirs.append(candidate)
            break
    for d in extra:
        p = Path(d)
        if not p.is_absolute() and base is not None:
            p = base / p
        if p.is_dir() and p.resolve() not in dirs:
            dirs.append(p.resolve())
    return dirs


def list_examples(dirs: Iterable[Path]) -> list[dict[str, Any]]:
    """One entry per ``*.json`` example: name, format, node count, node types."""
    seen: set[str] = set()
    entries: list[dict[str, Any]] = []
    for d in dirs:
        for path in sorted(d.glob("*.json")):
            if path.stem in seen:
                continue
            seen.add(path.stem)
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                fmt = detect_format(data)
            except (OSError, ValueError, WorkflowFormatError):
                continue
            nodes = data.get("nodes") if fmt == "ui" else (data.get("prompt") or data)
            classes = sorted({str(n.get("type") if fmt == "ui" else n.get("class_type")) for n in (nodes if isinstance(nodes, list) else nodes.values())})
            entries.append({"name": path.stem, "format": fmt, "node_count": len(nodes), "class_types": classes, "folder": str(d)})
    return entries


def load_example(name: str, dirs: Iterable[Path]) -> Any:
    """The parsed JSON of example ``name`` (file stem).

    Raises:
        ValidationError: no example of that name (with suggestions), or a path escape.
    """
    dirs = list(dirs)
    for d in dirs:
        path = safe_join(d, f"{name}.json")
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    names = [e.name[:-5] for d in dirs for e in d.glob("*.json")]
    hints = suggest(name, names)
    raise ValidationError(
        f"example workflow `{name}` does not exist" + (f"; did you mean {hints}?" if hints else f"; known: {sorted(names)}"),
        type="unknown_example", extra_info={"suggestions": hints},
    )
