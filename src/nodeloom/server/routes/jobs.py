"""The jobs API the current frontend uses: ``/jobs``, ``/jobs/{id}``, cancel, assets.

A job is a queue entry seen as one object: ``pending`` → ``in_progress`` → ``completed`` /
``failed`` / ``cancelled``. Times are milliseconds since the epoch.
"""

from __future__ import annotations

import asyncio
import mimetypes
import urllib.parse
from typing import Any

from aiohttp import web

from nodeloom.errors import ValidationError
from nodeloom.server.routes import json_body, query_int
from nodeloom.server.security import error_response
from nodeloom.server.state import ServerState, get_state
from nodeloom.server.store import Job

__all__ = ["ROUTES", "job_summary"]

ROUTES = web.RouteTableDef()

_STATUS = {"pending": "pending", "running": "in_progress", "success": "completed", "error": "failed",
           "interrupted": "cancelled", "cancelled": "cancelled"}
_STATES = {v: [k for k, s in _STATUS.items() if s == v] for v in set(_STATUS.values())}
_MEDIA = {"images": "images", "video": "video", "gifs": "video", "audio": "audio", "animated": "images"}


def _ms(t: float | None) -> int | None:
    return None if t is None else int(t * 1000)


def _media_type(kind: str, filename: str) -> str:
    guessed = (mimetypes.guess_type(filename)[0] or "").split("/")[0]
    if guessed in ("image", "video", "audio"):
        return "images" if guessed == "image" else guessed
    return _MEDIA.get(kind, kind)


def _files(job: Job) -> list[dict[str, Any]]:
    out = []
    for node_id, ui in (job.outputs or {}).items():
        if not isinstance(ui, dict):
            continue
        for kind, items in ui.items():
            for idx, item in enumerate(items if isinstance(items, list) else []):
                if isinstance(item, dict) and isinstance(item.get("filename"), str):
                    out.append({**item, "nodeId": str(node_id), "mediaType": _media_type(kind, item["filename"]),
                                "output_key": kind, "output_index": idx})
    return out


def job_summary(job: Job) -> dict[str, Any]:
    """The list form of a job."""
    files = _files(job)
    previewable = [f for f in files if f["mediaType"] in ("images", "video", "audio")]
    preview = None
    if previewable:
        first = previewable[0]
        preview = {k: first[k] for k in ("filename", "subfolder", "type", "nodeId", "mediaType") if k in first}
    workflow = ((job.extra_data.get("extra_pnginfo") or {}).get("workflow") or {}) if isinstance(
        job.extra_data.get("extra_pnginfo"), dict) else {}
    error = None
    if job.state == "error" and job.status:
        for event, data in job.status.get("messages", []):
            if event == "execution_error":
                error = {**data, "node_id": str(data.get("node_id") or ""), "node_type": str(data.get("node_type") or ""),
                         "traceback": list(data.get("traceback") or [])}
    return {
        "id": job.prompt_id, "status": _STATUS.get(job.state, job.state), "priority": job.number,
        "create_time": _ms(job.created), "execution_start_time": _ms(job.started),
        "execution_end_time": _ms(job.finished), "preview_output": preview,
        "outputs_count": len(files), "previewable_outputs_count": len(previewable),
        "execution_error": error, "workflow_id": workflow.get("id") if isinstance(workflow, dict) else None,
    }


def _detail(job: Job) -> dict[str, Any]:
    return {**job_summary(job), "workflow": {"prompt": job.prompt, "extra_data": job.extra_data},
            "outputs": job.outputs, "update_time": _ms(job.finished or job.started or job.created),
            "execution_status": job.status, "execution_meta": job.meta}


@ROUTES.get("/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    store = get_state(request).queue.store
    wanted = [s for s in request.query.get("status", "").split(",") if s] or list(_STATES)
    unknown = [s for s in wanted if s not in _STATES]
    if unknown:
        raise ValidationError(f"`status` must be among {sorted(_STATES)}, got {unknown}", type="invalid_query")
    limit = query_int(request, "limit", 100, minimum=1) or 100
    offset = query_int(request, "offset", 0, minimum=0) or 0
    states = [st for s in wanted for st in _STATES[s]]
    jobs, total = await asyncio.get_running_loop().run_in_executor(
        None, lambda: store.page(states, limit=limit, offset=offset))
    return web.json_response({"jobs": [job_summary(j) for j in jobs],
                              "pagination": {"offset": offset, "limit": limit, "total": total,
                                             "has_more": offset + len(jobs) < total}})


def _job(request: web.Request) -> Job | None:
    return get_state(request).queue.get(request.match_info["job_id"])


@ROUTES.get("/jobs/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    job = _job(request)
    if job is None:
        return error_response(404, "not_found", f"job `{request.match_info['job_id']}` does not exist")
    return web.json_response(_detail(job))


def _cancel(state: ServerState, job_id: str) -> bool:
    job = state.queue.get(job_id)
    if job is None:
        return False
    if job.state == "pending":
        state.queue.delete([job_id])
    elif job.state == "running":
        state.worker.interrupt(job_id)
    return True


@ROUTES.post("/jobs/{job_id}/cancel")
async def cancel_job(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    if not _cancel(get_state(request), job_id):
        return error_response(404, "not_found", f"job `{job_id}` does not exist")
    return web.json_response({"id": job_id, "cancelled": True})


@ROUTES.post("/jobs/cancel")
async def cancel_jobs(request: web.Request) -> web.Response:
    body = await json_body(request)
    ids = body.get("job_ids")
    if not isinstance(ids, list):
        raise ValidationError("`job_ids` must be a list of job ids", type="invalid_request")
    state = get_state(request)
    return web.json_response({"cancelled": [str(i) for i in ids if _cancel(state, str(i))]})


@ROUTES.get("/jobs/{job_id}/assets")
async def job_assets(request: web.Request) -> web.Response:
    job = _job(request)
    if job is None:
        return error_response(404, "not_found", f"job `{request.match_info['job_id']}` does not exist")
    limit = query_int(request, "limit", 500, minimum=1) or 500
    offset = query_int(request, "offset", 0, minimum=0) or 0
    files = get_state(request).queue.store.output_files(job.prompt_id)
    assets = []
    for f in files[offset: offset + limit]:
        query = urllib.parse.urlencode({"filename": f["filename"], "subfolder": f["subfolder"], "type": f["type"]})
        assets.append({"id": f"{job.prompt_id}:{f['node_id']}:{f['kind']}:{f['idx']}",
                       "name": f["filename"], "preview_url": f"/api/view?{query}",
                       "mime_type": mimetypes.guess_type(f["filename"])[0], "node_id": f["node_id"],
                       "output_key": f["kind"], "output_index": f["idx"]})
    return web.json_response({"job_id": job.prompt_id, "assets": assets,
                              "pagination": {"offset": offset, "limit": limit, "total": len(files),
                                             "has_more": offset + len(assets) < len(files)}})
