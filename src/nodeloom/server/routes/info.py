"""Read-only information routes: nodes, models, system, features, extensions, translations.

``/object_info`` comes from the engine's registry (``INPUT_TYPES`` is called again on each
request, off the event loop, so combo lists stay current). The rest answer what the official
frontend asks for while it boots.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import platform
import sys
from typing import TYPE_CHECKING, Any

from aiohttp import web

from nodeloom.paths import MODEL_EXTENSIONS
from nodeloom.server import packs
from nodeloom.server.security import error_response
from nodeloom.server.state import get_state
from nodeloom.server.static import extension_scripts

if TYPE_CHECKING:
    from nodeloom.engine import Engine

__all__ = ["ROUTES", "system_stats"]

ROUTES = web.RouteTableDef()


@ROUTES.get("/object_info")
async def object_info(request: web.Request) -> web.Response:
    engine = get_state(request).engine
    info = await asyncio.get_running_loop().run_in_executor(None, engine.object_info)
    return web.json_response(info)


@ROUTES.get("/object_info/{node_class}")
async def object_info_node(request: web.Request) -> web.Response:
    engine = get_state(request).engine
    name = request.match_info["node_class"]
    if engine.registry.get(name) is None:
        return web.json_response({})
    info = await asyncio.get_running_loop().run_in_executor(None, engine.object_info, name)
    return web.json_response(info)


def _memory() -> tuple[int, int]:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return int(vm.total), int(vm.available)
    except ImportError:
        pages, free = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_AVPHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
        return pages * size, free * size


def _device(engine: Engine) -> dict[str, Any]:
    """The compute device the engine's models use, with its memory."""
    try:
        import torch
    except ImportError:
        total, free = _memory()
        return {"name": "cpu", "type": "cpu", "index": None, "vram_total": total, "vram_free": free,
                "torch_vram_total": 0, "torch_vram_free": 0}
    device = engine.services.models.device
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        free, total = torch.cuda.mem_get_info(index)
        reserved = torch.cuda.memory_reserved(index)
        return {"name": f"cuda:{index} {torch.cuda.get_device_name(index)}", "type": "cuda", "index": index,
                "vram_total": int(total), "vram_free": int(free), "torch_vram_total": int(reserved),
                "torch_vram_free": int(reserved - torch.cuda.memory_allocated(index))}
    total, free = _memory()
    return {"name": str(device), "type": device.type, "index": device.index, "vram_total": total, "vram_free": free,
            "torch_vram_total": total, "torch_vram_free": free}


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ""


#: the ComfyUI release whose node and HTTP contract nodeloom follows; reported as
#: ``comfyui_version`` so the frontend's version checks see a real ComfyUI release
COMFYUI_VERSION = "0.3.64"


def system_stats(engine: Engine) -> dict[str, Any]:
    """ComfyUI's ``/system_stats`` with this machine's real memory and device."""
    import nodeloom

    total, free = _memory()
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = ""
    return {
        "system": {
            "os": os.name, "platform": platform.platform(), "ram_total": total, "ram_free": free,
            "comfyui_version": COMFYUI_VERSION, "nodeloom_version": nodeloom.__version__,
            "required_frontend_version": _version("comfyui-frontend-package"),
            "installed_templates_version": _version("comfyui-workflow-templates") or None,
            "required_templates_version": None,
            "python_version": sys.version, "pytorch_version": torch_version,
            "embedded_python": False, "argv": sys.argv,
        },
        "devices": [_device(engine)],
    }


@ROUTES.get("/system_stats")
async def get_system_stats(request: web.Request) -> web.Response:
    engine = get_state(request).engine
    return web.json_response(await asyncio.get_running_loop().run_in_executor(None, system_stats, engine))


@ROUTES.get("/features")
async def features(request: web.Request) -> web.Response:
    return web.json_response(get_state(request).features())


@ROUTES.get("/embeddings")
async def embeddings(request: web.Request) -> web.Response:
    names = get_state(request).paths.get_filename_list("embeddings")
    return web.json_response([os.path.splitext(n)[0] for n in names])


@ROUTES.get("/models")
async def model_folders(request: web.Request) -> web.Response:
    return web.json_response(sorted(get_state(request).paths.folders))


@ROUTES.get("/models/{folder}")
async def model_files(request: web.Request) -> web.Response:
    paths = get_state(request).paths
    folder = request.match_info["folder"]
    if folder not in paths.folders:
        return error_response(404, "not_found", f"model folder `{folder}` is unknown")
    return web.json_response(paths.get_filename_list(folder))


@ROUTES.get("/experiment/models")
async def experiment_models(request: web.Request) -> web.Response:
    paths = get_state(request).paths
    return web.json_response([{"name": name, "folders": [str(p) for p in dirs]}
                              for name, dirs in sorted(paths.folders.items())])


@ROUTES.get("/experiment/models/{folder}")
async def experiment_model_files(request: web.Request) -> web.Response:
    paths = get_state(request).paths
    folder = request.match_info["folder"]
    if folder not in paths.folders:
        return error_response(404, "not_found", f"model folder `{folder}` is unknown")
    out: list[dict[str, Any]] = []
    for index, root in enumerate(paths.model_folders(folder)):
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix.lower() in MODEL_EXTENSIONS:
                st = path.stat()
                out.append({"name": path.relative_to(root).as_posix(), "pathIndex": index,
                            "modified": st.st_mtime, "created": st.st_ctime, "size": st.st_size})
    return web.json_response(out)


@ROUTES.get("/extensions")
async def extensions(request: web.Request) -> web.Response:
    state = get_state(request)
    return web.json_response(extension_scripts(state.web_root, state.engine.registry.web_directories()))


@ROUTES.get("/workflow_templates")
async def workflow_templates(request: web.Request) -> web.Response:
    dirs = packs.workflow_template_dirs(get_state(request).engine.registry)
    return web.json_response({name: sorted(p.stem for p in folder.glob("*.json")) for name, folder in dirs.items()})


@ROUTES.get("/i18n")
async def i18n(request: web.Request) -> web.Response:
    return web.json_response(packs.translations(get_state(request).engine.registry))


@ROUTES.get("/global_subgraphs")
async def global_subgraphs(request: web.Request) -> web.Response:
    return web.json_response({})


@ROUTES.get("/global_subgraphs/{subgraph_id}")
async def global_subgraph(request: web.Request) -> web.Response:
    return error_response(404, "not_found", f"no global subgraph `{request.match_info['subgraph_id']}`")


@ROUTES.get("/node_replacements")
async def node_replacements(request: web.Request) -> web.Response:
    """``{old_node_id: [replacement, ...]}`` from what the loaded packs registered."""
    return web.json_response(get_state(request).engine.registry.node_replacements())
