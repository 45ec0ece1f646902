"""Static files: the official ComfyUI frontend and custom-node ``WEB_DIRECTORY`` folders.

The frontend comes from the ``comfyui-frontend-package`` Python package; when it is missing,
``/`` serves a short page saying how to install it (the API keeps working). Custom-node web
folders are served read-only at ``/extensions/<pack>/``; nothing under them is executed.
"""

from __future__ import annotations

import html
import importlib
import importlib.util
from pathlib import Path

from aiohttp import web

__all__ = ["extension_scripts", "frontend_dir", "index_handler", "static_routes", "template_files", "template_routes"]

INSTALL_HINT = "pip install comfyui-frontend-package   (or: pip install 'nodeloom[server]')"

_MISSING_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>nodeloom</title>
<style>body{{font-family:sans-serif;max-width:46em;margin:4em auto;line-height:1.5}}
code{{background:#eee;padding:.2em .4em}}</style></head>
<body><h1>nodeloom server is running</h1>
<p>The graph editor is not installed: the official ComfyUI frontend comes from the
<code>comfyui-frontend-package</code> Python package ({reason}).</p>
<p>Install it into the environment that runs the server, then reload this page:</p>
<p><code>{hint}</code></p>
<p>The HTTP and WebSocket API (<code>/prompt</code>, <code>/queue</code>, <code>/history</code>,
<code>/ws</code>, ...) works without it.</p></body></html>
"""


def frontend_dir() -> tuple[Path | None, str]:
    """The frontend's ``static`` folder, or ``(None, reason)`` when it is not available."""
    try:
        package = importlib.import_module("comfyui_frontend_package")
    except ImportError:
        return None, "the package is not installed"
    root = Path(package.__file__).parent / "static"
    if not (root / "index.html").is_file():
        return None, f"the package has no `static/index.html` at {root}"
    return root, ""


def index_handler(web_root: Path | None, reason: str) -> web.RouteDef:
    """``GET /``: the frontend's index.html, or the install page when it is missing."""

    async def index(request: web.Request) -> web.StreamResponse:
        if web_root is None:
            page = _MISSING_PAGE.format(reason=html.escape(reason), hint=html.escape(INSTALL_HINT))
            return web.Response(text=page, content_type="text/html")
        response = web.FileResponse(web_root / "index.html")
        response.headers["Cache-Control"] = "no-cache"
        return response

    return web.get("/", index)


def extension_scripts(web_root: Path | None, web_dirs: dict[str, Path]) -> list[str]:
    """URLs of the JavaScript files the frontend should load (``GET /extensions``)."""
    scripts: list[str] = []
    if web_root is not None and (web_root / "extensions").is_dir():
        for f in sorted((web_root / "extensions").rglob("*.js")):
            scripts.append("/" + f.relative_to(web_root).as_posix())
    for name, folder in sorted(web_dirs.items()):
        for f in sorted(Path(folder).rglob("*.js")):
            scripts.append(f"/extensions/{name}/" + f.relative_to(folder).as_posix())
    return scripts


def static_routes(web_root: Path | None, web_dirs: dict[str, Path]) -> list[web.AbstractRouteDef]:
    """Static routes: each pack's web folder, then the frontend's files at ``/``.

    Symlinks leaving a folder are not followed (aiohttp's default), and ``..`` is refused.
    """
    out: list[web.AbstractRouteDef] = []
    for name, folder in sorted(web_dirs.items()):
        if Path(folder).is_dir():
            out.append(web.static(f"/extensions/{name}", Path(folder)))
    if web_root is not None:
        out.append(web.static("/", web_root))
    return out


#: the packages ``comfyui-workflow-templates`` installs: template JSON and media bundles
TEMPLATE_PACKAGES = (
    "comfyui_workflow_templates_json",
    "comfyui_workflow_templates_media_api",
    "comfyui_workflow_templates_media_video",
    "comfyui_workflow_templates_media_image",
    "comfyui_workflow_templates_media_other",
    "comfyui_workflow_templates_media_assets_01",
    "comfyui_workflow_templates_media_assets_02",
    "comfyui_workflow_templates",  # older releases kept every file in one folder here
)


def template_files() -> dict[str, Path]:
    """File name -> path of every installed template file (index, workflow JSON, thumbnails).

    The first package that has a name wins, so the JSON package's index and workflows come first.
    """
    files: dict[str, Path] = {}
    for name in TEMPLATE_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            folder = Path(location) / "templates"
            if folder.is_dir():
                for path in folder.iterdir():
                    if path.is_file():
                        files.setdefault(path.name, path)
    return files


def template_routes() -> list[web.AbstractRouteDef]:
    """``/templates/{name}``: the official workflow templates when ``comfyui-workflow-templates`` is
    installed (its JSON package and media bundles); otherwise empty indexes, so the frontend
    lists no templates instead of failing. Only names found in those folders are served."""
    files = template_files()

    async def template(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = files.get(name)
        if path is not None:
            return web.FileResponse(path)
        if name == "index_logo.json":
            return web.json_response({})
        if name.startswith("index") and name.endswith(".json") and not files:
            return web.json_response([])
        why = "" if files else " (comfyui-workflow-templates is not installed)"
        raise web.HTTPNotFound(text=f"no workflow template file `{name}`{why}")

    return [web.get("/templates/{name}", template)]
