"""``nodeloom models WF.json``: the model files a workflow needs, where each goes, whether it is
already there, and the download URL the workflow gives for it.

nodeloom never downloads anything; this prints what a user fetches by hand (or with any
downloader) into the listed folders. Official templates embed the URL of every model file.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from nodeloom.paths import FolderPaths
from nodeloom.workflows.survey import model_files

__all__ = ["add_models_arguments", "models_main"]


def add_models_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workflow", help="a UI workflow (as the frontend or a template saves it), or a PNG that embeds one")
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.add_argument("--missing", action="store_true", help="list only the files not found locally")
    parser.add_argument("--base-dir", default=".", help="parent of models/ (default .)")
    parser.add_argument("--extra-model-paths-config", action="append", default=[], metavar="YAML",
                        help="ComfyUI extra_model_paths.yaml file (repeatable)")


def _status(paths: FolderPaths, directory: str, name: str) -> dict[str, Any]:
    if directory not in paths.folders:
        return {"present": False, "folders": [], "target": None}
    folders = [str(p) for p in paths.model_folders(directory)]
    present = name in paths.get_filename_list(directory)
    return {"present": present, "folders": folders, "target": str(paths.model_folders(directory)[0] / name)}


def models_main(args: argparse.Namespace) -> int:
    """Print the model files of ``args.workflow``; exit 1 when some are missing locally."""
    from nodeloom.workflows.files import read_workflow

    paths = FolderPaths(args.base_dir)
    for yaml_path in args.extra_model_paths_config:
        paths.load_extra_model_paths(yaml_path)
    rows = []
    for model in model_files(read_workflow(args.workflow)):
        row = {**model.to_dict(), **_status(paths, model.directory, model.name)}
        if not (args.missing and row["present"]):
            rows.append(row)
    missing = sum(1 for r in rows if not r["present"])
    if args.json:
        print(json.dumps(rows, indent=1))
        return 1 if missing else 0
    if not rows:
        print("the workflow names no model files" if not args.missing else "every model file is present")
        return 0
    for row in rows:
        state = "present" if row["present"] else "MISSING"
        print(f"{state:8s} {row['directory']}/{row['name']}")
        if not row["present"]:
            print(f"         put it in {row['target'] or 'an unknown folder `' + row['directory'] + '`'}")
            print(f"         from {row['url'] or '(the workflow gives no URL)'}")
    print(f"{len(rows) - missing} present, {missing} missing; nodeloom never downloads: fetch the missing files yourself")
    return 1 if missing else 0
