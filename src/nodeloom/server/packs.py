"""What the server reads from loaded node packs: example workflows and translations.

ComfyUI's conventions: a pack folder may hold ``example_workflows/*.json`` (listed by
``/workflow_templates`` and served at ``/api/workflow_templates/<pack>/``) and
``locales/<lang>/{main,nodeDefs,commands,settings}.json`` (merged into ``/i18n``).
Only JSON is read; nothing from a pack folder is imported here.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

__all__ = ["pack_dirs", "translations", "workflow_template_dirs"]

log = logging.getLogger(__name__)

EXAMPLE_FOLDERS = ("example_workflows", "example", "examples", "workflow", "workflows")
EXTRA_LOCALE_FILES = ("nodeDefs", "commands", "settings")


def pack_dirs(registry: Any) -> dict[str, Path]:
    """Folders of successfully loaded packs that are packages (single-file packs have none)."""
    out: dict[str, Path] = {}
    for pack in getattr(registry, "packs", []):
        if pack.error is None and pack.path and Path(pack.path).is_dir():
            out[pack.name] = Path(pack.path)
    return out


def workflow_template_dirs(registry: Any) -> dict[str, Path]:
    """``{pack: folder of example workflows}`` for packs that ship some."""
    out: dict[str, Path] = {}
    for name, folder in pack_dirs(registry).items():
        for sub in EXAMPLE_FOLDERS:
            if (folder / sub).is_dir() and any((folder / sub).glob("*.json")):
                out[name] = folder / sub
                break
    return out


def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        log.error("cannot read translations %s: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def _merge(into: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def translations(registry: Any) -> dict[str, Any]:
    """``{lang: {..main.json keys.., nodeDefs, commands, settings}}`` over all packs."""
    out: dict[str, Any] = {}
    for folder in pack_dirs(registry).values():
        locales = folder / "locales"
        if not locales.is_dir():
            continue
        for lang_dir in sorted(p for p in locales.iterdir() if p.is_dir()):
            entry = _load_json(lang_dir / "main.json")
            for extra in EXTRA_LOCALE_FILES:
                data = _load_json(lang_dir / f"{extra}.json")
                if data:
                    entry[extra] = data
            if entry:
                _merge(out.setdefault(lang_dir.name, {}), entry)
    return out
