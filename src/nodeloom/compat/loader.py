"""Load ComfyUI custom-node packs from folders into a :class:`~nodeloom.core.registry.NodeRegistry`.

Like ComfyUI: every sub-folder with an ``__init__.py`` and every ``.py`` file of a
custom-nodes folder is a pack (``__pycache__``, hidden entries and ``*.disabled`` are
skipped); it is imported as a package under a module name unique to its path (so relative
imports inside it work), with the ComfyUI shims of :mod:`nodeloom.compat.hook` installed.
Its ``NODE_CLASS_MAPPINGS`` / ``NODE_DISPLAY_NAME_MAPPINGS`` / ``WEB_DIRECTORY`` are
registered, or the extension returned by ``comfy_entrypoint()``. What a pack prints while it
imports goes to the log, not to stdout. A pack that fails to import
is logged with "(IMPORT FAILED)" and recorded; the others still load. Built-in node ids are
never overridden by a custom pack. Package installs a pack starts while importing are refused
unless the user allowed them, and threads it starts become named daemon threads
(:mod:`nodeloom.compat.containment`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import hashlib
import importlib.util
import inspect
import io
import logging
import re
import sys
import threading
import time
import traceback
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nodeloom.compat import containment, hook
from nodeloom.core.context import activate_services, current_services
from nodeloom.core.registry import NodeRegistry, PackInfo
from nodeloom.errors import NodeloomError, PackImportError

__all__ = ["discover_packs", "load_custom_node_packs", "load_pack", "loading_registry"]

log = logging.getLogger("nodeloom.custom_nodes")


def discover_packs(directory: Path) -> list[Path]:
    """Pack entries of one custom-nodes folder, sorted by name.

    Args:
        directory: a ``custom_nodes`` folder (missing folders yield nothing).
    """
    if not directory.is_dir():
        return []
    found = []
    for entry in sorted(directory.iterdir(), key=lambda p: p.name):
        name = entry.name
        if name == "__pycache__" or name.startswith(".") or name.endswith(".disabled"):
            continue
        if entry.is_dir() and (entry / "__init__.py").is_file():
            found.append(entry)
        elif entry.is_file() and entry.suffix == ".py":
            found.append(entry)
    return found


def _module_name(path: Path) -> str:
    """A module name unique to the pack's resolved path (stable across loads)."""
    stem = re.sub(r"\W", "_", path.stem if path.is_file() else path.name)
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    return f"nodeloom_custom_nodes.{stem}_{digest}"


def _ensure_namespace() -> None:
    if "nodeloom_custom_nodes" not in sys.modules:
        namespace = types.ModuleType("nodeloom_custom_nodes")
        namespace.__path__ = []  # a package with no files: only holds the packs
        namespace.__doc__ = "Custom-node packs imported by nodeloom, one sub-module per pack path."
        sys.modules["nodeloom_custom_nodes"] = namespace


class _LogWriter(io.TextIOBase):
    """A text stream that sends each printed line to the log (a pack's ``print`` at import
    must not reach stdout, where ``--json`` output goes)."""

    def __init__(self, pack: str) -> None:
        self.pack = pack
        self._partial = ""
        self._inside = threading.local()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if getattr(self._inside, "active", False):
            # a logging handler a pack pointed at this stream is writing our own record: stderr
            return sys.__stderr__.write(text) if sys.__stderr__ is not None else len(text)
        self._inside.active = True
        try:
            lines = (self._partial + text).split("\n")
            self._partial = lines.pop()
            for line in lines:
                log.info("[%s] %s", self.pack, line)
        finally:
            self._inside.active = False
        return len(text)

    def flush(self) -> None:
        if self._partial:
            log.info("[%s] %s", self.pack, self._partial)
            self._partial = ""


def _import_pack(path: Path) -> types.ModuleType:
    _ensure_namespace()
    name = _module_name(path)
    init = path / "__init__.py" if path.is_dir() else path
    search = [str(path)] if path.is_dir() else None
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=search)
    if spec is None or spec.loader is None:
        raise PackImportError(f"cannot build an import spec for `{init}`")
    for stale in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[stale]  # a reload picks up edited files
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _entrypoint_nodes(module: types.ModuleType) -> tuple[dict[str, type], dict[str, str]]:
    """Node classes of a V3 ``comfy_entrypoint()`` extension (``await on_load()``, ``await get_node_list()``)."""
    entry = module.comfy_entrypoint
    if not callable(entry):
        raise PackImportError("`comfy_entrypoint` is not callable")

    async def collect() -> list[Any]:
        extension = entry()
        if inspect.isawaitable(extension):
            extension = await extension
        on_load = getattr(extension, "on_load", None)
        if callable(on_load) and inspect.isawaitable(loaded := on_load()):
            await loaded
        nodes = extension.get_node_list()
        return list(await nodes) if inspect.isawaitable(nodes) else list(nodes)

    classes: dict[str, type] = {}
    names: dict[str, str] = {}
    for cls in _run_coroutine(collect):
        schema = getattr(cls, "SCHEMA", None)
        if schema is None and hasattr(cls, "GET_SCHEMA"):
            schema = cls.GET_SCHEMA()
        node_id = getattr(schema, "node_id", None) or getattr(cls, "NODE_ID", None)
        if not node_id:
            raise PackImportError(f"entrypoint node `{getattr(cls, '__name__', cls)}` has no node id")
        classes[node_id] = cls
        display = getattr(schema, "display_name", None)
        if display:
            names[node_id] = display
    return classes, names


def _run_coroutine(factory: Any) -> Any:
    """Run ``factory()``'s coroutine to completion, also when this thread runs an event loop
    (then in a helper thread that sees this context: the active services and loading registry)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(context.run, lambda: asyncio.run(factory())).result()


_loading: contextvars.ContextVar[NodeRegistry | None] = contextvars.ContextVar("nodeloom_loading_registry",
                                                                               default=None)


def loading_registry() -> NodeRegistry:
    """The registry custom-node packs are loading into (packs register node replacements there).

    Raises:
        NodeloomError: no pack is loading in this context.
    """
    registry = _loading.get()
    if registry is None:
        raise NodeloomError("node replacements can only be registered while custom-node packs load "
                            "(at import, in `comfy_entrypoint` or in the extension's `on_load`)",
                            type="no_loading_registry")
    return registry


def _mappings(module: types.ModuleType) -> tuple[dict[str, type], dict[str, str]]:
    classes = getattr(module, "NODE_CLASS_MAPPINGS", None)
    if classes is not None:
        return dict(classes), dict(getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None) or {})
    if hasattr(module, "comfy_entrypoint"):
        return _entrypoint_nodes(module)
    raise PackImportError("the pack defines neither `NODE_CLASS_MAPPINGS` nor `comfy_entrypoint`")


def _web_directory(module: types.ModuleType, path: Path) -> Path | None:
    web = getattr(module, "WEB_DIRECTORY", None)
    if not web:
        return None
    base = path if path.is_dir() else path.parent
    full = (base / str(web)).resolve()
    return full if full.is_dir() else None


def load_pack(path: Path, registry: NodeRegistry, protected: set[str] | frozenset[str] = frozenset()) -> PackInfo:
    """Import one pack and register its nodes; failures are recorded, never raised.

    Args:
        path: the pack folder or ``.py`` file.
        registry: where nodes go.
        protected: node ids a custom pack may not replace (the built-in ones).

    Returns:
        The pack's :class:`PackInfo` (``error`` set when it failed).
    """
    name = path.stem if path.is_file() else path.name
    info = PackInfo(name=name, module=f"custom_nodes.{name}", path=str(path))
    start = time.perf_counter()
    active = current_services(required=False)
    allow = containment.installs_allowed(getattr(active, "settings", None))
    try:
        writer = _LogWriter(name)
        with contextlib.redirect_stdout(writer), containment.contained(name, allow):
            module = _import_pack(path)
            classes, display = _mappings(module)
        writer.flush()
        skipped = sorted(k for k in classes if k in protected)
        if skipped:
            log.warning("custom nodes %s: ignoring node ids that shadow built-in nodes: %s", name, ", ".join(skipped))
        kept = {k: v for k, v in classes.items() if k not in protected}
        info.web_directory = _web_directory(module, path)
        info.load_seconds = time.perf_counter() - start
        return registry.register_pack(info, kept, {k: v for k, v in display.items() if k in kept})
    except Exception as exc:  # noqa: BLE001 - one broken pack must not stop the others
        info.load_seconds = time.perf_counter() - start
        info.error = f"(IMPORT FAILED) {type(exc).__name__}: {exc}"
        log.warning("Cannot import %s module for custom nodes:\n%s", path, traceback.format_exc())
        registry.record_failure(info)
        return info


def _protected_ids(registry: NodeRegistry) -> set[str]:
    return {node_id for pack in registry.packs if pack.builtin and pack.error is None for node_id in pack.node_ids}


@contextlib.contextmanager
def _maybe_services(services: Any) -> Iterator[None]:
    if services is None:
        yield
    else:
        with activate_services(services):
            yield


def load_custom_node_packs(dirs: list[Path], registry: NodeRegistry, services: Any = None) -> list[PackInfo]:
    """Load every pack found in ``dirs`` (in order) into ``registry``.

    Installs the ComfyUI import hook first (and leaves it installed: pack code imports the
    shims again while it runs).

    Args:
        dirs: custom-nodes folders.
        registry: the engine's registry (built-in packs already registered).
        services: the engine's services, made active while packs import (packs often call
            ``folder_paths`` at import time).

    Returns:
        One :class:`PackInfo` per pack, failed ones included.
    """
    hook.install()
    from nodeloom.compat.comfy import server_shim

    server_shim.reset_app()
    protected = _protected_ids(registry)
    infos: list[PackInfo] = []
    token = _loading.set(registry)
    try:
        with containment.guarding():
            _load_all(dirs, registry, services, protected, infos)
    finally:
        _loading.reset(token)
    _log_summary(infos)
    return infos


def _load_all(dirs: list[Path], registry: NodeRegistry, services: Any, protected: set[str],
              infos: list[PackInfo]) -> None:
    with _maybe_services(services):
        _record_dirs(dirs)
        for directory in dirs:
            for path in discover_packs(Path(directory)):
                infos.append(load_pack(path, registry, protected))


def _record_dirs(dirs: list[Path]) -> None:
    """Note the folders in the active engine's paths (``folder_paths`` lists them as ``custom_nodes``)."""
    active = current_services(required=False)
    if active is None:
        return
    known = active.paths.custom_nodes_dirs
    for directory in dirs:
        resolved = Path(directory).resolve()
        if resolved not in known:
            known.append(resolved)


def _log_summary(infos: list[PackInfo]) -> None:
    if not infos:
        return
    lines = ["Import times for custom nodes:"]
    for info in sorted(infos, key=lambda i: i.load_seconds):
        flag = " (IMPORT FAILED)" if info.error else ""
        lines.append(f"  {info.load_seconds:6.1f} seconds{flag}: {info.path}")
    log.info("\n".join(lines))
