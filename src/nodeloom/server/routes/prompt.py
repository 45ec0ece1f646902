"""Prompt, queue and history routes: ``/prompt``, ``/queue``, ``/history``, ``/interrupt``, ``/free``.

Shapes and errors follow ComfyUI: a valid prompt answers ``{prompt_id, number, node_errors}``;
an invalid one answers 400 ``{error: {type, message, details, extra_info}, node_errors}``.
Validation and the resource-limit estimate run off the event loop, so a large graph never
stalls other requests. Every malformed field (a non-finite or huge ``number``, an id that is
not a string) answers 400 with a JSON error.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import Any

from aiohttp import web

from nodeloom.errors import ValidationError
from nodeloom.server.routes import json_body, query_int
from nodeloom.server.state import get_state

__all__ = ["ROUTES"]

ROUTES = web.RouteTableDef()


def _bad_prompt(error: dict[str, Any], node_errors: dict[str, Any] | None = None) -> web.Response:
    return web.json_response({"error": error, "node_errors": node_errors or {}}, status=400)


#: largest magnitude of a client's own queue ``number`` (exact as a float and in JavaScript)
MAX_NUMBER = 2**53


def _number(body: dict[str, Any], state: Any) -> float:
    """The queue number: the client's own (finite, within ±MAX_NUMBER) or the next counter value."""
    if "number" in body:
        value = body["number"]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and isinstance(value, int):
            ok = abs(value) <= MAX_NUMBER
        elif ok:
            ok = math.isfinite(value) and abs(value) <= MAX_NUMBER
        if not ok:
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "…"
            raise ValidationError(f"`number` must be a finite number within ±{MAX_NUMBER}, got {shown}",
                                  type="invalid_number")
        return float(value)
    return state.queue.next_number(front=bool(body.get("front", False)))


def _ids(body: dict[str, Any]) -> tuple[str, Any]:
    """The prompt id (given or new) and the client id, each a string when given."""
    for key in ("prompt_id", "client_id"):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise ValidationError(f"`{key}` must be a string, got {type(value).__name__}", type="invalid_prompt")
        if isinstance(value, str) and (len(value) > 256 or "\x00" in value):
            raise ValidationError(f"`{key}` must be at most 256 characters without NUL", type="invalid_prompt")
    return body.get("prompt_id") or str(uuid.uuid4()), body.get("client_id")


@ROUTES.get("/prompt")
async def get_prompt(request: web.Request) -> web.Response:
    return web.json_response(get_state(request).queue.status())


@ROUTES.post("/prompt")
async def post_prompt(request: web.Request) -> web.Response:
    state = get_state(request)
    body = await json_body(request)
    if "prompt" not in body:
        return _bad_prompt({"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided",
                            "extra_info": {}})
    prompt = body["prompt"]
    if not isinstance(prompt, dict):
        return _bad_prompt({"type": "invalid_prompt", "message": "`prompt` must be an object of nodes",
                            "details": f"got {type(prompt).__name__}", "extra_info": {}})
    targets = body.get("partial_execution_targets")
    if targets is not None and (not isinstance(targets, list) or not all(isinstance(t, str) for t in targets)):
        return _bad_prompt({"type": "invalid_prompt", "message": "`partial_execution_targets` must be a list of node ids",
                            "details": repr(targets), "extra_info": {}})
    prompt_id, client_id = _ids(body)
    extra_data = body.get("extra_data") or {}
    if not isinstance(extra_data, dict):
        return _bad_prompt({"type": "invalid_prompt", "message": "`extra_data` must be an object",
                            "details": repr(extra_data), "extra_info": {}})
    if "client_id" in body:
        extra_data["client_id"] = client_id
    number = _number(body, state)
    if isinstance(prompt, dict):  # the queue and history keep the prompt that runs, as in ComfyUI
        prompt = state.engine.registry.replace_nodes(prompt)
    loop = asyncio.get_running_loop()
    try:
        pnginfo = extra_data.get("extra_pnginfo")
        workflow = pnginfo.get("workflow") if isinstance(pnginfo, dict) else None
        result = await loop.run_in_executor(None, lambda: state.engine.validate(prompt, targets=targets, workflow=workflow))
    except ValidationError as exc:
        return _bad_prompt(exc.to_dict(), exc.node_errors)
    if not result.ok:
        return _bad_prompt(result.error or {"type": "invalid_prompt", "message": "invalid prompt", "details": "",
                                            "extra_info": {}}, result.node_errors)
    try:  # the prompt's constants against the limits, before it takes a place in the queue
        limits = state.config.limits.for_extra_data(extra_data)
        await loop.run_in_executor(None, limits.check_prompt, result.prompt, state.engine.registry.get)
    except ValidationError as exc:
        return _bad_prompt(exc.to_dict())
    try:
        state.queue.put(prompt_id, number, prompt, extra_data, list(result.outputs_to_execute))
    except ValueError as exc:
        return _bad_prompt({"type": "duplicate_prompt_id", "message": str(exc), "details": "", "extra_info": {}})
    shown: float | int = int(number) if float(number).is_integer() else number
    return web.json_response({"prompt_id": prompt_id, "number": shown, "node_errors": result.node_errors})


@ROUTES.get("/queue")
async def get_queue(request: web.Request) -> web.Response:
    queue = get_state(request).queue
    return web.json_response({"queue_running": [j.queue_item() for j in queue.running()],
                              "queue_pending": [j.queue_item() for j in queue.pending()]})


def _id_list(body: dict[str, Any], key: str) -> list[str]:
    ids = body.get(key, [])
    if not isinstance(ids, list):
        raise ValidationError(f"`{key}` must be a list of prompt ids, got {type(ids).__name__}", type="invalid_request")
    return [str(i) for i in ids]


@ROUTES.post("/queue")
async def post_queue(request: web.Request) -> web.Response:
    queue = get_state(request).queue
    body = await json_body(request)
    if body.get("clear"):
        queue.clear()
    if "delete" in body:
        queue.delete(_id_list(body, "delete"))
    return web.Response(status=200)


@ROUTES.get("/history")
async def get_history(request: web.Request) -> web.Response:
    max_items = query_int(request, "max_items", minimum=0)
    offset = query_int(request, "offset", -1)
    queue = get_state(request).queue
    # up to the whole history: read and decode it off the event loop
    history = await asyncio.get_running_loop().run_in_executor(
        None, lambda: queue.history(max_items=max_items, offset=offset if offset is not None else -1))
    return web.json_response(history)


@ROUTES.get("/history/{prompt_id}")
async def get_history_item(request: web.Request) -> web.Response:
    return web.json_response(get_state(request).queue.history_item(request.match_info["prompt_id"]))


@ROUTES.post("/history")
async def post_history(request: web.Request) -> web.Response:
    queue = get_state(request).queue
    body = await json_body(request)
    if body.get("clear"):
        queue.delete_history(None)
    if "delete" in body:
        queue.delete_history(_id_list(body, "delete"))
    return web.Response(status=200)


@ROUTES.post("/interrupt")
async def post_interrupt(request: web.Request) -> web.Response:
    body = await json_body(request, required=False)
    prompt_id = body.get("prompt_id")
    get_state(request).worker.interrupt(str(prompt_id) if prompt_id else None)
    return web.Response(status=200)


@ROUTES.post("/free")
async def post_free(request: web.Request) -> web.Response:
    body = await json_body(request, required=False)
    unload, free = bool(body.get("unload_models", False)), bool(body.get("free_memory", False))
    if unload or free:
        get_state(request).worker.request_free(unload_models=unload, free_memory=free)
    return web.Response(status=200)
