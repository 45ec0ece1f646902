"""What a workflow file needs: its node types (all unknown ones reported at once, ComfyUI core
nodes told apart from custom-node ones) and the model files it names with their download URLs.

Works on API prompts and UI workflows (subgraph definitions included). ComfyUI's core node
names come from the ``comfyui-embedded-docs`` package when it is installed, and from the
``cnr_id: comfy-core`` mark the frontend writes on each node it saves. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeloom.errors import WorkflowFormatError

__all__ = ["MODEL_INPUT_FOLDERS", "ModelFile", "core_node_names", "explain_missing_models", "model_files", "node_types",
           "unknown_types_error"]

#: nodes the frontend draws and never sends to a backend
FRONTEND_ONLY = frozenset({"Reroute", "PrimitiveNode", "Note", "MarkdownNote"})


def _subgraphs(workflow: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    definitions = workflow.get("definitions")
    subs = definitions.get("subgraphs") if isinstance(definitions, Mapping) else None
    return [s for s in _listed(subs) if isinstance(s, Mapping)]


def _ui_nodes(workflow: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for graph in (workflow, *_subgraphs(workflow)):
        yield from (n for n in _listed(graph.get("nodes")) if isinstance(n, Mapping))


def _is_ui(workflow: Any) -> bool:
    return isinstance(workflow, Mapping) and isinstance(workflow.get("nodes"), list)


def node_types(workflow: Any) -> dict[str, dict[str, Any]]:
    """Node type -> ``{"ids": [...], "core": bool}`` for every real node of ``workflow``.

    Frontend-only nodes and subgraph instances (whose type is a subgraph id) are left out;
    ``core`` is True when the saved node carries the frontend's ``comfy-core`` mark.
    """
    out: dict[str, dict[str, Any]] = {}
    if _is_ui(workflow):
        subgraphs = {str(s.get("id")) for s in _subgraphs(workflow)}
        for node in _ui_nodes(workflow):
            kind = str(node.get("type", ""))
            if not kind or kind in FRONTEND_ONLY or kind in subgraphs:
                continue
            entry = out.setdefault(kind, {"ids": [], "core": False})
            entry["ids"].append(str(node.get("id")))
            props = node.get("properties")
            entry["core"] |= isinstance(props, Mapping) and props.get("cnr_id") == "comfy-core"
    elif isinstance(workflow, Mapping):
        for node_id, node in workflow.items():
            if isinstance(node, Mapping) and isinstance(node.get("class_type"), str):
                out.setdefault(node["class_type"], {"ids": [], "core": False})["ids"].append(str(node_id))
    return out


@functools.lru_cache(maxsize=1)
def core_node_names() -> frozenset[str]:
    """ComfyUI's core node names as documented by ``comfyui-embedded-docs`` (empty when absent)."""
    spec = importlib.util.find_spec("comfyui_embedded_docs")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    names: set[str] = set()
    for location in spec.submodule_search_locations:
        docs = Path(location) / "docs"
        if docs.is_dir():
            names.update(p.name for p in docs.iterdir() if p.is_dir())
    return frozenset(names)


def unknown_types_error(workflow: Any, is_known: Callable[[str], bool]) -> WorkflowFormatError | None:
    """One error naming every node type of ``workflow`` that ``is_known`` rejects, or None."""
    unknown = {k: v for k, v in node_types(workflow).items() if not is_known(k)}
    if not unknown:
        return None
    core = core_node_names()
    lines = []
    for kind, entry in sorted(unknown.items()):
        ids = ", ".join(f"#{i}" for i in entry["ids"][:6]) + (" ..." if len(entry["ids"]) > 6 else "")
        why = ("a ComfyUI core node nodeloom does not have yet" if entry["core"] or kind in core
               else "not a node nodeloom knows: is its custom-node pack installed?")
        lines.append(f"  `{kind}` (node {ids}): {why}")
    return WorkflowFormatError(
        f"the workflow uses {len(unknown)} unknown node type(s):\n" + "\n".join(lines),
        extra_info={"unknown_node_types": sorted(unknown)},
    )


@dataclass(frozen=True)
class ModelFile:
    """A model file a workflow names: where it goes and where it can be downloaded."""

    name: str
    directory: str
    url: str | None
    node_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "directory": self.directory, "url": self.url, "nodes": list(self.node_ids)}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _model_entries(workflow: Mapping[str, Any]) -> Iterator[tuple[Any, str | None]]:
    for entry in _listed(workflow.get("models")):
        yield entry, None
    for node in _ui_nodes(workflow):
        props = node.get("properties")
        for entry in _listed(props.get("models")) if isinstance(props, Mapping) else []:
            yield entry, str(node.get("id"))


def model_files(workflow: Any) -> list[ModelFile]:
    """The model files a UI workflow embeds (node ``properties.models`` and top-level ``models``),
    one per (directory, name), in first-seen order; an API prompt carries none."""
    if not _is_ui(workflow):
        return []
    found: dict[tuple[str, str], ModelFile] = {}
    for entry, node_id in _model_entries(workflow):
        if not isinstance(entry, Mapping) or not entry.get("name") or not entry.get("directory"):
            continue
        key = (str(entry["directory"]), str(entry["name"]))
        old = found.get(key)
        ids = (old.node_ids if old else ()) + ((node_id,) if node_id and (not old or node_id not in old.node_ids) else ())
        url = (old.url if old and old.url else None) or entry.get("url") or None
        found[key] = ModelFile(key[1], key[0], url, ids)
    return list(found.values())


#: model-file inputs of ComfyUI's loaders -> the models folder their list comes from
MODEL_INPUT_FOLDERS = {
    "ckpt_name": "checkpoints", "vae_name": "vae", "lora_name": "loras", "unet_name": "diffusion_models",
    "clip_name": "text_encoders", "clip_name1": "text_encoders", "clip_name2": "text_encoders",
    "clip_name3": "text_encoders", "clip_name4": "text_encoders", "control_net_name": "controlnet",
    "upscale_model_name": "upscale_models", "style_model_name": "style_models", "gligen_name": "gligen",
    "hypernetwork_name": "hypernetworks", "model_name": "upscale_models", "audio_encoder_name": "audio_encoders",
    "model_patch_name": "model_patches", "latent_upscale_model_name": "latent_upscale_models",
}  # fmt: skip


def _folder_of(paths: Any, input_name: str) -> str | None:
    folder = MODEL_INPUT_FOLDERS.get(input_name)
    return folder if folder in paths.folders else None


def explain_missing_models(node_errors: Mapping[str, Any], paths: Any, workflow: Any = None) -> None:
    """Add to each "value not in list" error of a model-file input the folders searched and,
    when ``workflow`` (a UI workflow) names the file, the URL to download it from. In place."""
    urls = {m.name: m for m in model_files(workflow)}
    for entry in node_errors.values():
        for err in entry.get("errors") or []:
            extra = err.setdefault("extra_info", {})
            if err.get("type") != "value_not_in_list" or not isinstance(extra.get("input_name"), str):
                continue
            folder = _folder_of(paths, extra["input_name"])
            if folder is None:
                continue
            value = str(extra.get("received_value"))
            searched = [str(p) for p in paths.model_folders(folder)]
            hint = f"`{value}` is not in the `{folder}` model folder (searched: {', '.join(searched)})"
            known = urls.get(value) or urls.get(Path(value).name)
            if known is not None and known.url:
                hint += f"; the workflow says it comes from {known.url}"
            err["details"] = f"{err.get('details', '')}; {hint}".lstrip("; ")
            extra.update({"model_folder": folder, "searched": searched, "url": known.url if known else None})
