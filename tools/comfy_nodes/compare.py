"""Compare the node declarations nodeloom shares with ComfyUI, field by field.

Two steps, because each side needs its own Python:

    /path/to/ComfyUI/venv/bin/python tools/comfy_nodes/compare.py dump /path/to/ComfyUI > comfy_nodes.json
    .venv/bin/python tools/comfy_nodes/compare.py check comfy_nodes.json

``dump`` loads ComfyUI's core and extra nodes (no custom nodes) and writes each node's
``INPUT_TYPES``, return types and names, output flag, category and display name as JSON.
``check`` loads nodeloom's built-in packs and, for every node id both have, reports differences
in input names (required order included), input types, defaults, ranges and steps, combo option
lists (except model-file combos, whose contents depend on the folders), return types and names,
the output-node flag, category and display name. Exit status 1 when any differ.

    .venv/bin/python tools/comfy_nodes/compare.py check comfy_nodes.json --custom-nodes DIR...

compares the packs in those folders instead (built-in packs not loaded), e.g. ComfyUI's own V3
``comfy_extras`` modules copied into a folder. For V3 nodes the dump also holds ComfyUI's whole
``/object_info`` entry; in this mode every key of it is compared with ours (``python_module`` aside).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

#: option keys compared for every input
OPTION_KEYS = ("default", "min", "max", "step")
#: combos listing files of a folder: their contents differ by installation, only their presence is compared
FILE_COMBOS = {"ckpt_name", "vae_name", "lora_name", "control_net_name", "model_path", "image", "video", "unet_name",
               "clip_name", "clip_name1", "clip_name2", "clip_name3", "clip_name4", "style_model_name",
               "upscale_model_name", "model_name", "gligen_name", "hypernetwork_name"}


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _describe(cls: type, display: str) -> dict[str, Any]:
    spec = cls.INPUT_TYPES()
    inputs: dict[str, Any] = {}
    for section in ("required", "optional"):
        entries = spec.get(section, {}) or {}
        inputs[section] = []
        for name, entry in entries.items():
            kind = entry[0]
            opts = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            if kind == "COMBO" and isinstance(opts.get("options"), list):
                kind = opts["options"]  # V3 nodes spell a combo as ("COMBO", {"options": [...]})
            inputs[section].append({
                "name": name,
                "type": "COMBO" if isinstance(kind, list) else str(kind),
                "options": ([_jsonable(o) for o in kind] if isinstance(kind, list)  # V1 combo: the list itself
                            else [_jsonable(o) for o in opts["options"]] if kind == "COMBO" and "options" in opts
                            else None),  # V3 combos show as ("COMBO", {"options": [...]})
                **{k: _jsonable(opts[k]) for k in OPTION_KEYS if k in opts},
            })
    returns = [str(t) if not isinstance(t, list) else "COMBO" for t in getattr(cls, "RETURN_TYPES", ())]
    own_info = getattr(cls, "GET_NODE_INFO_V1", None)
    return {
        **({"object_info": json.loads(json.dumps(own_info(), default=str))} if callable(own_info) else {}),
        "inputs": inputs,
        "returns": returns,
        "return_names": list(getattr(cls, "RETURN_NAMES", None) or returns),
        "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
        "category": getattr(cls, "CATEGORY", ""),
        "display_name": display,
    }


def dump(comfyui: Path) -> int:
    import asyncio

    sys.path.insert(0, str(comfyui.resolve()))
    sys.argv = [sys.argv[0], "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()
    # ComfyUI's main.py imports its `utils` package before `nodes`; otherwise `comfy/utils.py`
    # takes the name and every module needing `utils.install_util` (nodes_images...) fails
    import utils.install_util  # noqa: F401
    import nodes

    started = nodes.init_extra_nodes(init_custom_nodes=False)
    if asyncio.iscoroutine(started):
        asyncio.run(started)
    out = {}
    for node_id, cls in sorted(nodes.NODE_CLASS_MAPPINGS.items()):
        try:
            out[node_id] = _describe(cls, nodes.NODE_DISPLAY_NAME_MAPPINGS.get(node_id, node_id))
        except Exception as exc:  # a node whose INPUT_TYPES needs something absent here
            print(f"skipped {node_id}: {type(exc).__name__}: {exc}", file=sys.stderr)
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    return 0


def _compare_inputs(theirs: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    problems = []
    for section in ("required", "optional"):
        a = {i["name"]: i for i in theirs[section]}
        b = {i["name"]: i for i in ours[section]}
        if section == "required" and list(a) != list(b):
            problems.append(f"required inputs {list(a)} vs ours {list(b)}")
        for name in a.keys() - b.keys():
            if section == "optional":
                problems.append(f"optional input `{name}` missing")
        for name in a.keys() & b.keys():
            x, y = a[name], b[name]
            if x["type"] != y["type"]:
                problems.append(f"`{name}` type {x['type']} vs ours {y['type']}")
                continue
            if x["type"] == "COMBO" and name not in FILE_COMBOS and x["options"] != y["options"]:
                problems.append(f"`{name}` options {x['options']} vs ours {y['options']}")
            for key in OPTION_KEYS:
                if key in x and x.get(key) != y.get(key):
                    problems.append(f"`{name}` {key} {x.get(key)!r} vs ours {y.get(key)!r}")
    return problems


#: object_info keys that name where a node was loaded from, not what it declares
PLACE_KEYS = ("python_module",)


def compare_object_info(theirs: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """Differences between two whole ``/object_info`` entries (JSON values), key by key.

    ``python_module`` is skipped (it names the folder the node was loaded from); a missing
    ``display_name`` on ComfyUI's side (a V3 schema without one) reads as the node id.
    """
    theirs = dict(theirs, display_name=theirs.get("display_name") or theirs.get("name"))
    problems = []
    for key in sorted((set(theirs) | set(ours)) - set(PLACE_KEYS)):
        if key not in ours or key not in theirs:
            problems.append(f"object_info `{key}` only on {'ComfyUI' if key in theirs else 'our'} side")
        elif theirs[key] != ours[key]:
            problems.append(f"object_info `{key}` {theirs[key]!r} vs ours {ours[key]!r}")
    return problems


def check(dump_file: Path, custom_nodes: list[Path] | None = None) -> int:
    """Compare the dump with nodeloom's built-in packs, or with the packs in ``custom_nodes`` alone."""
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from nodeloom import Engine

    theirs = json.loads(dump_file.read_text())
    packs = {"builtin_packs": False, "custom_nodes_dirs": custom_nodes} if custom_nodes else {"load_custom_nodes": False}
    with tempfile.TemporaryDirectory() as base, Engine(base_dir=base, **packs) as engine:
        for pack in engine.registry.failed_packs():
            print(f"{pack.name}: {pack.error}")
        return _report(theirs, engine.registry, whole=bool(custom_nodes))


def node_problems(ref: dict[str, Any], registry: Any, node_id: str, whole: bool = True) -> list[str]:
    """Every difference between ComfyUI's dumped node ``ref`` and our ``node_id``.

    ``whole`` also compares ComfyUI's whole ``/object_info`` entry where the dump has one (for
    ComfyUI's own code loaded as a pack; our built-in nodes add tooltips and descriptions).
    """
    ours = _describe(registry.get(node_id), registry.display_name(node_id))
    problems = _compare_inputs(ref["inputs"], ours["inputs"])
    for key in ("returns", "return_names", "output_node", "category", "display_name"):
        if ref[key] != ours[key]:
            problems.append(f"{key} {ref[key]!r} vs ours {ours[key]!r}")
    if whole and "object_info" in ref:
        problems += compare_object_info(ref["object_info"], registry.object_info(node_id)[node_id])
    return problems


def _report(theirs: dict[str, Any], registry: Any, whole: bool) -> int:
    shared = sorted(set(theirs) & set(registry.classes()))
    differing = 0
    for node_id in shared:
        problems = node_problems(theirs[node_id], registry, node_id, whole)
        if problems:
            differing += 1
            print(f"{node_id}:")
            for p in problems:
                print(f"  {p}")
    print(f"{len(shared)} shared node ids, {differing} with differences")
    return 1 if differing else 0


if __name__ == "__main__":
    argv = sys.argv[1:]
    dirs = [Path(d) for d in argv[argv.index("--custom-nodes") + 1:]] if "--custom-nodes" in argv else []
    argv = argv[: argv.index("--custom-nodes")] if "--custom-nodes" in argv else argv
    if len(argv) != 2 or argv[0] not in ("dump", "check") or (dirs and argv[0] != "check"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(dump(Path(argv[1])) if argv[0] == "dump" else check(Path(argv[1]), dirs))
