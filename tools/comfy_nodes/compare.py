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
               "clip_name", "style_model_name", "upscale_model_name", "gligen_name", "hypernetwork_name"}


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
                "options": [_jsonable(o) for o in kind] if isinstance(kind, list) else None,
                **{k: _jsonable(opts[k]) for k in OPTION_KEYS if k in opts},
            })
    returns = [str(t) if not isinstance(t, list) else "COMBO" for t in getattr(cls, "RETURN_TYPES", ())]
    return {
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


def check(dump_file: Path) -> int:
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from nodeloom import Engine

    theirs = json.loads(dump_file.read_text())
    with tempfile.TemporaryDirectory() as base, Engine(base_dir=base, load_custom_nodes=False) as engine:
        registry = engine.registry
        return _report(theirs, registry)


def _report(theirs: dict[str, Any], registry: Any) -> int:
    shared = sorted(set(theirs) & set(registry.classes()))
    differing = 0
    for node_id in shared:
        cls = registry.get(node_id)
        ours = _describe(cls, registry.display_name(node_id))
        ref = theirs[node_id]
        problems = _compare_inputs(ref["inputs"], ours["inputs"])
        for key in ("returns", "return_names", "output_node", "category", "display_name"):
            if ref[key] != ours[key]:
                problems.append(f"{key} {ref[key]!r} vs ours {ours[key]!r}")
        if problems:
            differing += 1
            print(f"{node_id}:")
            for p in problems:
                print(f"  {p}")
    print(f"{len(shared)} shared node ids, {differing} with differences")
    return 1 if differing else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("dump", "check"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(dump(Path(sys.argv[2])) if sys.argv[1] == "dump" else check(Path(sys.argv[2])))
