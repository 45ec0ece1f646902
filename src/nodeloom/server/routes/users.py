"""User routes: ``/users``, ``/settings``, ``/userdata``, ``/v2/userdata`` (ComfyUI's shapes).

A user's files live in their own folder; a nested path arrives as one URL segment with
``%2F``. Traversal, absolute paths and escaping symlinks are refused with 400.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from aiohttp import web

from nodeloom.paths import write_atomic
from nodeloom.server.routes import json_body, query_bool
from nodeloom.server.security import error_response
from nodeloom.server.state import get_state
from nodeloom.server.users import file_info

__all__ = ["ROUTES"]

ROUTES = web.RouteTableDef()


def _user(request: web.Request) -> str:
    return get_state(request).users.user_id(request.headers.get("comfy-user"))


@ROUTES.get("/users")
async def get_users(request: web.Request) -> web.Response:
    users = get_state(request).users
    if users.multi_user:
        return web.json_response({"storage": "server", "users": users.users})
    return web.json_response({"storage": "server", "migrated": (users.root / "default").is_dir()})


@ROUTES.post("/users")
async def post_users(request: web.Request) -> web.Response:
    body = await json_body(request)
    name = body.get("username")
    if not isinstance(name, str):
        return error_response(400, "invalid_username", "`username` must be a string")
    return web.json_response(get_state(request).users.add_user(name))


@ROUTES.get("/settings")
async def get_settings(request: web.Request) -> web.Response:
    return web.json_response(get_state(request).users.settings(_user(request)))


@ROUTES.get("/settings/{id}")
async def get_setting(request: web.Request) -> web.Response:
    settings = get_state(request).users.settings(_user(request))
    return web.json_response(settings.get(request.match_info["id"]))


@ROUTES.post("/settings")
async def post_settings(request: web.Request) -> web.Response:
    body = await json_body(request)
    get_state(request).users.update_settings(_user(request), body)
    return web.Response(status=200)


@ROUTES.post("/settings/{id}")
async def post_setting(request: web.Request) -> web.Response:
    raw = await request.read()
    try:
        value = json.loads(raw) if raw.strip() else None
    except json.JSONDecodeError as exc:
        return error_response(400, "invalid_json", f"the setting value is not valid JSON: {exc}")
    get_state(request).users.update_settings(_user(request), {request.match_info["id"]: value})
    return web.Response(status=200)


def _list_dir(path: Path, recurse: bool, full_info: bool, split: bool) -> list[Any]:
    files = sorted(p for p in (path.rglob("*") if recurse else path.glob("*")) if p.is_file())
    out: list[Any] = []
    for f in files:
        if full_info:
            out.append(file_info(f, path))
            continue
        rel = f.relative_to(path).as_posix()
        out.append([rel, *rel.split("/")] if split else rel)
    return out


@ROUTES.get("/userdata")
async def list_userdata(request: web.Request) -> web.Response:
    users = get_state(request).users
    directory = request.query.get("dir", "")
    if not directory:
        return error_response(400, "invalid_path", "`dir` query parameter is required")
    path = users.user_path(_user(request), directory)
    if not path.is_dir():
        return error_response(404, "not_found", f"user data folder `{directory}` does not exist")
    result = _list_dir(path, query_bool(request, "recurse"), query_bool(request, "full_info"), query_bool(request, "split"))
    return web.json_response(result)


@ROUTES.get("/v2/userdata")
async def list_userdata_v2(request: web.Request) -> web.Response:
    users = get_state(request).users
    user = _user(request)
    base = users.user_root(user)
    rel = request.query.get("path", "")
    target = users.user_path(user, rel) if rel else base
    if not target.exists():
        return web.json_response([]) if target == base else error_response(404, "not_found", f"`{rel}` does not exist")
    if not target.is_dir():
        return error_response(400, "invalid_path", f"`{rel}` is not a folder")
    out: list[dict[str, Any]] = []
    for p in sorted(target.rglob("*")):
        entry: dict[str, Any] = {"name": p.name, "path": p.relative_to(base).as_posix(),
                                 "type": "directory" if p.is_dir() else "file"}
        if p.is_file():
            st = p.stat()
            entry.update(size=st.st_size, modified=st.st_mtime)
        out.append(entry)
    out.sort(key=lambda e: (e["type"] != "directory", e["name"].lower()))
    return web.json_response(out)


def _file(request: web.Request, param: str = "file") -> Path:
    users = get_state(request).users
    return users.user_path(_user(request), request.match_info[param])


def _reply(request: web.Request, path: Path) -> web.Response:
    root = get_state(request).users.user_root(_user(request))
    if query_bool(request, "full_info"):
        return web.json_response(file_info(path, root))
    return web.json_response(path.relative_to(root).as_posix())


@ROUTES.get("/userdata/{file}")
async def get_userdata(request: web.Request) -> web.StreamResponse:
    path = _file(request)
    if not path.is_file():
        return error_response(404, "not_found", f"user data file `{request.match_info['file']}` does not exist")
    # stored bytes are handed back as data, never as a page or script the browser would run
    ctype = "application/json" if path.suffix.lower() == ".json" else "application/octet-stream"
    return web.FileResponse(path, headers={"X-Content-Type-Options": "nosniff", "Content-Type": ctype})


@ROUTES.post("/userdata/{file}")
async def post_userdata(request: web.Request) -> web.Response:
    path = _file(request)
    overwrite = request.query.get("overwrite", "true") != "false"
    if path.exists() and not overwrite:
        return error_response(409, "file_exists", f"`{request.match_info['file']}` already exists")
    if path.is_dir():
        return error_response(400, "invalid_path", f"`{request.match_info['file']}` is a folder")
    body = await request.read()

    def write() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, body)

    await asyncio.get_running_loop().run_in_executor(None, write)
    return _reply(request, path)


@ROUTES.delete("/userdata/{file}")
async def delete_userdata(request: web.Request) -> web.Response:
    path = _file(request)
    if not path.is_file():
        return error_response(404, "not_found", f"user data file `{request.match_info['file']}` does not exist")
    path.unlink()
    return web.Response(status=204)


@ROUTES.post("/userdata/{file}/move/{dest}")
async def move_userdata(request: web.Request) -> web.Response:
    source, dest = _file(request), _file(request, "dest")
    if not source.is_file():
        return error_response(404, "not_found", f"user data file `{request.match_info['file']}` does not exist")
    if dest.exists() and request.query.get("overwrite", "true") == "false":
        return error_response(409, "file_exists", f"`{request.match_info['dest']}` already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(dest))
    return _reply(request, dest)
