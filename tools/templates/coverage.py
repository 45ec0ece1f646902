"""How many of ComfyUI's official local workflow templates use only node types nodeloom knows.

    .venv/bin/python tools/templates/coverage.py [--templates DIR] [--top N] [--json] [--assume T1,T2]

Reads the templates of the pip package ``comfyui-workflow-templates-json`` (or ``--templates
DIR``, a folder holding template JSON files and ``index.json``). A template counts as *local*
when its file name does not start with ``api_``, the index does not mark it ``openSource:
false`` (the index's mark for templates that call paid cloud nodes) and it uses none of the
cloud node types those templates use. A node type is *known* when nodeloom's registry has it
(built-in packs, no custom nodes), when it is a frontend-only node (Note, MarkdownNote, Reroute,
PrimitiveNode) or when it names a subgraph defined inside the same template.

Prints the figure, then the missing node types ranked by how many templates each one would
unlock alone (a template whose only missing type it is), and a greedy cumulative ranking: at
each step the type that unlocks the most templates together with those picked before it (ties
go to the type more templates use).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: nodes the frontend draws and never sends to a backend
FRONTEND_ONLY = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})
#: files in the templates folder that are not workflows
NOT_TEMPLATES = ("index", "fuse_options")


@dataclass
class Template:
    """One workflow template: its name, the node types it uses and the subgraphs it defines.

    ``open_source`` is the index's mark: True or False when the index says, None when silent.
    """

    name: str
    types: set[str]
    subgraphs: set[str] = field(default_factory=set)
    open_source: bool | None = None

    @property
    def cloud_marked(self) -> bool:
        return self.name.startswith("api_") or self.open_source is False

    def missing(self, known: Iterable[str]) -> set[str]:
        """The node types of this template that are neither in ``known`` nor defined by it."""
        return self.types - set(known) - FRONTEND_ONLY - self.subgraphs


def _walk_nodes(workflow: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from workflow.get("nodes") or []
    for sub in (workflow.get("definitions") or {}).get("subgraphs") or []:
        yield from sub.get("nodes") or []


def parse_template(name: str, workflow: Mapping[str, Any], open_source: bool | None = None) -> Template:
    """A :class:`Template` from a UI-format workflow (subgraph definitions included)."""
    types = {str(n["type"]) for n in _walk_nodes(workflow) if isinstance(n, Mapping) and "type" in n}
    subgraphs = {str(s["id"]) for s in (workflow.get("definitions") or {}).get("subgraphs") or [] if "id" in s}
    return Template(name=name, types=types, subgraphs=subgraphs, open_source=open_source)


def default_templates_dir() -> Path:
    """The ``templates`` folder of the installed ``comfyui-workflow-templates-json`` package."""
    spec = importlib.util.find_spec("comfyui_workflow_templates_json")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("comfyui-workflow-templates-json is not installed: pip install comfyui-workflow-templates")
    return Path(next(iter(spec.submodule_search_locations))) / "templates"


def load_templates(folder: Path) -> list[Template]:
    """Every template in ``folder``, with the ``openSource`` mark of its ``index.json`` entry."""
    index_file = folder / "index.json"
    index = json.loads(index_file.read_text(encoding="utf-8")) if index_file.is_file() else []
    marks = {t["name"]: t.get("openSource") for group in index for t in group.get("templates", [])}
    out = []
    for path in sorted(folder.glob("*.json")):
        if path.stem.startswith(NOT_TEMPLATES):
            continue
        workflow = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(workflow, dict) and isinstance(workflow.get("nodes"), list):
            out.append(parse_template(path.stem, workflow, marks.get(path.stem)))
    return out


def local_templates(templates: list[Template]) -> list[Template]:
    """The templates that run on local models: no ``api_`` name, no paid mark, no cloud node.

    Cloud node types are those the ``api_`` and paid-marked templates use and no template the
    index marks open source uses.
    """
    open_types = set().union(*(t.types for t in templates if t.open_source is True))
    cloud_types = set().union(*(t.types for t in templates if t.cloud_marked)) - open_types
    return [t for t in templates if not t.cloud_marked and not t.types & cloud_types]


@dataclass
class Coverage:
    """Covered templates and the ranking of missing node types."""

    total: int
    covered: list[str]
    uses: dict[str, int]
    alone: dict[str, int]
    greedy: list[tuple[str, int]]

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "covered": len(self.covered), "covered_templates": self.covered,
                "uses": self.uses, "unlocks_alone": self.alone,
                "greedy": [{"type": t, "covered": n} for t, n in self.greedy]}


def measure(templates: list[Template], known: set[str], greedy_steps: int = 60) -> Coverage:
    """Coverage of ``templates`` by ``known`` node types, with the rankings of missing types."""
    missing = {t.name: t.missing(known) for t in templates}
    covered = sorted(n for n, m in missing.items() if not m)
    uses = Counter(x for m in missing.values() for x in m)
    alone = Counter(next(iter(m)) for m in missing.values() if len(m) == 1)
    greedy: list[tuple[str, int]] = []
    added: set[str] = set()
    count = len(covered)
    open_sets = [m for m in missing.values() if m]
    for _ in range(min(greedy_steps, len(uses))):
        best = max((x for x in uses if x not in added),
                   key=lambda x: (sum(1 for m in open_sets if m <= added | {x}), uses[x], x))
        added.add(best)
        gained = [m for m in open_sets if m <= added]
        count += len(gained)
        open_sets = [m for m in open_sets if not m <= added]
        greedy.append((best, count))
    return Coverage(len(templates), covered, dict(uses.most_common()), dict(alone.most_common()), greedy)


def known_node_types() -> set[str]:
    """Node types of nodeloom's registry with its built-in packs (no custom nodes)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from nodeloom import Engine

    with tempfile.TemporaryDirectory() as base, Engine(base_dir=base, load_custom_nodes=False) as engine:
        return set(engine.registry.classes())


def _print_report(cov: Coverage, top: int) -> None:
    print(f"template coverage: {len(cov.covered)}/{cov.total} local templates use only node types nodeloom knows")
    print(f"\nmissing node types by templates unlocked alone (top {top}; uses = templates that need it):")
    ranked = sorted(cov.uses, key=lambda x: (-cov.alone.get(x, 0), -cov.uses[x], x))
    for name in ranked[:top]:
        print(f"  {name:40s} alone {cov.alone.get(name, 0):4d}   uses {cov.uses[name]:4d}")
    print("\ngreedy cumulative (type added -> local templates covered):")
    for i, (name, count) in enumerate(cov.greedy[:top], 1):
        print(f"  {i:3d}. {name:40s} {count:4d}/{cov.total}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--templates", type=Path, help="folder of template JSON files (default: the installed package)")
    parser.add_argument("--top", type=int, default=40, help="how many missing types to list (default 40)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--assume", action="append", default=[], metavar="TYPE[,TYPE...]",
                        help="count these node types as known too (to project the figure once work in progress lands)")
    args = parser.parse_args(argv)
    folder = args.templates or default_templates_dir()
    known = known_node_types() | {t.strip() for group in args.assume for t in group.split(",") if t.strip()}
    cov = measure(local_templates(load_templates(folder)), known, greedy_steps=max(args.top, 1))
    if args.json:
        print(json.dumps(cov.to_dict(), indent=1))
    else:
        _print_report(cov, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
